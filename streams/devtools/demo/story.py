"""The demo's story as data: the records each act publishes, in the order published,
and every outcome the pipeline must make of them.

Ids and accounts are unique to a run (``alice-<run>``, ``t1-<run>``, ``o1-<run>``,
...): the tables below name accounts by first name and ids by their prefix and
number, and :func:`build` adds the run. The records are built by small helpers
(:class:`_Run` for acts 1 to 3, :class:`_Orders` for act 4) so that each act reads as
one line per record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel

from schemas import (
    CUSTODY,
    FX_RATES,
    ORDERS,
    PAYMENTS,
    TRADES,
    FxRate,
    MoveBonds,
    MoveCash,
    SubmitOrder,
    TradeExecuted,
    encode,
    key_for,
)
from streams.bonds.terms import accrued_on, jst_date
from streams.cli.instruments import reference_instruments
from streams.money import from_units
from streams.settlement.fx import convert

#: The worker's settlement deadline during the demo (the default is an hour).
DEMO_DEADLINE_S = 30

#: Two JGBs of the reference security master (``kessai instruments load``, which the
#: demo runs first): 10-year #384 (1.8 %) and 20-year #198 (2.5 %), coupons 20 March
#: and 20 September, face unit ¥50,000. No test trades #384 on the shared broker: its
#: book is the demo's (each run cancels what the last one left resting).
BOND_10Y = "JP1103841Q68"
BOND_20Y = "JP1201981Q60"
#: BOND_10Y with a wrong check digit.
BAD_ISIN = "JP1103841Q69"

#: Act 4's simulated venues: venue-tokyo sends bob's and dave's orders, venue-osaka
#: alice's and carol's.
VENUES = ("venue-tokyo", "venue-osaka")
#: Everyone in the story; erin never gets the bonds she sells.
NAMES = ("alice", "bob", "carol", "dave", "erin")

#: (status, reason) as published on ``settlements``.
Status = tuple[str, str | None]
#: (topic, key, value) of one record to publish.
Raw = tuple[str, bytes, bytes]
#: (event, reason, filled, remaining, price) of one ``order-events`` record.
OrderStep = tuple[str, str | None, int, int, str | None]
#: One side of a book, best first: (price, face resting, orders) per level.
Depth = list[tuple[Decimal, int, int]]
#: (account, asset) -> (available, locked).
Balances = dict[tuple[str, str], tuple[Decimal, Decimal]]
#: kessai's accrued interest in yen on (isin, face) for the trades of the run's day.
_Accrued = Callable[[str, int], int]


@dataclass(frozen=True)
class Step:
    """One ``order-events`` record an order of act 4 must get."""

    event: str
    remaining: int
    #: A fill's price, else the order's limit (None: a market order, or a rejected one).
    price: str | None
    filled: int = 0
    reason: str | None = None
    #: On a fill: which of the story's matched trades it makes (#1 is the first).
    match: int | None = None

    def key(self) -> OrderStep:
        return (self.event, self.reason, self.filled, self.remaining, self.price)


@dataclass(frozen=True)
class Order:
    """An order of act 4: who sent what, and every event it must get, in order."""

    venue: str
    account: str
    #: "buy 400000 @ 99.60", "sell 250000 market", ...
    what: str
    steps: list[Step]


@dataclass(frozen=True)
class Match:
    """A trade the matcher must make; it must settle."""

    buyer: str
    seller: str
    quantity: int
    price: str
    #: Its cash leg as ``settlements`` publishes it: face x price / 100.
    cash: str


@dataclass
class Story:
    """One run's story: the records of each act, and every outcome expected of them."""

    run: str
    accounts: list[str]
    #: Act 1: deposits, a withdrawal, bad payments.
    funding: list[Raw]
    #: Ledger-event causes that show the funding applied (the worker is up).
    funded: set[str]
    #: Act 2: the venue's trades, good and bad.
    trades: list[Raw]
    #: Trades that must be pending before act 3 starts.
    unfunded: list[str]
    #: Act 3: the deposits the pending trades wait for.
    late: list[Raw]
    #: trade id -> its TradeExecuted, for the report.
    trade_records: dict[str, TradeExecuted]
    #: trade id -> every status it must go through, in order.
    statuses: dict[str, list[Status]]
    #: Act 4: the venues' orders, a cancel and a bad order, in the order sent.
    orders: list[Raw]
    #: order id -> the order and every order event it must get.
    order_steps: dict[str, Order]
    #: The trades the matcher must make, #1 first.
    matches: list[Match]
    #: BOND_10Y's JPYC book at the end: (bids, asks).
    depth: tuple[Depth, Depth]
    #: marker (the id in the rejected record) -> reason.
    rejections: dict[str, str]
    #: (account, asset) -> (available, locked) when act 3 is over.
    positions_act3: Balances
    #: (account, asset) -> (available, locked) at the end.
    positions: Balances


