"""One command on one account: :func:`account_step`. Pure.

The settlement engine (:mod:`streams.engine.core`) calls it for every command a record
causes, on the account's state in memory: a deposit or withdrawal, a lock, a post, a
void. It returns the account's new state, the balance changes to journal, the replies
to the trade's saga, the ids to remember as applied, or why the command was refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.ledger import domain
from streams.ledger.messages import (
    ORDER_LOCK_PREFIX,
    LedgerCommand,
    Leg,
    LockCmd,
    Move,
    PostCmd,
    Reply,
    ReplyKind,
    ReserveCmd,
    SplitCmd,
    TransferCmd,
    leg_of,
    lock_id,
)

__all__ = ["AccountEffects", "account_step"]


@dataclass
class AccountEffects:
    state: domain.AccountState
    #: Any-fit recycling (streams/ledger/domain.py); False: strict FIFO.
    any_fit: bool = False
    postings: list[domain.Posting] = field(default_factory=list)
    #: Answers to the sagas, in order.
    replies: list[Reply] = field(default_factory=list)
    #: Command ids to remember as applied (duplicate detection).
    applied: list[str] = field(default_factory=list)
    rejection: domain.LedgerRejection | None = None


def _reply(lock: str, what: ReplyKind) -> Reply:
    return Reply(lock.rsplit("/", 1)[0], lock, what)


def _other_lock(lock: str) -> str:
    """``t1/bonds`` -> ``t1/cash`` and back: the other leg of the same trade (of the
    same part: ``t1/bonds:p1`` -> ``t1/cash:p1``)."""
    trade_id, _, tail = lock.rpartition("/")
    _, colon, part = tail.partition(":")
    other: Leg = "cash" if leg_of(lock) == "bonds" else "bonds"
    return lock_id(trade_id, other) + colon + part


def _grant(fx: AccountEffects, account: str) -> None:
    for granted in domain.grant_waiting(fx.state, account=account, any_fit=fx.any_fit):
        fx.state = granted.state
        fx.postings.extend(granted.postings)
        fx.replies.append(_reply(granted.lock_id, "granted"))


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


def _lock(fx: AccountEffects, account: str, m: LockCmd) -> None:
    r = domain.request_lock(
        fx.state,
        lock_id=m.lock_id,
        account=account,
        asset=m.asset,
        units=m.units,
        any_fit=fx.any_fit,
        priority=m.priority,
    )
    if isinstance(r, domain.Locked):
        fx.state, fx.postings = r.state, list(r.postings)
        fx.replies.append(_reply(m.lock_id, "granted"))
    elif isinstance(r, domain.Queued):
        fx.state = r.state
        fx.replies.append(_reply(m.lock_id, "queued"))
    else:
        fx.rejection = r  # a repeated lock id: nothing changes
        if r.reason == "too_many_locks":
            # Said at once, with its reason: the trade fails now, not at its deadline
            # as if the assets were short (docs/security.md, M13).
            fx.replies.append(_reply(m.lock_id, "refused"))


def _post(fx: AccountEffects, account: str, m: PostCmd) -> None:
    res = domain.post_lock(fx.state, lock_id=m.lock_id, account=account)
    if res.outcome != "posted":
        # A saga posts only what was granted, and the engine delivers each command
        # once: a post of a lock the account does not hold would pay one side only
        # (docs/security.md, M6). Fail-stop.
        raise AssertionError(f"post of {m.lock_id} on {account}, which holds no such lock")
    fx.state, fx.postings = res.state, list(res.postings)
    # The counterparty's lock, paid to this account by its own PostCmd of the same
    # step: the credit is booked here, under its cause.
    fx.state, received = domain.credit(
        fx.state,
        cause=f"credit:{_other_lock(m.lock_id)}",
        account=account,
        asset=m.receive_asset,
        units=m.receive_units,
    )
    fx.postings.extend(received)
    _grant(fx, account)
    fx.replies.append(_reply(m.lock_id, "posted"))


def _void(fx: AccountEffects, account: str, lock: str) -> None:
    res = domain.void_lock(fx.state, lock_id=lock, account=account)
    fx.state, fx.postings = res.state, list(res.postings)
    if not lock.startswith(ORDER_LOCK_PREFIX):
        # An order's reservation has no saga to tell (and a trade may be named
        # ``order:...``: its saga must never hear of a lock not its own).
        fx.replies.append(_reply(lock, "voided"))
    if res.outcome == "voided":
        _grant(fx, account)


def account_step(
    state: domain.AccountState,
    account: str,
    m: LedgerCommand,
    *,
    already_applied: bool,
    any_fit: bool = False,
) -> AccountEffects:
    """One command on ``account`` in ``state``: the new state, its postings, the replies,
    the ids to remember, or why it was refused. ``already_applied``: whether a move's
    command id was applied (or used up) before; ``any_fit``: the recycling policy."""
    fx = AccountEffects(state, any_fit=any_fit)
    if isinstance(m, Move):
        _move(fx, account, m, already_applied)
    elif isinstance(m, LockCmd):
        _lock(fx, account, m)
    elif isinstance(m, PostCmd):
        _post(fx, account, m)
    elif isinstance(m, SplitCmd):
        split = domain.split_request(
            fx.state, lock_id=m.lock_id, part_id=m.part_id, account=account, units=m.units
        )
        fx.state, fx.postings = split.state, list(split.postings)
    elif isinstance(m, ReserveCmd):
        held = domain.reserve(
            fx.state, lock_id=m.lock_id, account=account, asset=m.asset, units=m.units
        )
        fx.state, fx.postings = held.state, list(held.postings)
    elif isinstance(m, TransferCmd):
        fx.state = domain.transfer_lock(
            fx.state, lock_id=m.lock_id, to_lock=m.to_lock, units=m.units
        )
    else:
        _void(fx, account, m.lock_id)
    return fx
