"""The ledger's per-record handler: everything one command does, over any mappings.

:func:`handle_command` is the ledger agent's whole logic for one record of
``kessai-ledger-commands``, and ``kessai replay`` runs the very same function: it
takes the account's state, applies the command (:func:`account_step`), chains the
journal records onto the account's hash chain, remembers the command id, keeps the
partition's net inflow, and says what to send on. It is written over
``MutableMapping`` s so that the agent runs it on its faust tables and the replay on
dicts. Pure: no faust, no Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from schemas import Source
from streams.ledger import domain, journal
from streams.ledger.messages import (
    Credit,
    LedgerCommand,
    Leg,
    LockCmd,
    Move,
    PostCmd,
    Reply,
    ReplyKind,
    Route,
    VoidCmd,
    leg_of,
    lock_id,
)

__all__ = [
    "AccountEffects",
    "CommandOutputs",
    "Ledger",
    "account_step",
    "handle_command",
]

#: account -> the state's JSON bytes (:meth:`streams.ledger.domain.AccountState.to_bytes`).
Accounts = MutableMapping[str, bytes]
#: command id -> True once applied.
Applied = MutableMapping[str, bool]
#: command partition (as a string) -> asset -> net external inflow in units (a decimal
#: string): deposits minus withdrawals applied while handling that partition. The
#: conservation gauge compares their sum with the balances.
Inflow = MutableMapping[str, Any]
#: What the ledger sends: a reply to a trade's saga, or a credit to an account.
Send = tuple[Route, Reply | Credit]


@dataclass(frozen=True)
class Ledger:
    """The ledger's state, as the tables (or a replay's dicts) hold it."""

    accounts: Accounts
    applied: Applied
    inflow: Inflow


# -- one command on one account --------------------------------------------------------


@dataclass
class AccountEffects:
    state: domain.AccountState
    postings: list[domain.Posting] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)
    #: Command ids to remember as applied (duplicate detection).
    applied: list[str] = field(default_factory=list)
    rejection: domain.LedgerRejection | None = None


def _reply(lock: str, what: ReplyKind) -> Send:
    trade_id = lock.rsplit("/", 1)[0]
    return ("trade", trade_id), Reply(trade_id, lock, what)


def _other_lock(lock: str) -> str:
    """``t1/bonds`` -> ``t1/cash`` and back: the other leg of the same trade."""
    trade_id = lock.rsplit("/", 1)[0]
    other: Leg = "cash" if leg_of(lock) == "bonds" else "bonds"
    return lock_id(trade_id, other)


def _grant(fx: AccountEffects, account: str) -> None:
    for granted in domain.grant_waiting(fx.state, account=account):
        fx.state = granted.state
        fx.postings.extend(granted.postings)
        fx.sends.append(_reply(granted.lock_id, "granted"))


def _move(fx: AccountEffects, account: str, m: Move, already_applied: bool) -> None:
    result = domain.move_units(
        fx.state,
        command_id=m.command_id,
        account=account,
        asset=m.asset,
        units=m.units,
        kind=m.kind,
        duplicate=already_applied,
    )
    if isinstance(result, domain.LedgerRejection):
        fx.rejection = result
        return
    fx.state, fx.postings = result
    fx.applied.append(m.command_id)
    _grant(fx, account)


def _credit(fx: AccountEffects, account: str, m: Credit, already_applied: bool) -> None:
    if already_applied:
        return
    fx.state, fx.postings = domain.credit(
        fx.state, cause=m.cause, account=account, asset=m.asset, units=m.units
    )
    fx.applied.append(m.cause)
    _grant(fx, account)


def _lock(fx: AccountEffects, account: str, m: LockCmd) -> None:
    r = domain.request_lock(
        fx.state, lock_id=m.lock_id, account=account, asset=m.asset, units=m.units
    )
    if isinstance(r, domain.Locked):
        fx.state, fx.postings = r.state, list(r.postings)
        fx.sends.append(_reply(m.lock_id, "granted"))
    elif isinstance(r, domain.Queued):
        fx.state = r.state
        fx.sends.append(_reply(m.lock_id, "queued"))
    else:
        fx.rejection = r  # a repeated lock id: nothing changes
        if r.reason == "too_many_locks":
            # Said at once, with its reason: the trade fails now, not at its deadline
            # as if the assets were short (docs/security.md, M13).
            fx.sends.append(_reply(m.lock_id, "refused"))


def _post(fx: AccountEffects, account: str, m: PostCmd) -> None:
    res = domain.post_lock(fx.state, lock_id=m.lock_id, account=account)
    if res.outcome != "posted":
        return
    fx.state, fx.postings = res.state, list(res.postings)
    if m.receive_units:
        # The counterparty's lock, paid to this account by its own PostCmd of the
        # same transaction: the credit is booked here, under its cause.
        fx.state, received = domain.credit(
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


def _void(fx: AccountEffects, account: str, m: VoidCmd) -> None:
    res = domain.void_lock(fx.state, lock_id=m.lock_id, account=account)
    fx.state, fx.postings = res.state, list(res.postings)
    fx.sends.append(_reply(m.lock_id, "voided"))
    if res.outcome == "voided":
        _grant(fx, account)


def account_step(
    state: domain.AccountState, account: str, m: LedgerCommand, *, already_applied: bool
) -> AccountEffects:
    """One command on ``account`` in ``state``: the new state, its postings, what to
    send, the ids to remember, or why it was refused. ``already_applied``: whether
    ``m``'s command id (moves, credits) was applied before."""
    fx = AccountEffects(state)
    if isinstance(m, Move):
        _move(fx, account, m, already_applied)
    elif isinstance(m, Credit):
        _credit(fx, account, m, already_applied)
    elif isinstance(m, LockCmd):
        _lock(fx, account, m)
    elif isinstance(m, PostCmd):
        _post(fx, account, m)
    else:
        _void(fx, account, m)
    return fx


