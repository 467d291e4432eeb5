"""The matcher over its rows: ids, rejections, restarts, and O(1) writes per order."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, MutableMapping
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.matching import book as book_rules
from streams.matching.matcher import (
    Matcher,
    OrderRequest,
    books_from_rows,
    decode_row,
    row_key,
)

U = 50_000
ISIN = "JP1234567890"
TOKENS = {"JPYC": 0, "USDC": 6}


class CountingRows(MutableMapping[str, bytes]):
    """A dict that counts writes: what a table would send to its changelog."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.writes = 0

    def __getitem__(self, key: str) -> bytes:
        return self.data[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        self.writes += 1
        self.data[key] = value

    def __delitem__(self, key: str) -> None:
        self.writes += 1
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def new(
    oid: str,
    side: str,
    units: int,
    price: str | None,
    account: str = "",
    *,
    currency: str = "JPYC",
    tif: str = "GTC",
    venue: str = "v1",
) -> OrderRequest:
    return OrderRequest(
        isin=ISIN,
        currency=currency,
        venue=venue,
        order_id=oid,
        account=account or f"acct-{oid}",
        side=side,  # type: ignore[arg-type]
        quantity=units * U,
        price=None if price is None else Decimal(price),
        time_in_force=tif,
    )


def cancel(oid: str, *, currency: str = "JPYC", venue: str = "v1") -> OrderRequest:
    return OrderRequest(
        isin=ISIN, currency=currency, venue=venue, order_id=oid, account="x", action="cancel"
    )


def test_a_fill_becomes_a_trade_and_each_side_an_update_with_its_account() -> None:
    m = Matcher({}, tokens=TOKENS)
    m.handle(new("s1", "sell", 2, "99.5", "seller"))
    out = m.handle(new("b1", "buy", 1, "100", "buyer"))
    assert out.rejected is None
    [trade] = out.trades
    assert (trade.buyer, trade.seller, trade.quantity, trade.price) == (
        "buyer",
        "seller",
        U,
        Decimal("99.5"),
    )
    assert [(u.kind, u.order_id, u.account, u.side, u.price) for u in out.updates] == [
        ("accepted", "b1", "buyer", "buy", Decimal("100")),
        ("filled", "b1", "buyer", "buy", Decimal("99.5")),
        ("partially_filled", "s1", "seller", "sell", Decimal("99.5")),
    ]
    assert out.updates[1].trade_id == out.updates[2].trade_id == trade.trade_id


def test_bad_orders_are_rejected_change_no_book_and_use_their_ids_up() -> None:
    rows: dict[str, bytes] = {}
    m = Matcher(rows, tokens=TOKENS)
    m.handle(new("s1", "sell", 1, "100", "seller"))
    for request, reason in [
        (new("s1", "sell", 1, "100", "seller"), "duplicate"),
        (new("b1", "buy", 1, "100", "buyer", currency="EURC"), "unknown_token"),
        # 50,000 face at 0.001 is 0.5 JPYC: the cash leg truncates to 0 yen.
        (new("b3", "buy", 1, "0.001", "buyer"), "invalid_price"),
    ]:
        before = dict(rows)
        out = m.handle(request)
        assert out.rejected == reason
        assert [(u.kind, u.reason) for u in out.updates] == [("rejected", reason)]
        assert out.trades == []
        assert [len(b) for b in m.books().values()] == [1]  # s1 alone rests
        changed = {k: v for k, v in rows.items() if before.get(k) != v}
        # A duplicate writes nothing; any other rejection uses its id up (H3): the
        # same order sent again later, when it would pass, is a duplicate.
        assert len(changed) == (reason != "duplicate")
        assert m.handle(request).rejected == "duplicate"
        assert Matcher(rows, tokens=TOKENS).handle(request).rejected == "duplicate"
    # The rows of rejected orders make no book, and cancels of them say order_closed.
    assert list(Matcher(rows, tokens=TOKENS).books()) == [(ISIN, "JPYC", None)]
    assert m.handle(cancel("b3")).updates[0].reason == "order_closed"
    # The same price in a token with 6 decimals is 0.5 USDC: fine.
    assert m.handle(new("b4", "buy", 1, "0.001", "buyer", currency="USDC")).rejected is None
    # An id used by a done order is a duplicate too.
    m.handle(new("b2", "buy", 1, "100", "buyer"))
    assert not m.book(ISIN, "JPYC")  # b2 filled s1: both done
    assert m.handle(new("b2", "buy", 1, "100", "buyer")).rejected == "duplicate"


def test_cancels_of_unknown_or_done_orders_are_reported_not_rejected() -> None:
    m = Matcher({}, tokens=TOKENS)
    m.handle(new("s1", "sell", 1, "100", "seller"))
    m.handle(new("b1", "buy", 1, "100", "buyer"))  # fills s1
    for oid, reason in [("nope", "unknown_order"), ("s1", "order_closed")]:
        out = m.handle(cancel(oid))
        assert out.rejected is None  # not a bad record: nothing for `rejections`
        assert [(u.kind, u.reason) for u in out.updates] == [("rejected", reason)]


def test_a_cancel_finds_its_order_whatever_currency_it_states() -> None:
    m = Matcher({}, tokens=TOKENS)
    m.handle(new("s1", "sell", 3, "100", "seller", currency="USDC"))
    out = m.handle(cancel("s1", currency="JPYC"))
    assert [(u.kind, u.currency, u.remaining, u.account, u.price) for u in out.updates] == [
        ("cancelled", "USDC", 3 * U, "seller", Decimal("100"))
    ]
    assert len(m.book(ISIN, "USDC")) == 0


def test_one_book_per_currency() -> None:
    m = Matcher({}, tokens=TOKENS)
    m.handle(new("s1", "sell", 1, "100", "seller", currency="USDC"))
    assert m.handle(new("b1", "buy", 1, "100", "buyer", currency="JPYC")).trades == []


def test_changelog_writes_per_order_do_not_grow_with_the_book() -> None:
    rows = CountingRows()
    m = Matcher(rows, tokens=TOKENS)
    for i in range(2_000):
        m.handle(new(f"bid{i}", "buy", 1, str(90 + i % 7), "bidder"))
    for request, writes in [
        (new("x1", "buy", 1, "95", "other"), 1),  # rests
        (cancel("bid77"), 1),
        (new("x2", "sell", 3, "96", "seller"), 1 + 3),  # three fills, then done
        (new("x3", "sell", 1, "200", "seller"), 1),
    ]:
        rows.writes = 0
        m.handle(request)
        assert rows.writes == writes, request


@st.composite
def flows(draw: st.DrawFn) -> list[tuple[str, OrderRequest | None]]:
    ops: list[tuple[str, OrderRequest | None]] = []
    ids = 0
    for _ in range(draw(st.integers(1, 60))):
        choice = draw(st.integers(0, 9))
        if choice == 0:
            ops.append(("restart", None))
        elif choice == 1 and ids:
            ops.append(("op", cancel(f"o{draw(st.integers(0, ids + 1))}")))
        else:
            ids += 1
            market = draw(st.integers(0, 9)) == 0
            ops.append(
                (
                    "op",
                    new(
                        f"o{ids if draw(st.integers(0, 19)) else max(1, ids - 1)}",  # repeats
                        draw(st.sampled_from(["buy", "sell"])),
                        draw(st.integers(1, 4)),
                        None if market else draw(st.sampled_from(["99", "99.5", "100"])),
                        draw(st.sampled_from(["a", "b", "c"])),
                        # JPYC twice as often; EURC is no configured token (unknown_token).
                        currency=draw(st.sampled_from(["JPYC", "JPYC", "USDC", "EURC"])),
                        tif=draw(st.sampled_from(["GTC", "IOC"])),
                    ),
                )
            )
    return ops


@settings(max_examples=300, deadline=None)
@given(flows())
def test_a_matcher_rebuilt_from_its_rows_carries_on_as_if_it_never_stopped(
    ops: list[tuple[str, OrderRequest | None]],
) -> None:
    steady_rows: dict[str, bytes] = {}
    steady = Matcher(steady_rows, tokens=TOKENS)
    rows: dict[str, bytes] = {}
    restarted = Matcher(rows, tokens=TOKENS)
    for op, request in ops:
        if op == "restart":
            restarted = Matcher(rows, tokens=TOKENS)
            continue
        assert request is not None
        assert restarted.handle(request) == steady.handle(request)
        assert rows == steady_rows
    books = books_from_rows(rows.items())
    for name, book in steady.books().items():
        rebuilt = books.get(name)
        resting = [(o.key, o.remaining, o.seq) for o in book.orders()]
        assert resting == (
            [] if rebuilt is None else [(o.key, o.remaining, o.seq) for o in rebuilt.orders()]
        )
    # Every row decodes, and the open ones are the books' orders.
    open_rows = {k for k, v in rows.items() if decode_row(k, v).order is not None}
    on_books = {
        row_key(isin, o.venue, o.order_id)
        for (isin, _, _), book in steady.books().items()
        for o in book.orders()
    }
    assert open_rows == on_books


def test_a_price_too_large_to_settle_is_rejected_not_raised() -> None:
    # Schema-valid (64 characters); the cash leg of the largest fill overflows the
    # settlement arithmetic, which raised decimal.InvalidOperation in the agent.
    for price in ("9" * 64, "1" + "0" * 50):
        for currency in ("JPYC", "USDC"):
            out = Matcher({}, tokens=TOKENS).handle(
                new("big", "buy", 1, price, "a", currency=currency)
            )
            assert out.rejected == "invalid_price", (price, currency)


def test_a_venue_at_its_resting_order_limit_is_refused_and_others_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """M13: one venue could fill a book to BOOK_ORDERS_MAX, and every other venue's
    orders were then cancelled `book_full`."""
    monkeypatch.setattr(book_rules, "VENUE_ORDERS_MAX", 2)
    rows: dict[str, bytes] = {}
    m = Matcher(rows, tokens=TOKENS)
    assert m.handle(new("s1", "sell", 1, "101", venue="flood")).rejected is None
    assert m.handle(new("s2", "sell", 1, "102", venue="flood")).rejected is None
    out = m.handle(new("s3", "sell", 1, "103", venue="flood"))
    assert out.rejected == "too_many_open_orders" and len(m.book(ISIN, "JPYC")) == 2
    assert m.handle(new("s4", "sell", 1, "104", venue="other")).rejected is None
    # A fill frees room; a matcher rebuilt from its rows counts the same.
    assert m.handle(new("b1", "buy", 1, "101", venue="other")).trades
    rebuilt = Matcher(rows, tokens=TOKENS)
    assert rebuilt.handle(new("s5", "sell", 1, "105", venue="flood")).rejected is None
    assert rebuilt.handle(new("s6", "sell", 1, "106", venue="flood")).rejected == (
        "too_many_open_orders"
    )


def test_a_close_cancels_every_open_order_of_the_bond_once_and_refuses_new_ones() -> None:
    """Issue 20: at maturity the engine sends ``close``: each open order of the bond,
    in every currency and settlement date, is cancelled ``instrument_matured``; other
    bonds keep theirs; a second close does nothing; a new order is rejected, also after
    a restart."""
    rows = CountingRows()
    m = Matcher(rows, tokens=TOKENS)
    m.handle(new("s1", "sell", 2, "99.5"))
    m.handle(new("b1", "buy", 1, "98", currency="USDC"))
    m.handle(dataclasses.replace(new("s2", "sell", 1, "99"), settlement_date="2026-12-08"))
    other = OrderRequest(isin="JP1103771Q62", currency="JPYC", venue="v1", order_id="o1",
                         account="a", side="sell", quantity=U, price=Decimal("99"))  # fmt: skip
    m.handle(other)
    close = OrderRequest(isin=ISIN, currency="JPYC", venue="kessai", order_id="maturity-x",
                         account="kessai", action="close")  # fmt: skip
    out = m.handle(close)
    assert out.rejected is None and out.trades == []
    assert sorted((u.order_id, u.kind, u.reason, u.remaining) for u in out.updates) == [
        ("b1", "cancelled", "instrument_matured", U),
        ("s1", "cancelled", "instrument_matured", 2 * U),
        ("s2", "cancelled", "instrument_matured", U),
    ]
    assert m.handle(close).updates == []
    for matcher in (m, Matcher(rows, tokens=TOKENS)):
        late = matcher.handle(new(f"b-{id(matcher)}", "buy", 1, "100"))
        assert late.rejected == "instrument_matured"
        assert [len(b) for name, b in matcher.books().items() if name[0] != ISIN] == [1]
