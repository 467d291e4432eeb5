"""What the demo read back: this run's share of the worker's committed output
(settlements, rejections, ledger-events, order-events), kept
as it arrives, for :mod:`.play` to wait on and :mod:`.report` to show."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from schemas import LEDGER_EVENTS, ORDER_EVENTS, REJECTIONS, SETTLEMENTS
from streams.audit.positions import Position, decode_records, positions_from_events
from streams.devtools.demo.story import Balances, Status
from streams.matching.book import Book

#: Terminal settlement statuses.
TERMINAL = ("settled", "failed", "cancelled")


#: What the report shows of a converted trade's settlement.
_FX_FIELDS = ("principal", "accrued", "fx_rate", "fx_source", "fx_time", "cash_amount")


@dataclass
class Seen:
    """This run's committed output, as it arrives."""

    run: str
    #: trade id -> its statuses: the venue's trades, and the matcher's between
    #: this run's accounts.
    statuses: dict[str, list[Status]] = field(default_factory=dict)
    #: trade id -> its cash leg as settlements published it ("995120 JPYC").
    cash: dict[str, str] = field(default_factory=dict)
    #: trade id -> its accrued interest and the days it counts ("2712 (76 d)").
    accrued: dict[str, str] = field(default_factory=dict)
    #: trade id -> how a trade paid in USDC converted: its yen principal and accrued,
    #: fx_rate, fx_source, fx_time and cash, as its settlement says (docs/fx.md).
    fx: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejections: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: order id -> its order-events, in order (an ISIN's are on one partition).
    orders: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: trade id -> a trade the matcher made between this run's accounts, as its
    #: settlements say it (buyer, seller, quantity, price).
    matched: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: BOND_10Y's books as committed at the end, by currency; None if not read.
    books: dict[str, Book] | None = None
    books_error: str = "not read"
    #: This run's ledger-events, in offset order per partition (per account).
    journal: list[ConsumerRecord] = field(default_factory=list)
    causes: set[str] = field(default_factory=set)
    last_ledger_at: float = field(default_factory=time.monotonic)
    _marker: re.Pattern[str] = field(init=False)
    #: SHA-256 of each value the story sent -> the id of ours in it: a rejection points
    #: at its record by digest, also when the record is too broken to name itself.
    _sent: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # An id of ours: a payment, custody, trade or order id (accounts are
        # "name-<run>", never a letter, digits and "-<run>").
        self._marker = re.compile(rf"([pcto][0-9]+-{re.escape(self.run)})")

    def sent(self, value: bytes) -> None:
        """Remember a value the story publishes, to know its rejection by digest."""
        found = self._marker.search(value.decode("utf-8", "replace"))
        if found is not None:
            self._sent[hashlib.sha256(value).hexdigest()] = found[1]

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
                if not value["trade_id"].endswith(suffix):  # the engine's matcher made it
                    self.matched[value["trade_id"]] = {
                        k: value.get(k) for k in ("buyer", "seller", "quantity", "price")
                    }
                if value.get("fx_rate") is not None:
                    self.fx[value["trade_id"]] = {k: value.get(k) for k in _FX_FIELDS}
                if value.get("accrued") is not None:
                    days = value.get("days_accrued")
                    shown = value["accrued"] if days is None else f"{value['accrued']} ({days} d)"
                    self.accrued[value["trade_id"]] = shown
        elif record.topic == REJECTIONS:
            value = orjson.loads(record.value)
            # The record the story sent with that digest; else its own id or key.
            ours = self._sent.get(value.get("value_sha256") or "")
            for text in (value.get("ref"), value.get("key")):
                found = self._marker.fullmatch(text or "")
                if ours is None and found is not None:
                    ours = found[1]
            if ours is not None:
                self.rejections[ours] = value
        elif record.topic == ORDER_EVENTS:
            value = orjson.loads(record.value)
            if value["order_id"].endswith(suffix):
                self.orders.setdefault(value["order_id"], []).append(value)

    def fill_ids(self) -> list[str]:
        """The trade ids on this run's fill events, in the order they came."""
        ids = (e["trade_id"] for events in self.orders.values() for e in events)
        return list(dict.fromkeys(t for t in ids if t is not None))

    def settled_or_failed(self, trade_id: str) -> bool:
        statuses = self.statuses.get(trade_id, [])
        return bool(statuses) and statuses[-1][0] in TERMINAL

    def positions(self) -> dict[tuple[str, str], Position]:
        return positions_from_events(decode_records(self.journal))


def balances(positions: dict[tuple[str, str], Position]) -> Balances:
    return {k: (p.available, p.locked) for k, p in positions.items()}
