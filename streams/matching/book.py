"""A continuous limit order book for one bond in one currency: price-time priority. Pure.

- **Priority.** The best price first (highest bid, lowest ask), then the earliest
  arrival (``seq``, counted per book).
- **Price.** A fill trades at the *resting* (maker) order's price.
- **Order types.** A limit order rests whatever it cannot fill (``GTC``), or drops it
  (``IOC``: cancelled ``immediate_or_cancel``). A market order has no price, takes what
  the book holds and never rests (remainder cancelled ``no_liquidity``).
- **Self-match.** An order never trades with a resting order of its own account: when
  that order is next in priority, the incoming order's remainder is cancelled
  ``self_match`` (cancel-newest; the fills it made before stand).
- **Trade ids** are a hash of the book and the two orders' ids
  (:func:`fill_trade_id`): the same fill always gets the same id, and two orders
  trade with each other at most once (after a fill one of them is done), so ids
  never collide.

Structures: one ``SortedDict`` of price levels per side, each level an ``OrderedDict``
in arrival order, and an index by order: adding, cancelling and taking the best
order are O(log levels), never a scan of the book.

The book knows resting orders only. Whether an id was used before, the currency
known, and the rows kept in a table are the matcher's (:mod:`streams.matching.matcher`).
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal

from sortedcontainers import SortedDict

Side = Literal["buy", "sell"]
TimeInForce = Literal["GTC", "IOC"]
EventKind = Literal["accepted", "rejected", "partially_filled", "filled", "cancelled"]
#: An order's identity within a book: (venue, order_id).
OrderKey = tuple[str, str]

#: Resting orders one book holds at most; an order that would rest past it is
#: cancelled ``book_full``.
BOOK_ORDERS_MAX = 1_000_000
#: Resting orders one venue may have in one book: a tenth of it, so that no venue can
#: fill a book and have every other venue's orders cancelled ``book_full`` (a new
#: order past it is rejected ``too_many_open_orders``; docs/security.md, M13).
VENUE_ORDERS_MAX = BOOK_ORDERS_MAX // 10
#: Hex digits of a matched trade's id after the ``m-`` prefix (128 bits).
TRADE_ID_HEX_CHARS = 32


#: The shape of every matched trade's id (:func:`fill_trade_id`): no venue's trade may
#: take it (streams/engine/core.py refuses one), so a fill's id is never taken first.
MATCHED_TRADE_ID: Final = re.compile(rf"m-[0-9a-f]{{{TRADE_ID_HEX_CHARS}}}")


def fill_trade_id(isin: str, currency: str, maker: OrderKey, taker: OrderKey) -> str:
    """The trade id of the fill between *maker* and *taker*: deterministic, so a
    replayed order can never yield a second trade for the same fill."""
    digest = hashlib.sha256()
    for part in (isin, currency, *maker, *taker):
        data = part.encode()
        digest.update(len(data).to_bytes(4, "big"))
        digest.update(data)
    return "m-" + digest.hexdigest()[:TRADE_ID_HEX_CHARS]


@dataclass(frozen=True, slots=True)
class NewOrder:
    venue: str
    order_id: str
    account: str
    side: Side
    quantity: int
    #: None: a market order.
    price: Decimal | None
    time_in_force: TimeInForce = "GTC"

    @property
    def key(self) -> OrderKey:
        return (self.venue, self.order_id)


@dataclass(slots=True)
class Resting:
    """An order on the book (or, with ``remaining`` 0, one just done)."""

    venue: str
    order_id: str
    account: str
    side: Side
    price: Decimal
    quantity: int
    remaining: int
    #: Arrival number in its book: time priority.
    seq: int

    @property
    def key(self) -> OrderKey:
        return (self.venue, self.order_id)


@dataclass(frozen=True, slots=True)
class Fill:
    trade_id: str
    price: Decimal
    quantity: int
    buyer: str
    seller: str
    maker: OrderKey
    taker: OrderKey


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One step of an order's life, in the order they happened."""

    kind: EventKind
    venue: str
    order_id: str
    #: Face filled by this event (fills only).
    filled: int = 0
    #: What is left to fill after this event.
    remaining: int = 0
    price: Decimal | None = None
    trade_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Funded:
    """What a :data:`Funding` says of one fill before it is made: the face it may
    take (``quantity``, up to what was asked; 0: none); ``drop``: the maker cannot pay
    or deliver, so it is cancelled with this reason and the taker goes on to the next
    maker; ``stop``: the taker stops after this fill (or, with 0, before it), its
    remainder cancelled with this reason."""

    quantity: int
    drop: str | None = None
    stop: str | None = None


