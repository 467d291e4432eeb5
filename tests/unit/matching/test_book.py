"""The order book: hand-worked examples, then random flows against a brute-force book."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.matching.book import (
    Book,
    Fill,
    NewOrder,
    Outcome,
    Resting,
    fill_trade_id,
)

U = 50_000  # one minimum face unit


def order(
    oid: str,
    side: str,
    qty_units: int,
    price: str | None,
    account: str | None = None,
    tif: str = "GTC",
    venue: str = "v1",
) -> NewOrder:
    return NewOrder(
        venue=venue,
        order_id=oid,
        account=account or f"acct-{oid}",
        side=side,  # type: ignore[arg-type]
        quantity=qty_units * U,
        price=None if price is None else Decimal(price),
        time_in_force=tif,  # type: ignore[arg-type]
    )


def kinds(out: Outcome) -> list[tuple[str, str]]:
    return [(e.kind, e.order_id) for e in out.events]


def fills(out: Outcome) -> list[tuple[str, str, str, int]]:
    return [(f.maker[1], f.taker[1], str(f.price), f.quantity // U) for f in out.fills]


# -- hand-worked examples ------------------------------------------------------------


def test_a_limit_order_that_crosses_nothing_rests() -> None:
    book = Book("JP1234567890", "JPYC")
    out = book.submit(order("b1", "buy", 2, "99.5"))
    assert kinds(out) == [("accepted", "b1")]
    assert out.fills == []
    assert [(o.order_id, o.remaining) for o in out.changed] == [("b1", 2 * U)]
    assert book.depth() == ([(Decimal("99.5"), 2 * U, 1)], [])


def test_price_then_time_priority_and_the_maker_s_price() -> None:
    book = Book("JP1234567890", "JPYC")
    book.submit(order("a1", "sell", 1, "100.5"))
    book.submit(order("a2", "sell", 1, "100.0"))  # better price, later
    book.submit(order("a3", "sell", 1, "100.0"))  # same price, later still
    out = book.submit(order("b1", "buy", 3, "101"))
    # Best price first (a2, a3 at 100.0, in arrival order), then a1; each at its own price.
    assert fills(out) == [
        ("a2", "b1", "100.0", 1),
        ("a3", "b1", "100.0", 1),
        ("a1", "b1", "100.5", 1),
    ]
    assert kinds(out) == [
        ("accepted", "b1"),
        ("partially_filled", "b1"),
        ("filled", "a2"),
        ("partially_filled", "b1"),
        ("filled", "a3"),
        ("filled", "b1"),
        ("filled", "a1"),
    ]
    assert len(book) == 0 and book.depth() == ([], [])


def test_a_partial_fill_leaves_the_maker_on_the_book_with_its_priority() -> None:
    book = Book("JP1234567890", "JPYC")
    book.submit(order("a1", "sell", 5, "100"))
    book.submit(order("a2", "sell", 5, "100"))
    out = book.submit(order("b1", "buy", 2, "100"))
    assert fills(out) == [("a1", "b1", "100", 2)]
    assert [(e.kind, e.order_id, e.remaining // U) for e in out.events[1:]] == [
        ("filled", "b1", 0),
        ("partially_filled", "a1", 3),
    ]
    assert [(o.order_id, o.remaining // U) for o in book.orders()] == [("a1", 3), ("a2", 5)]
    # a1 keeps its place ahead of a2.
    assert fills(book.submit(order("b2", "buy", 4, "100"))) == [
        ("a1", "b2", "100", 3),
        ("a2", "b2", "100", 1),
    ]


def test_a_remainder_rests_at_its_own_limit() -> None:
    book = Book("JP1234567890", "JPYC")
    book.submit(order("a1", "sell", 1, "99"))
    out = book.submit(order("b1", "buy", 3, "100"))
    assert fills(out) == [("a1", "b1", "99", 1)]
    assert book.depth() == ([(Decimal("100"), 2 * U, 1)], [])
    assert [(o.order_id, o.remaining) for o in out.changed] == [("a1", 0), ("b1", 2 * U)]


def test_a_limit_that_does_not_reach_the_best_price_does_not_trade() -> None:
    book = Book("JP1234567890", "JPYC")
    book.submit(order("b1", "buy", 1, "99"))
    out = book.submit(order("a1", "sell", 1, "99.01"))
    assert out.fills == [] and book.depth()[0][0][0] == Decimal("99")
    assert book.depth()[1] == [(Decimal("99.01"), U, 1)]


def test_ioc_leaves_nothing_on_the_book() -> None:
    book = Book("JP1234567890", "JPYC")
    book.submit(order("a1", "sell", 1, "100"))
    out = book.submit(order("b1", "buy", 3, "100", tif="IOC"))
    assert fills(out) == [("a1", "b1", "100", 1)]
    assert out.events[-1].kind == "cancelled"
    assert out.events[-1].reason == "immediate_or_cancel"
    assert out.events[-1].remaining == 2 * U
    assert len(book) == 0
    # Its row says done: an IOC that filled some is not left looking open.
    assert [(o.order_id, o.remaining) for o in out.changed] == [("a1", 0), ("b1", 0)]


def test_an_ioc_that_fills_nothing_is_cancelled_and_its_row_says_done() -> None:
    book = Book("JP1234567890", "JPYC")
    out = book.submit(order("b1", "buy", 1, "100", tif="IOC"))
    assert kinds(out) == [("accepted", "b1"), ("cancelled", "b1")]
    assert [(o.order_id, o.remaining) for o in out.changed] == [("b1", 0)]


def test_a_market_order_takes_every_level_and_never_rests() -> None:
    book = Book("JP1234567890", "JPYC")
    book.submit(order("b1", "buy", 1, "99"))
    book.submit(order("b2", "buy", 1, "98"))
    out = book.submit(order("s1", "sell", 3, None))
    assert fills(out) == [("b1", "s1", "99", 1), ("b2", "s1", "98", 1)]
    assert out.events[-1].reason == "no_liquidity" and out.events[-1].remaining == U
    assert len(book) == 0


def test_a_market_order_on_an_empty_book_is_cancelled() -> None:
    out = Book("JP1234567890", "JPYC").submit(order("s1", "sell", 1, None))
    assert [(e.kind, e.reason) for e in out.events] == [
        ("accepted", None),
        ("cancelled", "no_liquidity"),
    ]


def test_self_match_cancels_the_incoming_remainder_and_keeps_earlier_fills() -> None:
    book = Book("JP1234567890", "JPYC")
    book.submit(order("a1", "sell", 1, "99", account="alice"))
    book.submit(order("a2", "sell", 1, "100", account="bob"))
    book.submit(order("a3", "sell", 1, "101", account="carol"))
    out = book.submit(order("b1", "buy", 3, "101", account="bob"))
    assert fills(out) == [("a1", "b1", "99", 1)]
    assert (out.events[-1].kind, out.events[-1].reason) == ("cancelled", "self_match")
    # bob's resting order is untouched, and so is everything behind it.
    assert [(o.order_id, o.remaining // U) for o in book.orders()] == [("a2", 1), ("a3", 1)]


def test_self_match_at_the_top_trades_nothing() -> None:
    book = Book("JP1234567890", "JPYC")
    book.submit(order("a1", "sell", 1, "99", account="alice"))
    out = book.submit(order("b1", "buy", 1, None, account="alice"))
    assert out.fills == [] and out.events[-1].reason == "self_match"
    assert len(book) == 1


def test_cancel_takes_the_rest_off_and_an_unknown_order_is_none() -> None:
    book = Book("JP1234567890", "JPYC")
    book.submit(order("a1", "sell", 4, "100"))
    book.submit(order("b1", "buy", 1, "100"))
    out = book.cancel(("v1", "a1"))
    assert out is not None
    assert [(e.kind, e.remaining // U, e.reason) for e in out.events] == [
        ("cancelled", 3, "requested")
    ]
    assert len(book) == 0 and book.depth() == ([], [])
    assert book.cancel(("v1", "a1")) is None
    assert book.cancel(("v1", "nope")) is None


def test_restore_keeps_time_priority_and_numbers_new_orders_after() -> None:
    book = Book.restored(
        "JP1234567890",
        "JPYC",
        [
            Resting("v1", "late", "x", "sell", Decimal(100), U, U, seq=9),
            Resting("v1", "early", "y", "sell", Decimal(100), U, U, seq=3),
        ],
    )
    book.submit(order("new", "sell", 1, "100"))
    out = book.submit(order("b1", "buy", 3, "100"))
    assert [f.maker[1] for f in out.fills] == ["early", "late", "new"]


def test_trade_ids_are_deterministic_and_distinct() -> None:
    a = fill_trade_id("JP1", "JPYC", ("v", "m"), ("v", "t"))
    assert a == fill_trade_id("JP1", "JPYC", ("v", "m"), ("v", "t"))
    assert a.startswith("m-") and len(a) == 34
    others = {
        fill_trade_id("JP1", "JPYC", ("v", "t"), ("v", "m")),
        fill_trade_id("JP1", "USDC", ("v", "m"), ("v", "t")),
        fill_trade_id("JP1", "JPYC", ("vm", ""), ("v", "t")),  # no ambiguity from joining
    }
    assert a not in others and len(others) == 3


# -- a brute-force reference ---------------------------------------------------------


@dataclass
class _Ref:
    key: tuple[str, str]
    account: str
    side: str
    price: Decimal
    remaining: int
    seq: int


class ReferenceBook:
    """The rules again, as plainly as possible: a list, searched in full every time."""

    def __init__(self) -> None:
        self.resting: list[_Ref] = []
        self.seq = 0

    def submit(self, o: NewOrder) -> tuple[list[tuple[object, ...]], str | None]:
        self.seq += 1
        remaining = o.quantity
        trades: list[tuple[object, ...]] = []
        reason = None
        while remaining:
            crossing = [
                r
                for r in self.resting
                if r.side != o.side
                and (
                    o.price is None
                    or (r.price <= o.price if o.side == "buy" else r.price >= o.price)
                )
            ]
            if not crossing:
                break
            best = min(crossing, key=lambda r: (r.price if o.side == "buy" else -r.price, r.seq))
            if best.account == o.account:
                reason = "self_match"
                break
            q = min(best.remaining, remaining)
            best.remaining -= q
            remaining -= q
            trades.append((best.key, o.key, best.price, q))
            if best.remaining == 0:
                self.resting.remove(best)
        if remaining and reason is None:
            if o.price is None:
                reason = "no_liquidity"
            elif o.time_in_force == "IOC":
                reason = "immediate_or_cancel"
            else:
                self.resting.append(_Ref(o.key, o.account, o.side, o.price, remaining, self.seq))
        return trades, reason

    def cancel(self, key: tuple[str, str]) -> bool:
        for r in self.resting:
            if r.key == key:
                self.resting.remove(r)
                return True
        return False

    def snapshot(self) -> list[tuple[object, ...]]:
        return sorted((r.key, r.side, r.price, r.remaining) for r in self.resting)


PRICES = [Decimal("99") + Decimal("0.25") * i for i in range(9)]


@st.composite
def flows(draw: st.DrawFn) -> list[tuple[str, object]]:
    n = draw(st.integers(min_value=1, max_value=80))
    ops: list[tuple[str, object]] = []
    ids = 0
    for _ in range(n):
        if ids and draw(st.integers(0, 5)) == 0:
            target = draw(st.integers(0, ids + 1))  # sometimes one never used
            ops.append(("cancel", ("v1", f"o{target}")))
            continue
        if draw(st.integers(0, 12)) == 0:
            ops.append(("restore", None))
            continue
        ids += 1
        market = draw(st.integers(0, 9)) == 0
        ops.append(
            (
                "new",
                NewOrder(
                    venue="v1",
                    order_id=f"o{ids}",
                    account=draw(st.sampled_from(["alice", "bob", "carol"])),
                    side=draw(st.sampled_from(["buy", "sell"])),
                    quantity=draw(st.integers(1, 6)) * U,
                    price=None if market else draw(st.sampled_from(PRICES)),
                    time_in_force=draw(st.sampled_from(["GTC", "GTC", "IOC"])),
                ),
            )
        )
    return ops


def _copy(row: Resting) -> Resting:
    return Resting(**{name: getattr(row, name) for name in Resting.__slots__})


def _snapshot(book: Book) -> list[tuple[object, ...]]:
    return sorted((o.key, o.side, o.price, o.remaining) for o in book.orders())


@settings(max_examples=400, deadline=None)
@given(flows())
def test_random_flows_match_the_brute_force_book(ops: list[tuple[str, object]]) -> None:
    book, ref = Book("JP1234567890", "JPYC"), ReferenceBook()
    # What rows a table would hold: every changed order, as it is now.
    rows: dict[tuple[str, str], Resting] = {}
    filled: Counter[tuple[str, str]] = Counter()
    terminal: Counter[tuple[str, str]] = Counter()
    quantity: dict[tuple[str, str], int] = {}
    cancelled_left: dict[tuple[str, str], int] = defaultdict(int)
    trade_ids: list[str] = []
    for op, arg in ops:
        if op == "restore":
            # A restart: the book rebuilt from its rows, as the matcher does.
            # Rows come back in no particular order: reversed, to make sure of it.
            book = Book.restored(
                "JP1234567890",
                "JPYC",
                [_copy(row) for row in reversed(rows.values()) if row.remaining],
            )
            continue
        if op == "cancel":
            assert isinstance(arg, tuple)
            out = book.cancel(arg)
            assert (out is not None) == ref.cancel(arg)
        else:
            assert isinstance(arg, NewOrder)
            quantity[arg.key] = arg.quantity
            out = book.submit(arg)
            trades, reason = ref.submit(arg)
            assert [(f.maker, f.taker, f.price, f.quantity) for f in out.fills] == trades
            stop = [e.reason for e in out.events if e.kind == "cancelled"]
            assert stop == ([] if reason is None else [reason])
        if out is None:
            continue
        for row in out.changed:
            rows[row.key] = _copy(row)
        for e in out.events:
            key = (e.venue, e.order_id)
            filled[key] += e.filled
            if e.kind in ("filled", "cancelled"):
                terminal[key] += 1
            if e.kind == "cancelled":
                cancelled_left[key] += e.remaining
        for f in out.fills:
            assert isinstance(f, Fill) and f.buyer != f.seller and f.quantity % U == 0
            trade_ids.append(f.trade_id)
        assert _snapshot(book) == ref.snapshot()
    # Every order ends exactly once, and its face is all accounted for.
    resting = {o.key: o.remaining for o in book.orders()}
    for key, q in quantity.items():
        assert terminal[key] == (0 if key in resting else 1), key
        assert filled[key] + resting.get(key, 0) + cancelled_left[key] == q, key
    # Rows agree with the book: the open ones are exactly the resting orders.
    assert {k: r.remaining for k, r in rows.items() if r.remaining} == resting
    # A fill's trade id is never reused.
    assert len(set(trade_ids)) == len(trade_ids)


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_book_full_cancels_instead_of_resting(side: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.matching.book as book_module

    monkeypatch.setattr(book_module, "BOOK_ORDERS_MAX", 2)
    book = Book("JP1234567890", "JPYC")
    book.submit(order("o1", side, 1, "100"))
    book.submit(order("o2", side, 1, "100"))
    out = book.submit(order("o3", side, 1, "100"))
    assert out.events[-1].reason == "book_full" and len(book) == 2


def test_bids_past_28_significant_digits_keep_their_price_order() -> None:
    # Negating a Decimal in the default context rounds to 28 digits: two such bids
    # once sorted as one price, a sell filled the worse one, and the book crossed.
    low, high = "100.00000000000000000000000001", "100.00000000000000000000000002"
    book = Book("JP1234567890", "JPYC")
    book.submit(order("b-low", "buy", 1, low))
    book.submit(order("b-high", "buy", 1, high))
    assert [f.maker[1] for f in book.submit(order("s1", "sell", 1, None)).fills] == ["b-high"]
    # A limit sell at the lower bid's price trades with it instead of resting crossed.
    book.submit(order("b-high2", "buy", 1, high))
    out = book.submit(order("s2", "sell", 2, low))
    assert [f.maker[1] for f in out.fills] == ["b-high2", "b-low"]
    assert len(book) == 0


def test_a_fill_trades_at_its_maker_s_price_as_written_even_after_a_restart() -> None:
    def run(restart: bool) -> list[str]:
        book = Book("JP1234567890", "JPYC")
        book.submit(order("a", "buy", 1, "100.0"))
        b = book.submit(order("b", "buy", 1, "100"))
        book.cancel(("v1", "a"))
        if restart:  # the level's key is now whatever the rows bring back first
            book = Book.restored("JP1234567890", "JPYC", [o for o in b.changed])
        out = book.submit(order("s", "sell", 1, "100"))
        return [str(f.price) for f in out.fills] + [str(e.price) for e in out.events]

    assert run(restart=False) == run(restart=True)
    assert run(restart=False)[0] == "100"
