"""Chained ``ledger-events`` records for tests, from plain balance changes."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from schemas import BalanceChanged
from streams.ledger.journal import GENESIS_HASH, rechain

#: A placeholder until :func:`chained` computes the real hashes.
UNCHAINED = GENESIS_HASH


def change(
    account: str,
    seq: int,
    asset: str,
    delta_available: str,
    delta_locked: str,
    available: str,
    locked: str,
) -> BalanceChanged:
    """One balance change with placeholder hashes; pass a journal through :func:`chained`."""
    return BalanceChanged(
        account=account,
        asset=asset,
        delta_available=Decimal(delta_available),
        delta_locked=Decimal(delta_locked),
        available=Decimal(available),
        locked=Decimal(locked),
        cause=f"cause-{account}-{seq}",
        seq=seq,
        prev_hash=UNCHAINED,
        hash=UNCHAINED,
    )


def chained(events: Iterable[BalanceChanged]) -> list[BalanceChanged]:
    """``events`` with each account's hash chain filled in, in the order given."""
    wire = [e.model_dump(mode="json") for e in events]
    return [BalanceChanged.model_validate(r) for r in rechain(wire)]
