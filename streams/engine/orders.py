"""Orders in the settlement engine: reserved at entry, matched, each fill locked from
the reservations in the same step (issue 21). Pure: functions of a
:class:`~streams.engine.core.Batch`.

The matcher (:mod:`streams.matching.matcher`, its rules unchanged) runs inside the
engine's batch, over the engine's ``engine-orders`` rows, so an order, its
reservation, its fills and their trades' locks are one state change in one
transaction (ADR 0035):

1. **Entry.** A new order that passes the matcher's checks reserves what its fills
   may take, with a lock that never queues (:func:`streams.ledger.domain.reserve`,
   id :func:`~streams.ledger.messages.order_lock_id`): a buy, its limit × quantity
   plus the accrued interest to its settlement date, in the order's currency (the
   cash of a trade of the whole order at its limit, by the trade intake's own rules:
   ¥100m @ 98.80 for settlement 5 Nov 2025 reserves 98,913,424 JPYC); a market buy,
   its ``max_notional``; a sell, its face. Not available: the order is rejected
   ``insufficient_funds`` / ``insufficient_securities`` and nothing else changes but
   its id (used up, as any rejected order's).
2. **Fills.** Before each fill the book asks :meth:`Desk.funding`: the fill's trade
   (the trade intake's :func:`~streams.settlement.intake.to_trade`, so its cash is
   the cash settlement takes) must fit the buyer's reservation. A market buy takes
   what its cap pays for and stops (``max_notional``); a resting buy whose fill costs
   more than it holds (its accrued grew with a later settlement date) tops it up from
   its available cash, or is cancelled ``insufficient_funds`` and the taker goes on.
   Each fill's face and cash then pass from the two reservations to the trade's
   locks (``{trade_id}/bonds``, ``{trade_id}/cash``: :func:`transfer_lock`), and
   the trade's saga starts holding both (:func:`streams.settlement.saga.matched`): it
   posts at once if its settlement date has begun, else when it begins. A matched
   trade never waits for assets, so never fails for the lack of them.
3. **End.** An order filled, cancelled, or ended by its time in force gives back
   what its reservation still holds (a buy filled at 98.765 under a 98.80 limit:
   35,000 JPYC).

Invariant (``tests/unit/engine/test_orders.py``): every account's locks are its open
orders' reservations plus its open trades' locks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import orjson

from schemas import (
    CLOSING_VENUE,
    FACE_JPY_MIN,
    ORDER_EVENTS,
    ORDERS,
    source_of,
)
from streams.bonds.terms import YEN_TOKEN
from streams.ledger import domain
from streams.ledger.messages import ReserveCmd, TransferCmd, VoidCmd, lock_id, order_lock_id
from streams.matching.book import Funded, Resting, fill_trade_id
from streams.matching.handler import (
    MATCHING_VENUE,
    handle_record,
    order_event_object,
    record_time,
)
from streams.matching.matcher import BookKey, OrderRequest
from streams.money import from_units, to_units
from streams.settlement import intake as trade_rules
from streams.settlement import saga as dvp
from streams.settlement.fx import quote_of, unavailable
from streams.settlement.messages import Trade

if TYPE_CHECKING:
    from streams.engine.core import Batch

__all__ = ["Desk", "close_books", "order_record"]

#: The price a market sell's entry checks take (any price passes the tick at 100).
_PAR: Final = Decimal(100)


@dataclass(frozen=True, slots=True)
class _Made:
    """A fill as the trade intake reads it (:class:`~streams.settlement.intake.Executed`):
    the engine made every value, so nothing is validated again (a ``TradeExecuted``
    built even without validation took a quarter of an order pair's cost)."""

    trade_id: str
    isin: str
    buyer: str
    seller: str
    quantity: int
    price: Decimal
    currency: str
    trade_time: datetime
    settlement_date: date | None
    venue: str = MATCHING_VENUE
    trade_date: date | None = None
    accrued_interest: Decimal | None = None
    partial: str | None = None
    #: An order in a token other than JPYC: the ``fx-rates`` reference it converts at.
    fx_rate: Decimal | None = None
    fx_source: str | None = None
    fx_time: datetime | None = None


@dataclass(slots=True)
class _Fill:
    trade: Trade
    buy_lock: str
    sell_lock: str
    #: Cash added to the buyer's reservation before the fill takes its share.
    top_up: int = 0


@dataclass(slots=True)
class Desk:
    """One ``orders`` record's reservations and fills, decided while the book matches
    and applied once it has (the book's :data:`~streams.matching.book.Funding`)."""

    batch: Batch
    #: The record's time: its fills' trade time.
    at: datetime
    #: The record's new order is a market buy (set by :meth:`reserve`): its
    #: reservation is its cap (``max_notional``).
    market: bool = False
    fills: list[_Fill] = field(default_factory=list)
    #: Reservation lock -> units its fills take in this record (not yet transferred).
    taken: dict[str, int] = field(default_factory=dict)
    #: (account, currency) -> available cash the top-ups take in this record.
    spent: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Why the record's new order could not reserve (reason, detail), if it could not.
    refused: tuple[str, str] | None = None
    #: (book, face, price) -> the trade of those terms made in this record.
    made: dict[tuple[BookKey, int, str], Trade] = field(default_factory=dict)

    # -- entry ----------------------------------------------------------------------

    def reserve(self, r: OrderRequest) -> str | None:
        """Reserve what the new order ``r`` may take, or say why it cannot (the reason;
        :attr:`refused` has it with its detail)."""
        self.refused = self._reserve(r)
        return None if self.refused is None else self.refused[0]

    def _reserve(self, r: OrderRequest) -> tuple[str, str] | None:
        assert r.side is not None and r.quantity is not None, r
        # The book cannot tell a market order (it rests at no price): said here, for
        # the funding of its fills, from the decoded order.
        self.market = r.side == "buy" and r.price is None
        # A trade of the whole order at its limit (a market order's at par): the
        # bond, its dates and the price pass the trade intake's checks now, so no
        # fill of it is refused for them later; a buy's cash is what it reserves.
        whole = self._trade((r.isin, r.currency, r.settlement_date), r.account, r.account,
                            r.quantity, r.price or _PAR, f"order {r.order_id}")  # fmt: skip
        if isinstance(whole, tuple):
            return whole
        what = f"order {r.order_id} of {r.venue}"
        asset, units = r.isin, r.quantity
        decimals = self.batch.rules.decimals_of(r.currency)
        if r.side == "buy" and r.price is None:
            if r.max_notional is None:
                return "max_notional_required", f"{what}: a market buy needs max_notional"
            cap = to_units(r.max_notional, decimals)
            if cap is None or cap <= 0:
                return "invalid_max_notional", f"{what}: max_notional {r.max_notional} " \
                    f"is not a positive amount of {r.currency}"  # fmt: skip
            asset, units = r.currency, cap
        elif r.side == "buy":
            asset, units = r.currency, whole.cash_units
        state = self.batch.peek(r.account)
        if len(state.locks) + len(state.waiting) >= domain.LOCKS_OPEN_MAX:
            return "too_many_locks", f"{what}: {r.account} has {domain.LOCKS_OPEN_MAX} locks"
        available = state.balances.get(asset, [0, 0])[0]
        if available < units:
            shown = (available, units) if asset == r.isin else (
                from_units(available, decimals), from_units(units, decimals))  # fmt: skip
            reason = "insufficient_funds" if r.side == "buy" else "insufficient_securities"
            return reason, (
                f"{what} reserves {shown[1]} {asset}; {r.account} has {shown[0]} available"
            )
        lock = order_lock_id(r.isin, r.venue, r.order_id)
        self.batch.command(ReserveCmd(lock, r.account, asset, units))
        return None

    # -- fills ----------------------------------------------------------------------

    def funding(
        self, book: BookKey, maker: Resting, taker: Resting, quantity: int, price: Decimal
    ) -> Funded:
        """Whether the fill of ``quantity`` at ``price`` can be paid from the buyer's
        reservation (module doc, 2); decided, and remembered for :meth:`apply`."""
        buy, sell = (taker, maker) if taker.side == "buy" else (maker, taker)
        trade_id = fill_trade_id(book[0], book[1], maker.key, taker.key)
        if self.batch.engine.seen(trade_id):
            # A venue sent a trade under this id first (its orders' names are
            # public): the fill cannot be made; the maker leaves the book.
            return Funded(0, drop="duplicate")
        trade = self._trade(book, buy.account, sell.account, quantity, price, trade_id)
        if isinstance(trade, tuple):
            # The taker passed the same checks at its entry, just now: the maker's
            # lapsed (a settlement date now past, say). It leaves the book.
            return Funded(0, drop=trade[0])
        buy_lock = order_lock_id(book[0], buy.venue, buy.order_id)
        left = self._left(buy.account, buy_lock)
        top_up, stop = 0, None
        market = buy is taker and self.market
        need = trade.cash_units if buy is taker else self._need(book, buy, quantity, trade)
        if need > left:
            if market:  # a market buy: its cap is its cap
                fitted = self._fit(book, buy, sell, quantity, price, trade_id, left)
                if fitted is None:
                    return Funded(0, stop="max_notional")
                trade, quantity, stop = fitted, fitted.quantity, "max_notional"
            else:
                top_up = need - left
                spent = self.spent.get((buy.account, book[1]), 0) + top_up
                if self.batch.peek(buy.account).balances.get(book[1], [0, 0])[0] < spent:
                    if buy is maker:
                        return Funded(0, drop="insufficient_funds")
                    return Funded(0, stop="insufficient_funds")
                self.spent[buy.account, book[1]] = spent
        sell_lock = order_lock_id(book[0], sell.venue, sell.order_id)
        self.taken[buy_lock] = self.taken.get(buy_lock, 0) + trade.cash_units - top_up
        self.taken[sell_lock] = self.taken.get(sell_lock, 0) + quantity
        self.fills.append(_Fill(trade, buy_lock, sell_lock, top_up))
        return Funded(quantity, stop=stop)

    def _need(self, book: BookKey, buy: Resting, quantity: int, trade: Trade) -> int:
        """What a resting buy's reservation must hold for this fill: its cash and, if
        it is filled in part, what the rest would cost at its limit now (a book
        without a date: a later day, more accrued than it reserved), so that an open
        order always holds a reservation. A new order's, made now, covers its fills
        by the sum of truncations."""
        rest = buy.remaining - quantity
        if not rest:
            return trade.cash_units
        whole = self._trade(book, buy.account, trade.seller, rest, buy.price, "rest")
        return trade.cash_units + (0 if isinstance(whole, tuple) else whole.cash_units)

    def _left(self, account: str, lock: str) -> int:
        """What the reservation ``lock`` holds for the fills still to come."""
        held = self.batch.peek(account).locks.get(lock)
        return (0 if held is None else int(held[1])) - self.taken.get(lock, 0)

    def _fit(
        self, book: BookKey, buy: Resting, sell: Resting, quantity: int, price: Decimal,
        trade_id: str, budget: int,
    ) -> Trade | None:  # fmt: skip
        """The largest fill a market buy's remaining cap pays for (None: not one face
        unit): a bisection over whole face units, the cash rising with the face."""
        instrument = self.batch.engine.instruments.get(book[0])
        unit = FACE_JPY_MIN if instrument is None else instrument.face_unit
        low, high, best = 1, quantity // unit, None
        while low <= high:
            mid = (low + high) // 2
            trade = self._trade(book, buy.account, sell.account, mid * unit, price, trade_id)
            if not isinstance(trade, tuple) and trade.cash_units <= budget:
                best, low = trade, mid + 1
            else:
                high = mid - 1
        return best

    def _trade(
        self, book: BookKey, buyer: str, seller: str, quantity: int, price: Decimal,
        trade_id: str,
    ) -> Trade | tuple[str, str]:  # fmt: skip
        """The trade settlement takes for a fill, by the trade intake's own rules (the
        same terms again in this record, e.g. a taker filled whole at its own limit:
        the same trade, renamed)."""
        made = self.made.get((book, quantity, str(price)))  # "98.765" is not "98.7650"
        if made is not None:
            return dataclasses.replace(made, trade_id=trade_id, buyer=buyer, seller=seller)
        batch = self.batch
        isin, currency, settles = book
        settlement_date = None if settles is None else date.fromisoformat(settles)
        quote = None
        if batch.rules.fx is not None and currency != YEN_TOKEN:
            # Priced in yen, converted at the reference (streams/settlement/fx.py).
            reference = batch.engine.fx_rates.get(currency)
            missing = unavailable(currency, reference, self.at, batch.rules.fx)
            if missing is not None or reference is None:
                return missing or ("fx_rate_unavailable", currency)
            quote = quote_of(reference)
        executed = _Made(trade_id, isin, buyer, seller, quantity, price, currency, self.at,
                         settlement_date)  # fmt: skip
        if quote is not None:
            executed = dataclasses.replace(
                executed, fx_rate=quote.rate, fx_source=quote.source, fx_time=quote.at
            )
        fails = batch.rules.fails
        trade = trade_rules.to_trade(
            executed,
            self.at.timestamp(),
            tokens=dict(batch.rules.tokens),
            deadline_s=batch.rules.deadline_s,
            master=batch.master,
            cutoff_s=None if fails is None else fails.cutoff_s,
            memo=batch.engine.dated_memo,
            fx_rules=batch.rules.fx,
            references=batch.engine.fx_rates,
            token_limit=batch.rules.onchain is not None,
        )
        if not isinstance(trade, tuple):
            self.made[book, quantity, str(price)] = trade
        return trade

    # -- after the book ---------------------------------------------------------------

    def apply(self, ended: Mapping[str, str]) -> None:
        """Pass each fill's assets from the reservations to its trade's locks, give
        back what each ended order's reservation still holds (``ended``: reservation
        lock -> account), then start each fill's saga (it posts at once if its
        settlement date has begun)."""
        batch = self.batch
        for f in self.fills:
            t = f.trade
            if f.top_up:
                batch.command(ReserveCmd(f.buy_lock, t.buyer, t.currency, f.top_up))
            bonds, cash = lock_id(t.trade_id, "bonds"), lock_id(t.trade_id, "cash")
            batch.command(TransferCmd(f.sell_lock, bonds, t.seller, t.quantity))
            batch.command(TransferCmd(f.buy_lock, cash, t.buyer, t.cash_units))
        for lock, account in ended.items():
            if lock in batch.peek(account).locks:
                batch.command(VoidCmd(lock, "", account))
        batch.run()  # what the voids let through goes first, on both paths
        for f in self.fills:
            t = f.trade
            batch.out.received += 1
            batch.out.fills += 1
            begun = t.starts_at_s <= batch.now_s
            # The saga's path, or the fast one that writes the same (the tests compare).
            if not (begun and batch.fast and batch.post_matched(t)):
                outcome = dvp.matched(t, recycle=batch.recycle, begun=begun)
                batch.saga_step(t.trade_id, None, outcome)
                batch.run()


def order_record(
    batch: Batch, partition: int, offset: int, key: bytes | None, value: bytes | None,
    timestamp_s: float,
) -> None:  # fmt: skip
    """One ``orders`` record in the engine's batch: checked, reserved, matched, its
    fills' trades started, its events and any rejection written."""
    at = record_time(timestamp_s)
    desk = Desk(batch, _fill_time(batch, at))
    out = handle_record(
        batch.matcher, key, value, timestamp_s,
        signers=batch.signers, quota=batch.order_quota, partition=partition,
        verified=batch.verified.get((ORDERS, partition, offset)),
        reserve=desk.reserve, funding=desk.funding, closes=False,
    )  # fmt: skip
    desk.apply(
        _ended(
            (e["isin"], e["venue"], e["order_id"], e["account"])
            for e in out.order_events
            if e["event"] in ("filled", "cancelled")
        )
    )
    for e in out.order_events:
        batch.out.records.append((ORDER_EVENTS, e["isin"].encode(), orjson.dumps(e)))
        batch.out.order_events.append(e["event"])
    rejection = out.rejection
    if rejection is not None and desk.refused is not None and rejection[0] == desk.refused[0]:
        rejection = desk.refused  # what was short, and by how much
    if rejection is not None:
        batch.reject(source_of(ORDERS, partition, offset, key, value), ORDERS, *rejection)


def close_books(batch: Batch, isin: str) -> None:
    """A bond matured: its open orders are cancelled ``instrument_matured``, each
    reservation given back, and a new order of it is rejected so."""
    request = OrderRequest(isin=isin, currency="", venue=CLOSING_VENUE, order_id="close",
                           account=CLOSING_VENUE, action="close")  # fmt: skip
    handled = batch.matcher().handle(request)
    Desk(batch, batch.at).apply(
        _ended((u.isin, u.venue, u.order_id, u.account) for u in handled.updates)
    )
    for u in handled.updates:
        event = order_event_object(u, batch.at_text)
        batch.out.records.append((ORDER_EVENTS, isin.encode(), orjson.dumps(event)))
        batch.out.order_events.append(u.kind)


def _fill_time(batch: Batch, at: datetime | None) -> datetime:
    """A fill's trade time: the order record's (as the matcher stamped its trades), or
    the simulated market's clock under ticks (its dates are the market's)."""
    if at is None or batch.rules.ticks:
        return batch.at
    return at


def _ended(orders: Iterable[tuple[str, str, str, str | None]]) -> dict[str, str]:
    """The reservation lock of each order that ended, and its account."""
    return {order_lock_id(isin, venue, oid): acct for isin, venue, oid, acct in orders if acct}