# The outcomes. Ids and accounts without the run: build() adds it.

#: Ledger-event causes of act 1 that show the worker up and the accounts funded.
FUNDED = ("payment:p1", "payment:p2", "payment:p3", "custody:c4", "custody:c5", "payment:p5")
#: Act 2's trades that wait for act 3's deposits.
UNFUNDED = ("t3", "t4", "t5")
#: The venue's good trades -> every status each must go through, in order.
STATUSES: dict[str, list[Status]] = {
    "t1": [("settled", None)],
    "t2": [("settled", None)],
    "t3": [("pending", "insufficient_cash"), ("settled", None)],
    "t4": [("pending", "insufficient_securities"), ("settled", None)],
    "t5": [("pending", "insufficient_securities"), ("failed", "insufficient_securities")],
}
#: The id in each rejected record -> the reason it must be rejected for.
REJECTIONS = {
    "p6": "insufficient_funds",
    "p3": "duplicate",
    "p7": "unknown_token",
    "p8": "malformed",
    "t6": "invalid_isin",
    "t7": "same_account",
    "t8": "unknown_token",
    "t1": "duplicate",
    "t9": "malformed",
    "o13": "invalid_quantity",
    "o14": "insufficient_funds",
}
#: The trades the matcher must make, #1 first: buyer, seller, face, price. Each cash
#: leg is face x price / 100 plus kessai's accrued interest on BOND_10Y that day
#: (300,000 face x 99.55 / 100 = 298,650 JPYC, + accrued).
MATCHES: tuple[tuple[str, str, int, str], ...] = (
    ("alice", "carol", 300_000, "99.55"),
    ("alice", "bob", 100_000, "99.60"),
    ("alice", "bob", 200_000, "99.40"),
    ("dave", "bob", 50_000, "99.40"),
    ("alice", "bob", 100_000, "99.60"),
)
#: BOND_10Y's JPYC book left at the end, best first: (price, face, orders).
LEFT_BIDS = ((Decimal("99.40"), 50_000, 1), (Decimal("99.30"), 300_000, 1))
LEFT_ASKS = ((Decimal("99.70"), 500_000, 1), (Decimal("99.80"), 200_000, 1))
#: USDC's reference rate (yen per USD) on ``fx-rates``, and the rate t2 carries.
USDC_JPY = "151.234"
#: Every trade's cash is its principal plus kessai's accrued interest on that day
#: (``ai``, computed from the master), in yen; the USDC trade's converted once at its
#: rate (docs/fx.md).


def usdc_of_t2(ai: _Accrued) -> int:
    """t2's cash in USDC units: 300,000 face x 99.52 / 100 + accrued, at 151.234."""
    return convert(_principal(300_000, "99.52") + ai(BOND_20Y, 300_000), Decimal(USDC_JPY), 6)


def _available_act3(ai: _Accrued) -> dict[tuple[str, str], int | str]:
    """(name, asset) -> available when act 3 is over; nothing is ever left locked."""
    t1, t3, t4 = (
        995_000 + ai(BOND_10Y, 1_000_000),
        497_500 + ai(BOND_10Y, 500_000),
        (199_600 + ai(BOND_20Y, 200_000)),
    )
    t2 = usdc_of_t2(ai)
    return {
        ("alice", "JPYC"): 5_000_000 - 1_200_000 - t1 - t4,  # deposit, withdrawal, t1, t4
        ("alice", "USDC"): format(from_units(2_500_125_000 - t2, 6), "f"),  # 2,500.125 less t2
        ("alice", BOND_10Y): 1_000_000,
        ("alice", BOND_20Y): 500_000,
        ("bob", "JPYC"): 1_000_000 + t1 + t3,
        ("bob", "USDC"): format(from_units(t2, 6), "f"),
        ("bob", BOND_10Y): 8_500_000,
        ("bob", BOND_20Y): 200_000,
        ("carol", "JPYC"): 505_000 - t3,
        ("carol", BOND_10Y): 500_000,
        ("dave", "JPYC"): t4,
        ("dave", BOND_20Y): 0,
    }


