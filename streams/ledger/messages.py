"""What the settlement engine asks of an account, and what the account answers. Pure.

The engine (:mod:`streams.engine.core`) applies these to one account's state with
:func:`streams.ledger.handler.account_step`, in memory, in the order they arise:

- :class:`Move`: a deposit or withdrawal, from a ``payments`` or ``custody`` record;
- :class:`LockCmd`, :class:`PostCmd`, :class:`VoidCmd`: a two-phase lock and its
  resolution, asked by a trade's DvP saga for one leg of the trade;
- :class:`SplitCmd`: a partial settlement takes part of a queued request as a lock
  of its own (:func:`part_lock_id`, ``{trade_id}/{leg}:p{n}``);
- :class:`ReserveCmd`, :class:`TransferCmd`: an order's reservation (a lock that
  never queues, :func:`order_lock_id`) and a fill's share of it passing to the
  trade's lock; the order's end voids the rest (:class:`VoidCmd`).

Each lock command is answered with a :class:`Reply` to the trade's saga.

A lock's id is ``{trade_id}/{leg}`` (:func:`lock_id`): the trade it serves and which of
its two legs, so that a reply finds its saga and a post can name the other leg.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Literal

from schemas import Source

__all__ = [
    "ORDER_LOCK_PREFIX",
    "Command",
    "LedgerCommand",
    "Leg",
    "LockCmd",
    "Move",
    "PostCmd",
    "Reply",
    "ReplyKind",
    "ReserveCmd",
    "SplitCmd",
    "TransferCmd",
    "VoidCmd",
    "leg_of",
    "lock_id",
    "order_lock_id",
    "part_lock_id",
]

Leg = Literal["bonds", "cash"]


def lock_id(trade_id: str, leg: Leg) -> str:
    """The id of ``trade_id``'s lock on ``leg``: ``t1/bonds``."""
    return f"{trade_id}/{leg}"


def part_lock_id(trade_id: str, leg: Leg, part: int) -> str:
    """The lock of part ``part`` of ``trade_id``'s ``leg`` (partial settlement):
    ``t1/bonds:p1``. No trade's own lock ends that way, whatever its id."""
    return f"{trade_id}/{leg}:p{part}"


@functools.lru_cache(maxsize=4096)
def order_lock_id(isin: str, venue: str, order_id: str) -> str:
    """The lock of an order's reservation: ``order:`` and 32 hex digits of the SHA-256
    of its name, each part length-prefixed (a venue's and an order's ids together are
    longer than a ledger event's cause may be). No trade's lock: it has no ``/``."""
    digest = hashlib.sha256()
    for part in (isin, venue, order_id):
        data = part.encode()
        digest.update(len(data).to_bytes(4, "big"))
        digest.update(data)
    return ORDER_LOCK_PREFIX + digest.hexdigest()[:32]


#: What every reservation's lock id starts with.
ORDER_LOCK_PREFIX = "order:"


def leg_of(lock: str) -> Leg:
    """``t1/bonds`` -> ``bonds`` (and ``t1/bonds:p1`` -> ``bonds``)."""
    leg = lock.rsplit("/", 1)[-1].split(":", 1)[0]
    assert leg in ("bonds", "cash"), lock
    return leg  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Move:
    """A deposit or withdrawal from the bridge (payments) or custodian (custody)."""

    command_id: str
    account: str
    asset: str
    units: int
    kind: Literal["deposit", "withdrawal"]
    #: Where the public record it came from is (:data:`schemas.Source`): what the
    #: rejection of a refused move points at.
    source: Source | None = None
    #: A deposit finer than the ledger's unit (bridge precision, streams/ledger/intake.py):
    #: what is left below it, in on-chain units, for the bridge's dust account.
    dust: int = 0


@dataclass(frozen=True, slots=True)
class LockCmd:
    lock_id: str
    trade_id: str
    account: str
    asset: str
    units: int
    #: Its place among the account's waiting requests under any-fit recycling: the
    #: trade's settlement date (earlier first; "" first of all, then arrival order).
    priority: str = ""


@dataclass(frozen=True, slots=True)
class PostCmd:
    """Pay out a lock to ``to_account`` and, in the same step, receive the other leg:
    the counterparty's lock, paid out to this account by the trade's other PostCmd, so
    each account is debited and credited in one step (docs/adr/0004-one-step-posts.md)."""

    lock_id: str
    trade_id: str
    account: str
    to_account: str
    receive_asset: str
    receive_units: int


@dataclass(frozen=True, slots=True)
class VoidCmd:
    lock_id: str
    trade_id: str
    account: str


@dataclass(frozen=True, slots=True)
class SplitCmd:
    """Take ``units`` of the account's available balance as the held lock ``part_id``,
    and take as many off the queued request ``lock_id`` (which stays queued for the
    rest): the seller's delivery of one part of a failing trade. The engine sends it
    only when the units are available and the request is queued for more."""

    lock_id: str
    part_id: str
    trade_id: str
    account: str
    units: int


@dataclass(frozen=True, slots=True)
class ReserveCmd:
    """Lock ``units`` more of ``asset`` under the reservation ``lock_id`` (made or
    grown), never queued: the engine checked they are available."""

    lock_id: str
    account: str
    asset: str
    units: int


@dataclass(frozen=True, slots=True)
class TransferCmd:
    """``units`` of the held reservation ``lock_id`` become the trade's held lock
    ``to_lock``: a fill's assets, locked from the instant it matched."""

    lock_id: str
    to_lock: str
    account: str
    units: int


#: What the ledger says about a lock.
ReplyKind = Literal["granted", "queued", "refused", "posted", "voided"]


@dataclass(frozen=True, slots=True)
class Reply:
    """The ledger's answer about one lock, to the trade's saga."""

    trade_id: str
    lock_id: str
    #: ``refused``: the account holds LOCKS_OPEN_MAX locks and requests already.
    what: ReplyKind


#: What the saga asks of an account.
Command = LockCmd | PostCmd | VoidCmd | SplitCmd
#: Everything an account step applies.
LedgerCommand = Move | LockCmd | PostCmd | VoidCmd | SplitCmd | ReserveCmd | TransferCmd
