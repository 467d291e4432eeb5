"""One message in, effects out: the logic both the agents and the in-memory engine run.

:func:`account_step` is what the ledger agent does with one record on an account's
partition (a deposit or withdrawal, a lock/post/void command, a credit);
:func:`trade_step` is what the settlement agent does with one record on a trade's
partition (the trade, a ledger reply, a clock tick). Both are pure: they return the
new state, the ledger postings, the messages to send (each to an account or a
trade), and any rejection. The agents turn sends into Kafka records; the engine
into inbox entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from streams.ledger import domain as ledger
from streams.settlement import saga as saga_core


@dataclass(frozen=True, slots=True)
class Move:
    """A deposit or withdrawal from the bridge (payments) or custodian (custody)."""

    command_id: str
    account: str
    asset: str
    units: int
    kind: Literal["deposit", "withdrawal"]
    #: The public record it came from, ``(topic, key, value)``, quoted by a rejection.
    source: tuple[str, str | None, str] | None = None


@dataclass(frozen=True, slots=True)
class Credit:
    """Units posted from a counterparty's lock, arriving on the receiver's partition."""

    cause: str
    account: str
    asset: str
    units: int


@dataclass(frozen=True, slots=True)
class Tick:
    now_s: float


Key = tuple[Literal["account", "trade"], str]


@dataclass
class AccountEffects:
    state: ledger.AccountState
    postings: list[ledger.Posting] = field(default_factory=list)
    sends: list[tuple[Key, Any]] = field(default_factory=list)
    #: Command ids to remember as applied (duplicate detection).
    applied: list[str] = field(default_factory=list)
    rejection: ledger.LedgerRejection | None = None


def _reply(lock: str, what: Literal["granted", "queued", "posted", "voided"]) -> tuple[Key, Any]:
    trade_id = lock.rsplit("/", 1)[0]
    return ("trade", trade_id), saga_core.Reply(trade_id, lock, what)


def _other_lock(lock: str) -> str:
    """``t1/bonds`` -> ``t1/cash`` and back: the other leg of the same trade."""
    trade_id = lock.rsplit("/", 1)[0]
    other: saga_core.Leg = "cash" if saga_core.leg_of(lock) == "bonds" else "bonds"
    return saga_core.lock_id(trade_id, other)


def _grant(fx: AccountEffects, account: str) -> None:
    for granted in ledger.grant_waiting(fx.state, account=account):
        fx.state = granted.state
        fx.postings.extend(granted.postings)
        fx.sends.append(_reply(granted.lock_id, "granted"))


def account_step(
    state: ledger.AccountState, account: str, m: Any, *, already_applied: bool
) -> AccountEffects:
    """``already_applied``: whether ``m``'s command id (moves, credits) was applied."""
    fx = AccountEffects(state)
    if isinstance(m, Move):
        result = ledger.move_units(
            state,
            command_id=m.command_id,
            account=account,
            asset=m.asset,
            units=m.units,
            kind=m.kind,
            duplicate=already_applied,
        )
        if isinstance(result, ledger.LedgerRejection):
            fx.rejection = result
            return fx
        fx.state, fx.postings = result
        fx.applied.append(m.command_id)
        _grant(fx, account)
    elif isinstance(m, Credit):
        if already_applied:
            return fx
        fx.state, fx.postings = ledger.credit(
            state, cause=m.cause, account=account, asset=m.asset, units=m.units
        )
        fx.applied.append(m.cause)
        _grant(fx, account)
    elif isinstance(m, saga_core.LockCmd):
        r = ledger.request_lock(
            state, lock_id=m.lock_id, account=account, asset=m.asset, units=m.units
        )
        if isinstance(r, ledger.Locked):
            fx.state, fx.postings = r.state, list(r.postings)
            fx.sends.append(_reply(m.lock_id, "granted"))
        elif isinstance(r, ledger.Queued):
            fx.state = r.state
            fx.sends.append(_reply(m.lock_id, "queued"))
        else:
            fx.rejection = r  # a repeated lock id: nothing changes
    elif isinstance(m, saga_core.PostCmd):
        res = ledger.post_lock(state, lock_id=m.lock_id, account=account)
        if res.outcome == "posted":
            fx.state, fx.postings = res.state, list(res.postings)
            if m.receive_units:
                # The counterparty's lock, paid to this account by its own PostCmd of
                # the same transaction: the credit is booked here, under its cause.
                fx.state, received = ledger.credit(
                    fx.state,
                    cause=f"credit:{_other_lock(m.lock_id)}",
                    account=account,
                    asset=m.receive_asset,
                    units=m.receive_units,
                )
                fx.postings.extend(received)
                _grant(fx, account)
            else:
                credit = Credit(f"credit:{m.lock_id}", m.to_account, res.asset, res.units)
                fx.sends.append((("account", m.to_account), credit))
            fx.sends.append(_reply(m.lock_id, "posted"))
    else:
        assert isinstance(m, saga_core.VoidCmd), m
        res = ledger.void_lock(state, lock_id=m.lock_id, account=account)
        fx.state, fx.postings = res.state, list(res.postings)
        fx.sends.append(_reply(m.lock_id, "voided"))
        if res.outcome == "voided":
            _grant(fx, account)
    return fx


@dataclass
class TradeEffects:
    saga: saga_core.Saga | None
    sends: list[tuple[Key, Any]] = field(default_factory=list)
    statuses: list[saga_core.StatusChanged] = field(default_factory=list)
    duplicate: bool = False


def trade_step(saga: saga_core.Saga | None, m: Any, *, seen: bool) -> TradeEffects:
    """``seen``: whether a trade with this id arrived before (for a new trade)."""
    if isinstance(m, saga_core.Trade):
        if seen:
            return TradeEffects(saga, duplicate=True)
        new, commands, statuses = saga_core.start(m)
    elif saga is None:
        return TradeEffects(None)  # a reply or tick for a trade long finished
    elif isinstance(m, Tick):
        new, commands, statuses = saga_core.on_deadline(saga, m.now_s)
    else:
        new, commands, statuses = saga_core.on_reply(saga, m)
    sends: list[tuple[Key, Any]] = [(("account", c.account), c) for c in commands]
    return TradeEffects(new, sends, statuses)