def _available_act4(
    ai: _Accrued, act3: dict[tuple[str, str], int | str]
) -> dict[tuple[str, str], int | str]:
    """What act 4's matched trades change: (name, asset) -> available at the end."""
    out: dict[tuple[str, str], int | str] = {}
    for buyer, seller, face, price in MATCHES:
        cash = _principal(face, price) + ai(BOND_10Y, face)
        for name, asset, delta in ((buyer, "JPYC", -cash), (seller, "JPYC", cash),
                                   (buyer, BOND_10Y, face), (seller, BOND_10Y, -face)):  # fmt: skip
            before = out.get((name, asset), act3.get((name, asset), 0))
            out[name, asset] = int(before) + delta
    return out


def _reserved_act4(ai: _Accrued) -> dict[tuple[str, str], int]:
    """(name, asset) -> what the orders resting at the end still reserve (locked): the
    asks' face; a bid's cash at its limit for the face left, with accrued
    (streams/engine/orders.py). dave's o6 reserved 100,000 @ 99.40 and its fill took
    50,000 @ 99.40 of it."""
    return {
        ("bob", BOND_10Y): 500_000,  # o3
        ("carol", BOND_10Y): 200_000,  # o4
        ("alice", "JPYC"): _principal(300_000, "99.30") + ai(BOND_10Y, 300_000),  # o7
        ("dave", "JPYC"): _principal(100_000, "99.40")
        + ai(BOND_10Y, 100_000)
        - _principal(50_000, "99.40")
        - ai(BOND_10Y, 50_000),  # o6
    }


def _held(
    r: _Run, available: dict[tuple[str, str], int | str], reserved: dict[tuple[str, str], int]
) -> Balances:
    """(account, asset) -> (available, locked) once the reservations are taken out."""
    out = _balances(r, available)
    for (name, asset), units in reserved.items():
        total, _ = out[r.account(name), asset]
        out[r.account(name), asset] = (total - units, Decimal(units))
    return out


def _principal(face: int, price: str) -> int:
    return int(face * Decimal(price) / 100)


def _cash(ai: _Accrued, face: int, price: str) -> str:
    """A matched trade's cash leg as ``settlements`` publishes it."""
    return f"{_principal(face, price) + ai(BOND_10Y, face)} JPYC"


def to_raw(topic: str, model: BaseModel) -> Raw:
    return topic, key_for(topic, model), encode(model)


@dataclass(frozen=True)
class _Run:
    """Builds this run's records: accounts from first names, ids from numbers."""

    id: str
    #: Every trade's trade_time.
    now: datetime

    def account(self, name: str) -> str:
        return f"{name}-{self.id}"

    def pay(self, n: int, name: str, token: str, amount: str, kind: str = "deposit") -> Raw:
        return to_raw(
            PAYMENTS,
            MoveCash.model_validate(
                {
                    "payment_id": f"p{n}-{self.id}",
                    "account": self.account(name),
                    "token": token,
                    "amount": amount,
                    "kind": kind,
                }
            ),
        )

    def bonds(self, n: int, name: str, isin: str, quantity: int) -> Raw:
        return to_raw(
            CUSTODY,
            MoveBonds(
                movement_id=f"c{n}-{self.id}",
                account=self.account(name),
                isin=isin,
                quantity=quantity,
                kind="deposit",
            ),
        )

    def trade(
        self,
        n: int,
        buyer: str,
        seller: str,
        isin: str,
        quantity: int,
        price: str,
        currency: str = "JPYC",
        fx_rate: str | None = None,
    ) -> TradeExecuted:
        """A trade; kessai computes its accrued interest. ``fx_rate``: paid in a token
        other than JPYC, converted at this rate (yen per token), quoted now."""
        record = {
            "trade_id": f"t{n}-{self.id}",
            "venue": "kessai-demo-venue",
            "isin": isin,
            "buyer": self.account(buyer),
            "seller": self.account(seller),
            "quantity": quantity,
            "price": price,
            "currency": currency,
            "trade_time": self.now.isoformat().replace("+00:00", "Z"),
        }
        if fx_rate is not None:
            record.update(fx_rate=fx_rate, fx_source="demo-venue-feed",
                          fx_time=record["trade_time"])  # fmt: skip
        return TradeExecuted.model_validate(record)

    def fx_reference(self) -> Raw:
        """USDC's reference rate on ``fx-rates``, observed now (docs/fx.md)."""
        return to_raw(FX_RATES, FxRate(currency="USDC", rate=Decimal(USDC_JPY),
                                       source="demo-fixing", at=self.now))  # fmt: skip

    def bad_trade(self, n: int, **changes: str) -> Raw:
        # Built as JSON, not as a model: the model would refuse it, the worker must.
        good = self.trade(n, "alice", "bob", BOND_10Y, 100_000, "99.5").model_dump(mode="json")
        return TRADES, f"t{n}-{self.id}".encode(), orjson.dumps({**good, **changes})


