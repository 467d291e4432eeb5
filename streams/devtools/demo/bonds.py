"""Act 5 of the demo: JGBs with dates, accrued interest, a coupon, a market claim and a
redemption, on a broker of its own with a simulated clock (docs/bonds.md).

A coupon date or a maturity is months away, so this act runs a second worker with
``KESSAI_CLOCK=ticks`` on a private broker (under the state dir, removed after): the
demo moves the market's clock forward on the ``clock`` topic and the engine does what
falls due. The security master is required and trades settle T+1 (the BOJ-NET
convention). Every figure printed is computed here from the rules
(:mod:`streams.bonds`) and compared with what the worker wrote to ``ledger-events`` and
``settlements``; a difference is a problem, and the demo fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.bonds.accrued import accrued
from streams.bonds.coupons import Event, coupon_jpy
from streams.bonds.terms import start_of
from streams.cli.instruments import reference_file
from streams.config import Settings
from streams.devtools.demo.fails import play_fails
from streams.devtools.processes import WorkerProcess
from streams.kafka.admin import ensure_public_topics
from streams.kafka.reader import read_committed

__all__ = ["play_bonds"]

#: 10-year JGB #377 (0.9 %, 20 March and September) and 2-year #480 (0.9 %, 1 June
#: and December, maturing 1 December 2028), from the reference file.
TEN_YEAR, TWO_YEAR = "JP1103771Q62", "JP1024801Q64"
AGENT = "paying-agent"
WAIT_S = 90.0


def _utc(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jst(day: str, hour: int = 0) -> float:
    return start_of(dt.date.fromisoformat(day)) + hour * 3600


class _Act:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer, run: str) -> None:
        self.settings, self.producer, self.run = settings, producer, run
        self.problems: list[str] = []

    def acct(self, name: str) -> str:
        return f"{name}-{self.run}"

    async def send(self, topic: str, key: str, record: dict[str, Any]) -> None:
        await self.producer.send_and_wait(topic, orjson.dumps(record), key=key.encode())

    async def deposit(self, n: int, name: str, isin: str | None, amount: int) -> None:
        account = self.acct(name)
        record: dict[str, Any]
        if isin is None:
            record = {"payment_id": f"bp{n}-{self.run}", "account": account, "token": "JPYC",
                      "amount": str(amount), "kind": "deposit"}  # fmt: skip
            await self.send("payments", account, record)
        else:
            record = {"movement_id": f"bc{n}-{self.run}", "account": account, "isin": isin,
                      "quantity": amount, "kind": "deposit"}  # fmt: skip
            await self.send("custody", account, record)

    async def tick(self, to_s: float) -> None:
        await self.send("clock", _utc(to_s), {"to": _utc(to_s)})

    async def ledger(self, cause: str) -> dict[str, Any]:
        """The ledger event of ``cause``, once the worker wrote it."""
        found = await self._find("ledger-events", lambda r: r.get("cause") == cause)
        return found or {}

    async def status(self, trade_id: str, status: str, reason: str | None) -> dict[str, Any]:
        found = await self._find(
            "settlements",
            lambda r: (r["trade_id"], r["status"], r["reason"]) == (trade_id, status, reason),
        )
        return found or {}

    async def find(self, topic: str, match: Any) -> dict[str, Any] | None:
        """The first committed record of ``topic`` that ``match``es, once written."""
        return await self._find(topic, match)

    async def _find(self, topic: str, match: Any) -> dict[str, Any] | None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            for r in await read_committed(self.settings, topic):
                value = orjson.loads(r.value)
                if match(value):
                    return dict(value)
            await asyncio.sleep(0.5)
        self.problems.append(f"{topic}: nothing came in {WAIT_S:.0f} s")
        return None

    def expect(self, what: str, got: Any, want: Any) -> None:
        mark = "ok" if str(got) == str(want) else f"EXPECTED {want}"
        print(f"    {what}: {got}  [{mark}]")
        if str(got) != str(want):
            self.problems.append(f"act 5: {what}: {got}, expected {want}")


async def _story(act: _Act) -> None:
    alice, bob, carol, dave = (act.acct(n) for n in ("alice", "bob", "carol", "dave"))
    for line in reference_file().read_bytes().splitlines():
        bond = orjson.loads(line)
        await act.send("instruments", bond["isin"], bond)
    print("  the registrar published the reference JGBs (kessai instruments load)")
    await act.deposit(1, "alice", TEN_YEAR, 60_000_000)
    await act.deposit(2, "bob", TEN_YEAR, 40_000_000)
    await act.deposit(3, "dave", TWO_YEAR, 100_000_000)
    agent_total = 7 * 450_000 + 100_450_000  # six coupons and #480's last, and its face
    await act.send("payments", AGENT, {"payment_id": f"bp4-{act.run}", "account": AGENT,
                                       "token": "JPYC", "amount": str(agent_total),
                                       "kind": "deposit"})  # fmt: skip
    # A tick may be fetched before records sent ahead of it on other partitions
    # (Kafka orders nothing across them): the holders must be on the ledger first.
    for n in (1, 2, 3):  # alice, bob and dave's bonds
        await act.ledger(f"custody:bc{n}-{act.run}")
    await act.ledger(f"payment:bp4-{act.run}")
    print("  alice holds 60m and bob 40m of 10-year #377 (0.9 %), dave 100m of 2-year #480")
    trade_id = f"v:b1-{act.run}"
    await act.send("trades", trade_id, {
        "trade_id": trade_id, "venue": "v", "isin": TEN_YEAR, "buyer": carol, "seller": bob,
        "quantity": 10_000_000, "price": "99.5", "currency": "JPYC",
        "trade_time": _utc(_jst("2027-03-18", 10))})  # fmt: skip
    waiting = await act.status(trade_id, "pending", "awaiting_settlement_date")
    print("  Thu 18 Mar 2027 10:00 JST: bob sells carol 10m of #377 at 99.5, no accrued sent")
    act.expect("trade date", waiting.get("trade_date"), "2027-03-18")
    act.expect("settlement date (T+1)", waiting.get("settlement_date"), "2027-03-19")
    await act.tick(_jst("2027-03-19"))
    await act.status(trade_id, "pending", "insufficient_cash")
    print("  Fri 19 Mar 00:00 JST: the trade starts; carol has no cash yet: pending")
    coupon = Event(TEN_YEAR, dt.date(2027, 3, 20), redemption=False)
    await act.tick(coupon.record_s)
    failing = await act.status(trade_id, "failing", "insufficient_cash")
    print("  Fri 19 Mar 14:00 JST, the settlement date's cut-off: still no cash, the trade is "
          "failing; it recycles, it is not cancelled (docs/fails.md)")  # fmt: skip
    act.expect("failing, the buyer liable", failing.get("reason"), "insufficient_cash")
    await act.tick(coupon.pay_s)
    print("  Sat 20 Mar is #377's coupon date; its record time is 00:00 JST that day. Paid "
          "Tue 23 Mar (21st the equinox, 22nd its substitute holiday):")  # fmt: skip
    paid_alice = await act.ledger(f"{coupon.id}:{alice}")
    act.expect("alice's coupon, 60m x 0.9 % / 2", paid_alice.get("delta_available"), 270_000)
    paid_bob = await act.ledger(f"{coupon.id}:{bob}")
    act.expect("bob's coupon, 40m (10m sold, undelivered)", paid_bob.get("delta_available"),
               180_000)  # fmt: skip
    await act.deposit(5, "carol", None, 11_000_000)
    settled = await act.status(trade_id, "settled", None)
    print("  carol's cash arrives: the trade settles, its cash computed by kessai:")
    days = accrued(10_000_000, Decimal("0.9"), dt.date(2027, 3, 19), ((3, 20), (9, 20)))
    act.expect("principal, 10m x 99.5 / 100", settled.get("principal"), 9_950_000)
    act.expect(f"accrued, {days.days} days from 20 Sep 2026, {days.ai100} per 100",
               settled.get("accrued"), days.jpy)  # fmt: skip
    act.expect("cash = principal + accrued", settled.get("cash_amount"), 9_950_000 + days.jpy)
    claim = await act.ledger(f"claim:{trade_id}:2027-03-20/credit")
    act.expect("market claim bob -> carol: the coupon on 10m", claim.get("delta_available"),
               coupon_jpy(10_000_000, Decimal("0.9")))  # fmt: skip
    redemption = Event(TWO_YEAR, dt.date(2028, 12, 1), redemption=True)
    await act.tick(redemption.pay_s)
    print("  the clock moves to Fri 1 Dec 2028, #480's maturity (coupons on the way paid):")
    repaid = await act.ledger(f"{redemption.id}:{dave}")
    act.expect("dave repaid face + last coupon", repaid.get("delta_available"), 100_450_000)
    burned = await act.ledger(f"{redemption.id}:{dave}/burn")
    act.expect("dave's #480 burned (supply 0)", burned.get("available"), 0)


async def play_bonds(state_dir: Path, run: str) -> list[str]:
    """Act 5 on a broker of its own; what went wrong (empty: all as told)."""
    from streams.devtools import localkafka

    workdir = state_dir / "demo-bonds"
    shutil.rmtree(workdir, ignore_errors=True)
    # A new broker's first sends meet leaders not yet elected: aiokafka retries them,
    # and says so; the demo's reader need not see it.
    logging.getLogger("aiokafka.producer.sender").setLevel(logging.ERROR)
    print("\nAct 5: JGBs on a simulated clock (a broker and worker of its own; docs/bonds.md)")
    settings = localkafka.up_private(workdir, log=lambda line: None)
    env = {"KESSAI_BOOTSTRAP": settings.bootstrap, "KESSAI_CLOCK": "ticks",
           "KESSAI_SECURITY_MASTER": "required", "KESSAI_SETTLEMENT_LAG": "1",
           "KESSAI_PAYING_AGENT": AGENT, "KESSAI_SETTLEMENT_DEADLINE_S": str(30 * 86_400),
           "KESSAI_TRADE_WINDOW_S": str(40 * 86_400)}  # fmt: skip
    try:
        await ensure_public_topics(settings)
        worker = WorkerProcess(workdir / "worker.log", env=env)
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
        await producer.start()
        act = _Act(settings, producer, run)
        try:
            await _story(act)
            await play_fails(act)
        finally:
            await producer.stop()
            worker.stop()
        return act.problems
    finally:
        localkafka.down(settings)
        shutil.rmtree(workdir, ignore_errors=True)
