"""The security master on the real broker (issue 20), through a worker process: the
reference JGBs published on ``instruments`` (signed by the registrar under the secure
profile), a trade that settles with kessai's own accrued interest and every figure an
auditor needs, what the master refuses (a company's ISIN, an unknown bond, an odd lot,
a wrong accrued), a trade waiting for its settlement date, and ``kessai instruments
list``. Read back with read_committed; each test runs on both profiles."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas import check_digit
from streams.bonds.accrued import accrued
from streams.bonds.terms import jst_date
from streams.cli.instruments import reference_file
from streams.devtools import localkafka
from streams.engine.manifest import Manifest
from streams.kafka.admin import ensure_public_topics
from streams.kafka.reader import read_committed
from streams.runtime.batches import partition_of
from streams.topics import ENGINE_LOG, engine_topic
from tests.support.logs import Seen, collect
from tests.support.profiles import Profile
from tests.support.records import bond_deposit, bond_record, cash_deposit, trade_time
from tests.support.workers import running_worker

pytestmark = pytest.mark.integration

#: 10-year JGB #377 in the reference file: 0.9 %, coupons 20 March and September.
JGB = "JP1103771Q62"
TOYOTA = "JP3633400001"


def _reference() -> list[dict[str, Any]]:
    lines = reference_file().read_bytes().splitlines()
    return [orjson.loads(line) for line in lines if line.strip()]


def _unknown_jgb() -> str:
    body = "JP1" + uuid.uuid4().hex[:8].upper()
    return body + check_digit(body)


async def test_the_security_master_checks_dates_and_computes_accrued(
    profile: Profile, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    buyer, seller = f"buyer-b{run}", f"seller-b{run}"
    venue = profile.venue

    def trade(n: int, isin: str = JGB, **more: Any) -> tuple[str, dict[str, Any]]:
        tid = f"{venue}:bond{n}-{run}"
        return tid, {"trade_id": tid, "venue": venue, "isin": isin, "buyer": buyer,
                     "seller": seller, "quantity": 100_000_000, "price": "98.765",
                     "currency": "JPYC", "trade_time": trade_time(), **more}  # fmt: skip

    await ensure_public_topics(profile.settings_of("admin"))
    env = {**profile.worker_env, "KESSAI_SECURITY_MASTER": "required",
           "KESSAI_SETTLEMENT_LAG": "0"}  # fmt: skip
    with running_worker(tmp_path / "worker.log", env):
        for bond in _reference():
            await profile.send("instruments", bond["isin"], bond)
        await profile.send("custody", seller, bond_deposit(f"c1-{run}", seller, JGB, 100_000_000))
        await profile.send("custody", seller, bond_deposit(f"c2-{run}", seller, JGB, 70_000))
        await profile.send("payments", buyer, cash_deposit(f"p-{run}", buyer, "200000000"))
        # Kafka orders nothing across partitions: wait until the bond and the deposits
        # are on the ledger (c1 is refused unless the instrument came first).
        funded = {f"custody:c1-{run}", f"payment:p-{run}"}
        await collect(
            profile.reader,
            ["ledger-events"],
            lambda seen: funded <= {r.get("cause") for r in seen},
        )
        sent = [
            trade(1),  # settles today (lag 0) with kessai's accrued
            trade(2, isin=TOYOTA),
            trade(3, isin=_unknown_jgb()),
            trade(4, accrued_interest="1"),
            trade(5, settlement_date=jst_date(time.time() + 86_400).isoformat()),
        ]
        for tid, record in sent:
            await profile.send("trades", tid, record)
        ids = [tid for tid, _ in sent]

        def done(seen: Seen) -> bool:
            refs = {r.get("ref") for r in seen if r["topic"] == "rejections"}
            statuses = {r["trade_id"] for r in seen if r["topic"] == "settlements"}
            return {ids[1], ids[2], ids[3], f"c2-{run}"} <= refs and {ids[0], ids[4]} <= statuses

        seen = await collect(profile.reader, ["settlements", "rejections"], done)
        _check(seen, ids, run)
    listed = subprocess.run(
        [sys.executable, "-m", "streams.cli", "instruments", "list"],
        env={**profile.worker_env, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "10-year JGB #377" in listed.stdout and "JP1103771Q62" in listed.stdout


def _check(seen: Seen, ids: list[str], run: str) -> None:
    reasons = {r["ref"]: r["reason"] for r in seen if r["topic"] == "rejections" and r.get("ref")}
    assert reasons[ids[1]] == "not_a_jgb"
    assert reasons[ids[2]] == "unknown_isin"
    assert reasons[ids[3]] == "accrued_mismatch"
    assert reasons[f"c2-{run}"] == "invalid_quantity"  # 70,000 is not a ¥50,000 multiple
    statuses = {
        r["trade_id"]: r for r in seen if r["topic"] == "settlements" and r["trade_id"] in ids
    }
    settled = statuses[ids[0]]
    assert settled["status"] == "settled", settled
    today = jst_date(time.time())
    # What kessai's own rule says for today (the worked numbers are unit tests).
    expected = accrued(100_000_000, Decimal("0.9"), today, ((3, 20), (9, 20)))
    assert settled["trade_date"] == settled["settlement_date"] == today.isoformat()
    assert settled["principal"] == "98765000" and settled["price"] == "98.765"
    assert (settled["accrued"], settled["days_accrued"]) == (str(expected.jpy), expected.days)
    assert settled["cash_amount"] == str(98_765_000 + expected.jpy)
    waiting = statuses[ids[4]]
    assert (waiting["status"], waiting["reason"]) == ("pending", "awaiting_settlement_date")


#: Copies of a bond republished ahead of a new one: more than one fetch of a partition
#: (1 MiB) holds, so a fetch hands over the new bond's trades before the bond itself.
REPUBLISHED = 6_000


async def test_a_bond_in_a_backlog_is_known_to_the_trades_after_it(tmp_path: Path) -> None:
    """A registrar republishing its master, then a new bond, its deposits and a trade in
    it, all while no engine runs: the engine reads ``instruments`` to its end before
    any other input, so neither the deposit nor the trade is refused ``unknown_isin``
    (without that read, the first fetch brings the deposit, the trade and only the
    first MiB of the master)."""
    settings = localkafka.up_private(tmp_path / "kafka", log=lambda line: None)
    n = settings.partitions
    filler, new = bond_record(uuid.uuid4().hex), bond_record(uuid.uuid4().hex)
    while partition_of(new["isin"].encode(), n) != partition_of(filler["isin"].encode(), n):
        new = bond_record(uuid.uuid4().hex)  # behind the copies, on their partition
    run = uuid.uuid4().hex[:6]
    isin, buyer, seller = new["isin"], f"buyer-{run}", f"seller-{run}"
    try:
        await ensure_public_topics(settings)
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
        await producer.start()
        try:
            copy = orjson.dumps(filler)
            for _ in range(REPUBLISHED):
                await producer.send("instruments", copy, key=filler["isin"].encode())
            sends = [
                ("instruments", isin, new),
                ("custody", seller, bond_deposit(f"c-{run}", seller, isin, 100_000_000)),
                ("payments", buyer, cash_deposit(f"p-{run}", buyer, "200000000")),
                ("trades", f"v:t-{run}", {"trade_id": f"v:t-{run}", "venue": "v", "isin": isin,
                                          "buyer": buyer, "seller": seller,
                                          "quantity": 100_000_000, "price": "99.5",
                                          "currency": "JPYC", "trade_time": trade_time()}),
            ]  # fmt: skip
            for topic, key, record in sends:
                await producer.send_and_wait(topic, orjson.dumps(record), key=key.encode())
        finally:
            await producer.stop()
        env = {"KESSAI_BOOTSTRAP": settings.bootstrap, "KESSAI_SECURITY_MASTER": "required",
               "KESSAI_SETTLEMENT_LAG": "0"}  # fmt: skip
        with running_worker(tmp_path / "worker.log", env):
            seen = await collect(
                settings,
                ["settlements", "rejections"],
                lambda seen: any(r.get("trade_id") == f"v:t-{run}" for r in seen),
            )
        assert [r for r in seen if r["topic"] == "rejections"] == []
        [settled] = [r for r in seen if r.get("trade_id") == f"v:t-{run}"]
        assert settled["status"] == "settled", settled
        log = (tmp_path / "worker.log").read_text(encoding="utf-8")
        assert f"{REPUBLISHED + 1} reference data records read before any other input" in log
        # The journal is stamped with its batch's clock, not its commit's, so that
        # `kessai positions --as-of` a coupon's record time is what the run took.
        batch_ms = {
            int(Manifest.from_bytes(r.value).now_s * 1000)
            for r in await read_committed(settings, engine_topic(settings.app_id, ENGINE_LOG))
        }
        journal = await read_committed(settings, "ledger-events")
        assert journal and {r.timestamp for r in journal} <= batch_ms
    finally:
        localkafka.down(settings)


async def test_dated_orders_cross_only_their_date_and_the_trade_waits_for_it(
    profile: Profile, tmp_path: Path
) -> None:
    """Orders naming tomorrow's settlement date: an undated buy does not cross the
    dated sell; a buy of the same date does, and the matched trade waits for that
    date with kessai's checks, holding both legs from the orders' reservations."""
    run = uuid.uuid4().hex[:6]
    buyer, seller, venue = f"buyer-d{run}", f"seller-d{run}", profile.venue
    tomorrow = jst_date(time.time() + 86_400).isoformat()

    def order(oid: str, account: str, side: str, date: str | None) -> dict[str, Any]:
        return {"order_id": f"{oid}-{run}", "venue": venue, "account": account, "isin": JGB,
                "side": side, "quantity": 10_000_000, "price": "99.5", "currency": "JPYC",
                **({"settlement_date": date} if date else {})}  # fmt: skip

    await ensure_public_topics(profile.settings_of("admin"))
    env = {**profile.worker_env, "KESSAI_SECURITY_MASTER": "required",
           "KESSAI_SETTLEMENT_LAG": "0"}  # fmt: skip
    with running_worker(tmp_path / "worker.log", env):
        bond = next(b for b in _reference() if b["isin"] == JGB)
        await profile.send("instruments", JGB, bond)
        await profile.send("custody", seller, bond_deposit(f"cd-{run}", seller, JGB, 10_000_000))
        # Two buys of 10m at 99.5 reserve ~¥9.95m and their accrued each.
        await profile.send("payments", buyer, cash_deposit(f"pd-{run}", buyer, "30000000"))
        # Orders reserve at entry: sent once the deposits are applied (Kafka orders
        # nothing across topics; an order fetched first would be refused for funds).
        funded = {f"custody:cd-{run}", f"payment:pd-{run}"}
        await collect(profile.reader, ["ledger-events"],
                      lambda s: funded <= {r.get("cause") for r in s})  # fmt: skip
        for oid, account, side, date in (("s", seller, "sell", tomorrow),
                                         ("u", buyer, "buy", None),
                                         ("b", buyer, "buy", tomorrow)):  # fmt: skip
            await profile.send("orders", JGB, order(oid, account, side, date))

        def filled(seen: Seen) -> str | None:
            return next((r["trade_id"] for r in seen if r.get("order_id") == f"b-{run}"
                         and r["event"] == "filled"), None)  # fmt: skip

        events = await collect(profile.reader, ["order-events"], lambda s: bool(filled(s)))
        trade_id = filled(events)
        assert trade_id is not None, events
        mine = [(r["order_id"], r["event"]) for r in events if r["order_id"].endswith(run)]
        assert (f"u-{run}", "accepted") in mine and len(
            [e for e in mine if e[0] == f"u-{run}"]
        ) == 1  # the undated buy rests: no fill
        seen = await collect(
            profile.reader,
            ["settlements"],
            lambda s: any(r["trade_id"] == trade_id for r in s),
        )
        # Leave the shared book as it was.
        cancel = {"order_id": f"u-{run}", "venue": venue, "account": buyer, "isin": JGB,
                  "currency": "JPYC", "action": "cancel"}  # fmt: skip
        await profile.send("orders", JGB, cancel)
    [status] = [r for r in seen if r["trade_id"] == trade_id]
    assert (status["status"], status["reason"]) == ("pending", "awaiting_settlement_date")
    assert status["settlement_date"] == tomorrow
