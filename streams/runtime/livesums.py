"""Running sums of the engine's balances, kept on every batch.

A ``/metrics`` scrape used to sum every account on the event loop (8.7 µs an account on
this 2-core machine: 8.7 s at 1,000,000 accounts) while nothing else of the worker ran
(docs/security.md, M4). Now the engine hands each committed batch's balance changes to
a :class:`LiveSums` (:class:`streams.engine.service.EngineService`, right after the
commit), and a scrape reads the sums: O(assets). After each restore the sums are rebuilt
from the restored accounts (:meth:`LiveSums.rebuild_soon`): in the background, a chunk
at a time, while the batches run and add their changes. Summed at once, 1,000,000
accounts held the event loop for 3 s at each takeover (bench 2026-12-04, ADR 0033):
the first settlement waited for it. The sums are not ``ready`` (``/metrics`` shows
none) until the last chunk is in.

The sums are what is *committed*: a batch changes the engine's memory before its
commit and the sums only after it, so a scrape during a commit (the event loop serves
``/metrics`` while the engine waits for the broker) sees the last committed batch's
balances and inflow together. A scrape that rebuilt the sums from memory mid-commit,
as they once did, counted that batch twice once its commit added it again: the
dashboard's conservation tile said "2 off" for ever after (CI, 2026-12-04).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from streams.ledger.domain import AccountState

__all__ = ["LiveSums"]

#: Accounts summed between two yields to the event loop (~3 µs each).
REBUILD_CHUNK: Final = 10_000


@dataclass
class LiveSums:
    """Balances and locks over the engine's accounts, in smallest units."""

    available: Counter[str] = field(default_factory=Counter)
    locked: Counter[str] = field(default_factory=Counter)
    open_locks: int = 0
    #: asset -> deposits minus withdrawals, as committed with the balances above.
    inflow: dict[str, int] = field(default_factory=dict)
    #: False while :meth:`rebuild_soon` sums the accounts: the sums are partial.
    ready: bool = True

    def add(
        self,
        balances: Mapping[str, Iterable[int]],
        locks_delta: int,
        inflow: Mapping[str, int] | None = None,
    ) -> None:
        """Add one batch's changes: asset -> (change in available, change in locked);
        ``inflow``: the engine's inflow after the batch (a few assets: copied)."""
        for asset, (available, locked) in balances.items():
            self.available[asset] += available
            self.locked[asset] += locked
        self.open_locks += locks_delta
        if inflow is not None:
            self.inflow = dict(inflow)

    def account(self, raw: bytes | None, sign: int) -> None:
        """Add (``sign`` 1) or take out (-1) one account's row."""
        if not raw:
            return
        state = AccountState.from_bytes(raw)
        for asset, (available, locked) in state.balances.items():
            self.available[asset] += sign * available
            self.locked[asset] += sign * locked
        self.open_locks += sign * len(state.locks)

    def rebuild(self, accounts: Mapping[str, bytes], inflow: Mapping[str, int]) -> None:
        """Sum every account again (after a restore, which writes around the batches)."""
        for raw in self._restart(accounts, inflow):
            self.account(raw, 1)
        self.ready = True

    def _restart(self, accounts: Mapping[str, bytes], inflow: Mapping[str, int]) -> list[bytes]:
        """Zero the sums, take ``inflow``; the account rows as they are now."""
        self.available, self.locked, self.open_locks = Counter(), Counter(), 0
        self.inflow, self.ready = dict(inflow), False
        return list(accounts.values())

    def rebuild_soon(
        self,
        accounts: Mapping[str, bytes],
        inflow: Mapping[str, int],
        *,
        chunk: int = REBUILD_CHUNK,
    ) -> Coroutine[None, None, None]:
        """:meth:`rebuild`, a chunk at a time: the sums start again from zero now, and
        the coroutine returned (run it as a task) adds the accounts as they are now,
        yielding to the event loop between chunks.

        Account rows are immutable bytes, so the snapshot is a list of references; the
        batches committed meanwhile :meth:`add` their changes to the same counters, so
        the sums are whole when the last chunk is in (they add up). Not ``ready``
        until then."""
        return self._add_rows(self._restart(accounts, inflow), chunk)

    async def _add_rows(self, rows: list[bytes], chunk: int) -> None:
        for start in range(0, len(rows), chunk):
            for raw in rows[start : start + chunk]:
                self.account(raw, 1)
            await asyncio.sleep(0)
        self.ready = True
