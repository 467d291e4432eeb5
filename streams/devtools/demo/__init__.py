"""The demo behind ``make run``: a worker, venues' trades and orders settling, and where to look.

It creates the topics, starts a worker in the background with a short settlement
deadline (:data:`DEMO_DEADLINE_S` instead of an hour, so that a failure shows within
the demo), then plays a story through the real pipeline in four acts, with ids and
accounts unique to this run (``alice-<run>``, ``t1-<run>``, ``o1-<run>``, ...):

1. Funding. The bridges deposit JPYC and USDC for alice and bob (``payments``) and
   two JGBs for bob (``custody``); alice withdraws part of her JPYC. Four payments the
   worker must refuse without changing a balance: an overdraft, a replayed payment
   id, a token nobody configured, and bytes that are not even JSON. The demo waits
   until the deposits are on the ledger: the worker is up and the accounts funded.
2. Trading. A simulated venue publishes trades on ``trades`` (key trade_id): two
   between funded accounts (one paid in JPYC, one in USDC), one whose buyer carol
   has no cash yet, one whose seller dave has no bonds yet, and one whose seller
   erin will never get her bonds; then five trades that must be rejected: a bad
   ISIN check digit, buyer == seller, an unknown currency, a repeated trade_id, and
   cut-off JSON. The demo waits until the three unfunded trades are ``pending``.
3. Late deposits. Carol's cash and dave's bonds arrive; their trades settle. Erin's
   trade fails with ``insufficient_securities`` at its deadline.
4. Matching, once act 3 is over. Two simulated venues (:data:`VENUES`: venue-tokyo
   for bob and dave, venue-osaka for alice and carol) publish orders on ``orders``
   (key ISIN) for :data:`BOND_10Y` in JPYC: asks and bids resting at several prices,
   a limit buy that takes two ask levels (the second in part), a market sell, an IOC
   buy that fills in part, a buy that meets its own account's ask (self-match), a
   cancel, and an order of 12,345 face that must be rejected. The worker's matcher
   makes five trades of venue ``kessai`` on ``trades``, which settle DvP like the
   venue's; every step of every order goes to ``order-events``. The book is shared
   by every run on the broker, so the venues first cancel what earlier runs of the
   demo left resting on it (price-time priority would fill those first).

Everything is read back from the worker's committed output (``settlements``,
``rejections``, ``ledger-events``, ``order-events``, ``trades``; read_committed, from
where they ended when the demo started), printing a progress line while it waits.
It prints each trade's statuses, each order's events, the matched trades and their
settlements, BOND_10Y's book as ``kessai book`` shows it (:mod:`streams.matching.depth`),
the rejections, this run's positions replayed from the journal
(:mod:`streams.audit.positions`), a summary (settled / pending / failed / rejected by
reason; orders, cancellations and matched trades) and where the logs, topics and
metrics are. With ``--once`` it stops the worker and exits 0 only if every expected
outcome arrived (each trade's statuses, each order's events, each matched trade and
its settlement, the book left, each rejection's reason, every balance); otherwise it
prints what was missing and exits 1. Without it, the worker keeps running in the
foreground until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord
from pydantic import BaseModel

from schemas import (
    CUSTODY,
    LEDGER_EVENTS,
    ORDER_EVENTS,
    ORDERS,
    PAYMENTS,
    REJECTIONS,
    SETTLEMENTS,
    TRADES,
    MoveBonds,
    MoveCash,
    SubmitOrder,
    TradeExecuted,
    encode,
    key_for,
)
from streams.audit.books import read_books
from streams.audit.positions import (
    JournalError,
    Position,
    decode_records,
    positions_from_events,
)
from streams.audit.positions import render_table as render_positions
from streams.config import Settings
from streams.devtools.processes import WorkerProcess
from streams.kafka.reader import Tail
from streams.matching.book import Book
from streams.matching.depth import LEVELS_DEFAULT, depth_table
from streams.matching.handler import MATCHING_VENUE

#: The worker's settlement deadline during the demo (the default is an hour).
DEMO_DEADLINE_S = 30
#: How long the worker may take to start and apply the opening deposits.
FUNDING_TIMEOUT_S = 150.0
#: How long the unfunded trades may take to go pending.
PENDING_TIMEOUT_S = 90.0
#: How long, past the deadline, the demo waits for the last outcomes.
FINISH_GRACE_S = 90.0
#: How long act 4's orders may take to be matched and their trades to settle.
MATCHING_TIMEOUT_S = 90.0
#: Once every trade and rejection is in, how long without a new balance change
#: before the balances count as final even if they differ from the expected ones.
LEDGER_QUIET_S = 10.0
#: Seconds between two progress lines while waiting.
PROGRESS_EVERY_S = 5.0

#: Two JGBs: #355 of the 10-year series, and one more with a check digit made by
#: ``schemas._isin.check_digit``.
BOND_10Y = "JP1103551Q43"
BOND_20Y = "JP1201791Q29"
#: BOND_10Y with a wrong check digit.
BAD_ISIN = "JP1103551Q44"

#: Act 4's simulated venues: venue-tokyo sends bob's and dave's orders, venue-osaka
#: alice's and carol's.
VENUES = ("venue-tokyo", "venue-osaka")
#: Terminal settlement statuses.
TERMINAL = ("settled", "failed")

#: (status, reason) as published on ``settlements``.
Status = tuple[str, str | None]
#: (topic, key, value) of one record to publish.
Raw = tuple[str, bytes, bytes]
#: (event, reason, filled, remaining, price) of one ``order-events`` record.
OrderStep = tuple[str, str | None, int, int, str | None]
#: One side of a book, best first: (price, face resting, orders) per level.
Depth = list[tuple[Decimal, int, int]]


@dataclass(frozen=True)
class _Step:
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
class _Order:
    """An order of act 4: who sent what, and every event it must get, in order."""

    venue: str
    account: str
    #: "buy 400000 @ 99.60", "sell 250000 market", ...
    what: str
    steps: list[_Step]


@dataclass(frozen=True)
class _Match:
    """A trade the matcher must make; it must settle."""

    buyer: str
    seller: str
    quantity: int
    price: str
    #: Its cash leg as ``settlements`` publishes it: face x price / 100.
    cash: str


@dataclass
class _Story:
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
    order_steps: dict[str, _Order]
    #: The trades the matcher must make, #1 first.
    matches: list[_Match]
    #: BOND_10Y's JPYC book at the end: (bids, asks).
    depth: tuple[Depth, Depth]
    #: marker (the id in the rejected record) -> reason.
    rejections: dict[str, str]
    #: (account, asset) -> (available, locked) when act 3 is over.
    positions_act3: dict[tuple[str, str], tuple[Decimal, Decimal]]
    #: (account, asset) -> (available, locked) at the end.
    positions: dict[tuple[str, str], tuple[Decimal, Decimal]]


def _record(topic: str, model: BaseModel) -> Raw:
    return topic, key_for(topic, model), encode(model)


def _story(run: str) -> _Story:
    """The records to publish, act by act, and what the pipeline must make of them."""
    alice, bob, carol, dave, erin = (
        f"{n}-{run}" for n in ("alice", "bob", "carol", "dave", "erin")
    )
    now = datetime.now(UTC).replace(microsecond=0)

    def pay(n: int, account: str, token: str, amount: str, kind: str = "deposit") -> Raw:
        return _record(
            PAYMENTS,
            MoveCash.model_validate(
                {
                    "payment_id": f"p{n}-{run}",
                    "account": account,
                    "token": token,
                    "amount": amount,
                    "kind": kind,
                }
            ),
        )

    def bonds(n: int, account: str, isin: str, quantity: int) -> Raw:
        return _record(
            CUSTODY,
            MoveBonds(
                movement_id=f"c{n}-{run}",
                account=account,
                isin=isin,
                quantity=quantity,
                kind="deposit",
            ),
        )

    records: dict[str, TradeExecuted] = {}

    def trade(
        n: int,
        buyer: str,
        seller: str,
        isin: str,
        quantity: int,
        price: str,
        currency: str = "JPYC",
        accrued: str = "0",
    ) -> TradeExecuted:
        return TradeExecuted.model_validate(
            {
                "trade_id": f"t{n}-{run}",
                "venue": "kessai-demo-venue",
                "isin": isin,
                "buyer": buyer,
                "seller": seller,
                "quantity": quantity,
                "price": price,
                "currency": currency,
                "accrued_interest": accrued,
                "trade_time": now.isoformat().replace("+00:00", "Z"),
            }
        )

    def keep(t: TradeExecuted) -> Raw:
        records[t.trade_id] = t
        return _record(TRADES, t)

    def bad_trade(n: int, **changes: str) -> Raw:
        # Built as JSON, not as a model: the model would refuse it, the worker must.
        good = trade(n, alice, bob, BOND_10Y, 100_000, "99.5").model_dump(mode="json")
        return TRADES, f"t{n}-{run}".encode(), orjson.dumps({**good, **changes})

    t1 = trade(1, alice, bob, BOND_10Y, 1_000_000, "99.5", accrued="120")
    funding = [
        pay(1, alice, "JPYC", "5000000"),
        pay(2, alice, "USDC", "2500.125"),
        pay(3, bob, "JPYC", "1000000"),
        bonds(4, bob, BOND_10Y, 10_000_000),
        bonds(5, bob, BOND_20Y, 500_000),
        pay(5, alice, "JPYC", "1200000", "withdrawal"),
        pay(6, bob, "JPYC", "9999999", "withdrawal"),  # overdraft
        pay(3, bob, "JPYC", "1000000"),  # the bridge replays p3
        pay(7, bob, "EURC", "10"),  # a token nobody configured
        # What a buggy bridge might send: cut-off JSON. `kessai publish` would refuse
        # it, so it goes through a bare producer, as it would in real life.
        (PAYMENTS, b"mallory", f'{{"payment_id": "p8-{run}", "amount": 12.5'.encode()),
    ]
    trades = [
        # 1,000,000 face x 99.5 / 100 + 120 accrued = 995,120 JPYC
        keep(t1),
        # 300,000 face x 0.6634 / 100 + 0.024371 = 1,990.224371 USDC
        keep(trade(2, alice, bob, BOND_20Y, 300_000, "0.6634", "USDC", "0.024371")),
        # carol has no cash yet: 497,500 JPYC
        keep(trade(3, carol, bob, BOND_10Y, 500_000, "99.5")),
        # dave has no bonds yet: 199,600 JPYC
        keep(trade(4, alice, dave, BOND_20Y, 200_000, "99.8")),
        # erin never gets her bonds
        keep(trade(5, alice, erin, BOND_10Y, 100_000, "99.5")),
        bad_trade(6, isin=BAD_ISIN),
        bad_trade(7, buyer=bob),  # buyer == seller
        bad_trade(8, currency="EURC"),
        _record(TRADES, t1),  # the venue sends t1 again
        (
            TRADES,
            f"t9-{run}".encode(),
            f'{{"trade_id": "t9-{run}", "venue": "kessai-demo-venue", "quantity": 1e5'.encode(),
        ),
    ]
    late = [pay(9, carol, "JPYC", "500000"), bonds(10, dave, BOND_20Y, 200_000)]

    steps: dict[str, _Order] = {}

    def new_order(n: int, venue: str, account: str, side: str, quantity: int) -> dict[str, Any]:
        return {
            "order_id": f"o{n}-{run}",
            "venue": venue,
            "account": account,
            "isin": BOND_10Y,
            "side": side,
            "quantity": quantity,
            "currency": "JPYC",
        }

    def order(
        n: int,
        venue: str,
        account: str,
        side: str,
        quantity: int,
        price: str | None,
        *then: _Step,
        tif: str = "GTC",
    ) -> Raw:
        """A new order; it must be accepted, then get the events *then*."""
        o = SubmitOrder.model_validate(
            {**new_order(n, venue, account, side, quantity), "price": price, "time_in_force": tif}
        )
        what = f"{side} {quantity} " + ("market" if price is None else f"@ {price}")
        steps[o.order_id] = _Order(
            venue,
            account,
            what + (" IOC" if tif == "IOC" else ""),
            [_Step("accepted", quantity, price), *then],
        )
        return _record(ORDERS, o)

    def fill(filled: int, remaining: int, price: str, match: int) -> _Step:
        event = "filled" if remaining == 0 else "partially_filled"
        return _Step(event, remaining, price, filled, match=match)

    def cancelled(remaining: int, price: str, reason: str) -> _Step:
        return _Step("cancelled", remaining, price, reason=reason)

    def cancel(n: int, venue: str, account: str) -> Raw:
        o = SubmitOrder.model_validate(
            {
                "order_id": f"o{n}-{run}",
                "venue": venue,
                "account": account,
                "isin": BOND_10Y,
                "currency": "JPYC",
                "action": "cancel",
            }
        )
        return _record(ORDERS, o)

    def bad_order(n: int, venue: str, account: str, side: str, quantity: int, reason: str) -> Raw:
        # Built as JSON, not as a model: the model would refuse it, the matcher must.
        value = {**new_order(n, venue, account, side, quantity), "price": "99.80"}
        steps[f"o{n}-{run}"] = _Order(
            venue,
            account,
            f"{side} {quantity} @ 99.80",
            [_Step("rejected", 0, None, reason=reason)],
        )
        return ORDERS, BOND_10Y.encode(), orjson.dumps(value)

    tokyo, osaka = VENUES
    # BOND_10Y in JPYC. Every fill is at the resting order's price; #n is the trade.
    # Not formatted: one order per line reads as the story it is.
    orders = [
        # The book: four asks (bob has 8,500,000 face, carol 500,000) and four bids.
        order(1, tokyo, bob, "sell", 200_000, "99.60",
              fill(100_000, 100_000, "99.60", 2), fill(100_000, 0, "99.60", 5)),
        order(2, osaka, carol, "sell", 300_000, "99.55", fill(300_000, 0, "99.55", 1)),
        order(3, tokyo, bob, "sell", 500_000, "99.70"),
        order(4, osaka, carol, "sell", 200_000, "99.80"),
        order(5, osaka, alice, "buy", 200_000, "99.40", fill(200_000, 0, "99.40", 3)),
        # Behind o5 at 99.40: time priority.
        order(6, tokyo, dave, "buy", 100_000, "99.40", fill(50_000, 50_000, "99.40", 4)),
        order(7, osaka, alice, "buy", 300_000, "99.30"),
        order(8, tokyo, bob, "buy", 100_000, "99.20", cancelled(100_000, "99.20", "requested")),
        # A limit buy across two levels: all of o2 at 99.55 (#1), half of o1 at 99.60 (#2).
        order(9, osaka, alice, "buy", 400_000, "99.60",
              fill(300_000, 100_000, "99.55", 1), fill(100_000, 0, "99.60", 2)),
        # A market sell: all of o5 (#3), then half of o6 (#4).
        order(10, tokyo, bob, "sell", 250_000, None,
              fill(200_000, 50_000, "99.40", 3), fill(50_000, 0, "99.40", 4)),
        # IOC: the rest of o1 (#5); the next ask, 99.70, is past its limit: rest dropped.
        order(11, osaka, alice, "buy", 300_000, "99.65",
              fill(100_000, 200_000, "99.60", 5),
              cancelled(200_000, "99.65", "immediate_or_cancel"), tif="IOC"),
        # bob's buy would take his own ask o3 first: cancelled, no trade.
        order(12, tokyo, bob, "buy", 100_000, "99.75", cancelled(100_000, "99.75", "self_match")),
        cancel(8, tokyo, bob),
        # 12,345 face is not a multiple of 50,000.
        bad_order(13, osaka, carol, "sell", 12_345, "invalid_quantity"),
    ]  # fmt: skip
    matches = [
        # 300,000 face x 99.55 / 100 = 298,650 JPYC
        _Match(alice, carol, 300_000, "99.55", "298650 JPYC"),
        _Match(alice, bob, 100_000, "99.60", "99600 JPYC"),
        _Match(alice, bob, 200_000, "99.40", "198800 JPYC"),
        _Match(dave, bob, 50_000, "99.40", "49700 JPYC"),
        _Match(alice, bob, 100_000, "99.60", "99600 JPYC"),
    ]
    left_bids = [(Decimal("99.40"), 50_000, 1), (Decimal("99.30"), 300_000, 1)]
    left_asks = [(Decimal("99.70"), 500_000, 1), (Decimal("99.80"), 200_000, 1)]
    z = Decimal(0)
    positions_act3 = {
        # 5,000,000 - 1,200,000 withdrawn - 995,120 (t1) - 199,600 (t4)
        (alice, "JPYC"): (Decimal(2_605_280), z),
        # 2,500.125 - 1,990.224371 (t2)
        (alice, "USDC"): (Decimal("509.900629"), z),
        (alice, BOND_10Y): (Decimal(1_000_000), z),
        (alice, BOND_20Y): (Decimal(500_000), z),
        # 1,000,000 + 995,120 (t1) + 497,500 (t3)
        (bob, "JPYC"): (Decimal(2_492_620), z),
        (bob, "USDC"): (Decimal("1990.224371"), z),
        (bob, BOND_10Y): (Decimal(8_500_000), z),
        (bob, BOND_20Y): (Decimal(200_000), z),
        (carol, "JPYC"): (Decimal(2_500), z),
        (carol, BOND_10Y): (Decimal(500_000), z),
        (dave, "JPYC"): (Decimal(199_600), z),
        (dave, BOND_20Y): (z, z),
    }
    return _Story(
        run=run,
        accounts=[alice, bob, carol, dave, erin],
        funding=funding,
        funded={
            f"payment:p1-{run}",
            f"payment:p2-{run}",
            f"payment:p3-{run}",
            f"custody:c4-{run}",
            f"custody:c5-{run}",
            f"payment:p5-{run}",
        },
        trades=trades,
        unfunded=[f"t3-{run}", f"t4-{run}", f"t5-{run}"],
        late=late,
        trade_records=records,
        orders=orders,
        order_steps=steps,
        matches=matches,
        depth=(left_bids, left_asks),
        statuses={
            f"t1-{run}": [("settled", None)],
            f"t2-{run}": [("settled", None)],
            f"t3-{run}": [("pending", "insufficient_cash"), ("settled", None)],
            f"t4-{run}": [("pending", "insufficient_securities"), ("settled", None)],
            f"t5-{run}": [
                ("pending", "insufficient_securities"),
                ("failed", "insufficient_securities"),
            ],
        },
        rejections={
            f"p6-{run}": "insufficient_funds",
            f"p3-{run}": "duplicate",
            f"p7-{run}": "unknown_token",
            f"p8-{run}": "malformed",
            f"t6-{run}": "invalid_isin",
            f"t7-{run}": "same_account",
            f"t8-{run}": "unknown_token",
            f"t1-{run}": "duplicate",
            f"t9-{run}": "malformed",
            f"o13-{run}": "invalid_quantity",
        },
        positions_act3=positions_act3,
        positions={
            **positions_act3,
            # 2,605,280 - 298,650 (#1) - 99,600 (#2) - 198,800 (#3) - 99,600 (#5)
            (alice, "JPYC"): (Decimal(1_908_630), z),
            # 1,000,000 + 300,000 (#1) + 100,000 (#2) + 200,000 (#3) + 100,000 (#5)
            (alice, BOND_10Y): (Decimal(1_700_000), z),
            # 2,492,620 + 99,600 (#2) + 198,800 (#3) + 49,700 (#4) + 99,600 (#5)
            (bob, "JPYC"): (Decimal(2_940_320), z),
            # 8,500,000 - 100,000 (#2) - 200,000 (#3) - 50,000 (#4) - 100,000 (#5)
            (bob, BOND_10Y): (Decimal(8_050_000), z),
            # 2,500 + 298,650 (#1)
            (carol, "JPYC"): (Decimal(301_150), z),
            (carol, BOND_10Y): (Decimal(200_000), z),
            # 199,600 - 49,700 (#4)
            (dave, "JPYC"): (Decimal(149_900), z),
            (dave, BOND_10Y): (Decimal(50_000), z),
        },
    )


@dataclass
class _Seen:
    """This run's committed output, as it arrives."""

    run: str
    #: trade id -> its statuses: the venue's trades, and the matcher's between
    #: this run's accounts.
    statuses: dict[str, list[Status]] = field(default_factory=dict)
    #: trade id -> its cash leg as settlements published it ("995120 JPYC").
    cash: dict[str, str] = field(default_factory=dict)
    rejections: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: order id -> its order-events, in order (an ISIN's are on one partition).
    orders: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: trade id -> a trade the matcher made between this run's accounts.
    matched: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: BOND_10Y's books as committed at the end, by currency; None if not read.
    books: dict[str, Book] | None = None
    books_error: str = "not read"
    #: This run's ledger-events, in offset order per partition (per account).
    journal: list[ConsumerRecord] = field(default_factory=list)
    causes: set[str] = field(default_factory=set)
    last_ledger_at: float = field(default_factory=time.monotonic)
    _marker: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        # The first id of ours in a rejected record's text: its payment, custody,
        # trade or order id (accounts are "name-<run>", never a letter, digits and
        # "-<run>").
        self._marker = re.compile(rf'"([pcto][0-9]+-{re.escape(self.run)})"')

    def add(self, record: ConsumerRecord) -> None:
        if record.value is None:
            return
        suffix = f"-{self.run}"
        if record.topic == LEDGER_EVENTS:
            key = (record.key or b"").decode("utf-8", "replace")
            if key.endswith(suffix):
                self.journal.append(record)
                self.causes.add(orjson.loads(record.value)["cause"])
                self.last_ledger_at = time.monotonic()
        elif record.topic == SETTLEMENTS:
            value = orjson.loads(record.value)
            # A matcher's trade id is a hash: it is ours when both accounts are.
            if value["trade_id"].endswith(suffix) or (
                value["buyer"].endswith(suffix) and value["seller"].endswith(suffix)
            ):
                self.statuses.setdefault(value["trade_id"], []).append(
                    (value["status"], value["reason"])
                )
                self.cash[value["trade_id"]] = f"{value['cash_amount']} {value['currency']}"
        elif record.topic == REJECTIONS:
            value = orjson.loads(record.value)
            # The rejected record may not even parse: find our id in its text.
            found = self._marker.search(value.get("value", ""))
            if found is not None:
                self.rejections[found[1]] = value
        elif record.topic == ORDER_EVENTS:
            value = orjson.loads(record.value)
            if value["order_id"].endswith(suffix):
                self.orders.setdefault(value["order_id"], []).append(value)
        elif record.topic == TRADES:
            try:
                value = orjson.loads(record.value)
            except orjson.JSONDecodeError:
                return  # bad input of a venue, such as act 2's t9
            if (
                isinstance(value, dict)
                and not str(value.get("trade_id")).endswith(suffix)  # not the venue's
                and str(value.get("buyer")).endswith(suffix)
                and str(value.get("seller")).endswith(suffix)
            ):
                self.matched[value["trade_id"]] = value

    def fill_ids(self) -> list[str]:
        """The trade ids on this run's fill events, in the order they came."""
        ids = (e["trade_id"] for events in self.orders.values() for e in events)
        return list(dict.fromkeys(t for t in ids if t is not None))

    def settled_or_failed(self, trade_id: str) -> bool:
        statuses = self.statuses.get(trade_id, [])
        return bool(statuses) and statuses[-1][0] in TERMINAL

    def positions(self) -> dict[tuple[str, str], Position]:
        return positions_from_events(decode_records(self.journal))


class _Tail:
    """Reads settlements, rejections, ledger-events, order-events and trades
    (read_committed) from where they ended when the demo started, so that earlier
    runs are never read."""

    def __init__(self, settings: Settings, seen: _Seen, worker: WorkerProcess) -> None:
        self.seen = seen
        self.worker = worker
        # From the last stable offset: everything this run's worker commits comes after.
        self.tail = Tail(
            settings, (SETTLEMENTS, REJECTIONS, LEDGER_EVENTS, ORDER_EVENTS, TRADES), from_end=True
        )

    async def start(self) -> None:
        await self.tail.start()

    async def stop(self) -> None:
        await self.tail.stop()

    async def until(
        self, done: Callable[[], bool], timeout_s: float, progress: Callable[[], str]
    ) -> bool:
        """Read until ``done()``; False if ``timeout_s`` passed or the worker exited."""
        started = time.monotonic()
        next_line = started + PROGRESS_EVERY_S
        while not done():
            now = time.monotonic()
            if not self.worker.alive:
                return False
            if now - started > timeout_s:
                print(f"   gave up waiting after {timeout_s:.0f} s: {progress()}", flush=True)
                return False
            if now >= next_line:
                print(f"   {progress()} ({now - started:.0f} s)", flush=True)
                next_line = now + PROGRESS_EVERY_S
            for record in await self.tail.batch():
                self.seen.add(record)
        return True


async def _publish(producer: AIOKafkaProducer, records: list[Raw]) -> None:
    for topic, key, value in records:
        # One at a time, in order: a replayed id must arrive after the original.
        await producer.send_and_wait(topic, value, key=key)


async def _play(story: _Story, settings: Settings, worker: WorkerProcess) -> _Seen:
    seen = _Seen(story.run)
    tail = _Tail(settings, seen, worker)
    await tail.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        print(
            f"1. funding: {len(story.funding)} records on payments and custody "
            "(deposits, a withdrawal, 4 bad payments) ...",
            flush=True,
        )
        await _publish(producer, story.funding)
        funded = await tail.until(
            lambda: story.funded <= seen.causes,
            FUNDING_TIMEOUT_S,
            lambda: (
                f"waiting for the worker: {len(story.funded & seen.causes)} of "
                f"{len(story.funded)} deposits and withdrawals on the ledger ..."
            ),
        )
        if not funded:
            return seen  # no worker, or it died: the report says what is missing

        good = len(story.trade_records)
        print(
            f"2. the venue publishes {len(story.trades)} trades on trades "
            f"({good} to settle, {len(story.trades) - good} to be rejected) ...",
            flush=True,
        )
        await _publish(producer, story.trades)

        def pending() -> list[str]:
            return [t for t in story.unfunded if t in seen.statuses]

        await tail.until(
            lambda: len(pending()) == len(story.unfunded),
            PENDING_TIMEOUT_S,
            lambda: (
                f"waiting for {len(story.unfunded) - len(pending())} of "
                f"{len(story.unfunded)} unfunded trades to go pending ..."
            ),
        )
        run = story.run
        print(
            f"3. late deposits: carol's JPYC (t3-{run}), dave's bonds (t4-{run}); "
            f"erin's bonds never come: t5-{run} fails at its deadline ...",
            flush=True,
        )
        await _publish(producer, story.late)

        def trades_left() -> int:
            return sum(
                1
                for t in story.statuses
                if not seen.statuses.get(t) or seen.statuses[t][-1][0] == "pending"
            )

        # The bad order's rejection comes in act 4.
        rejections = story.rejections.keys() - story.order_steps.keys()

        def rejections_in() -> int:
            return len(rejections & seen.rejections.keys())

        def finished() -> bool:
            if trades_left() or not rejections <= seen.rejections.keys():
                return False
            return _ledger_done(seen, story.positions_act3)

        finished_act3 = await tail.until(
            finished,
            DEMO_DEADLINE_S + FINISH_GRACE_S,
            lambda: (
                f"waiting for {trades_left()} of {len(story.statuses)} trades to "
                f"settle or fail ({rejections_in()} of {len(rejections)} rejections "
                f"in; t5 fails {DEMO_DEADLINE_S} s after it arrived) ..."
            ),
        )
        if not finished_act3:
            # Its trades would settle among act 3's: the balances would tell nothing.
            print("4. matching: not played, act 3 did not finish", flush=True)
            return seen
        await _match(story, settings, producer, tail)
        return seen
    finally:
        await producer.stop()
        await tail.stop()


async def _match(
    story: _Story, settings: Settings, producer: AIOKafkaProducer, tail: _Tail
) -> None:
    """Act 4: the venues' orders, matched into trades that settle."""
    seen = tail.seen
    print(
        f"4. matching: {' and '.join(VENUES)} publish {len(story.orders)} records on orders "
        f"for {BOND_10Y} in JPYC (asks and bids, a limit buy across two levels, a market "
        "sell, an IOC, a self-match, a cancel, a bad order) ...",
        flush=True,
    )
    cancels = await _clear_book(settings)
    # Cancels first: the orders of a bond are matched in the order they arrive.
    await _publish(producer, cancels + story.orders)
    # The quiet time of the balances counts from now, not from act 3's last change.
    seen.last_ledger_at = time.monotonic()

    def orders_left() -> int:
        return sum(
            1
            for order_id, order in story.order_steps.items()
            if len(seen.orders.get(order_id, [])) < len(order.steps)
        )

    def trades_left() -> int:
        made = seen.fill_ids()
        unsettled = sum(1 for t in made if t not in seen.matched or not seen.settled_or_failed(t))
        return max(len(story.matches) - len(made), 0) + unsettled

    def finished() -> bool:
        if orders_left() or trades_left():
            return False
        if not story.rejections.keys() <= seen.rejections.keys():
            return False
        return _ledger_done(seen, story.positions)

    await tail.until(
        finished,
        MATCHING_TIMEOUT_S,
        lambda: (
            f"waiting for the events of {orders_left()} of {len(story.order_steps)} orders "
            f"and {trades_left()} of {len(story.matches)} matched trades to settle ..."
        ),
    )
    try:
        seen.books = await read_books(settings, BOND_10Y)
    except TimeoutError as err:
        seen.books_error = str(err)


async def _clear_book(settings: Settings) -> list[Raw]:
    """Cancels of the orders earlier runs of the demo left resting on BOND_10Y's JPYC
    book: the book lives as long as the broker, and price-time priority would fill
    those before this run's."""
    try:
        books = await read_books(settings, BOND_10Y)
    except TimeoutError as err:
        print(f"   could not read the book of {BOND_10Y}, left as it is: {err}", flush=True)
        return []
    book = books.get("JPYC")
    resting = list(book.orders()) if book is not None else []
    cancels = [
        _record(
            ORDERS,
            SubmitOrder.model_validate(
                {
                    "order_id": o.order_id,
                    "venue": o.venue,
                    "account": o.account,
                    "isin": BOND_10Y,
                    "currency": "JPYC",
                    "action": "cancel",
                }
            ),
        )
        for o in resting
        if o.venue in VENUES
    ]
    if cancels:
        print(
            f"   first they cancel {len(cancels)} order(s) that earlier demo runs left "
            f"resting on that book",
            flush=True,
        )
    if len(cancels) < len(resting):
        print(
            f"   note: {len(resting) - len(cancels)} order(s) of other venues rest on that "
            "book; this run's orders may trade with them, and then the demo fails",
            flush=True,
        )
    return cancels


def _ledger_done(seen: _Seen, want: dict[tuple[str, str], tuple[Decimal, Decimal]]) -> bool:
    """The balances are *want*, or have not changed for LEDGER_QUIET_S."""
    if time.monotonic() - seen.last_ledger_at > LEDGER_QUIET_S:
        return True  # the balances will not change any more
    try:
        return _balances(seen.positions()) == want
    except JournalError:
        return False


def _balances(
    positions: dict[tuple[str, str], Position],
) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    return {k: (p.available, p.locked) for k, p in positions.items()}


def _show(statuses: list[Status]) -> str:
    return " -> ".join(s if r is None else f"{s} ({r})" for s, r in statuses) or "(none)"


def _report(story: _Story, seen: _Seen) -> list[str]:
    problems: list[str] = []
    print("\nTrades (committed settlements):")
    print(
        f"  {'trade':<10} {'buyer':<13} {'seller':<12} {'face':>9}  {'isin':<12} "
        f"{'cash':>17}  statuses"
    )
    for trade_id, want in story.statuses.items():
        t = story.trade_records[trade_id]
        got = seen.statuses.get(trade_id, [])
        print(
            f"  {trade_id:<10} {t.buyer:<13} {t.seller:<12} {t.quantity:>9}  {t.isin:<12} "
            f"{seen.cash.get(trade_id, '-'):>17}  {_show(got)}"
        )
        if got != want:
            problems.append(f"trade {trade_id}: statuses {_show(got)}, want {_show(want)}")

    bound = _report_orders(story, seen, problems)
    _report_matches(story, seen, bound, problems)
    _report_book(story, seen, problems)

    print("\nRejections (nothing changed):")
    for marker, reason in story.rejections.items():
        rejected = seen.rejections.get(marker)
        if rejected is None:
            problems.append(f"no rejection for {marker} (want {reason})")
            continue
        print(
            f"  {marker:<10} {rejected['source_topic']:<9} {rejected['reason']:<19} "
            f"{rejected['detail']}"
        )
        if rejected["reason"] != reason:
            problems.append(f"{marker}: rejected as {rejected['reason']}, want {reason}")

    print("\nPositions (this run's accounts, replayed from committed ledger-events):")
    try:
        positions = seen.positions()
    except JournalError as err:
        problems.append(str(err))
        positions = {}
    print("  " + render_positions(positions.values()).rstrip("\n").replace("\n", "\n  "))
    got_balances = _balances(positions)
    for key in sorted(story.positions.keys() | got_balances.keys()):
        if got_balances.get(key) != story.positions.get(key):
            problems.append(
                f"position {key[0]} {key[1]}: {_pair(got_balances.get(key))} "
                f"(available, locked), want {_pair(story.positions.get(key))}"
            )

    last = [s[-1] for s in (seen.statuses.get(t, []) for t in story.statuses) if s]
    counts = Counter(status for status, _ in last)
    failed = Counter(reason or "?" for status, reason in last if status == "failed")
    rejected = Counter(r["reason"] for r in seen.rejections.values())
    trades_rejected = sum(1 for r in seen.rejections.values() if r["source_topic"] == TRADES)
    after_pending = sum(
        1
        for t in story.statuses
        if [s for s, _ in seen.statuses.get(t, [])][-2:] == ["pending", "settled"]
    )
    print(f"\nSummary (run {story.run}, settlement deadline {DEMO_DEADLINE_S} s):")
    print(
        f"  trades     {len(story.trades)} published by the venue: {len(last)} accepted, "
        f"{trades_rejected} rejected"
    )
    print(f"  settled    {counts['settled']} ({after_pending} of them pending first)")
    print(f"  pending    {counts['pending']}")
    print(f"  failed     {counts['failed']}{_by_reason(failed)}")
    print(f"  rejected   {sum(rejected.values())} records{_by_reason(rejected)}")
    events = [e for order_id in story.order_steps for e in seen.orders.get(order_id, [])]
    cancels = len(story.orders) - len(story.order_steps)  # the rest are orders
    cancelled = Counter(e["reason"] for e in events if e["event"] == "cancelled")
    made = seen.fill_ids()
    made_last = Counter(seen.statuses[t][-1][0] for t in made if seen.statuses.get(t))
    print(
        f"  orders     {len(story.orders)} published by {len(VENUES)} venues "
        f"({len(story.orders) - cancels} orders, {cancels} cancel): "
        f"{sum(1 for e in events if e['event'] == 'accepted')} accepted, "
        f"{sum(1 for e in events if e['event'] == 'rejected')} rejected"
    )
    print(f"  cancelled  {cancelled.total()} orders{_by_reason(cancelled)}")
    print(
        f"  matched    {len(made)} trades by the matcher: {made_last['settled']} settled, "
        f"{made_last['pending']} pending, {made_last['failed']} failed"
    )
    return problems


def _step_of(event: Mapping[str, Any]) -> OrderStep:
    return (
        event["event"],
        event["reason"],
        event["filled_quantity"],
        event["remaining_quantity"],
        event["price"],
    )


def _show_step(step: OrderStep, match: str | None) -> str:
    """``filled 100000 @ 99.60 #2``, ``cancelled (self_match, 100000 left)``, ..."""
    event, reason, filled, remaining, price = step
    if event in ("filled", "partially_filled"):
        return f"{event} {filled} @ {price} {match or '#?'}"
    if event == "cancelled":
        return f"{event} ({reason}, {remaining} left)"
    return event if reason is None else f"{event} ({reason})"


def _show_steps(steps: list[OrderStep], matches: list[str | None]) -> str:
    return " -> ".join(_show_step(s, m) for s, m in zip(steps, matches, strict=True)) or "(none)"


def _bind(story: _Story, seen: _Seen) -> tuple[dict[int, str], list[str]]:
    """The trade id each of the story's matches got, read off the fill events of
    the orders whose events came as expected (a fill's two orders must agree);
    and the disagreements."""
    found: dict[int, set[str]] = defaultdict(set)
    for order_id, order in story.order_steps.items():
        got = seen.orders.get(order_id, [])
        if [_step_of(e) for e in got] != [s.key() for s in order.steps]:
            continue
        for step, event in zip(order.steps, got, strict=True):
            if step.match is not None:
                found[step.match].add(event["trade_id"])
    bound = {n: next(iter(ids)) for n, ids in found.items() if len(ids) == 1}
    problems = [
        f"matched trade #{n}: its two orders' fill events name {' and '.join(sorted(ids))}"
        for n, ids in sorted(found.items())
        if len(ids) > 1
    ]
    return bound, problems


def _report_orders(story: _Story, seen: _Seen, problems: list[str]) -> dict[int, str]:
    """Print each order's events; return the trade id of each expected match."""
    bound, disagreements = _bind(story, seen)
    problems.extend(disagreements)
    number = {trade_id: f"#{n}" for n, trade_id in bound.items()}
    print(f"\nOrders (committed order-events of {BOND_10Y}; #n: the matched trade below):")
    print(f"  {'order':<11} {'venue':<12} {'account':<13} {'submitted':<23} events")
    for order_id, order in story.order_steps.items():
        events = seen.orders.get(order_id, [])
        got = [_step_of(e) for e in events]
        shown = _show_steps(got, [number.get(e["trade_id"]) for e in events])
        print(f"  {order_id:<11} {order.venue:<12} {order.account:<13} {order.what:<23} {shown}")
        want = [s.key() for s in order.steps]
        if got != want:
            labels = [None if s.match is None else f"#{s.match}" for s in order.steps]
            problems.append(f"order {order_id}: {shown}, want {_show_steps(want, labels)}")
    return bound


def _report_matches(story: _Story, seen: _Seen, bound: dict[int, str], problems: list[str]) -> None:
    print(f"\nMatched trades (committed trades of venue {MATCHING_VENUE}, and their settlements):")
    print(
        f"  {'#':<2} {'trade':<34} {'buyer':<13} {'seller':<13} {'face':>7} {'price':>6} "
        f"{'cash':>12}  statuses"
    )
    for n, want in enumerate(story.matches, 1):
        trade_id = bound.get(n)
        name = f"#{n} ({want.buyer} buys {want.quantity} at {want.price} from {want.seller})"
        if trade_id is None:
            print(f"  {n:<2} {'(no fill event names it)':<34}")
            problems.append(f"matched trade {name}: no order event names it")
            continue
        got = seen.statuses.get(trade_id, [])
        trade = seen.matched.get(trade_id)
        if trade is None:
            problems.append(f"matched trade {name} {trade_id}: not on trades")
            trade = {"buyer": "-", "seller": "-", "quantity": "-", "price": "-"}
        print(
            f"  {n:<2} {trade_id:<34} {trade['buyer']:<13} {trade['seller']:<13} "
            f"{trade['quantity']:>7} {trade['price']:>6} {seen.cash.get(trade_id, '-'):>12}  "
            f"{_show(got)}"
        )
        if trade_id in seen.matched:
            made = tuple(trade[k] for k in ("venue", "buyer", "seller", "quantity", "price"))
            if made != (MATCHING_VENUE, want.buyer, want.seller, want.quantity, want.price):
                problems.append(
                    f"matched trade {name} {trade_id}: on trades, venue {trade['venue']}: "
                    f"{trade['buyer']} buys {trade['quantity']} at {trade['price']} "
                    f"from {trade['seller']}"
                )
        if got != [("settled", None)] or seen.cash.get(trade_id) != want.cash:
            problems.append(
                f"matched trade {name} {trade_id}: {_show(got)} "
                f"({seen.cash.get(trade_id, 'no cash leg')}), want settled ({want.cash})"
            )
    expected = set(bound.values())
    for trade_id in dict.fromkeys([*seen.fill_ids(), *seen.matched]):
        if trade_id not in expected:
            problems.append(f"unexpected matched trade {trade_id}: {seen.matched.get(trade_id)}")


def _report_book(story: _Story, seen: _Seen, problems: list[str]) -> None:
    print(f"\nBook (kessai book {BOND_10Y}: the matcher's committed orders table):")
    if seen.books is None:
        problems.append(f"book of {BOND_10Y}: {seen.books_error}")
        return
    table = depth_table(BOND_10Y, seen.books, LEVELS_DEFAULT)
    print("  " + table.rstrip("\n").replace("\n", "\n  "))
    book = seen.books.get("JPYC")
    got = book.depth(LEVELS_DEFAULT) if book is not None else ([], [])
    if got != story.depth:
        problems.append(
            f"book of {BOND_10Y} in JPYC: {_show_depth(got)}, want {_show_depth(story.depth)}"
        )


def _show_depth(depth: tuple[Depth, ...]) -> str:
    """``bids 50000 @ 99.40 (1 order), ...; asks none``"""
    bids, asks = (
        ", ".join(f"{face} @ {price} ({n} order{'s' * (n != 1)})" for price, face, n in side)
        or "none"
        for side in depth
    )
    return f"bids {bids}; asks {asks}"


def _by_reason(counts: Mapping[str, int]) -> str:
    """`` (a 2, b 1)``, or nothing."""
    if not counts:
        return ""
    return " (" + ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) + ")"


