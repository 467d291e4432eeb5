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
from typing import Any, Literal

import orjson

from streams.money import BALANCE_UNITS_MAX

#: Open locks plus queued lock requests one account may have.
LOCKS_OPEN_MAX = 10_000
#: orjson writes integers up to 64 bits only (and reads larger ones as floats).
_INT64_MAX = 2**63 - 1

RejectReason = Literal[
    "duplicate", "unknown_token", "invalid_amount", "insufficient_funds", "too_many_locks"
]


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
    """Everything the ledger knows about one account. Stored whole per key.

    Its size is bounded by the account's open locks and queued lock requests
    (``LOCKS_OPEN_MAX``), not by its history.
    """

    seq: int = 0
    #: asset -> [available, locked], smallest units.
    balances: dict[str, list[int]] = field(default_factory=dict)
    #: Held locks: lock id -> [asset, units]. Their sum per asset is ``locked``.
    locks: dict[str, list[Any]] = field(default_factory=dict)
    #: Lock requests waiting for funds, oldest first: [lock id, asset, units], and a
    #: fourth item, its priority (the trade's settlement date), when it has one.
    waiting: list[list[Any]] = field(default_factory=list)
    #: The ``hash`` of the account's last ``ledger-events`` record ("": none yet), the
    #: tip its next record chains to (:mod:`streams.ledger.journal`). The functions of
    #: this module leave it ""; :func:`streams.ledger.journal.chain` sets it.
    hash: str = ""

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "seq": self.seq,
            "balances": self.balances,
            "locks": self.locks,
            "waiting": self.waiting,
        }
        if self.hash:
            out["hash"] = self.hash
        return out

    def to_bytes(self) -> bytes:
        """The compact JSON of :meth:`to_json` (what the ``accounts`` table holds).

        Copied to a right-sized object: orjson's own result keeps a ~4 KiB buffer,
        which the table would hold for every account written (4.1 KB each at a
        million accounts: docs/adr/0003-table-rows-as-bytes.md). A balance past 64 bits
        is written as a decimal string (orjson cannot write it, and would read it
        back as a float); :meth:`from_json` reads either.
        """
        try:
            return memoryview(orjson.dumps(self.to_json())).tobytes()
        except TypeError:
            data = self.to_json()
            data["balances"] = {
                asset: [str(v) if abs(v) > _INT64_MAX else v for v in pair]
                for asset, pair in self.balances.items()
            }
            return orjson.dumps(data)

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> AccountState:
        """The state of :meth:`to_bytes` (or any JSON of :meth:`to_json`); empty: new."""
        return cls.from_json(orjson.loads(raw)) if raw else cls()

    @classmethod
    def from_json(cls, raw: dict[str, object] | None) -> AccountState:
        if not raw:
            return cls()
        balances = raw.get("balances") or {}
        assert isinstance(balances, dict)
        seq = raw.get("seq", 0)
        assert isinstance(seq, int)
        locks = raw.get("locks") or {}
        waiting = raw.get("waiting") or []
        tip = raw.get("hash", "")
        assert isinstance(locks, dict) and isinstance(waiting, list) and isinstance(tip, str)
        return cls(
            seq=seq,
            hash=tip,
            balances={k: [int(v[0]), int(v[1])] for k, v in balances.items()},
            locks={k: [str(v[0]), int(v[1])] for k, v in locks.items()},
            waiting=[[str(w[0]), str(w[1]), int(w[2]), *map(str, w[3:4])] for w in waiting],
        )


