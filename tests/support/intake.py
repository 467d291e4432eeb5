"""A ``trades`` record checked and turned into the saga's trade, as the engine does
before it looks the trade id up: for tests of the checks alone."""

from __future__ import annotations

from streams.security import signing
from streams.settlement.intake import Checked, Rejected, check_record, to_trade
from streams.settlement.messages import Trade


def trade_intake(
    key: bytes | None,
    value: bytes | None,
    arrived_s: float,
    *,
    tokens: dict[str, int],
    deadline_s: float,
    signers: signing.Registry | None = None,
) -> Trade | Rejected:
    """:func:`check_record`, then :func:`to_trade`: the trade, or why it is rejected."""
    checked = check_record(key, value, signers=signers, arrived_s=arrived_s)
    if not isinstance(checked, Checked):
        return checked
    return to_trade(
        checked.trade, arrived_s, tokens=tokens, deadline_s=deadline_s, signed=checked.signed
    )
