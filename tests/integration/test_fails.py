"""Fails on the real broker (issue 21), on a broker of its own with the market's clock
simulated (``KESSAI_CLOCK=ticks``): a T+1 trade (partial settlement allowed) whose
seller has no bonds is ``failing`` from its settlement date's 14:00 JST cut-off and
recycles through three fail days without being cancelled, each with its CSDR
penalty; the seller delivers ¥60m of the ¥100m and the next cut-off settles that part
(``partially_settled``), the rest failing with a penalty on what remains; the rest
comes and settles, the parts summing to the trade's original amount. Another trade,
never delivered, is ``cancelled`` (``max_fail_days``) at its fourth business day after
the settlement date, its buyer's cash released. Read back with read_committed;
``kessai penalties --month`` sums the month per pair; ``kessai replay`` derives every
status and penalty again."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import cli
from streams.bonds.terms import start_of
from streams.config import Settings
from streams.devtools import localkafka
from streams.kafka.admin import ensure_public_topics
from tests.support.logs import Seen, collect, read_journal
from tests.support.profiles import Profile, plain
from tests.support.records import bond_deposit, bond_record, cash_deposit
from tests.support.workers import running_worker

pytestmark = pytest.mark.integration


def _jst(day: str, hour: float = 0) -> float:
    return start_of(dt.date.fromisoformat(day)) + hour * 3600


def _utc(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_fail_recycles_with_penalties_settles_in_parts_and_another_is_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = uuid.uuid4().hex[:6]
    bond = bond_record(run)
    isin, buyer, seller = bond["isin"], f"b-{run}", f"s-{run}"
    admin = localkafka.up_private(tmp_path / "kafka", log=lambda line: None)
    market = plain(admin.bootstrap)
    reader = market.reader
    env = {**market.worker_env, "KESSAI_CLOCK": "ticks", "KESSAI_SECURITY_MASTER": "required",
           "KESSAI_SETTLEMENT_LAG": "1", "KESSAI_MAX_FAIL_DAYS": "4",
           "KESSAI_TRADE_WINDOW_S": str(40 * 86_400)}  # fmt: skip
    # t2: Fri 29 Jan 2027, settles Mon 1 Feb; t1: Mon 1 Feb, settles Tue 2 Feb.
    t1 = _trade(market.venue, f"t1-{run}", isin, buyer, seller, _jst("2027-02-01", 10))
    t1["partial"] = "allowed"
    t2 = _trade(market.venue, f"t2-{run}", isin, buyer, seller, _jst("2027-01-29", 10))
    try:
        await ensure_public_topics(market.settings_of("admin"))
        with running_worker(tmp_path / "worker.log", env) as worker:
            await market.send("instruments", isin, bond)
            await market.send("payments", buyer, cash_deposit(f"p1-{run}", buyer, "300000000"))
            await _ledger(reader, f"payment:p1-{run}")
            for trade in (t2, t1):
                await market.send("trades", trade["trade_id"], trade)
                await _status(reader, trade["trade_id"], "pending", "awaiting_settlement_date")
            # Each tick waits for what it causes: a record sent after it must not be
            # fetched ahead of it.
            await _tick(market, _jst("2027-02-01", 14))
            await _status(reader, t2["trade_id"], "failing", "insufficient_securities")
            await _tick(market, _jst("2027-02-02", 14))
            await _status(reader, t1["trade_id"], "failing", "insufficient_securities")
            await _tick(market, _jst("2027-02-03", 14))
            await _tick(market, _jst("2027-02-04", 14))  # t1's third fail day
            await _penalty(reader, t1["trade_id"], "2027-02-04")
            # ¥60m of the ¥100m: the next cut-off settles that part, the rest fails on.
            await market.send(
                "custody", seller, bond_deposit(f"c1-{run}", seller, isin, 60_000_000)
            )
            await _ledger(reader, f"custody:c1-{run}")
            await _tick(market, _jst("2027-02-05", 14))  # t2's end
            await _status(reader, t2["trade_id"], "cancelled", "max_fail_days")
            part = await _status(reader, t1["trade_id"], "partially_settled", None)
            await market.send(
                "custody", seller, bond_deposit(f"c2-{run}", seller, isin, 40_000_000)
            )
            settled = await _status(reader, t1["trade_id"], "settled", None)
            assert worker.alive, worker.log_tail()
        # The original amount: accrued to the settlement date (2 Feb), not to the day it
        # settled (5 Feb): 135 days from 20 Sep 2026 at 0.9 % on ¥100m is ¥332,876. Part
        # 1: 60m x 99.5 / 100 = 59,700,000 and 0.3328767 per 100 on 60m = 199,726; the
        # rest takes what remains: 99,832,876 - 59,899,726 = 39,933,150.
        assert (settled["settlement_date"], settled["accrued"]) == ("2027-02-02", "332876")
        assert (part["part"], part["part_quantity"], part["part_principal"],
                part["part_accrued"], part["part_cash_amount"]) == (
            1, 60_000_000, "59700000", "199726", "59899726")  # fmt: skip
        assert (settled["part"], settled["part_quantity"], settled["part_cash_amount"]) == (
            2, 40_000_000, "39933150")  # fmt: skip
        await _check(reader, run, t1["trade_id"], t2["trade_id"], buyer, seller, isin)
        await _check_penalties(reader, t1["trade_id"], t2["trade_id"])
        monkeypatch.setenv("KESSAI_BOOTSTRAP", admin.bootstrap)
        await _check_penalties_cli(capsys, seller, buyer)
        assert await asyncio.to_thread(cli.main, ["replay"]) == 0
    finally:
        await market.close()
        localkafka.down(admin)


async def _check(
    reader: Settings, run: str, t1: str, t2: str, buyer: str, seller: str, isin: str
) -> None:
    seen = await collect(reader, ["settlements"], lambda s: False, timeout_s=3)
    statuses = {
        tid: [(r["status"], r["reason"]) for r in seen if r["trade_id"] == tid] for tid in (t1, t2)
    }
    # Failing is said once (the later fail days keep its reason), and again for the
    # rest after a part.
    assert statuses[t1] == [("pending", "awaiting_settlement_date"),
                            ("pending", "insufficient_securities"),
                            ("failing", "insufficient_securities"),
                            ("partially_settled", None),
                            ("failing", "insufficient_securities"), ("settled", None)]  # fmt: skip
    assert statuses[t2] == [("pending", "awaiting_settlement_date"),
                            ("pending", "insufficient_securities"),
                            ("failing", "insufficient_securities"),
                            ("cancelled", "max_fail_days")]  # fmt: skip
    journal = await read_journal(reader, run)
    last = {(r["account"], r["asset"]): (r["available"], r["locked"]) for r in journal}
    cash = 300_000_000 - 99_832_876  # t1's principal 99,500,000 + accrued 332,876
    assert last[(buyer, "JPYC")] == (str(cash), "0")  # t2 took nothing: nothing locked
    assert last[(buyer, isin)] == ("100000000", "0")
    assert last[(seller, isin)] == ("0", "0")


async def _check_penalties_cli(capsys: pytest.CaptureFixture[str], seller: str, buyer: str) -> None:
    capsys.readouterr()
    argv = ["penalties", "--month", "2027-02", "--format", "json"]
    assert await asyncio.to_thread(cli.main, argv) == 0
    pairs = [p for p in orjson.loads(capsys.readouterr().out) if p["liable"] == seller]
    # Eight fail days of two trades: 1-4 Feb for t2, 2-5 Feb for t1: 7 x 998 + 399.
    assert pairs == [{"month": "2027-02", "liable": seller, "counterparty": buyer,
                      "currency": "JPYC", "fail_days": 8, "trades": 2,
                      "amount": "7385"}]  # fmt: skip


async def _check_penalties(reader: Settings, t1: str, t2: str) -> None:
    seen = await collect(reader, ["penalties"], lambda s: False, timeout_s=3)
    mine = [(r["trade_id"], r["day"], r["fail_day"], r["side"], r["amount"]) for r in seen
            if r["trade_id"] in (t1, t2)]  # fmt: skip
    # CSDR, a lack of securities, on 99,832,876 JPYC: 0.10 bp a day is ¥998; on t1's
    # rest after its part, 39,933,150: ¥399. One per fail day, none for t1 once
    # settled nor for t2's cancellation day.
    assert sorted(mine) == [
        (t1, "2027-02-02", 1, "seller", "998"),
        (t1, "2027-02-03", 2, "seller", "998"),
        (t1, "2027-02-04", 3, "seller", "998"),
        (t1, "2027-02-05", 4, "seller", "399"),
        (t2, "2027-02-01", 1, "seller", "998"),
        (t2, "2027-02-02", 2, "seller", "998"),
        (t2, "2027-02-03", 3, "seller", "998"),
        (t2, "2027-02-04", 4, "seller", "998"),
    ]


def _trade(
    venue: str, trade_id: str, isin: str, buyer: str, seller: str, at_s: float
) -> dict[str, Any]:
    return {"trade_id": trade_id, "venue": venue, "isin": isin, "buyer": buyer,
            "seller": seller, "quantity": 100_000_000, "price": "99.5", "currency": "JPYC",
            "trade_time": _utc(at_s)}  # fmt: skip


async def _tick(market: Profile, to_s: float) -> None:
    await market.send_raw("clock", _utc(to_s), orjson.dumps({"to": _utc(to_s)}))


async def _penalty(settings: Settings, trade_id: str, day: str) -> None:
    def seen(records: Seen) -> bool:
        return any((r.get("trade_id"), r.get("day")) == (trade_id, day) for r in records)

    assert seen(await collect(settings, ["penalties"], seen)), (trade_id, day)


async def _ledger(settings: Settings, cause: str) -> None:
    await collect(settings, ["ledger-events"], lambda s: any(r.get("cause") == cause for r in s))


async def _status(
    settings: Settings, trade_id: str, status: str, reason: str | None
) -> dict[str, Any]:
    def match(r: dict[str, Any]) -> bool:
        return (r.get("trade_id"), r.get("status"), r.get("reason")) == (trade_id, status, reason)

    def seen(records: Seen) -> bool:
        return any(match(r) for r in records)

    found = [r for r in await collect(settings, ["settlements"], seen) if match(r)]
    assert found, (trade_id, status, reason)
    return found[0]