# -- one record of kessai-ledger-commands ----------------------------------------------


@dataclass
class CommandOutputs:
    """What one command causes."""

    #: ``ledger-events`` records (wire objects, hashed), in order.
    records: list[dict[str, Any]] = field(default_factory=list)
    #: Messages on: replies to sagas, credits to accounts.
    sends: list[Send] = field(default_factory=list)
    #: A refused move's public source and why: ``(source, reason, detail)``.
    rejection: tuple[Source, str, str] | None = None
    #: Refused, but nothing to report (a repeated lock, a move without its source).
    refused: bool = False
    #: The balance changes in smallest units, and the change in the account's open
    #: locks: what the metrics' running sums add (streams/runtime/livesums.py).
    postings: list[domain.Posting] = field(default_factory=list)
    locks_delta: int = 0


def handle_command(
    ledger: Ledger,
    partition: int,
    command: LedgerCommand,
    decimals_of: Callable[[str], int],
) -> CommandOutputs:
    """Apply one command read from ``partition``: update the ledger's three mappings;
    what to emit and send."""
    out = CommandOutputs()
    account = command.account
    command_id = _command_id(command)
    before = domain.AccountState.from_bytes(ledger.accounts.get(account))
    fx = account_step(
        before,
        account,
        command,
        already_applied=bool(command_id and ledger.applied.get(command_id)),
    )
    if fx.rejection is not None:
        out.refused = True
        if isinstance(command, Move):
            if command_id and fx.rejection.reason != "duplicate":
                # Used up like an applied one: the same record sent again (after a
                # deposit, say) is a duplicate, never applied. A retry carries a new
                # id (docs/security.md, H3).
                ledger.applied[command_id] = True
            if command.source is not None:
                out.rejection = (command.source, fx.rejection.reason, fx.rejection.detail)
        out.sends = fx.sends  # a refused lock's reply
        return out
    # The chain's tip goes into the state, so it commits with the records.
    out.records = journal.chain(before, fx.state, fx.postings, decimals_of)
    out.postings = fx.postings
    out.locks_delta = len(fx.state.locks) - len(before.locks)
    ledger.accounts[account] = fx.state.to_bytes()
    for applied_id in fx.applied:
        ledger.applied[applied_id] = True
    if isinstance(command, Move) and out.records:
        row = str(partition)
        ledger.inflow[row] = _add_inflow(ledger.inflow.get(row), command)
    out.sends = fx.sends
    return out


def _command_id(command: LedgerCommand) -> str | None:
    if isinstance(command, Move):
        return command.command_id
    if isinstance(command, Credit):
        return command.cause
    return None


def _add_inflow(row: dict[str, str] | None, move: Move) -> dict[str, str]:
    """An ``inflow`` row after an applied ``move``."""
    out = dict(row or {})
    delta = move.units if move.kind == "deposit" else -move.units
    out[move.asset] = str(int(out.get(move.asset, "0")) + delta)
    return out
