"""Input records the integration tests send: the bridges' deposits."""

from __future__ import annotations

from typing import Any


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
