"""The trade intake's per-record handler: what one ``trades`` record becomes. Pure.

:func:`handle_trade` is the ``trade_intake`` agent's whole logic for one record, and
``kessai replay`` runs the very same function: :func:`intake_record` decodes the record
and turns it into the saga's :class:`~streams.settlement.messages.Trade` (cash leg in
units, deadline fixed from the record's time), or says why it is rejected; a trade id
seen before (the ``seen-trades`` table, or the replay's dict) is a ``duplicate``.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass

from schemas import TRADES, SchemaError, TradeExecuted, check_key, decode
from streams.money import TRADE_UNITS_MAX, cash_units
from streams.security import signing
from streams.security.quota import Quota
from streams.settlement.messages import Trade

__all__ = [
    "Checked",
    "Rejected",
    "check_record",
    "duplicate",
    "forward_once",
    "handle_trade",
    "intake_record",
    "to_trade",
]

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
    """The saga's trade for a decoded one that arrived at ``arrived_s``."""
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
        arrived_s + deadline_s,
        trade_time_s=t.trade_time.timestamp(),
        arrived_s=arrived_s,
        signed=signed,
    )


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
) -> Checked | Rejected:
    """Decode, check the key and (with ``signers``) the venue's signature
    (streams/security/signing.py).

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
        record = signing.verify(signers, TRADES, key, value, signing.broker_time(arrived_s))
        if isinstance(record, tuple):
            return record
        signed = signing.evidence(record)
    return Checked(decoded, signed)


def intake_record(
    key: bytes | None,
    value: bytes | None,
    arrived_s: float,
    *,
    tokens: dict[str, int],
    deadline_s: float,
    signers: signing.Registry | None = None,
) -> Trade | Rejected:
    """The trade for one record, or why it is rejected (a repeated id aside: the
    caller checks its ``seen`` state, as :func:`handle_trade` does)."""
    checked = check_record(key, value, signers=signers, arrived_s=arrived_s)
    if not isinstance(checked, Checked):
        return checked
    return to_trade(
        checked.trade, arrived_s, tokens=tokens, deadline_s=deadline_s, signed=checked.signed
    )


def duplicate(trade: Trade) -> Rejected:
    """The rejection of a trade whose id was seen before."""
    return "duplicate", f"trade {trade.trade_id} was seen before"


def handle_trade(
    seen: MutableMapping[str, bool],
    key: bytes | None,
    value: bytes | None,
    arrived_s: float,
    *,
    tokens: dict[str, int],
    deadline_s: float,
    signers: signing.Registry | None = None,
    quota: Quota | None = None,
    partition: int = 0,
) -> Trade | Rejected:
    """The trade to forward to the sagas for one record, or why it is rejected.

    With ``quota``, a checked record past its venue's rate on ``partition`` is
    ``rate_limited`` before its id is looked at: its id stays free for a retry.

    Once a record is checked (:func:`check_record`), its id is used up even when the
    trade is then rejected (``unknown_token``, ``invalid_price``): the same signed
    bytes sent again later, when the token is configured, are a ``duplicate``, not a
    second chance (docs/security.md, H3). A venue corrects a trade under a new id.
    """
    checked = check_record(key, value, signers=signers, arrived_s=arrived_s)
    if not isinstance(checked, Checked):
        return checked
    if quota is not None:
        limited = quota.admit(checked.trade.venue, partition, arrived_s)
        if limited is not None:
            return limited
    trade_id = checked.trade.trade_id
    if seen.get(trade_id):
        return "duplicate", f"trade {trade_id} was seen before"
    seen[trade_id] = True
    return to_trade(
        checked.trade, arrived_s, tokens=tokens, deadline_s=deadline_s, signed=checked.signed
    )


def forward_once(seen: MutableMapping[str, bool], trade: Trade) -> Trade | Rejected:
    """``trade`` if its id was never forwarded (it is remembered in ``seen`` now), else
    its ``duplicate`` rejection."""
    if seen.get(trade.trade_id):
        return duplicate(trade)
    seen[trade.trade_id] = True
    return trade
