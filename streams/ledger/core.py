"""Ledger core: balances in each asset's smallest unit, changed only by records.

Pure Python: imports nothing from faust, aiokafka or prometheus. An agent hands it a
decoded command and the account's current state; it returns the new state and the
``ledger-events`` to emit, or a :class:`LedgerRejection` with a reason code.

Amounts are integers in the asset's smallest unit (JPYC: 1 yen; USDC: 10**-6; bonds:
1 yen of face value), never floats. Remembering which command ids were applied is
the agent's job (a table keyed by id: O(1) changelog traffic per command); the core
is told ``duplicate=True`` and then changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

RejectReason = Literal["duplicate", "unknown_token", "invalid_amount", "insufficient_funds"]


class LedgerError(Exception):
    """Base of the ledger's errors."""


@dataclass(frozen=True, slots=True)
class LedgerRejection:
    reason: RejectReason
    detail: str


@dataclass(frozen=True, slots=True)
class Posting:
    """One balance change, as it goes on ``ledger-events`` (in smallest units)."""

    account: str
    asset: str
    delta_available: int
    delta_locked: int
    available: int
    locked: int
    cause: str
    seq: int


@dataclass(slots=True)
class AccountState:
    """Everything the ledger knows about one account. Stored whole per key."""

    seq: int = 0
    #: asset -> [available, locked], smallest units.
    balances: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"seq": self.seq, "balances": self.balances}

    @classmethod
    def from_json(cls, raw: dict[str, object] | None) -> AccountState:
        if not raw:
            return cls()
        balances = raw.get("balances") or {}
        assert isinstance(balances, dict)
        seq = raw.get("seq", 0)
        assert isinstance(seq, int)
        return cls(
            seq=seq,
            balances={k: [int(v[0]), int(v[1])] for k, v in balances.items()},
        )


def to_units(amount: Decimal, decimals: int) -> int | None:
    """``Decimal("1.5")`` at 6 decimals -> 1_500_000; None if it has finer precision."""
    scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        return None
    return int(scaled)


def from_units(units: int, decimals: int) -> Decimal:
    return Decimal(units).scaleb(-decimals)


def move_cash(
    state: AccountState,
    *,
    command_id: str,
    account: str,
    token: str,
    amount: Decimal,
    kind: Literal["deposit", "withdrawal"],
    tokens: dict[str, int],
    duplicate: bool = False,
) -> tuple[AccountState, list[Posting]] | LedgerRejection:
    """Apply a deposit or withdrawal of a cash token."""
    if token not in tokens:
        known = ", ".join(sorted(tokens))
        return LedgerRejection("unknown_token", f"token {token!r} is not configured ({known})")
    units = to_units(amount, tokens[token])
    if units is None or units <= 0:
        return LedgerRejection(
            "invalid_amount", f"{amount} {token} has more than {tokens[token]} decimals"
        )
    return _move(
        state,
        command_id=command_id,
        account=account,
        asset=token,
        units=units,
        kind=kind,
        duplicate=duplicate,
    )


def move_bonds(
    state: AccountState,
    *,
    command_id: str,
    account: str,
    isin: str,
    quantity: int,
    kind: Literal["deposit", "withdrawal"],
    duplicate: bool = False,
) -> tuple[AccountState, list[Posting]] | LedgerRejection:
    """Apply a custody deposit or withdrawal of bonds (face value in yen)."""
    return _move(
        state,
        command_id=command_id,
        account=account,
        asset=isin,
        units=quantity,
        kind=kind,
        duplicate=duplicate,
    )


def _move(
    state: AccountState,
    *,
    command_id: str,
    account: str,
    asset: str,
    units: int,
    kind: Literal["deposit", "withdrawal"],
    duplicate: bool,
) -> tuple[AccountState, list[Posting]] | LedgerRejection:
    assert units > 0, units
    if duplicate:
        return LedgerRejection("duplicate", f"{command_id} was already applied to {account}")
    available, locked = state.balances.get(asset, [0, 0])
    delta = units if kind == "deposit" else -units
    if available + delta < 0:
        return LedgerRejection(
            "insufficient_funds",
            f"withdrawal of {units} units of {asset} exceeds available {available}",
        )
    new_available = available + delta
    assert new_available >= 0 and locked >= 0
    new_state = AccountState(
        seq=state.seq + 1,
        balances={**state.balances, asset: [new_available, locked]},
    )
    posting = Posting(
        account=account,
        asset=asset,
        delta_available=delta,
        delta_locked=0,
        available=new_available,
        locked=locked,
        cause=command_id,
        seq=new_state.seq,
    )
    return new_state, [posting]
