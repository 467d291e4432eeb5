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
arrives. What happens to a trade still locking later depends on the mode
(:mod:`streams.settlement.fails`):

- *atomic* (a 24/7 token market's all-or-nothing rule): at its deadline it
  ``failed``, with that reason, and voids whatever it held or queued;
- *recycle* (market practice, the default): past its settlement date's cut-off it is
  ``failing`` (both legs probed, the reason names each short one) and goes on
  recycling; at each later cut-off it fails one more day, and after the last one it
  is ``cancelled``, ``max_fail_days``, voiding what it holds. Its other ends are
  ``cancelled`` too (``too_many_locks``, ``instrument_matured``): ``failed`` is the
  atomic mode's word.

A lock granted to a trade that has already ended is voided at once: no lock outlives
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
    SplitCmd,
    VoidCmd,
    leg_of,
    lock_id,
    part_lock_id,
)
from streams.settlement import fails
from streams.settlement.messages import Trade

__all__ = [
    "TERMINAL",
    "Outcome",
    "Part",
    "Saga",
    "StatusChanged",
    "matched",
    "on_cancel",
    "on_cutoff",
    "on_deadline",
    "on_matured",
    "on_partial",
    "on_reply",
    "on_settlement_date",
    "start",
    "wait",
]

#: The pending reason of a trade whose settlement date has not begun (ISO 20022 FUTU).
AWAITING: Final = "awaiting_settlement_date"

