"""Orders in the engine (issue 21): reserved at entry, matched, each fill's assets
locked from the reservations in the same step, the rest given back when the order
ends. The worked numbers are the domain review's (P2): a buy of ¥100m @ 98.80 for
settlement 5 Nov 2025 reserves 98,913,424 JPYC; a fill at 98.765 gives back 35,000."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import LEDGER_EVENTS, ORDER_EVENTS, ORDERS, REJECTIONS, OrderStatusChanged, decode
from streams.engine.core import Batch, Engine, Outputs
from streams.ledger import domain
from streams.ledger.messages import order_lock_id
from streams.matching.book import fill_trade_id
from streams.matching.matcher import decode_row
from tests.unit.engine.test_bonds import JGB, batch, custody, instrument, jst, settlements
from tests.unit.engine.test_bonds import trade as bond_trade
from tests.unit.engine.test_core import Input, cash, totals
from tests.unit.engine.test_fails import RECYCLE

DAY = jst("2025-11-04")
SETTLES = "2025-11-05"


def order(order_id: str, account: str, side: str, quantity: int, price: str | None,
          **more: Any) -> Input:  # fmt: skip
    value = {"order_id": order_id, "venue": "v", "account": account, "isin": JGB,
             "side": side, "quantity": quantity, "price": price, "currency": "JPYC",
             "settlement_date": SETTLES, **more}  # fmt: skip
    for name in ("price", "settlement_date"):
        if value[name] is None:
            del value[name]
    return ORDERS, JGB.encode(), orjson.dumps(value), 0.0


def cancel(order_id: str, account: str) -> Input:
    value = {"order_id": order_id, "venue": "v", "account": account, "isin": JGB,
             "currency": "JPYC", "action": "cancel"}  # fmt: skip
    return ORDERS, JGB.encode(), orjson.dumps(value), 0.0


def state(engine: Engine, account: str) -> domain.AccountState:
    return domain.AccountState.from_bytes(engine.accounts.get(account))


def events(out: Outputs) -> list[tuple[str, str, str | None]]:
    found: list[tuple[str, str, str | None]] = []
    for topic, _, value in out.records:
        if topic == ORDER_EVENTS:
            e = decode(ORDER_EVENTS, value)  # every record is valid
            assert isinstance(e, OrderStatusChanged)
            found.append((e.order_id, e.event, e.reason))
    return found


def journal(out: Outputs, account: str) -> list[tuple[int, int, str]]:
    return [
        (int(r["delta_available"]), int(r["delta_locked"]), r["cause"])
        for r in (orjson.loads(v) for t, k, v in out.records if t == LEDGER_EVENTS)
        if r["account"] == account
    ]


def funded_engine() -> Engine:
    engine = Engine()
    setup = [instrument(), custody(1, JGB, 100_000_000), cash(2, "b", 200_000_000)]
    batch(engine, RECYCLE, DAY - 60, setup)
    return engine


def test_the_worked_example_reserves_98913424_and_a_fill_at_98765_gives_back_35000() -> None:
    engine = funded_engine()
    out = batch(engine, RECYCLE, DAY, [order("s1", "s", "sell", 100_000_000, "98.765")])
    assert events(out) == [("s1", "accepted", None)]
    sell_lock = order_lock_id(JGB, "v", "s1")
    assert state(engine, "s").locks == {sell_lock: [JGB, 100_000_000]}
    out = batch(engine, RECYCLE, DAY + 1, [order("b1", "b", "buy", 100_000_000, "98.80")])
    trade_id = fill_trade_id(JGB, "JPYC", ("v", "s1"), ("v", "b1"))
    buy_lock = order_lock_id(JGB, "v", "b1")
    # Reserved: ¥98,800,000 + ¥113,424 accrued to 5 Nov; the fill at 98.765 takes
    # 98,878,424 into the trade's lock; the 35,000 left goes back.
    assert journal(out, "b") == [
        (-98_913_424, 98_913_424, buy_lock),
        (35_000, -35_000, buy_lock),
    ]
    assert state(engine, "b").locks == {f"{trade_id}/cash": ["JPYC", 98_878_424]}
    assert state(engine, "s").locks == {f"{trade_id}/bonds": [JGB, 100_000_000]}
    assert events(out) == [
        ("b1", "accepted", None),
        ("b1", "filled", None),
        ("s1", "filled", None),
    ]
    # T+1: pending until 5 Nov, holding both legs; never failing for lack of assets.
    assert [(r["status"], r["reason"]) for r in settlements(out)] == [
        ("pending", "awaiting_settlement_date")
    ]
    out = batch(engine, RECYCLE, jst(SETTLES, 0), [])
    [settled] = settlements(out)
    assert (settled["status"], settled["cash_amount"]) == ("settled", "98878424")
    assert state(engine, "b").balances == {
        "JPYC": [200_000_000 - 98_878_424, 0],
        JGB: [100_000_000, 0],
    }
    assert state(engine, "s").balances == {JGB: [0, 0], "JPYC": [98_878_424, 0]}


def test_an_unfunded_order_is_rejected_with_its_reason_and_changes_nothing() -> None:
    engine = funded_engine()
    before = dict(engine.accounts)
    out = batch(engine, RECYCLE, DAY, [
        order("b1", "b", "buy", 300_000_000, "98.80"),
        order("x1", "x", "sell", 1_000_000, "98.80"),
    ])  # fmt: skip
    assert events(out) == [
        ("b1", "rejected", "insufficient_funds"),
        ("x1", "rejected", "insufficient_securities"),
    ]
    reasons = [orjson.loads(v)["reason"] for t, _, v in out.records if t == REJECTIONS]
    assert reasons == ["insufficient_funds", "insufficient_securities"]
    assert engine.accounts == before
    # Its id is used up: the same order, once funded, is a duplicate.
    out = batch(engine, RECYCLE, DAY + 1, [order("b1", "b", "buy", 100_000_000, "98.80")])
    assert events(out) == [("b1", "rejected", "duplicate")]


def test_a_cancel_and_an_ioc_remainder_give_the_reservation_back() -> None:
    engine = funded_engine()
    batch(engine, RECYCLE, DAY, [order("b1", "b", "buy", 100_000_000, "98.80")])
    assert state(engine, "b").balances["JPYC"] == [200_000_000 - 98_913_424, 98_913_424]
    out = batch(engine, RECYCLE, DAY + 1, [cancel("b1", "b")])
    assert events(out) == [("b1", "cancelled", "requested")]
    assert state(engine, "b").balances["JPYC"] == [200_000_000, 0]
    assert not state(engine, "b").locks
    out = batch(engine, RECYCLE, DAY + 2, [
        order("s1", "s", "sell", 40_000_000, "98.765"),
        order("b2", "b", "buy", 100_000_000, "98.80", time_in_force="IOC"),
    ])  # fmt: skip
    assert events(out)[-1] == ("b2", "cancelled", "immediate_or_cancel")
    trade_id = fill_trade_id(JGB, "JPYC", ("v", "s1"), ("v", "b2"))
    # Only the 40m fill's cash stays locked, in its trade's lock.
    [(lock, (asset, units))] = state(engine, "b").locks.items()
    assert lock == f"{trade_id}/cash" and asset == "JPYC"
    assert state(engine, "b").balances["JPYC"] == [200_000_000 - units, units]


def test_a_market_buy_needs_a_cap_and_stops_at_it() -> None:
    engine = funded_engine()
    batch(engine, RECYCLE, DAY, [order("s1", "s", "sell", 100_000_000, "98.765")])
    out = batch(engine, RECYCLE, DAY + 1, [order("b1", "b", "buy", 100_000_000, None)])
    assert events(out) == [("b1", "rejected", "max_notional_required")]
    # A cap of ¥50m buys the most whole face units it pays for, principal and accrued.
    out = batch(engine, RECYCLE, DAY + 2,
                [order("b2", "b", "buy", 100_000_000, None, max_notional="50000000")])  # fmt: skip
    kinds = events(out)
    assert kinds[0] == ("b2", "accepted", None)
    assert kinds[-1] == ("b2", "cancelled", "max_notional")
    [(lock, (_, units))] = state(engine, "b").locks.items()
    # One face unit more (¥50,000 face, ~¥49,440 of cash) would pass the cap.
    assert lock.endswith("/cash") and 50_000_000 - 49_440 < units <= 50_000_000
    assert state(engine, "b").balances["JPYC"] == [200_000_000 - units, units]


# -- properties over random order flow ------------------------------------------------

ACCOUNTS = ["a", "b", "c"]


@st.composite
def order_flow(draw: st.DrawFn) -> list[Input]:
    out: list[Input] = [instrument()]
    for n, account in enumerate(ACCOUNTS):
        out.append(cash(90 + n, account, draw(st.integers(0, 3_000_000))))
        out.append(custody(90 + n, JGB, 50_000 * draw(st.integers(0, 24)), account))
    ids: list[tuple[str, str]] = []
    for n in range(draw(st.integers(1, 30))):
        kind = draw(
            st.sampled_from(["limit", "limit", "limit", "market", "cancel", "cash", "bonds"])
        )
        account = draw(st.sampled_from(ACCOUNTS))
        side = draw(st.sampled_from(["buy", "sell"]))
        quantity = 50_000 * draw(st.integers(1, 6))
        more: dict[str, Any] = {}
        if draw(st.booleans()):
            more["settlement_date"] = None  # the book without a date: T+1 from each fill
        if kind in ("limit", "market"):
            price = None if kind == "market" else draw(st.sampled_from(["98.7", "98.75", "98.8"]))
            if kind == "market" and side == "buy":
                more["max_notional"] = str(draw(st.integers(1, 400_000)))
            if draw(st.integers(0, 4)) == 0:
                more["time_in_force"] = "IOC"
            out.append(order(f"o{n}", account, side, quantity, price, **more))
            ids.append((f"o{n}", account))
        elif kind == "cancel" and ids:
            out.append(cancel(*draw(st.sampled_from(ids))))
        elif kind == "cash":
            out.append(cash(n, account, draw(st.integers(1, 400_000))))
        elif kind == "bonds":
            out.append(custody(n, JGB, 50_000 * draw(st.integers(1, 6)), account))
    return out


def _open_orders(engine: Engine) -> dict[str, set[str]]:
    """account -> the reservation lock of each of its open orders."""
    found: dict[str, set[str]] = {}
    for key, raw in engine.orders.items():
        row = decode_row(key, raw)
        if row.order is not None:
            lock = order_lock_id(row.isin, row.order.venue, row.order.order_id)
            found.setdefault(row.order.account, set()).add(lock)
    return found


def check_locks(engine: Engine) -> None:
    """Every account's locks are its open orders' reservations and its open trades'
    locks, nothing else; and every open trade made by the matcher holds both legs."""
    expected = _open_orders(engine)
    for trade_id, saga in engine.open.items():
        assert (saga.bonds, saga.cash) == ("locked", "locked"), saga
        expected.setdefault(saga.trade.seller, set()).add(f"{trade_id}/bonds")
        expected.setdefault(saga.trade.buyer, set()).add(f"{trade_id}/cash")
    for account, raw in engine.accounts.items():
        s = domain.AccountState.from_bytes(raw)
        assert set(s.locks) == expected.get(account, set()), account
        assert not s.waiting
        for asset, (available, locked) in s.balances.items():
            assert available >= 0 and locked == sum(u for a, u in s.locks.values() if a == asset)


@settings(max_examples=150, deadline=None)
@given(order_flow(), st.lists(st.integers(0, 30), max_size=5), st.integers(0, 6))
def test_locks_are_reservations_plus_trade_locks_and_every_fill_settles(
    records: list[Input], cuts: list[int], restore_at: int
) -> None:
    engine = Engine()
    rows: list[tuple[str, bytes, bytes | None]] = []
    statuses: list[tuple[str, str | None]] = []
    bounds = [0, *sorted({min(c, len(records)) for c in cuts}), len(records)]
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        if i == restore_at:  # a new holder takes over from the rows committed
            engine = Engine()
            for name, key, value in rows:
                engine.restore_row(name, key.decode(), value)
            engine.restored()
        # The first batch on Tue 4 Nov, the rest on Wed 5 Nov: a resting buy of the book
        # without a date fills then for Thu 6 Nov, a day's more accrued than reserved.
        now = DAY - 3600 if i == 0 else jst(SETTLES) + 60 * i
        out = batch(engine, RECYCLE, now, records[start:end])
        rows.extend(out.changelog)
        statuses += [(r["status"], r["reason"]) for r in settlements(out)]
        check_locks(engine)
        for asset, total in totals(engine).items():
            assert total == engine.inflow.get(asset, 0), asset
    # Every matched trade holds its assets: by 6 Nov each one settled.
    out = batch(engine, RECYCLE, jst("2025-11-06", 0), [])
    statuses += [(r["status"], r["reason"]) for r in settlements(out)]
    assert not engine.open
    assert {s for s, _ in statuses} <= {"pending", "settled"}
    assert {r for s, r in statuses if s == "pending"} <= {"awaiting_settlement_date"}
    check_locks(engine)


def test_a_resting_buy_filled_a_day_later_is_topped_up_or_leaves_the_book() -> None:
    # Without a settlement date a fill settles T+1 from the day it fills: the buy
    # reserved accrued to 5 Nov (¥113,424); filled on 5 Nov it settles 6 Nov: ¥115,890.
    engine = funded_engine()
    batch(
        engine, RECYCLE, DAY, [order("b1", "b", "buy", 100_000_000, "98.80", settlement_date=None)]
    )
    assert state(engine, "b").balances["JPYC"][1] == 98_913_424
    out = batch(engine, RECYCLE, jst(SETTLES),
                [order("s1", "s", "sell", 100_000_000, "98.80", settlement_date=None)])  # fmt: skip
    buy_lock = order_lock_id(JGB, "v", "b1")
    assert journal(out, "b") == [(-2_466, 2_466, buy_lock)]  # topped up from available
    [pending] = settlements(out)
    assert (pending["settlement_date"], pending["cash_amount"]) == ("2025-11-06", "98915890")
    # The same, the buyer holding nothing more: its order leaves the book, the sell rests.
    engine = Engine()
    batch(engine, RECYCLE, DAY - 60, [instrument(), custody(1, JGB, 100_000_000),
                                      cash(2, "b", 98_913_424)])  # fmt: skip
    batch(
        engine, RECYCLE, DAY, [order("b1", "b", "buy", 100_000_000, "98.80", settlement_date=None)]
    )
    out = batch(engine, RECYCLE, jst(SETTLES),
                [order("s1", "s", "sell", 100_000_000, "98.80", settlement_date=None)])  # fmt: skip
    assert events(out) == [("s1", "accepted", None), ("b1", "cancelled", "insufficient_funds")]
    assert state(engine, "b").balances["JPYC"] == [98_913_424, 0]
    assert state(engine, "s").balances[JGB] == [0, 100_000_000]
    assert not settlements(out)


def _batch(engine: Engine, now_s: float, records: list[Input], *, fast: bool) -> Outputs:
    b = Batch(engine, RECYCLE, now_s, fast=fast)
    for offset, (topic, key, value, _) in enumerate(records):
        b.record(topic, 0, offset, key, value, now_s)
    b.expire()
    return b.finish()


@settings(max_examples=100, deadline=None)
@given(order_flow(), st.lists(st.integers(0, 30), max_size=5))
def test_a_matched_trade_posted_at_once_writes_what_its_saga_writes(
    records: list[Input], cuts: list[int]
) -> None:
    # Engine.post_matched (the fast path) against dvp.matched's path: byte for byte.
    fast, slow = Engine(), Engine()
    bounds = [0, *sorted({min(c, len(records)) for c in cuts}), len(records)]
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        now = DAY - 3600 if i == 0 else jst(SETTLES) + 60 * i
        a = _batch(fast, now, records[start:end], fast=True)
        b = _batch(slow, now, records[start:end], fast=False)
        assert a.records == b.records
        assert a.changelog == b.changelog
        assert (a.locks_delta, a.balances) == (b.locks_delta, b.balances)
    assert fast.accounts == slow.accounts


def test_a_refusal_says_what_was_short_and_by_how_much() -> None:
    engine = funded_engine()
    out = batch(engine, RECYCLE, DAY, [order("b1", "b", "buy", 300_000_000, "98.80")])
    [detail] = [orjson.loads(v)["detail"] for t, _, v in out.records if t == REJECTIONS]
    # ¥296,400,000 at 98.80 and ¥340,273 accrued (46 days of 0.9 % on ¥300m).
    assert detail == "order b1 of v reserves 296740273 JPYC; b has 200000000 available"


def test_no_venue_trade_may_take_a_fills_id_first() -> None:
    # A fill's id is computable from the orders' names: a venue that sent a trade under
    # it first (even one refused, whose id is then used up) would have the resting
    # order cancelled when the fill came. Such ids are kessai's: refused, left free.
    engine = funded_engine()
    batch(engine, RECYCLE, DAY, [order("s1", "s", "sell", 100_000_000, "98.765")])
    taken = fill_trade_id(JGB, "JPYC", ("v", "s1"), ("v", "b1"))
    topic, _, value, _ = bond_trade(9, DAY, quantity=50_000, buyer="x", seller="y")
    for price in ("98.765", "98.7655"):  # a good trade, and one off the tick
        squatter = {**orjson.loads(value), "trade_id": taken, "price": price}
        out = batch(
            engine, RECYCLE, DAY + 1, [(topic, taken.encode(), orjson.dumps(squatter), 0.0)]
        )
        assert [reason for _, reason in out.rejected] == ["not_authorized"]
        assert not engine.seen(taken)
    out = batch(engine, RECYCLE, DAY + 2, [order("b1", "b", "buy", 100_000_000, "98.80")])
    assert events(out) == [("b1", "accepted", None), ("b1", "filled", None), ("s1", "filled", None)]
    check_locks_of(engine, "b", {f"{taken}/cash"})


def check_locks_of(engine: Engine, account: str, locks: set[str]) -> None:
    assert set(state(engine, account).locks) == locks


def test_a_resting_buy_filled_in_part_later_keeps_its_rest_reserved() -> None:
    # ¥1bn bid rests 10 days in the book without a date: its fill of all but ¥50,000
    # costs more accrued than reserved; the top-up keeps the rest reserved too, so the
    # open order still holds a reservation (it was taken to 0, and removed).
    engine = Engine()
    setup = [instrument(), custody(1, JGB, 2_000_000_000), cash(2, "b", 1_000_000_000)]
    batch(engine, RECYCLE, DAY - 60, setup)
    batch(
        engine,
        RECYCLE,
        DAY,
        [order("b1", "b", "buy", 1_000_000_000, "98.80", settlement_date=None)],
    )
    out = batch(engine, RECYCLE, jst("2025-11-14"),
                [order("s1", "s", "sell", 999_950_000, "98.80", settlement_date=None)])  # fmt: skip
    assert events(out) == [("s1", "accepted", None), ("s1", "filled", None),
                           ("b1", "partially_filled", None)]  # fmt: skip
    check_locks(engine)
    held = state(engine, "b").locks[order_lock_id(JGB, "v", "b1")][1]
    # The rest, 50,000 at 98.80 (49,400) and 71 of accrued to Mon 17 Nov (58 days).
    assert held == 49_471
    # Its rest fills later from what it holds, whatever the buyer withdraws meanwhile.
    free = state(engine, "b").balances["JPYC"][0]
    batch(engine, RECYCLE, jst("2025-11-14", 11), [cash(7, "b", free, kind="withdrawal")])
    out = batch(engine, RECYCLE, jst("2025-11-14", 12),
                [order("s2", "s", "sell", 50_000, "98.80", settlement_date=None)])  # fmt: skip
    assert ("b1", "filled", None) in events(out)
    check_locks(engine)


def test_a_matched_trade_settling_before_maturity_settles_when_one_batch_crosses_both() -> None:
    # Matched on Thu 17 Sep 2026 for Fri 18 Sep; the bond matures Sun 20 Sep. The next
    # batch (the worker was down, or the simulated clock jumps) crosses the trade's
    # settlement date and the redemption's record time: the trade settles first, and
    # its buyer is the holder redeemed (it used to fail instrument_matured).
    from tests.unit.engine.test_bonds import PAYING, holdings, tick

    rules = dataclasses.replace(PAYING, any_fit=True, starts_before_redemption=True)
    engine, t0 = Engine(), jst("2026-09-17")
    short = instrument(maturity_date="2026-09-20", issue_date="2025-04-01")
    dated = {"settlement_date": "2026-09-18"}
    setup = [tick(t0), short, custody(1, JGB, 10_000_000, "s"), cash(2, "b", 20_000_000),
             cash(3, "agent", 100_000_000), order("s1", "s", "sell", 10_000_000, "99.5", **dated),
             order("b1", "b", "buy", 10_000_000, "99.5", **dated)]  # fmt: skip
    out = batch(engine, rules, t0, setup)
    assert [(r["status"], r["reason"]) for r in settlements(out)] == [
        ("pending", "awaiting_settlement_date")
    ]
    out = batch(engine, rules, t0 + 1, [tick(jst("2026-09-20", 0) + 60)])
    assert [(r["status"], r["reason"]) for r in settlements(out)] == [("settled", None)]
    assert holdings(engine, JGB) == {}  # redeemed: b's 10m burnt, and b repaid
    out = batch(engine, rules, jst("2026-09-20", 1), [tick(jst("2026-09-24", 0))])
    assert holdings(engine, "JPYC")["b"] > 20_000_000
    # Under the rules of the batches written before (a replay), it failed.
    old, t0 = Engine(), jst("2026-09-17")
    batch(old, PAYING, t0, setup)
    out = batch(old, PAYING, t0 + 1, [tick(jst("2026-09-20", 0) + 60)])
    assert [(r["status"], r["reason"]) for r in settlements(out)] == [
        ("failed", "instrument_matured")
    ]
