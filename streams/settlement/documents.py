"""The JSON document the settlement answers with (``GET /trades/{trade_id}``). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.ledger.messages import lock_id
from streams.money import from_units
from streams.settlement import saga as core
from streams.settlement.messages import Trade

__all__ = ["trade_document"]


def trade_document(
    trade: Trade,
    stage: str,
    reason: str | None,
    legs: Mapping[str, str],
    tokens: dict[str, int],
) -> dict[str, Any]:
    """The JSON the endpoint answers with."""
    cash = format(from_units(trade.cash_units, tokens.get(trade.currency, 0)), "f")
    locks = {
        "bonds": {
            "lock_id": lock_id(trade.trade_id, "bonds"),
            "account": trade.seller,
            "asset": trade.isin,
            "amount": str(trade.quantity),
            "state": legs["bonds"],
        },
        "cash": {
            "lock_id": lock_id(trade.trade_id, "cash"),
            "account": trade.buyer,
            "asset": trade.currency,
            "amount": cash,
            "state": legs["cash"],
        },
    }
    terms: dict[str, Any] = {
        "isin": trade.isin,
        "buyer": trade.buyer,
        "seller": trade.seller,
        "quantity": trade.quantity,
        "currency": trade.currency,
        "cash_amount": cash,
    }
    if trade.fx_rate:  # converted once, at this rate (streams/settlement/fx.py)
        terms.update(fx_rate=trade.fx_rate, fx_source=trade.fx_source, fx_time=trade.fx_time)
    return {
        "trade_id": trade.trade_id,
        "stage": stage,
        "terminal": stage in core.TERMINAL,
        "reason": reason,
        "trade": terms,
        "locks": locks,
    }