def move_units(
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
    available = state.balances.get(asset, [0, 0])[0]
    delta = units if kind == "deposit" else -units
    if available + delta > BALANCE_UNITS_MAX:
        return LedgerRejection(
            "invalid_amount",
            f"deposit of {units} units of {asset} would take the balance past "
            f"{BALANCE_UNITS_MAX} units",
        )
    if available + delta < 0:
        return LedgerRejection(
            "insufficient_funds",
            f"withdrawal of {units} units of {asset} exceeds available {available}",
        )
    new_state, posting = _change(state, account, asset, delta, 0, command_id)
    return new_state, [posting]


# -- two-phase locks (TigerBeetle's pending transfers) ----------------------------------
#
# A lock moves units from available to locked under a client-chosen id. It then
# resolves exactly once: *post* (the units leave the account; the caller credits
# them to the counterparty) or *void* (they return to available). A request that
# does not fit waits in the account's queue until funds arrive. Two policies:
#
# - *any fit* (``any_fit=True``; issue 21, market practice: T2S recycling): a request
#   that fits is granted at once, and arriving funds grant the waiting requests in
#   priority order (settlement date, then arrival), skipping those that do not fit.
#   A seller holding 100,000 with a 200,000 sale waiting delivers a later 50,000 sale
#   at once. Large requests are kept from starving by partial settlement.
# - *strict FIFO* per asset (the batches written before issue 21, which a replay
#   repeats): a request waits if anyone waits for the asset before it, and granting
#   stops at the first that does not fit -- one oversized request blocks the rest.


@dataclass(frozen=True, slots=True)
class Locked:
    lock_id: str
    state: AccountState
    postings: list[Posting]


@dataclass(frozen=True, slots=True)
class Queued:
    lock_id: str
    state: AccountState


def _change(
    state: AccountState, account: str, asset: str, d_avail: int, d_locked: int, cause: str
) -> tuple[AccountState, Posting]:
    available, locked = state.balances.get(asset, [0, 0])
    new_available, new_locked = available + d_avail, locked + d_locked
    assert new_available >= 0 and new_locked >= 0, (account, asset, new_available, new_locked)
    new_state = AccountState(
        seq=state.seq + 1,
        balances={**state.balances, asset: [new_available, new_locked]},
        locks=state.locks,
        waiting=state.waiting,
    )
    posting = Posting(
        account=account,
        asset=asset,
        delta_available=d_avail,
        delta_locked=d_locked,
        available=new_available,
        locked=new_locked,
        cause=cause,
        seq=new_state.seq,
    )
    return new_state, posting


def request_lock(
    state: AccountState,
    *,
    lock_id: str,
    account: str,
    asset: str,
    units: int,
    any_fit: bool = False,
    priority: str = "",
) -> Locked | Queued | LedgerRejection:
    """Lock ``units`` of ``asset`` now if they are available (and, under strict FIFO,
    nobody waits before); otherwise queue the request, with its ``priority``."""
    assert units > 0, units
    if lock_id in state.locks or any(w[0] == lock_id for w in state.waiting):
        return LedgerRejection("duplicate", f"lock {lock_id} already exists on {account}")
    if len(state.locks) + len(state.waiting) >= LOCKS_OPEN_MAX:
        return LedgerRejection("too_many_locks", f"{account} has {LOCKS_OPEN_MAX} open locks")
    available = state.balances.get(asset, [0, 0])[0]
    ahead = not any_fit and any(w[1] == asset for w in state.waiting)
    if available >= units and not ahead:
        new_state, posting = _change(state, account, asset, -units, +units, lock_id)
        new_state.locks = {**state.locks, lock_id: [asset, units]}
        return Locked(lock_id, new_state, [posting])
    queued = AccountState(
        seq=state.seq,
        balances=state.balances,
        locks=state.locks,
        waiting=[
            *state.waiting,
            [lock_id, asset, units, *([priority] if any_fit and priority else [])],
        ],
    )
    return Queued(lock_id, queued)


def grant_waiting(state: AccountState, *, account: str, any_fit: bool = False) -> list[Locked]:
    """Grant queued requests while funds allow: under ``any_fit`` each that fits, in
    priority order (its priority, then arrival); else oldest first per asset, stopping
    at the first that does not fit.

    Returns one :class:`Locked` per grant, each carrying the state after it; the
    last one's state is the account's new state.
    """
    granted: list[Locked] = []
    blocked: set[str] = set()
    current = state
    order = state.waiting
    if any_fit:
        order = sorted(state.waiting, key=lambda w: w[3] if len(w) > 3 else "")  # stable
    for lock_id, asset, units, *_ in order:
        if asset in blocked:
            continue
        if current.balances.get(asset, [0, 0])[0] < units:
            if not any_fit:
                blocked.add(asset)  # strict FIFO per asset: nobody overtakes it
            continue
        new_state, posting = _change(current, account, asset, -units, +units, lock_id)
        new_state.locks = {**current.locks, lock_id: [asset, units]}
        new_state.waiting = [w for w in current.waiting if w[0] != lock_id]
        current = new_state
        granted.append(Locked(lock_id, new_state, [posting]))
    return granted


def split_request(
    state: AccountState, *, lock_id: str, part_id: str, account: str, units: int
) -> Locked:
    """Lock ``units`` of the asset the queued request ``lock_id`` waits for as the new
    lock ``part_id``, and lower the request by as many (a partial delivery). The caller
    checked that the units are available and that the request is queued for more."""
    [entry] = [w for w in state.waiting if w[0] == lock_id]
    asset = entry[1]
    assert 0 < units < entry[2], (lock_id, units, entry)
    assert part_id not in state.locks, part_id
    new_state, posting = _change(state, account, asset, -units, +units, part_id)
    new_state.locks = {**state.locks, part_id: [asset, units]}
    new_state.waiting = [
        [w[0], w[1], w[2] - units, *w[3:]] if w[0] == lock_id else w for w in state.waiting
    ]
    return Locked(part_id, new_state, [posting])


# -- reservations at order entry (issue 21) ---------------------------------------------
#
# An order reserves what its fills may need: the buyer's cash, the seller's bonds. A
# reservation is a held lock that never queues (the caller checked the units are
# available; else the order is refused), that may grow (a resting buy topped up when a
# fill costs more than it holds), and whose units pass to a trade's own locks as it
# fills (:func:`transfer_lock`): nothing moves between available and locked then, so
# a matched trade holds its assets from its first instant. What is left is voided
# when the order ends.


def reserve(state: AccountState, *, lock_id: str, account: str, asset: str, units: int) -> Locked:
    """Lock ``units`` more of ``asset`` under ``lock_id`` (made, or grown): never
    queued. The caller checked that the units are available (and the lock limit)."""
    assert units > 0, units
    held = state.locks.get(lock_id)
    assert held is None or held[0] == asset, (lock_id, held, asset)
    new_state, posting = _change(state, account, asset, -units, +units, lock_id)
    new_state.locks = {**state.locks, lock_id: [asset, units + (0 if held is None else held[1])]}
    return Locked(lock_id, new_state, [posting])


def transfer_lock(state: AccountState, *, lock_id: str, to_lock: str, units: int) -> AccountState:
    """``units`` of the held lock ``lock_id`` become the new held lock ``to_lock`` (a
    fill takes them from its order's reservation). No balance changes: no posting."""
    asset, held = state.locks[lock_id]
    assert 0 < units <= held and to_lock not in state.locks, (lock_id, held, units, to_lock)
    locks = {k: v for k, v in state.locks.items() if k != lock_id}
    if units < held:
        locks[lock_id] = [asset, held - units]
    locks[to_lock] = [asset, units]
    return AccountState(
        seq=state.seq, balances=state.balances, locks=locks, waiting=state.waiting, hash=state.hash
    )


@dataclass(frozen=True, slots=True)
class Resolved:
    """A lock posted or voided (or a queued request withdrawn)."""

    lock_id: str
    state: AccountState
    postings: list[Posting]
    asset: str
    units: int
    #: "posted", "voided", "unqueued" (was only waiting) or "unknown" (nothing to do).
    outcome: Literal["posted", "voided", "unqueued", "unknown"]


def post_lock(state: AccountState, *, lock_id: str, account: str) -> Resolved:
    """Finalize a held lock: its units leave ``account`` (credit them elsewhere)."""
    held = state.locks.get(lock_id)
    if held is None:
        return Resolved(lock_id, state, [], "", 0, "unknown")
    asset, units = held
    new_state, posting = _change(state, account, asset, 0, -units, lock_id)
    new_state.locks = {k: v for k, v in state.locks.items() if k != lock_id}
    return Resolved(lock_id, new_state, [posting], asset, units, "posted")


def void_lock(state: AccountState, *, lock_id: str, account: str) -> Resolved:
    """Release a held lock, or withdraw the request if it is still queued."""
    held = state.locks.get(lock_id)
    if held is not None:
        asset, units = held
        new_state, posting = _change(state, account, asset, +units, -units, lock_id)
        new_state.locks = {k: v for k, v in state.locks.items() if k != lock_id}
        return Resolved(lock_id, new_state, [posting], asset, units, "voided")
    for w in state.waiting:
        if w[0] == lock_id:
            unqueued = AccountState(
                seq=state.seq,
                balances=state.balances,
                locks=state.locks,
                waiting=[x for x in state.waiting if x[0] != lock_id],
            )
            return Resolved(lock_id, unqueued, [], w[1], w[2], "unqueued")
    return Resolved(lock_id, state, [], "", 0, "unknown")


def credit(
    state: AccountState, *, cause: str, account: str, asset: str, units: int
) -> tuple[AccountState, list[Posting]]:
    """Receive ``units`` posted from a counterparty's lock."""
    assert units > 0, units
    new_state, posting = _change(state, account, asset, +units, 0, cause)
    return new_state, [posting]
