"""Input records the integration tests send: the bridges' deposits, trade times, and
test bonds for the security master."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from schemas import check_digit


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


def bond_record(run: str) -> dict[str, Any]:
    """An ``instruments`` record of a two-year 0.9 % JGB of its own (ISIN from ``run``):
    coupons 20 March and September, issued 20 Sep 2025, maturing 20 Sep 2027."""
    body = "JP1" + run.upper()[:6] + "1Q"
    return {"isin": body + check_digit(body), "kind": "fixed", "series": f"test bond {run}",
            "coupon_rate": "0.9", "coupon_dates": ["03-20", "09-20"],
            "issue_date": "2025-09-20", "maturity_date": "2027-09-20",
            "face_unit": 50_000, "price_tick": "0.001"}  # fmt: skip