def _funding(r: _Run) -> list[Raw]:
    """Act 1: deposits, a withdrawal, and four payments the worker must refuse."""
    return [
        r.fx_reference(),  # USDC's reference rate: t2 converts near it
        r.pay(1, "alice", "JPYC", "5000000"),
        r.pay(2, "alice", "USDC", "2500.125"),
        r.pay(3, "bob", "JPYC", "1000000"),
        r.bonds(4, "bob", BOND_10Y, 10_000_000),
        r.bonds(5, "bob", BOND_20Y, 500_000),
        r.pay(5, "alice", "JPYC", "1200000", "withdrawal"),
        r.pay(6, "bob", "JPYC", "9999999", "withdrawal"),  # overdraft
        r.pay(3, "bob", "JPYC", "1000000"),  # the bridge replays p3
        r.pay(7, "bob", "EURC", "10"),  # a token nobody configured
        # What a buggy bridge might send: cut-off JSON. `kessai publish` would refuse
        # it, so it goes through a bare producer, as it would in real life.
        (PAYMENTS, b"mallory", f'{{"payment_id": "p8-{r.id}", "amount": 12.5'.encode()),
    ]


def _good_trades(r: _Run) -> list[TradeExecuted]:
    """Act 2's trades that must settle or fail: the ones in :data:`STATUSES`."""
    return [
        # 1,000,000 face x 99.5 / 100 = 995,000 JPYC, + kessai's accrued
        r.trade(1, "alice", "bob", BOND_10Y, 1_000_000, "99.5"),
        # 300,000 face x 99.52 / 100 = 298,560 JPY + accrued, paid in USDC at 151.234
        r.trade(2, "alice", "bob", BOND_20Y, 300_000, "99.52", "USDC", USDC_JPY),
        # carol has no cash yet: 497,500 JPYC + accrued
        r.trade(3, "carol", "bob", BOND_10Y, 500_000, "99.5"),
        # dave has no bonds yet: 199,600 JPYC + accrued
        r.trade(4, "alice", "dave", BOND_20Y, 200_000, "99.8"),
        # erin never gets her bonds
        r.trade(5, "alice", "erin", BOND_10Y, 100_000, "99.5"),
    ]


def _trades(r: _Run, good: list[TradeExecuted]) -> list[Raw]:
    """Act 2 as the venue publishes it: the good trades, then five to be rejected."""
    return [
        *(to_raw(TRADES, t) for t in good),
        r.bad_trade(6, isin=BAD_ISIN),
        r.bad_trade(7, buyer=r.account("bob")),  # buyer == seller
        r.bad_trade(8, currency="EURC"),
        to_raw(TRADES, good[0]),  # the venue sends t1 again
        (
            TRADES,
            f"t9-{r.id}".encode(),
            f'{{"trade_id": "t9-{r.id}", "venue": "kessai-demo-venue", "quantity": 1e5'.encode(),
        ),
    ]


