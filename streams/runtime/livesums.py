"""Running sums of the ``accounts`` and ``sagas`` tables, kept on every write.

A ``/metrics`` scrape used to sum every account and saga on the event loop (8.7 µs
an account on this 2-core machine: 8.7 s at 1,000,000 accounts) while nothing else
of the worker ran (docs/security.md, M4). Now the ledger adds each command's postings
to a :class:`LiveSums`, the sagas' writes go through :class:`SummedTable` (which moves
a row's old contribution out and its new one in), and a scrape reads the sums:
O(assets).

At each rebalance the tables are emptied and restored from their changelogs without
going through the agents; :meth:`LiveSums.rebuild` then sums them once, when the
first scrape after the recovery asks (``KessaiRecovery.tables_whole`` tells it).

The ledger does not go through :class:`SummedTable`: decoding an account's old and
new rows cost 17 µs a write; it hands over the postings it computed anyway
(:meth:`LiveSums.apply`, well under a µs). Saga rows are dicts already.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sortedcontainers import SortedList

from streams.ledger.domain import AccountState, Posting

V = TypeVar("V")


@dataclass
class LiveSums:
    """Balances, locks and open trades over one worker's rows, in smallest units."""

    available: Counter[str] = field(default_factory=Counter)
    locked: Counter[str] = field(default_factory=Counter)
    open_locks: int = 0
    #: (stage, pending reason or "") -> open trades.
    open_trades: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: When each open trade arrived (epoch seconds), sorted: the oldest is the first.
    arrived: SortedList = field(default_factory=SortedList)
    #: ``KessaiRecovery.tables_whole`` when the sums were last rebuilt (-1: never).
    built_at: int = -1

    def apply(self, postings: Iterable[Posting], locks_delta: int) -> None:
        """Add one ledger command's balance changes (its ``ledger-events``, in units)."""
        for p in postings:
            self.available[p.asset] += p.delta_available
            self.locked[p.asset] += p.delta_locked
        self.open_locks += locks_delta

    def account(self, raw: bytes | None, sign: int) -> None:
        """Add (``sign`` 1) or take out (-1) one ``accounts`` row."""
        if not raw:
            return
        state = AccountState.from_bytes(raw)
        for asset, (available, locked) in state.balances.items():
            self.available[asset] += sign * available
            self.locked[asset] += sign * locked
        self.open_locks += sign * len(state.locks)

    def saga(self, raw: Mapping[str, Any] | None, sign: int) -> None:
        """Add (``sign`` 1) or take out (-1) one ``sagas`` row."""
        if not raw:
            return
        # The pending reason stays on the saga after its leg is granted: it only
        # explains a wait while a leg is still queued.
        waiting = "queued" in (raw.get("bonds"), raw.get("cash"))
        reason = str(raw.get("pending_reason") or "") if waiting else ""
        self.open_trades[(str(raw.get("stage", "")), reason)] += sign
        arrived = float((raw.get("trade") or {}).get("arrived_s") or 0.0)
        if arrived > 0:
            if sign > 0:
                self.arrived.add(arrived)
            else:
                self.arrived.discard(arrived)

    def rebuild(self, accounts: Mapping[str, bytes], sagas: Mapping[str, Any], at: int) -> None:
        """Sum every row again (after a restore, which writes around the agents)."""
        fresh = LiveSums(built_at=at)
        for raw in list(accounts.values()):
            fresh.account(raw, 1)
        for raw in list(sagas.values()):
            fresh.saga(raw, 1)
        self.__dict__.update(fresh.__dict__)

    @property
    def oldest_arrived_s(self) -> float | None:
        return self.arrived[0] if self.arrived else None


class SummedTable(MutableMapping[str, V], Generic[V]):
    """A table (any mutable mapping) whose writes keep ``on_row`` told: the old row
    with -1, the new one with +1. Reads go straight to the table."""

    def __init__(self, table: MutableMapping[str, V], on_row: Callable[[V | None, int], None]):
        self.table = table
        self._on_row = on_row

    def __getitem__(self, key: str) -> V:
        return self.table[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.table

    def __setitem__(self, key: str, value: V) -> None:
        self._on_row(self.table.get(key), -1)
        self._on_row(value, 1)
        self.table[key] = value

    def __delitem__(self, key: str) -> None:
        self._on_row(self.table.get(key), -1)
        del self.table[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def items(self) -> Any:
        return self.table.items()

    def values(self) -> Any:
        return self.table.values()
