"""The JSON documents the ledger answers with (``GET /positions/{account}``, and what
``kessai replay --worker`` compares them with). Pure."""

from __future__ import annotations

from typing import Any

from streams.ledger import domain as core
from streams.money import from_units

__all__ = ["position_document"]


def position_document(
    account: str, state: core.AccountState, tokens: dict[str, int]
) -> dict[str, Any]:
    """The JSON the endpoint answers with for ``account`` in ``state``."""

    def amount(units: int, asset: str) -> str:
        return format(from_units(units, tokens.get(asset, 0)), "f")

    return {
        "account": account,
        "seq": state.seq,
        "hash": state.hash,
        "balances": {
            asset: {"available": amount(b[0], asset), "locked": amount(b[1], asset)}
            for asset, b in sorted(state.balances.items())
        },
        "locks": len(state.locks),
        "queued": len(state.waiting),
    }
