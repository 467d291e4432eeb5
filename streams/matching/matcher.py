"""The matcher: every book of a worker's partitions, kept as one row per order. Pure.

The agent hands each decoded ``orders`` record to :meth:`Matcher.handle` and sends
what comes back: order events, trades, and, for a bad order, a rejection reason.

**Rows.** Each order is one row of a key-value mapping (the ``orders`` table in the
agent, a dict in the tests), keyed by ``[isin, venue, order_id]``:

- an open order: its book's currency (and settlement date, ``d``, when the order
  named one), account, side, limit price, quantity, remaining face and ``seq`` (its
  time priority);
- a done one (filled or cancelled): ``{"c": currency, "r": 0, "n": seq}``, kept so
  that its id cannot be used again (``duplicate``), a late cancel says
  ``order_closed``, and a rebuilt book numbers new orders as if it had never stopped;
- a rejected one (``unknown_token``, ``invalid_price``, ``too_many_open_orders``):
  ``{"c": currency, "r": 0, "n": 0}``, done without ever having had a place in a
  book. Its id is used up like a done order's: the same signed order sent again later,
  when it would pass, is a ``duplicate``, not a second chance (docs/security.md, H3).

- a closed bond (matured): ``{"c": "", "r": 0, "n": 0}`` under ``[isin, "", "closed"]``
  (no venue has the empty name), written by the ``close`` the engine sends at
  maturity: every open order of the bond was cancelled ``instrument_matured``, and
  every new one is rejected so.

An order or cancel rewrites its own row and the row of every order it fills: the
changelog carries O(1 + fills) records per order, never a whole book. The sorted
books live in memory only and are built from the open rows the first time the
matcher is used (:meth:`Matcher.books`); a new matcher must be made whenever the rows
are reloaded (a restart or a rebalance).

**Identity.** An order is named by ``(isin, venue, order_id)``: a venue's ids are its
own, per bond. Its book is ``(isin, currency, settlement_date)``: orders for
different settlement dates never cross (a fill's trade settles on its book's date, or,
in the book without one, on its trade date plus the lag). A cancel finds the order by
its name, whatever currency or date it states.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from schemas import FACE_JPY_MIN
from streams.matching import book as book_rules
from streams.matching.book import (
    Book,
    EventKind,
    Funding,
    NewOrder,
    Outcome,
    Resting,
    Side,
)
from streams.money import TRADE_UNITS_MAX, cash_units

#: The value of a done order's row is only this (and its currency).
DONE = 0
#: The ``seq`` of a rejected order's row: it never had a place in a book (seqs start at 1).
REJECTED_SEQ = 0

#: The reason a matured bond's orders are cancelled and new ones rejected.
MATURED = "instrument_matured"

#: A book's name: (isin, currency, settlement date or None).
BookKey = tuple[str, str, str | None]


class Rows(MutableMapping[str, bytes]):
    """A table in memory that remembers which rows a batch wrote (the matcher's and
    the engine's order rows).

    A row goes to the changelog partition its key hashes to, always the same one
    (:func:`changelog_partition`): not the partition of the order that wrote it. An
    order resting on partition p and filled by an order read from partition q (two
    venues' clients hash the bond's key differently) would otherwise have its rows on
    two partitions, and a restore reading p after q would take the stale one."""

    def __init__(self) -> None:
        self.rows: dict[str, bytes] = {}
        #: key -> value written since :meth:`take_written`.
        self.written: dict[str, bytes] = {}

    def __getitem__(self, key: str) -> bytes:
        return self.rows[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        self.rows[key] = value
        self.written[key] = value

    def __delitem__(self, key: str) -> None:
        raise TypeError("the matcher's tables never delete a row")

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def take_written(self) -> dict[str, bytes]:
        written, self.written = self.written, {}
        return written


def row_key(isin: str, venue: str, order_id: str) -> str:
    """The row key of an order: JSON, so no separator can make two names collide."""
    return orjson.dumps([isin, venue, order_id]).decode()


def encode_row(order: Resting, currency: str, settlement_date: str | None = None) -> bytes:
    """The row's JSON, in a bytes object of its own size: orjson's own result keeps
    its whole ~4 KiB output buffer alive (docs/adr/0003-table-rows-as-bytes.md), and
    the table keeps one row per order ever seen."""
    row: dict[str, Any]
    if order.remaining == DONE:
        row = {"c": currency, "r": DONE, "n": order.seq}
    else:
        row = {
            "c": currency,
            "a": order.account,
            "s": order.side,
            "p": str(order.price),
            "q": order.quantity,
            "r": order.remaining,
            "n": order.seq,
        }
    if settlement_date is not None:
        row["d"] = settlement_date
    return memoryview(orjson.dumps(row)).tobytes()


@dataclass(frozen=True, slots=True)
class Row:
    isin: str
    currency: str
    #: The order's arrival number in its book.
    seq: int
    #: None when the order is done.
    order: Resting | None
    settlement_date: str | None = None

    @property
    def book(self) -> BookKey:
        return (self.isin, self.currency, self.settlement_date)


def decode_row(key: str, value: bytes) -> Row:
    isin, venue, order_id = orjson.loads(key)
    data: dict[str, Any] = orjson.loads(value)
    if data["r"] == DONE:
        return Row(isin, data["c"], data["n"], None, data.get("d"))
    order = Resting(
        venue=venue,
        order_id=order_id,
        account=data["a"],
        side=data["s"],
        price=Decimal(data["p"]),
        quantity=data["q"],
        remaining=data["r"],
        seq=data["n"],
    )
    return Row(isin, data["c"], order.seq, order, data.get("d"))


def books_from_rows(rows: Iterable[tuple[str, bytes]]) -> dict[BookKey, Book]:
    """Every book that ever had an order, built from rows in any order."""
    open_orders: dict[BookKey, list[Resting]] = defaultdict(list)
    last_seq: dict[BookKey, int] = defaultdict(int)
    for key, value in rows:
        row = decode_row(key, value)
        if row.seq == REJECTED_SEQ:
            continue  # a rejected order: it had no book (its currency may be unknown)
        last_seq[row.book] = max(last_seq[row.book], row.seq)
        if row.order is not None:
            open_orders[row.book].append(row.order)
    return {
        (isin, currency, date): Book.restored(
            isin,
            currency,
            open_orders.get((isin, currency, date), ()),
            last_seq=seq,
            settlement_date=date,
        )
        for (isin, currency, date), seq in last_seq.items()
    }


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One step of an order's life, for ``order-events``."""

    kind: EventKind
    isin: str
    currency: str
    venue: str
    order_id: str
    account: str | None
    side: Side | None
    #: Face filled by this step (fills only).
    filled: int
    #: Face left to fill after this step.
    remaining: int
    #: The fill's price (fills), else the order's limit (None: a market order).
    price: Decimal | None
    trade_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class MatchedTrade:
    """A fill, as the trade settlement will see: the resting order's price."""

    trade_id: str
    isin: str
    currency: str
    buyer: str
    seller: str
    quantity: int
    price: Decimal
    #: The book's settlement date (None: the trade date plus the lag).
    settlement_date: str | None = None


@dataclass(slots=True)
class Handled:
    updates: list[OrderUpdate] = field(default_factory=list)
    trades: list[MatchedTrade] = field(default_factory=list)
    #: Set when the order was bad: it goes to ``rejections`` too, and changed no book
    #: (its id is used up all the same, unless it was a duplicate: module doc).
    rejected: str | None = None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An ``orders`` record, as decoded (``schemas.SubmitOrder``'s fields)."""

    isin: str
    currency: str
    venue: str
    order_id: str
    account: str
    action: str = "new"
    side: Side | None = None
    quantity: int | None = None
    price: Decimal | None = None
    time_in_force: str = "GTC"
    settlement_date: str | None = None
    #: A market buy's cap, in the order's currency (schemas.SubmitOrder).
    max_notional: Decimal | None = None


#: Asked for a new order's reservation once the matcher's own checks passed: None
#: (reserved), or why it is refused (``insufficient_funds``, ...).
Reserve = Callable[[OrderRequest], str | None]


class Matcher:
    """Matches orders against the books held in *rows*, writing every change back."""

    def __init__(self, rows: MutableMapping[str, bytes], *, tokens: Mapping[str, int]) -> None:
        """*tokens*: the cash tokens an order may be priced in, and their decimals."""
        self._rows = rows
        self._tokens = dict(tokens)
        self.tokens = self._tokens
        self._books: dict[BookKey, Book] | None = None

    def books(self) -> dict[BookKey, Book]:
        if self._books is None:
            self._books = books_from_rows(self._rows.items())
        return self._books

    def book(self, isin: str, currency: str, settlement_date: str | None = None) -> Book:
        books = self.books()
        book = books.get((isin, currency, settlement_date))
        if book is None:
            book = books[isin, currency, settlement_date] = Book(isin, currency, settlement_date)
        return book

    def handle(
        self,
        request: OrderRequest,
        *,
        reserve: Reserve | None = None,
        funding: Funding | None = None,
    ) -> Handled:
        """What ``request`` does to the books. With ``reserve``, a new order that
        passed the matcher's own checks is asked for its reservation before it meets
        the book (a reason: rejected so, its id used up); ``funding`` is asked before
        each fill (:class:`~streams.matching.book.Funded`)."""
        if request.action == "cancel":
            return self._cancel(request)
        if request.action == "close":
            return self._close(request)
        return self._new(request, reserve, funding)

    def _new(self, r: OrderRequest, reserve: Reserve | None, funding: Funding | None) -> Handled:
        assert r.side is not None and r.quantity is not None, r  # the schema's rule
        reason = None
        if row_key(r.isin, r.venue, r.order_id) in self._rows:
            reason = "duplicate"
        elif closed_key(r.isin) in self._rows:
            reason = MATURED
        elif r.currency not in self._tokens:
            reason = "unknown_token"
        elif r.price is not None and not _price_settles(
            r.price, r.quantity, self._tokens[r.currency]
        ):
            reason = "invalid_price"
        elif (
            self.book(r.isin, r.currency, r.settlement_date).resting_of(r.venue)
            >= book_rules.VENUE_ORDERS_MAX
        ):
            reason = "too_many_open_orders"
        elif reserve is not None:
            reason = reserve(r)
        if reason is not None:
            if reason != "duplicate":  # the id is used up (module doc)
                self._rows[row_key(r.isin, r.venue, r.order_id)] = _rejected_row(r.currency)
            return Handled(updates=[_rejected(r, reason)], rejected=reason)
        book = self.book(r.isin, r.currency, r.settlement_date)
        outcome = book.submit(
            NewOrder(
                venue=r.venue,
                order_id=r.order_id,
                account=r.account,
                side=r.side,
                quantity=r.quantity,
                price=r.price,
                time_in_force="IOC" if r.time_in_force == "IOC" else "GTC",
            ),
            funding,
        )
        return self._apply(book, outcome, r)

    def _cancel(self, r: OrderRequest) -> Handled:
        key = row_key(r.isin, r.venue, r.order_id)
        raw = self._rows.get(key)
        if raw is None:
            return Handled(updates=[_rejected(r, "unknown_order")])
        row = decode_row(key, raw)
        if row.order is None:
            return Handled(updates=[_rejected(r, "order_closed")])
        book = self.book(*row.book)
        outcome = book.cancel((r.venue, r.order_id))
        assert outcome is not None, r  # an open row is an order on its book
        return self._apply(book, outcome, r)

    def _close(self, r: OrderRequest) -> Handled:
        """The bond matured: cancel each open order of each of its books, once."""
        handled = Handled()
        if closed_key(r.isin) in self._rows:
            return handled  # closed before: a second close changes nothing
        self._rows[closed_key(r.isin)] = _rejected_row("")
        for name in sorted(self.books(), key=_book_order):
            if name[0] != r.isin:
                continue
            book = self.books()[name]
            for order in sorted(book.orders(), key=lambda o: o.seq):
                outcome = book.cancel(order.key, MATURED)
                assert outcome is not None, order
                done = self._apply(book, outcome, r)
                handled.updates.extend(done.updates)
        return handled

    def _apply(self, book: Book, outcome: Outcome, r: OrderRequest) -> Handled:
        for row in outcome.changed:
            self._rows[row_key(book.isin, row.venue, row.order_id)] = encode_row(
                row, book.currency, book.settlement_date
            )
        changed = {(o.venue, o.order_id): o for o in outcome.changed}
        handled = Handled()
        for e in outcome.events:
            # An order's own row knows its account and side; a new order's request too.
            order = changed.get((e.venue, e.order_id))
            mine = (e.venue, e.order_id) == (r.venue, r.order_id)
            price = e.price
            if price is None:
                # A new order's limit (None: market); a cancelled order's, from its row.
                if mine and r.action == "new":
                    price = r.price
                elif order is not None:
                    price = order.price
            handled.updates.append(
                OrderUpdate(
                    kind=e.kind,
                    isin=book.isin,
                    currency=book.currency,
                    venue=e.venue,
                    order_id=e.order_id,
                    account=order.account if order is not None else None,
                    side=order.side if order is not None else None,
                    filled=e.filled,
                    remaining=e.remaining,
                    price=price,
                    trade_id=e.trade_id,
                    reason=e.reason,
                )
            )
        handled.trades = [
            MatchedTrade(
                trade_id=f.trade_id,
                isin=book.isin,
                currency=book.currency,
                buyer=f.buyer,
                seller=f.seller,
                quantity=f.quantity,
                price=f.price,
                settlement_date=book.settlement_date,
            )
            for f in outcome.fills
        ]
        return handled


def closed_key(isin: str) -> str:
    """The row that says ``isin``'s books are closed (module doc)."""
    return row_key(isin, "", "closed")


def _book_order(name: BookKey) -> tuple[str, str, str]:
    return (name[0], name[1], name[2] or "")


def _price_settles(price: Decimal, quantity: int, decimals: int) -> bool:
    """Whether settlement will take the cash leg of every fill of an order of
    ``quantity`` at ``price``: not 0 for the smallest face, and at most
    :data:`~streams.money.TRADE_UNITS_MAX` for the whole order (a fill the settlement
    rejects would show "filled" for a trade that never settles)."""
    try:
        smallest = cash_units(FACE_JPY_MIN, price, Decimal(0), decimals)
        largest = cash_units(quantity, price, Decimal(0), decimals)
    except ArithmeticError:  # not a finite short decimal: the schema's rules prevent it
        return False
    # The limit in whole tokens is the trade intake's, which the engine's reservation
    # asks at entry: in a USDC book this is the yen price at USDC's decimals.
    return smallest > 0 and largest <= TRADE_UNITS_MAX


def _rejected_row(currency: str) -> bytes:
    return memoryview(orjson.dumps({"c": currency, "r": DONE, "n": REJECTED_SEQ})).tobytes()


def rejected_update(r: OrderRequest, reason: str) -> OrderUpdate:
    """The ``rejected`` event of an order refused before the books saw it."""
    return _rejected(r, reason)


def _rejected(r: OrderRequest, reason: str) -> OrderUpdate:
    return OrderUpdate(
        kind="rejected",
        isin=r.isin,
        currency=r.currency,
        venue=r.venue,
        order_id=r.order_id,
        account=r.account,
        side=r.side,
        filled=0,
        remaining=0,
        price=r.price,
        reason=reason,
    )


def open_orders(rows: Iterable[tuple[str, bytes]], isin: str) -> Iterator[Row]:
    """The open rows of one bond (``kessai book``)."""
    for key, value in rows:
        row = decode_row(key, value)
        if row.isin == isin and row.order is not None:
            yield row
