"""Coupons and a redemption on the real broker (issue 20), on a broker of its own with
the market's clock simulated (``KESSAI_CLOCK=ticks``, topic ``clock``): holders of
¥60m and ¥40m of a 0.9 % bond at the record time are paid ¥270,000 and ¥180,000 on
the adjusted date; after a SIGKILL of the worker the same coupon pays nothing more; at
maturity each is repaid face plus the last coupon (¥100,450,000 per ¥100m) and no
bond is left, and an order resting on the bond is cancelled (``instrument_matured``),
a later one refused; ``kessai replay`` derives every payment and the close again. On
both profiles (the secure one on a broker of its own too: every input signed, the
engine's close signed by the worker's key). Read back with read_committed."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import cli
from streams.bonds.coupons import Event
from streams.config import Settings
from streams.devtools import localkafka
from streams.kafka.admin import ensure_public_topics
from tests.support.logs import Seen, collect, read_journal
from tests.support.profiles import Profile, plain, start_secure_cluster
from tests.support.records import bond_deposit, bond_record, cash_deposit
from tests.support.workers import running_worker

pytestmark = pytest.mark.integration

D = dt.date.fromisoformat


def _utc(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("secure", [False, pytest.param(True, marks=pytest.mark.slow)])
async def test_coupons_and_a_redemption_are_paid_once_and_replay_agrees(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    secure: bool,
) -> None:
    run = uuid.uuid4().hex[:6]
    bond = bond_record(run)
    # acct-*: accounts the secure profile's test venue serves.
    isin, a, b, x = bond["isin"], f"acct-a-{run}", f"acct-b-{run}", f"acct-x-{run}"
    agent = f"agent-{run}"
    admin, market, reader_env = _broker(tmp_path / "kafka", secure)
    reader = market.reader
    env = _worker_env(market, agent)
    coupon = Event(isin, D("2027-03-20"), redemption=False)  # Saturday: paid Tue 23rd
    maturity = Event(isin, D("2027-09-20"), redemption=True)  # a holiday: paid the 21st
    try:
        await ensure_public_topics(market.settings_of("admin"))
        try:
            with running_worker(tmp_path / "w1.log", env) as worker:
                await market.send("instruments", isin, bond)
                await market.send("custody", a, bond_deposit(f"c1-{run}", a, isin, 60_000_000))
                await market.send("custody", b, bond_deposit(f"c2-{run}", b, isin, 40_000_000))
                await market.send("payments", agent, cash_deposit(f"p1-{run}", agent, "450000"))
                # A tick may be fetched before records sent ahead of it on other
                # partitions: the holders must be on the ledger before the record time.
                await _wait_for(reader, f"custody:c2-{run}")
                await _wait_for(reader, f"custody:c1-{run}")
                # a sells x 10m for the day before the coupon; x pays after it.
                sale = _sale(market.venue, run, isin, seller=a, buyer=x,
                             trade_time=coupon.record_s - 13 * 3600)  # fmt: skip
                await market.send("trades", sale["trade_id"], sale)
                # The record time, as the journal sees it: the sale waits for its
                # settlement date (the 19th), and nothing else moves until the tick.
                await asyncio.sleep(0.01)
                record_time = dt.datetime.now(dt.UTC).isoformat()
                await _tick(market, coupon.record_s)
                await _tick(market, coupon.pay_s)
                await _wait_for(reader, f"{coupon.id}:{b}")
                await market.send("payments", x, cash_deposit(f"p3-{run}", x, "11000000"))
                await _wait_for(reader, f"claim:{sale['trade_id']}:{coupon.date}/credit")
                worker.kill()
            with running_worker(tmp_path / "w2.log", env):
                # The same coupon again: a restarted engine, the bond published again.
                await market.send("instruments", isin, bond)
                await market.send("payments", agent, cash_deposit(f"p2-{run}", agent, "100450000"))
                # An order resting at maturity is cancelled (the engine's close, signed
                # by the worker's key under the secure profile); one after it is refused.
                await market.send("orders", isin, _order(market.venue, f"o1-{run}", isin, b))
                await _order_event(reader, f"o1-{run}", "accepted")
                await _tick(market, maturity.record_s)
                await _tick(market, maturity.pay_s)
                await _wait_for(reader, f"{maturity.id}:{b}")
                await _order_event(reader, f"o1-{run}", "cancelled", "instrument_matured")
                await market.send("orders", isin, _order(market.venue, f"o2-{run}", isin, b))
                await _order_event(reader, f"o2-{run}", "rejected", "instrument_matured")
        finally:
            await market.close()
        await _check_journal(
            reader, run, (a, b, x, agent), isin, coupon, maturity, sale["trade_id"]
        )
        for name, value in reader_env.items():
            monkeypatch.setenv(name, value)
        # `kessai positions --as-of` the record time shows the holders the run paid:
        # a's 60m (10m of it sold, not yet settled) and b's 40m.
        assert await _positions(capsys, record_time, isin) == {a: 60_000_000, b: 40_000_000}
        assert await asyncio.to_thread(cli.main, ["replay"]) == 0
    finally:
        localkafka.down(admin)


def _worker_env(market: Profile, agent: str) -> dict[str, str]:
    return {**market.worker_env, "KESSAI_CLOCK": "ticks",
            "KESSAI_SECURITY_MASTER": "required", "KESSAI_PAYING_AGENT": agent,
            # The sale waits days of the simulated clock for its cash.
            "KESSAI_SETTLEMENT_DEADLINE_S": str(30 * 86_400),
            "KESSAI_TRADE_WINDOW_S": str(40 * 86_400)}  # fmt: skip


def _broker(workdir: Path, secure: bool) -> tuple[Settings, Profile, dict[str, str]]:
    """A broker of the test's own: its admin settings, the market's profile (who sends
    what, signed under the secure one), and the environment of a reader (ops)."""
    if secure:
        cluster = start_secure_cluster(workdir)
        return cluster.admin, cluster.profile(), cluster.env("ops")
    admin = localkafka.up_private(workdir, log=lambda line: None)
    return admin, plain(admin.bootstrap), {"KESSAI_BOOTSTRAP": admin.bootstrap}


async def _positions(capsys: pytest.CaptureFixture[str], as_of: str, isin: str) -> dict[str, int]:
    """Face held (available + locked) per account, by ``kessai positions --as-of``."""
    capsys.readouterr()
    argv = ["positions", "--as-of", as_of, "--asset", isin, "--format", "json"]
    assert await asyncio.to_thread(cli.main, argv) == 0
    return {p["account"]: int(p["available"]) + int(p["locked"])
            for p in orjson.loads(capsys.readouterr().out)}  # fmt: skip


async def _tick(market: Profile, to_s: float) -> None:
    """Move the simulated clock (``clock`` is unsigned: the admin's in the secure profile)."""
    await market.send_raw("clock", _utc(to_s), orjson.dumps({"to": _utc(to_s)}))


def _sale(
    venue: str, run: str, isin: str, *, seller: str, buyer: str, trade_time: float
) -> dict[str, Any]:
    return {"trade_id": f"{venue}:sale-{run}", "venue": venue, "isin": isin, "buyer": buyer,
            "seller": seller, "quantity": 10_000_000, "price": "99.5", "currency": "JPYC",
            "trade_time": _utc(trade_time)}  # fmt: skip


def _order(venue: str, order_id: str, isin: str, account: str) -> dict[str, Any]:
    return {"order_id": order_id, "venue": venue, "account": account, "isin": isin,
            "side": "sell", "quantity": 10_000_000, "price": "99.5",
            "currency": "JPYC"}  # fmt: skip


async def _order_event(
    settings: Settings, order_id: str, event: str, reason: str | None = None
) -> None:
    def seen(records: Seen) -> bool:
        return any((r["order_id"], r["event"], r["reason"]) == (order_id, event, reason)
                   for r in records)  # fmt: skip

    assert seen(await collect(settings, ["order-events"], seen)), (order_id, event)


async def _wait_for(settings: Settings, cause: str) -> None:
    await collect(settings, ["ledger-events"], lambda s: any(r.get("cause") == cause for r in s))


async def _check_journal(
    settings: Settings,
    run: str,
    accounts: tuple[str, str, str, str],
    isin: str,
    coupon: Event,
    maturity: Event,
    sale_id: str,
) -> None:
    a, b, x, agent = accounts
    journal = await read_journal(settings, run)
    by_cause = Counter(r["cause"] for r in journal)
    paid = {(r["account"], r["cause"]): r["delta_available"] for r in journal}
    # Holders at the record time: a still held the 10m it sold (the sale settles later).
    assert paid[(a, f"{coupon.id}:{a}")] == "270000"
    assert paid[(b, f"{coupon.id}:{b}")] == "180000"
    assert paid[(agent, coupon.id)] == "-450000"
    # The sale settled after the record time: a passes the coupon on 10m to x.
    claim = f"claim:{sale_id}:{coupon.date}"
    assert paid[(a, claim)] == "-45000" and paid[(x, claim + "/credit")] == "45000"
    # Paid once: one record per cause, though the worker was killed and restarted and
    # the bond published twice.
    assert all(n == 1 for cause, n in by_cause.items() if cause.startswith(coupon.id))
    # At maturity, face plus the last coupon: ¥100,450,000 per ¥100m.
    assert paid[(a, f"{maturity.id}:{a}")] == "50225000"
    assert paid[(b, f"{maturity.id}:{b}")] == "40180000"
    assert paid[(x, f"{maturity.id}:{x}")] == "10045000"
    assert paid[(a, f"{maturity.id}:{a}/burn")] == "-50000000"
    last = {(r["account"], r["asset"]): (r["available"], r["locked"]) for r in journal}
    assert last[(a, isin)] == last[(b, isin)] == last[(x, isin)] == ("0", "0")  # none left
    assert last[(agent, "JPYC")] == ("0", "0")