LegState = Literal["none", "queued", "locked", "posted", "voided"]
Stage = Literal["waiting", "bonds", "cash", "posting", "settled", "failed", "cancelled"]
Status = Literal["pending", "failing", "partially_settled", "settled", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"settled", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a partially settled trade (issue 21): its number (1, 2, ...), face,
    and cash in units; principal and accrued each truncated per part (None: a trade
    without dates). The last part takes what remains, so the parts sum to the trade."""

    number: int
    quantity: int
    cash_units: int
    principal_units: int | None = None
    accrued_units: int | None = None


@dataclass(frozen=True, slots=True)
class StatusChanged:
    trade_id: str
    status: Status
    reason: str | None
    #: The part this status settled (``partially_settled``, or the ``settled`` of a
    #: trade that settled in parts); None: the whole trade.
    part: Part | None = None


@dataclass(frozen=True, slots=True)
class Saga:
    trade: Trade
    stage: Stage = "bonds"
    bonds: LegState = "none"
    cash: LegState = "none"
    #: The pending (or failing) reason last published, so each is published once.
    pending_reason: str | None = None
    reason: str | None = None
    #: The recycle mode (streams/settlement/fails.py); False: atomic.
    recycle: bool = False
    #: Cut-offs passed while open (> 0: ``failing``), and when the next one is (0: the
    #: trade's ``deadline_at_s``, its first).
    fail_days: int = 0
    due_s: float = 0.0
    #: Partial settlement: parts settled so far, and the face, principal and accrued
    #: (units) they took; the saga's locks and posts are for what remains.
    parts: int = 0
    delivered: int = 0
    principal_paid: int = 0
    accrued_paid: int = 0
    #: The cash the parts paid, when it is not principal + accrued: a trade converted
    #: at an FX rate, whose principal and accrued are in yen (streams/settlement/fx.py).
    cash_paid: int = 0

    @property
    def terminal(self) -> bool:
        return self.stage in TERMINAL

    @property
    def quantity_left(self) -> int:
        return self.trade.quantity - self.delivered

    @property
    def cash_left(self) -> int:
        if self.trade.fx_rate:
            return self.trade.cash_units - self.cash_paid
        return self.trade.cash_units - self.principal_paid - self.accrued_paid

    def last_part(self) -> Part | None:
        """What the settlement of the rest moves, when parts settled before (else None)."""
        if not self.parts:
            return None
        t = self.trade
        return Part(
            self.parts + 1,
            self.quantity_left,
            self.cash_left,
            None if t.principal_units is None else t.principal_units - self.principal_paid,
            None if t.accrued_units is None else t.accrued_units - self.accrued_paid,
        )

    @property
    def due(self) -> float:
        """When the engine next looks at this saga: its deadline or next cut-off."""
        return self.due_s or self.trade.deadline_at_s


Outcome = tuple[Saga, list[Command], list[StatusChanged]]


def _with_leg(saga: Saga, leg: Leg, state: LegState) -> Saga:
    return replace(saga, bonds=state) if leg == "bonds" else replace(saga, cash=state)


def start(trade: Trade, *, recycle: bool = False) -> Outcome:
    saga = Saga(trade=trade, bonds="queued", recycle=recycle)
    t = trade
    return (
        saga,
        [
            LockCmd(
                lock_id(t.trade_id, "bonds"),
                t.trade_id,
                t.seller,
                t.isin,
                t.quantity,
                t.settlement_date,
            )
        ],
        [],
    )


def wait(trade: Trade, *, recycle: bool = False) -> Outcome:
    """A trade whose settlement date has not begun: ``pending``, holding nothing, until
    :func:`on_settlement_date`."""
    saga = Saga(trade=trade, stage="waiting", pending_reason=AWAITING, recycle=recycle)
    return saga, [], [StatusChanged(trade.trade_id, "pending", AWAITING)]


def matched(trade: Trade, *, recycle: bool = False, begun: bool = True) -> Outcome:
    """A trade kessai's matcher made, both legs locked from the instant it filled (the
    orders' reservations passed to ``{trade_id}/bonds`` and ``{trade_id}/cash``): it
    posts at once when its settlement date has ``begun``; else it waits, ``pending``
    with ``awaiting_settlement_date``, holding both, and posts when the date begins.
    It never waits for assets, so it never fails for the lack of them."""
    saga = Saga(trade=trade, stage="waiting", bonds="locked", cash="locked", recycle=recycle)
    if begun:
        return _post_both(saga)
    saga = replace(saga, pending_reason=AWAITING)
    return saga, [], [StatusChanged(trade.trade_id, "pending", AWAITING)]


def on_settlement_date(saga: Saga) -> Outcome:
    """The settlement date began: a waiting trade starts locking (:func:`start`), or,
    holding both legs already (:func:`matched`), posts them."""
    if saga.stage != "waiting":
        return saga, [], []
    if saga.bonds == "locked" and saga.cash == "locked":
        return _post_both(saga)
    return start(saga.trade, recycle=saga.recycle)


def on_reply(saga: Saga, reply: Reply) -> Outcome:
    t = saga.trade
    if ":" in reply.lock_id.rpartition("/")[2]:
        return saga, [], []  # a part's lock (on_partial): locked and posted in its step
    leg = leg_of(reply.lock_id)
    account = t.seller if leg == "bonds" else t.buyer
    if reply.what == "queued":
        if saga.terminal:
            return saga, [], []
        reason = "insufficient_securities" if leg == "bonds" else "insufficient_cash"
        if saga.pending_reason == reason:
            return saga, [], []
        status: Status = "failing" if saga.fail_days else "pending"
        return (
            replace(saga, pending_reason=reason),
            [],
            [StatusChanged(t.trade_id, status, reason)],
        )
    if reply.what == "granted":
        if saga.terminal or getattr(saga, leg) != "queued":
            # Granted after the trade failed (or a repeat): give it straight back.
            return saga, [VoidCmd(reply.lock_id, t.trade_id, account)], []
        saga = _with_leg(saga, leg, "locked")
        if leg == "bonds":
            cash = LockCmd(
                lock_id(t.trade_id, "cash"),
                t.trade_id,
                t.buyer,
                t.currency,
                saga.cash_left,
                t.settlement_date,
            )
            return replace(saga, stage="cash", cash="queued"), [cash], []
        return _post_both(saga)
    if reply.what == "refused":
        return _refused(saga, leg)
    if reply.what == "posted":
        if getattr(saga, leg) != "locked":
            return saga, [], []  # a repeat
        saga = _with_leg(saga, leg, "posted")
        if saga.bonds == "posted" and saga.cash == "posted":
            settled = StatusChanged(t.trade_id, "settled", None, saga.last_part())
            return replace(saga, stage="settled"), [], [settled]
        return saga, [], []
    assert reply.what == "voided", reply
    if getattr(saga, leg) in ("queued", "locked"):
        saga = _with_leg(saga, leg, "voided")
    return saga, [], []


def _post_both(saga: Saga) -> Outcome:
    """Both legs locked: post both, in this one transaction."""
    t = saga.trade
    return (
        replace(saga, stage="posting"),
        [
            PostCmd(
                lock_id(t.trade_id, "bonds"),
                t.trade_id,
                t.seller,
                t.buyer,
                receive_asset=t.currency,
                receive_units=saga.cash_left,
            ),
            PostCmd(
                lock_id(t.trade_id, "cash"),
                t.trade_id,
                t.buyer,
                t.seller,
                receive_asset=t.isin,
                receive_units=saga.quantity_left,
            ),
        ],
        [],
    )


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


def on_partial(saga: Saga, part: Part) -> Outcome:
    """Settle ``part`` of a trade whose bonds leg waits (the seller has some of the
    bonds, the buyer the part's cash: the engine checked both): the seller's queued
    request gives up the part's face as a lock of its own, the buyer's part of the cash
    is locked, both are posted, in this one step; the request stays queued for the
    rest, and the trade goes on failing for what remains."""
    t = saga.trade
    assert saga.stage == "bonds" and saga.bonds == "queued", saga
    assert part.number == saga.parts + 1 and 0 < part.quantity < saga.quantity_left, part
    bonds = part_lock_id(t.trade_id, "bonds", part.number)
    cash = part_lock_id(t.trade_id, "cash", part.number)
    commands: list[Command] = [
        SplitCmd(lock_id(t.trade_id, "bonds"), bonds, t.trade_id, t.seller, part.quantity),
        LockCmd(cash, t.trade_id, t.buyer, t.currency, part.cash_units, t.settlement_date),
        PostCmd(bonds, t.trade_id, t.seller, t.buyer, t.currency, part.cash_units),
        PostCmd(cash, t.trade_id, t.buyer, t.seller, t.isin, part.quantity),
    ]
    after = replace(
        saga,
        pending_reason=None,  # the rest's status is said again (failing, at this cut-off)
        parts=part.number,
        delivered=saga.delivered + part.quantity,
        principal_paid=saga.principal_paid + (part.principal_units or 0),
        accrued_paid=saga.accrued_paid + (part.accrued_units or 0),
        cash_paid=saga.cash_paid + part.cash_units,
    )
    if part.principal_units is None:  # no dates: the cash alone is tracked
        after = replace(after, principal_paid=saga.principal_paid + part.cash_units)
    return after, commands, [StatusChanged(t.trade_id, "partially_settled", None, part)]


def on_cancel(saga: Saga) -> Outcome:
    """The trade's venue cancelled it (``cancellations``): ``cancelled``,
    ``bilateral_cancel``, whatever the mode, giving back what it holds. Not once it
    posts (a batch never ends between its locks and its posts)."""
    if saga.terminal or saga.stage == "posting":
        return saga, [], []
    return _fail(saga, "bilateral_cancel", end="cancelled")


def on_cutoff(
    saga: Saga, now_s: float, *, cash_short: bool, max_days: int, next_s: float
) -> Outcome:
    """A cut-off of a trade still locking (recycle mode): it fails one more day
    (``failing``, published when it starts or its reason changes), or, past
    ``max_days`` of them, is ``cancelled``. ``cash_short``: the buyer could not lock
    the cash now (probed while the bonds leg waits; a queued cash leg is short);
    ``next_s``: the next cut-off."""
    if saga.stage not in ("bonds", "cash") or now_s < saga.due:
        return saga, [], []
    if saga.fail_days >= max_days:
        return _fail(saga, "max_fail_days")
    reason = fails.failing_reason(
        bonds_short=saga.stage == "bonds", cash_short=saga.stage == "cash" or cash_short
    )
    failing = replace(saga, fail_days=saga.fail_days + 1, due_s=next_s, pending_reason=reason)
    if saga.fail_days and reason == saga.pending_reason:
        return failing, [], []
    return failing, [], [StatusChanged(saga.trade.trade_id, "failing", reason)]


def _fail(saga: Saga, reason: str, *, end: Literal["failed", "cancelled"] | None = None) -> Outcome:
    """``saga`` ends with ``reason`` (``failed``; ``cancelled`` in the recycle mode),
    voiding each lock it holds or queued."""
    t = saga.trade
    commands: list[Command] = []
    if saga.bonds in ("queued", "locked"):
        commands.append(VoidCmd(lock_id(t.trade_id, "bonds"), t.trade_id, t.seller))
    if saga.cash in ("queued", "locked"):
        commands.append(VoidCmd(lock_id(t.trade_id, "cash"), t.trade_id, t.buyer))
    if end is None:
        end = "cancelled" if saga.recycle else "failed"
    ended = replace(saga, stage=end, reason=reason)
    return ended, commands, [StatusChanged(t.trade_id, end, reason)]
