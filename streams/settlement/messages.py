"""What travels to the settlement sagas on ``kessai-settlement-inbox``. Pure.

The sagas read one topic (key: trade id), and every record on it is an
:data:`InboxMessage`: a new :class:`Trade` from the trade intake, a
:class:`~streams.ledger.messages.Reply` from the ledger, or a clock :class:`Tick`.
Class and field names are the wire format (:mod:`streams.wire`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from streams.ledger.messages import Reply

__all__ = ["INBOX_TYPES", "InboxMessage", "Tick", "Trade"]


@dataclass(frozen=True, slots=True)
class Trade:
    """A trade to settle, as the intake accepted it: the cash leg in units."""

    trade_id: str
    isin: str
    buyer: str
    seller: str
    quantity: int
    currency: str
    cash_units: int
    deadline_at_s: float
    #: The venue's trade_time and the record's arrival on ``trades``, epoch seconds,
    #: for the latency metrics (0: unknown, as in records written before they existed).
    trade_time_s: float = 0.0
    arrived_s: float = 0.0
    #: The venue's signed trade record (:func:`streams.security.signing.evidence`), kept
    #: for the ``settlements`` records; "" when signatures are not checked.
    signed: str = ""


@dataclass(frozen=True, slots=True)
class Tick:
    """The time, for deadlines: a record in the exactly-once flow, never a bare timer
    (docs/adr/0005-deadlines-as-tick-records.md)."""

    now_s: float


InboxMessage = Trade | Reply | Tick
#: Their classes by wire name (:func:`streams.wire.from_wire`).
INBOX_TYPES: Final = {cls.__name__: cls for cls in (Trade, Reply, Tick)}
