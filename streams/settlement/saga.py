"""The DvP saga of one trade, pure: states, transitions, and the commands they emit.

A trade settles in BIS model 1 (gross, trade by trade) in three steps, each a
message to the account's ledger partition and a reply back to the trade's:

1. lock the seller's bonds (``{trade_id}/bonds``);
2. then lock the buyer's cash (``{trade_id}/cash``) -- bonds first, so a trade whose
   seller cannot deliver never sits on a buyer's cash and starves another trade;
3. when both are locked, post both in the same transaction: the bonds go to the
   buyer, the cash to the seller. Then ``settled``.

A trade whose settlement date (00:00 JST) has not begun waits first (``waiting``,
``pending`` with ``awaiting_settlement_date``), holding nothing; it starts at step 1
when its date begins. A lock that does not fit waits in the account's queue
(recycling): the trade is ``pending`` with ``insufficient_securities`` or
``insufficient_cash``, published once per reason, and it goes on as soon as the asset
arrives. At its deadline a trade
still locking ``fails`` with that reason and voids whatever it held or queued. A
lock granted to a trade that has already failed is voided at once: no lock outlives
its trade. Every message carries ids, so a repeated one changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal

from streams.ledger.messages import (
    Command,
    Leg,
    LockCmd,
    PostCmd,
    Reply,
    VoidCmd,
    leg_of,
    lock_id,
)
from streams.settlement.messages import Trade

__all__ = [
    "TERMINAL",
    "Outcome",
    "Saga",
    "StatusChanged",
    "on_deadline",
    "on_matured",
    "on_reply",
    "on_settlement_date",
    "start",
    "wait",
]

#: The pending reason of a trade whose settlement date has not begun (ISO 20022 FUTU).
AWAITING: Final = "awaiting_settlement_date"

LegState = Literal["none", "queued", "locked", "posted", "voided"]
Stage = Literal["waiting", "bonds", "cash", "posting", "settled", "failed"]
Status = Literal["pending", "settled", "failed"]
TERMINAL: frozenset[str] = frozenset({"settled", "failed"})


@dataclass(frozen=True, slots=True)
class StatusChanged:
    trade_id: str
    status: Status
    reason: str | None


@dataclass(frozen=True, slots=True)
class Saga:
    trade: Trade
    stage: Stage = "bonds"
    bonds: LegState = "none"
    cash: LegState = "none"
    #: The pending reason last published, so each is published once.
    pending_reason: str | None = None
    reason: str | None = None

    @property
    def terminal(self) -> bool:
        return self.stage in TERMINAL


Outcome = tuple[Saga, list[Command], list[StatusChanged]]


def _with_leg(saga: Saga, leg: Leg, state: LegState) -> Saga:
    return replace(saga, bonds=state) if leg == "bonds" else replace(saga, cash=state)


def start(trade: Trade) -> Outcome:
    saga = Saga(trade=trade, bonds="queued")
    t = trade
    return (
        saga,
        [LockCmd(lock_id(t.trade_id, "bonds"), t.trade_id, t.seller, t.isin, t.quantity)],
        [],
    )


def wait(trade: Trade) -> Outcome:
    """A trade whose settlement date has not begun: ``pending``, holding nothing, until
    :func:`on_settlement_date`."""
    saga = Saga(trade=trade, stage="waiting", pending_reason=AWAITING)
    return saga, [], [StatusChanged(trade.trade_id, "pending", AWAITING)]


def on_settlement_date(saga: Saga) -> Outcome:
    """The settlement date began: a waiting trade starts locking (:func:`start`)."""
    if saga.stage != "waiting":
        return saga, [], []
    return start(saga.trade)


def on_reply(saga: Saga, reply: Reply) -> Outcome:
    t = saga.trade
    leg = leg_of(reply.lock_id)
    account = t.seller if leg == "bonds" else t.buyer
    if reply.what == "queued":
        if saga.terminal:
            return saga, [], []
        reason = "insufficient_securities" if leg == "bonds" else "insufficient_cash"
        if saga.pending_reason == reason:
            return saga, [], []
        return (
            replace(saga, pending_reason=reason),
            [],
            [StatusChanged(t.trade_id, "pending", reason)],
        )
    if reply.what == "granted":
        if saga.terminal or getattr(saga, leg) != "queued":
            # Granted after the trade failed (or a repeat): give it straight back.
            return saga, [VoidCmd(reply.lock_id, t.trade_id, account)], []
        saga = _with_leg(saga, leg, "locked")
        if leg == "bonds":
            cash = LockCmd(
                lock_id(t.trade_id, "cash"), t.trade_id, t.buyer, t.currency, t.cash_units
            )
            return replace(saga, stage="cash", cash="queued"), [cash], []
        # Both legs locked: post both, in this one transaction.
        return (
            replace(saga, stage="posting"),
            [
                PostCmd(
                    lock_id(t.trade_id, "bonds"),
                    t.trade_id,
                    t.seller,
                    t.buyer,
                    receive_asset=t.currency,
                    receive_units=t.cash_units,
                ),
                PostCmd(
                    lock_id(t.trade_id, "cash"),
                    t.trade_id,
                    t.buyer,
                    t.seller,
                    receive_asset=t.isin,
                    receive_units=t.quantity,
                ),
            ],
            [],
        )
    if reply.what == "refused":
        return _refused(saga, leg)
    if reply.what == "posted":
        if getattr(saga, leg) != "locked":
            return saga, [], []  # a repeat
        saga = _with_leg(saga, leg, "posted")
        if saga.bonds == "posted" and saga.cash == "posted":
            return replace(saga, stage="settled"), [], [StatusChanged(t.trade_id, "settled", None)]
        return saga, [], []
    assert reply.what == "voided", reply
    if getattr(saga, leg) in ("queued", "locked"):
        saga = _with_leg(saga, leg, "voided")
    return saga, [], []


def _refused(saga: Saga, leg: Leg) -> Outcome:
    """The account of ``leg`` holds as many locks as it may (``LOCKS_OPEN_MAX``): the
    trade fails now with that reason, and the other leg's lock is given back."""
    if saga.terminal or getattr(saga, leg) != "queued":
        return saga, [], []  # a repeat, or after the trade ended
    return _fail(_with_leg(saga, leg, "voided"), "too_many_locks")


def on_matured(saga: Saga) -> Outcome:
    """The bond matured with ``saga`` still open: it fails ``instrument_matured`` and
    gives back what it holds (it can never settle: the bond is redeemed)."""
    return (saga, [], []) if saga.terminal else _fail(saga, "instrument_matured")


def on_deadline(saga: Saga, now_s: float) -> Outcome:
    """Fail a trade still locking at its deadline, and give back what it holds."""
    if saga.stage not in ("bonds", "cash") or now_s < saga.trade.deadline_at_s:
        return saga, [], []
    return _fail(saga, "insufficient_securities" if saga.stage == "bonds" else "insufficient_cash")


def _fail(saga: Saga, reason: str) -> Outcome:
    """``saga`` fails with ``reason``, voiding each lock it holds or queued."""
    t = saga.trade
    commands: list[Command] = []
    if saga.bonds in ("queued", "locked"):
        commands.append(VoidCmd(lock_id(t.trade_id, "bonds"), t.trade_id, t.seller))
    if saga.cash in ("queued", "locked"):
        commands.append(VoidCmd(lock_id(t.trade_id, "cash"), t.trade_id, t.buyer))
    failed = replace(saga, stage="failed", reason=reason)
    return failed, commands, [StatusChanged(t.trade_id, "failed", reason)]