#: Asked before each fill (the book's (isin, currency, settlement date), maker, taker,
#: face, price), when the engine holds reservations (streams/engine/orders.py):
#: whether each side can pay for it.
Funding = Callable[[tuple[str, str, str | None], "Resting", "Resting", int, Decimal], Funded]


@dataclass(slots=True)
class Outcome:
    """What one order or cancel did to a book."""

    events: list[OrderEvent] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    #: Orders whose row changed, as they are now (the makers filled, then the order
    #: itself); ``remaining == 0``: done, off the book.
    changed: list[Resting] = field(default_factory=list)


Level = OrderedDict[OrderKey, Resting]


class Book:
    """The resting orders of one (ISIN, currency, settlement date), matched by price-time
    priority. ``settlement_date`` None: the book of orders that settle on the regular
    date of each fill (the trade date plus the configured lag)."""

    def __init__(self, isin: str, currency: str, settlement_date: str | None = None) -> None:
        self.isin = isin
        self.currency = currency
        self.settlement_date = settlement_date
        #: Best bid first: keys are prices, sorted descending. ``copy_negate`` is exact;
        #: ``operator.neg`` would round to the decimal context's 28 digits and sort
        #: two bids that differ past it as one price.
        self._bids: SortedDict = SortedDict(Decimal.copy_negate)
        #: Best ask first.
        self._asks: SortedDict = SortedDict()
        self._orders: dict[OrderKey, Resting] = {}
        #: Resting orders per venue.
        self._per_venue: Counter[str] = Counter()
        self._next_seq = 1

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, key: object) -> bool:
        return key in self._orders

    def get(self, key: OrderKey) -> Resting | None:
        return self._orders.get(key)

    def resting_of(self, venue: str) -> int:
        """How many orders of ``venue`` rest in this book."""
        return self._per_venue[venue]

    @classmethod
    def restored(
        cls,
        isin: str,
        currency: str,
        orders: Iterable[Resting],
        *,
        last_seq: int = 0,
        settlement_date: str | None = None,
    ) -> Book:
        """A book of orders read back from storage, in any order: each keeps its
        ``seq``, so its time priority. New orders are numbered after *last_seq* (the
        highest ever given, done orders included: the same numbers as if the book had
        never stopped) and after every order restored."""
        book = cls(isin, currency, settlement_date)
        book._next_seq = last_seq + 1
        for order in sorted(orders, key=operator.attrgetter("seq")):
            assert order.remaining > 0 and order.key not in book._orders, order
            book._rest(order)
            book._next_seq = max(book._next_seq, order.seq + 1)
        return book

    def submit(self, order: NewOrder, funding: Funding | None = None) -> Outcome:
        """Match *order* against the book; rest what a GTC limit order has left.
        ``funding`` is asked before each fill (:class:`Funded`)."""
        assert order.quantity > 0 and order.key not in self._orders, order
        out = Outcome()
        out.events.append(
            OrderEvent("accepted", order.venue, order.order_id, remaining=order.quantity)
        )
        taker = Resting(
            venue=order.venue,
            order_id=order.order_id,
            account=order.account,
            side=order.side,
            price=order.price if order.price is not None else Decimal(0),
            quantity=order.quantity,
            remaining=order.quantity,
            seq=self._next_seq,
        )
        self._next_seq += 1
        stopped_by = self._take(taker, order.price, out, funding)
        # The taker's row is written whatever happens: open, or done (its id is used).
        out.changed.append(taker)
        if taker.remaining == 0:
            return out
        if stopped_by is None:
            if order.price is None:
                stopped_by = "no_liquidity"
            elif order.time_in_force == "IOC":
                stopped_by = "immediate_or_cancel"
            elif len(self._orders) >= BOOK_ORDERS_MAX:
                stopped_by = "book_full"
        if stopped_by is not None:
            left = taker.remaining
            taker.remaining = 0
            out.events.append(
                OrderEvent(
                    "cancelled", taker.venue, taker.order_id, remaining=left, reason=stopped_by
                )
            )
            return out
        self._rest(taker)
        return out

    def cancel(self, key: OrderKey, reason: str = "requested") -> Outcome | None:
        """Take a resting order off the book; None if it is not on it."""
        order = self._orders.get(key)
        if order is None:
            return None
        self._unrest(order)
        left = order.remaining
        order.remaining = 0
        return Outcome(
            events=[
                OrderEvent("cancelled", order.venue, order.order_id, remaining=left, reason=reason)
            ],
            changed=[order],
        )

    def _take(
        self, taker: Resting, limit: Decimal | None, out: Outcome, funding: Funding | None
    ) -> str | None:
        """Fill *taker* from the other side while prices cross; the reason it stopped
        early (``self_match``, or what ``funding`` said), or None."""
        buying = taker.side == "buy"
        opposite = self._asks if buying else self._bids
        while taker.remaining and opposite:
            level_price, level = opposite.peekitem(0)
            if limit is not None and (level_price > limit if buying else level_price < limit):
                return None
            maker: Resting = next(iter(level.values()))
            # The maker's own price, as it was written: "100.0" and "100" share a level,
            # but each fill says what its resting order said, restart or not.
            price = maker.price
            if maker.account == taker.account:
                return "self_match"
            quantity = min(maker.remaining, taker.remaining)
            stop = None
            if funding is not None:
                name = (self.isin, self.currency, self.settlement_date)
                funded = funding(name, maker, taker, quantity, price)
                if funded.drop is not None:
                    self._drop(maker, funded.drop, out)
                    continue
                if funded.quantity == 0:
                    return funded.stop or "insufficient_funds"
                quantity, stop = funded.quantity, funded.stop
            maker.remaining -= quantity
            taker.remaining -= quantity
            trade_id = fill_trade_id(self.isin, self.currency, maker.key, taker.key)
            out.fills.append(
                Fill(
                    trade_id=trade_id,
                    price=price,
                    quantity=quantity,
                    buyer=taker.account if buying else maker.account,
                    seller=maker.account if buying else taker.account,
                    maker=maker.key,
                    taker=taker.key,
                )
            )
            for side in (taker, maker):
                out.events.append(
                    OrderEvent(
                        "filled" if side.remaining == 0 else "partially_filled",
                        side.venue,
                        side.order_id,
                        filled=quantity,
                        remaining=side.remaining,
                        price=price,
                        trade_id=trade_id,
                    )
                )
            if maker.remaining == 0:
                level.popitem(last=False)
                del self._orders[maker.key]
                self._per_venue[maker.venue] -= 1
                if not level:
                    del opposite[level_price]
            out.changed.append(maker)
            if stop is not None and taker.remaining:
                return stop
        return None

    def _drop(self, maker: Resting, reason: str, out: Outcome) -> None:
        """A resting order that cannot take its next fill: cancelled with ``reason``."""
        self._unrest(maker)
        left, maker.remaining = maker.remaining, 0
        out.events.append(
            OrderEvent("cancelled", maker.venue, maker.order_id, remaining=left, reason=reason)
        )
        out.changed.append(maker)

    def _rest(self, order: Resting) -> None:
        side = self._bids if order.side == "buy" else self._asks
        level = side.get(order.price)
        if level is None:
            level = side[order.price] = OrderedDict()
        level[order.key] = order
        self._orders[order.key] = order
        self._per_venue[order.venue] += 1

    def _unrest(self, order: Resting) -> None:
        side = self._bids if order.side == "buy" else self._asks
        level = side[order.price]
        del level[order.key]
        if not level:
            del side[order.price]
        del self._orders[order.key]
        self._per_venue[order.venue] -= 1

    def depth(self, levels_max: int | None = None) -> tuple[list[tuple[Decimal, int, int]], ...]:
        """(bids, asks), best first: each level's (price, face resting, orders)."""

        def side(levels: SortedDict) -> list[tuple[Decimal, int, int]]:
            out: list[tuple[Decimal, int, int]] = []
            for price, level in levels.items():
                if levels_max is not None and len(out) >= levels_max:
                    break
                out.append((price, sum(o.remaining for o in level.values()), len(level)))
            return out

        return side(self._bids), side(self._asks)

    def orders(self) -> Iterator[Resting]:
        """Every resting order, bids then asks, each in priority order."""
        for levels in (self._bids, self._asks):
            for level in levels.values():
                yield from level.values()
