"""What travels to and from the ledger on kessai's internal topics. Pure.

The ledger reads one topic, ``kessai-ledger-commands`` (key: account), and every
record on it is a :data:`LedgerCommand`:

- :class:`Move`: a deposit or withdrawal, forwarded by the intake from ``payments``
  or ``custody``;
- :class:`LockCmd`, :class:`PostCmd`, :class:`VoidCmd`: a two-phase lock and its
  resolution, sent by the settlement saga for one leg of a trade;
- :class:`Credit`: units posted from a counterparty's lock (only from a
  :class:`PostCmd` without its receiving half, see there).

It answers each lock command with a :class:`Reply` to the trade's saga (key: trade id).

A lock's id is ``{trade_id}/{leg}`` (:func:`lock_id`): the trade it serves and which of
its two legs, so that a reply finds its saga and a post can name the other leg.

Class and field names are the wire format (:mod:`streams.wire`): renaming one changes
what is on the topics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from schemas import Source

__all__ = [
    "LEDGER_COMMAND_TYPES",
    "Credit",
    "LedgerCommand",
    "Leg",
    "LockCmd",
    "Move",
    "PostCmd",
    "Reply",
    "Route",
    "VoidCmd",
    "leg_of",
    "lock_id",
]

Leg = Literal["bonds", "cash"]
#: Where a message goes: to an account's ledger partition, or to a trade's saga.
Route = tuple[Literal["account", "trade"], str]


def lock_id(trade_id: str, leg: Leg) -> str:
    """The id of ``trade_id``'s lock on ``leg``: ``t1/bonds``."""
    return f"{trade_id}/{leg}"


def leg_of(lock: str) -> Leg:
    """``t1/bonds`` -> ``bonds``."""
    leg = lock.rsplit("/", 1)[-1]
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


@dataclass(frozen=True, slots=True)
class Credit:
    """Units posted from a counterparty's lock, arriving on the receiver's partition."""

    cause: str
    account: str
    asset: str
    units: int


@dataclass(frozen=True, slots=True)
class LockCmd:
    lock_id: str
    trade_id: str
    account: str
    asset: str
    units: int


@dataclass(frozen=True, slots=True)
class PostCmd:
    """Pay out a lock to ``to_account`` and, in the same step, receive the other leg.

    The receiving half (``receive_asset``/``receive_units``) is the counterparty's
    lock paid out to this account: both PostCmds of a trade leave in one transaction,
    so each account is debited and credited in one ledger step, and no separate credit
    message travels (two commands, two table rows and two records fewer per trade).
    A PostCmd without it (written by workers before that change) sends the credit as
    a :class:`Credit` message (docs/known-limitations.md: compatibility paths).
    """

    lock_id: str
    trade_id: str
    account: str
    to_account: str
    receive_asset: str = ""
    receive_units: int = 0


@dataclass(frozen=True, slots=True)
class VoidCmd:
    lock_id: str
    trade_id: str
    account: str


#: What the ledger says about a lock.
ReplyKind = Literal["granted", "queued", "refused", "posted", "voided"]


@dataclass(frozen=True, slots=True)
class Reply:
    """The ledger's answer about one lock, to the trade's saga."""

    trade_id: str
    lock_id: str
    #: ``refused``: the account holds LOCKS_OPEN_MAX locks and requests already.
    what: ReplyKind


#: What the saga sends the ledger.
Command = LockCmd | PostCmd | VoidCmd
#: Everything on ``kessai-ledger-commands``.
LedgerCommand = Move | Credit | LockCmd | PostCmd | VoidCmd
#: Their classes by wire name (:func:`streams.wire.from_wire`).
LEDGER_COMMAND_TYPES: Final = {
    cls.__name__: cls for cls in (Move, Credit, LockCmd, PostCmd, VoidCmd)
}