def _late(r: _Run) -> list[Raw]:
    """Act 3: what carol's and dave's pending trades wait for; erin gets nothing."""
    # 505,000: t3's 497,500 and its accrued, at most half a coupon (4,500 on 500,000).
    return [r.pay(9, "carol", "JPYC", "505000"), r.bonds(10, "dave", BOND_20Y, 200_000)]


def _fill(filled: int, remaining: int, price: str, match: int) -> Step:
    event = "filled" if remaining == 0 else "partially_filled"
    return Step(event, remaining, price, filled, match=match)


def _cancelled(remaining: int, price: str, reason: str) -> Step:
    return Step("cancelled", remaining, price, reason=reason)


@dataclass
class _Orders:
    """Act 4's records in the order sent, and the events each order must get."""

    run: _Run
    records: list[Raw] = field(default_factory=list)
    steps: dict[str, Order] = field(default_factory=dict)

    def _new(self, n: int, venue: str, name: str, side: str, quantity: int) -> dict[str, Any]:
        return {
            "order_id": f"o{n}-{self.run.id}",
            "venue": venue,
            "account": self.run.account(name),
            "isin": BOND_10Y,
            "side": side,
            "quantity": quantity,
            "currency": "JPYC",
        }

    def order(
        self,
        n: int,
        venue: str,
        name: str,
        side: str,
        quantity: int,
        price: str | None,
        *then: Step,
        tif: str = "GTC",
    ) -> None:
        """A new order; it must be accepted, then get the events *then*."""
        o = SubmitOrder.model_validate(
            {**self._new(n, venue, name, side, quantity), "price": price, "time_in_force": tif}
        )
        what = f"{side} {quantity} " + ("market" if price is None else f"@ {price}")
        self.steps[o.order_id] = Order(
            venue,
            self.run.account(name),
            what + (" IOC" if tif == "IOC" else ""),
            [Step("accepted", quantity, price), *then],
        )
        self.records.append(to_raw(ORDERS, o))

    def cancel(self, n: int, venue: str, name: str) -> None:
        o = SubmitOrder.model_validate(
            {
                "order_id": f"o{n}-{self.run.id}",
                "venue": venue,
                "account": self.run.account(name),
                "isin": BOND_10Y,
                "currency": "JPYC",
                "action": "cancel",
            }
        )
        self.records.append(to_raw(ORDERS, o))

    def refused(
        self, n: int, venue: str, name: str, side: str, quantity: int, price: str, reason: str
    ) -> None:
        """A well-formed order the engine refuses (its reservation), with ``reason``."""
        o = SubmitOrder.model_validate(
            {**self._new(n, venue, name, side, quantity), "price": price}
        )
        self.steps[o.order_id] = Order(
            venue,
            self.run.account(name),
            f"{side} {quantity} @ {price}",
            [Step("rejected", 0, price, reason=reason)],
        )
        self.records.append(to_raw(ORDERS, o))

    def bad(self, n: int, venue: str, name: str, side: str, quantity: int, reason: str) -> None:
        # Built as JSON, not as a model: the model would refuse it, the matcher must.
        value = {**self._new(n, venue, name, side, quantity), "price": "99.80"}
        self.steps[f"o{n}-{self.run.id}"] = Order(
            venue,
            self.run.account(name),
            f"{side} {quantity} @ 99.80",
            [Step("rejected", 0, None, reason=reason)],
        )
        self.records.append((ORDERS, BOND_10Y.encode(), orjson.dumps(value)))


