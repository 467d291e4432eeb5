"""Input records the integration tests send: the bridges' deposits, and trade times."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any


def trade_time(ago_s: float = 0.0) -> str:
    """A ``trade_time`` ``ago_s`` seconds before now (UTC, ``Z``): recent, as the
    engine's window wants (docs/adr/0033); a fixed date would turn stale with time."""
    return datetime.fromtimestamp(time.time() - ago_s, UTC).isoformat().replace("+00:00", "Z")


def cash_deposit(payment_id: str, account: str, amount: str, token: str = "JPYC") -> dict[str, Any]:
    """A ``payments`` deposit of ``amount`` ``token`` to ``account``."""
    return {
        "payment_id": payment_id,
        "account": account,
        "token": token,
        "amount": amount,
        "kind": "deposit",
    }


def bond_deposit(movement_id: str, account: str, isin: str, quantity: int) -> dict[str, Any]:
    """A ``custody`` deposit of ``quantity`` face of ``isin`` to ``account``."""
    return {
        "movement_id": movement_id,
        "account": account,
        "isin": isin,
        "quantity": quantity,
        "kind": "deposit",
    }
