"""Orders in, reserved, matched and settled, through a worker process on the real broker.

A venue sends orders on a bond of this run's own: a resting ask, a limit and a capped
market buy that fill against it (two trades, which then settle DvP, locked from the
orders' reservations), a self-match, an IOC that finds nothing, a cancel, a cancel
too late, a repeated id, a bad order, a buy its account cannot pay for, and a bid
left resting. Read back with read_committed: every order event in order, the two
settlements, the rejections, the reservations in the journal, and ``kessai book``'s
view of the book.

It runs under both profiles (the ``profile`` fixture): under the secure one every
order is signed by venue-a and the worker checks it (tests/support/profiles.py).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schemas import check_digit
from streams.config import Settings
from streams.ledger.messages import order_lock_id
from tests.support.logs import Seen, collect
from tests.support.profiles import Profile
from tests.support.records import bond_deposit, cash_deposit, trade_time
from tests.support.workers import running_worker

pytestmark = pytest.mark.integration

U = 50_000


@dataclass(frozen=True)
class _Bond:
    """This run's bond, the two accounts that trade it, and the venue of its orders."""

    run: str
    isin: str
    buyer: str
    seller: str
    venue: str

    def order(
        self, oid: str, account: str, side: str, units: int, price: str | None, **kw: Any
    ) -> dict[str, Any]:
        return {
            "order_id": f"{oid}-{self.run}",
            "venue": self.venue,
            "account": account,
            "isin": self.isin,
            "side": side,
            "quantity": units * U,
            "price": price,
            "currency": "JPYC",
            **kw,
        }

    def mine(self, seen: Seen, topic: str) -> Seen:
        """The records of ``topic`` in ``seen`` that are about this bond."""
        return [r for r in seen if r["topic"] == topic and r.get("isin") == self.isin]


def _new_bond(venue: str) -> _Bond:
    run = f"{random.randrange(16**6):06x}"
    body = "JP9" + "".join(random.choice("0123456789") for _ in range(8))
    # Accounts venue-a serves under the secure profile (TEST_VENUE_ACCOUNTS).
    return _Bond(run, body + check_digit(body), f"buyer-m-{run}", f"seller-m-{run}", venue)


async def test_orders_match_into_trades_that_settle(profile: Profile, tmp_path: Path) -> None:
    bond = _new_bond(profile.venue)
    reader = profile.reader
    settings = Settings.from_env(profile.worker_env)
    env = {**os.environ, **profile.worker_env}
    with running_worker(tmp_path / "worker.log", profile.worker_env):
        await _fund(profile, bond)
        await _send_orders(profile, bond)
        await _send_a_trade_past_exact_arithmetic(profile, bond)
        trade_ids = await _check_order_events(reader, bond)
        await _check_the_fills_settle(profile, settings, bond, trade_ids)
        await _check_rejections(reader, bond)
    _check_the_book(bond.isin, env, settings.app_id)


async def _fund(profile: Profile, bond: _Bond) -> None:
    """Cash for the buyer (and for the seller's own bid), bonds for the seller."""
    await profile.send(
        "payments", bond.buyer, cash_deposit(f"mp-{bond.run}", bond.buyer, "1000000")
    )
    await profile.send(
        "payments", bond.seller, cash_deposit(f"mq-{bond.run}", bond.seller, "100000")
    )
    await profile.send(
        "custody", bond.seller, bond_deposit(f"mc-{bond.run}", bond.seller, bond.isin, 3 * U)
    )


async def _send_orders(profile: Profile, bond: _Bond) -> None:
    order, buyer, seller = bond.order, bond.buyer, bond.seller
    flow = [
        order("s1", seller, "sell", 3, "99.5"),
        order("b1", buyer, "buy", 1, "100"),  # fills 1 of s1 at 99.5
        order("b2", buyer, "buy", 1, None, max_notional="60000"),  # market: 1 more of s1
        order("x1", seller, "buy", 1, "100"),  # seller against its own ask
        order("b3", buyer, "buy", 2, "99", time_in_force="IOC"),  # nothing at 99
        {**order("s1", seller, "sell", 3, "99.5"), "action": "cancel"},
        {**order("s1", seller, "sell", 3, "99.5"), "action": "cancel"},  # too late
        order("b1", buyer, "buy", 1, "100"),  # the same id again
        order("bad", buyer, "buy", 1, "100", quantity=12_345),
        order("b5", buyer, "buy", 20, "99"),  # 990,000: more than it has left
        order("b4", buyer, "buy", 2, "98"),  # rests
    ]
    for value in flow:
        await profile.send("orders", bond.isin, value)
    # Keyed by something else than its ISIN: it would start a second book of the
    # bond on another partition, so it is refused.
    await profile.send("orders", f"not-{bond.isin}", order("wk", buyer, "buy", 1, "100"))


async def _send_a_trade_past_exact_arithmetic(profile: Profile, bond: _Bond) -> None:
    """A venue's trade whose cash leg is past exact arithmetic: refused, not raised."""
    big = f"{profile.venue}:tbig-{bond.run}"
    await profile.send(
        "trades",
        big,
        {
            "trade_id": big,
            "venue": profile.venue,
            "isin": bond.isin,
            "buyer": bond.buyer,
            "seller": bond.seller,
            "quantity": 2**53 - 1 - (2**53 - 1) % U,
            "price": "1" + "0" * 50,
            "currency": "JPYC",
            "trade_time": trade_time(),
        },
    )