def _pair(balance: tuple[Decimal, Decimal] | None) -> str:
    return "nothing" if balance is None else f"{balance[0]}, {balance[1]}"


def main(settings: Settings, *, once: bool = False) -> int:
    from streams.devtools import localkafka
    from streams.kafka.admin import ensure_public_topics

    localkafka.up(settings)
    created = asyncio.run(ensure_public_topics(settings))
    if created:
        print(f"created topics: {', '.join(created)}")
    log_dir = settings.state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    worker_log = log_dir / "worker.log"
    run = uuid.uuid4().hex[:6]
    story = _story(run)
    print(
        f"starting a worker with KESSAI_SETTLEMENT_DEADLINE_S={DEMO_DEADLINE_S} (the default "
        f"is {Settings().settlement_deadline_s:.0f} s), so that a trade fails within the "
        f"demo; log: {worker_log}"
    )
    print(f"run {run}: accounts {', '.join(story.accounts)}")
    print(
        f"dashboard: http://127.0.0.1:{settings.web_port}/  "
        f"(metrics: http://127.0.0.1:{settings.web_port}/metrics)",
        flush=True,
    )
    worker = WorkerProcess(
        worker_log,
        env={"KESSAI_SETTLEMENT_DEADLINE_S": str(DEMO_DEADLINE_S)},
        port=settings.web_port,
    )
    try:
        seen = asyncio.run(_play(story, settings, worker))
        if not worker.alive:
            print(f"the worker exited with {worker.proc.returncode}: see {worker_log}")
            return 1
        problems = _report(story, seen)
        _where_to_look(settings, worker_log)
        if problems:
            print("\nDEMO FAILED, missing or wrong:\n  " + "\n  ".join(problems))
            return 1
        print(
            "\ndemo OK: every trade settled or failed as expected, every order was matched "
            "as expected and its trades settled, every bad record was refused with its "
            "reason, and every balance is as expected."
        )
        if once:
            return 0
        print(
            f"the worker keeps running (settlement deadline {DEMO_DEADLINE_S} s); Ctrl-C stops it."
        )
        return worker.proc.wait() or 0
    except KeyboardInterrupt:
        return 0
    finally:
        worker.stop()


def _where_to_look(settings: Settings, worker_log: Path) -> None:
    print("\nWhere to look:")
    print(f"  worker log        {worker_log}")
    print(f"  broker            {settings.bootstrap}  (kessai kafka status)")
    web = f"http://127.0.0.1:{settings.web_port}"
    print(f"  dashboard         {web}/  (refreshes itself)")
    print(f"  metrics           {web}/metrics  (Prometheus: deploy/prometheus/local.yml)")
    print(f"  health, queries   {web}/health, {web}/positions/ACCOUNT, {web}/trades/TRADE_ID")
    print(
        "  journal           kessai topics list; settlements, ledger-events, order-events, "
        "rejections (read_committed)"
    )
    print(f"  order book        kessai book {BOND_10Y}  (any ISIN; --format json)")
    print("  publish your own  kessai publish payments examples/payments.jsonl")