def _orders(r: _Run) -> _Orders:
    """Act 4: BOND_10Y in JPYC. Every fill is at the resting order's price; #n is the
    trade it makes (:data:`MATCHES`)."""
    tokyo, osaka = VENUES
    o = _Orders(r)
    # Not formatted: one order per line reads as the story it is.
    # fmt: off
    # The book: four asks (bob has 8,500,000 face, carol 500,000) and four bids.
    o.order(1, tokyo, "bob", "sell", 200_000, "99.60",
            _fill(100_000, 100_000, "99.60", 2), _fill(100_000, 0, "99.60", 5))
    o.order(2, osaka, "carol", "sell", 300_000, "99.55", _fill(300_000, 0, "99.55", 1))
    o.order(3, tokyo, "bob", "sell", 500_000, "99.70")
    o.order(4, osaka, "carol", "sell", 200_000, "99.80")
    o.order(5, osaka, "alice", "buy", 200_000, "99.40", _fill(200_000, 0, "99.40", 3))
    # Behind o5 at 99.40: time priority.
    o.order(6, tokyo, "dave", "buy", 100_000, "99.40", _fill(50_000, 50_000, "99.40", 4))
    o.order(7, osaka, "alice", "buy", 300_000, "99.30")
    o.order(8, tokyo, "bob", "buy", 100_000, "99.20", _cancelled(100_000, "99.20", "requested"))
    # A limit buy across two levels: all of o2 at 99.55 (#1), half of o1 at 99.60 (#2).
    o.order(9, osaka, "alice", "buy", 400_000, "99.60",
            _fill(300_000, 100_000, "99.55", 1), _fill(100_000, 0, "99.60", 2))
    # A market sell: all of o5 (#3), then half of o6 (#4).
    o.order(10, tokyo, "bob", "sell", 250_000, None,
            _fill(200_000, 50_000, "99.40", 3), _fill(50_000, 0, "99.40", 4))
    # IOC: the rest of o1 (#5); the next ask, 99.70, is past its limit: rest dropped.
    o.order(11, osaka, "alice", "buy", 300_000, "99.65",
            _fill(100_000, 200_000, "99.60", 5),
            _cancelled(200_000, "99.65", "immediate_or_cancel"), tif="IOC")
    # bob's buy would take his own ask o3 first: cancelled, no trade.
    o.order(12, tokyo, "bob", "buy", 100_000, "99.75",
            _cancelled(100_000, "99.75", "self_match"))
    o.cancel(8, tokyo, "bob")
    # 12,345 face is not a multiple of 50,000.
    o.bad(13, osaka, "carol", "sell", 12_345, "invalid_quantity")
    # erin has no cash: her bid cannot reserve its 99,500 JPYC and accrued. Refused at
    # once, it never rests where a seller could fill it (no trade break).
    o.refused(14, tokyo, "erin", "buy", 100_000, "99.50", "insufficient_funds")
    # fmt: on
    return o


def _balances(r: _Run, available: dict[tuple[str, str], int | str]) -> Balances:
    return {(r.account(n), asset): (Decimal(a), Decimal(0)) for (n, asset), a in available.items()}


def _accrued_on(day: date) -> _Accrued:
    """kessai's accrued interest on the reference bonds for trades settling on ``day``
    (the lag is 0: the trade date)."""
    master = {b.isin: b for b in reference_instruments()}

    def ai(isin: str, face: int) -> int:
        accrued = accrued_on(master[isin], face, day)
        assert accrued is not None, isin  # fixed coupons: kessai's
        return accrued.jpy

    return ai


def build(run: str, now: datetime | None = None) -> Story:
    """The records to publish, act by act, and what the pipeline must make of them;
    *now* (default: this second) stamps the venue's trades."""
    if now is None:
        now = datetime.now(UTC).replace(microsecond=0)
    r = _Run(run, now)
    good = _good_trades(r)
    orders = _orders(r)
    ai = _accrued_on(jst_date(now.timestamp()))
    act3 = _available_act3(ai)
    positions_act3 = _balances(r, act3)
    return Story(
        run=run,
        accounts=[r.account(n) for n in NAMES],
        funding=_funding(r),
        funded={f"{cause}-{run}" for cause in FUNDED},
        trades=_trades(r, good),
        unfunded=[f"{t}-{run}" for t in UNFUNDED],
        late=_late(r),
        trade_records={t.trade_id: t for t in good},
        statuses={f"{t}-{run}": list(want) for t, want in STATUSES.items()},
        orders=orders.records,
        order_steps=orders.steps,
        matches=[
            Match(r.account(b), r.account(s), q, p, _cash(ai, q, p)) for b, s, q, p in MATCHES
        ],
        depth=(list(LEFT_BIDS), list(LEFT_ASKS)),
        rejections={f"{marker}-{run}": reason for marker, reason in REJECTIONS.items()},
        positions_act3=positions_act3,
        positions={**positions_act3, **_held(r, _available_act4(ai, act3), _reserved_act4(ai))},
    )
