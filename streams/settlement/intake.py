"""What one ``trades`` record becomes: its checks, and the saga's trade. Pure.

:func:`check_record` decodes the record, checks its key and (when signatures are
checked) the venue's signature; :func:`to_trade` turns a checked trade into the saga's
:class:`~streams.settlement.messages.Trade` (cash leg in units, deadline fixed from the
record's broker time), or says why it is rejected. The engine
(:mod:`streams.engine.core`) calls both, and looks the trade id up in between: a
repeated id is a ``duplicate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas import TRADES, SchemaError, TradeExecuted, check_key, decode
from streams.money import TRADE_UNITS_MAX, cash_units
from streams.security import signing
from streams.settlement.messages import Trade

__all__ = ["Checked", "Rejected", "check_record", "deadline_at", "to_trade"]

#: Why a record was rejected: (reason code, detail).
Rejected = tuple[str, str]


def to_trade(
    t: TradeExecuted,
    arrived_s: float,
    *,
    tokens: dict[str, int],
    deadline_s: float,
    signed: str = "",
) -> Trade | Rejected:
    """The saga's trade for a decoded one that arrived at ``arrived_s`` (broker time).

    Its deadline is ``deadline_s`` after the venue's signed ``trade_time``, bounded by
    the arrival: a trade stamped ahead of its arrival counts from its arrival (a venue
    cannot buy itself time), one that arrives more than ``deadline_s`` after its
    ``trade_time`` has until its arrival (it settles in its own batch or fails)
    (docs/security.md, M1)."""
    if t.currency not in tokens:
        known = ", ".join(sorted(tokens))
        return "unknown_token", f"currency {t.currency!r} is not configured ({known})"
    # Exact (streams/money.py); the schema's decimals never make it raise.
    units = cash_units(t.quantity, t.price, t.accrued_interest, tokens[t.currency])
    if units <= 0:
        return "invalid_price", f"cash leg of {t.trade_id} truncates to 0 {t.currency}"
    if units > TRADE_UNITS_MAX:
        return (
            "invalid_price",
            f"cash leg of {t.trade_id} is more than {TRADE_UNITS_MAX} units",
        )
    return Trade(
        t.trade_id,
        t.isin,
        t.buyer,
        t.seller,
        t.quantity,
        t.currency,
        units,
        deadline_at(t.trade_time.timestamp(), arrived_s, deadline_s),
        trade_time_s=t.trade_time.timestamp(),
        arrived_s=arrived_s,
        signed=signed,
    )


def deadline_at(trade_time_s: float, arrived_s: float, deadline_s: float) -> float:
    """``trade_time_s`` + ``deadline_s``, with ``trade_time_s`` bounded to
    [``arrived_s`` - ``deadline_s``, ``arrived_s``]: see :func:`to_trade`."""
    return min(max(trade_time_s, arrived_s - deadline_s), arrived_s) + deadline_s


@dataclass(frozen=True)
class Checked:
    """A trade that decoded, is keyed by its id, and (when checked) is signed by a
    signer who may: from here on its id is used up, whatever follows."""

    trade: TradeExecuted
    #: The signed record, as settlements carry it ("" when signatures are off).
    signed: str


def check_record(
    key: bytes | None,
    value: bytes | None,
    *,
    signers: signing.Registry | None = None,
    arrived_s: float = 0.0,
    verified: dict[str, Any] | Rejected | None = None,
) -> Checked | Rejected:
    """Decode, check the key and (with ``signers``) the venue's signature
    (streams/security/signing.py). ``verified``: what :func:`signing.verify` answered
    for these bytes with ``signers``, already (:mod:`streams.engine.signatures`).

    A trade must be keyed by its ``trade_id``: every copy of an id then reaches the
    one partition whose ``seen`` state can tell it is a repeat, whichever worker owns
    it (and ``kessai replay`` decides as the agents did).
    """
    try:
        check_key(key)
        decoded = decode(TRADES, value)
    except SchemaError as err:
        return err.reason, err.detail
    assert isinstance(decoded, TradeExecuted)
    assert value is not None  # decode refuses a tombstone
    signed = ""
    if key != decoded.trade_id.encode():
        return "wrong_key", f"a trade is keyed by its trade_id {decoded.trade_id!r}, not {key!r}"
    if signers is not None:
        record = (
            verified
            if verified is not None
            else signing.verify(signers, TRADES, key, value, signing.broker_time(arrived_s))
        )
        if isinstance(record, tuple):
            return record
        signed = signing.evidence(record)
    return Checked(decoded, signed)