async def _check_order_events(reader: Settings, bond: _Bond) -> list[str]:
    """Every order event of the bond, in order; the ids of the two fills' trades."""
    run = bond.run
    seen = await collect(
        reader,
        ["order-events"],
        lambda s: any(r["order_id"] == f"b4-{run}" for r in bond.mine(s, "order-events")),
    )
    events = [
        (
            r["order_id"].removesuffix(f"-{run}"),
            r["event"],
            r["reason"],
            r["filled_quantity"],
            r["remaining_quantity"],
            r["price"],
        )
        for r in bond.mine(seen, "order-events")
        if r["order_id"] != f"wk-{run}"  # another partition: its place is not fixed
    ]
    assert events == [
        ("s1", "accepted", None, 0, 3 * U, "99.5"),
        ("b1", "accepted", None, 0, U, "100"),
        ("b1", "filled", None, U, 0, "99.5"),
        ("s1", "partially_filled", None, U, 2 * U, "99.5"),
        ("b2", "accepted", None, 0, U, None),
        ("b2", "filled", None, U, 0, "99.5"),
        ("s1", "partially_filled", None, U, U, "99.5"),
        ("x1", "accepted", None, 0, U, "100"),
        ("x1", "cancelled", "self_match", 0, U, "100"),
        ("b3", "accepted", None, 0, 2 * U, "99"),
        ("b3", "cancelled", "immediate_or_cancel", 0, 2 * U, "99"),
        ("s1", "cancelled", "requested", 0, U, "99.5"),
        ("s1", "rejected", "order_closed", 0, 0, "99.5"),
        ("b1", "rejected", "duplicate", 0, 0, "100"),
        ("bad", "rejected", "invalid_quantity", 0, 0, None),
        ("b5", "rejected", "insufficient_funds", 0, 0, "99"),
        ("b4", "accepted", None, 0, 2 * U, "98"),
    ], events
    by_event = {(r["order_id"], r["event"]): r for r in bond.mine(seen, "order-events")}
    trade_ids = [
        by_event[f"b1-{run}", "filled"]["trade_id"],
        by_event[f"b2-{run}", "filled"]["trade_id"],
    ]
    assert by_event[f"b1-{run}", "filled"]["account"] == bond.buyer
    return trade_ids


async def _check_the_fills_settle(
    profile: Profile, settings: Settings, bond: _Bond, trade_ids: list[str]
) -> None:
    """The fills settle, from the orders' reservations: the buyer's journal shows b1's
    50,000 reserved, then taken by its trade's lock, then paid."""
    seen = await collect(
        profile.reader,
        ["settlements", "ledger-events"],
        lambda s: sum(1 for r in bond.mine(s, "settlements") if r["status"] == "settled") >= 2,
    )
    settled = {r["trade_id"]: r for r in bond.mine(seen, "settlements")}
    assert sorted(settled) == sorted(trade_ids)
    for tid in trade_ids:
        r = settled[tid]
        assert (r["status"], r["buyer"], r["seller"], r["quantity"], r["price"]) == (
            "settled",
            bond.buyer,
            bond.seller,
            U,
            "99.5",
        )
        assert "signed_trade" not in r  # the engine made it: no venue signed a trade
    b1 = order_lock_id(bond.isin, bond.venue, f"b1-{bond.run}")
    journal = [
        (int(r["delta_available"]), int(r["delta_locked"]), r["cause"])
        for r in seen
        if r["topic"] == "ledger-events" and r["account"] == bond.buyer and r["asset"] == "JPYC"
    ]
    # Deposit; b1 reserves 50,000; its fill at 99.5 takes 49,750 into the trade's lock
    # (no balance moves) and 250 go back; the trade posts the 49,750.
    assert journal[:4] == [
        (1_000_000, 0, f"payment:mp-{bond.run}"),
        (-50_000, 50_000, b1),
        (250, -250, b1),
        (0, -49_750, f"{trade_ids[0]}/cash"),
    ], journal


async def _check_rejections(reader: Settings, bond: _Bond) -> None:
    """One rejection per bad record, and the wrongly keyed order's own event."""
    run = bond.run
    seen = await collect(
        reader,
        ["rejections"],
        lambda s: sum(1 for r in s if f"-{run}" in (r.get("ref") or "")) >= 5,
    )
    reasons = sorted(r["reason"] for r in seen if f"-{run}" in (r.get("ref") or ""))
    assert reasons == [
        "duplicate",
        "insufficient_funds",  # b5: more than the buyer has left
        "invalid_price",
        "invalid_quantity",
        "wrong_key",
    ]
    seen = await collect(
        reader,
        ["order-events"],
        lambda s: any(r["order_id"] == f"wk-{run}" for r in bond.mine(s, "order-events")),
    )
    assert [
        (r["event"], r["reason"])
        for r in bond.mine(seen, "order-events")
        if r["order_id"] == f"wk-{run}"
    ] == [("rejected", "wrong_key")]


def _check_the_book(isin: str, env: dict[str, str], app_id: str) -> None:
    """The book as committed, through ``kessai book``: b4's bid, nothing else."""
    shown = subprocess.run(
        [sys.executable, "-m", "streams.cli", "book", isin, "--format", "json"],
        env={**env, "KESSAI_APP_ID": app_id},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(shown.stdout) == {
        "JPYC": {"bids": [{"price": "98", "quantity": 2 * U, "orders": 1}], "asks": [], "orders": 1}
    }
    table = subprocess.run(
        [sys.executable, "-m", "streams.cli", "book", isin],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "1 resting order\n" in table and "98" in table, table
