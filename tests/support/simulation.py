"""The settlement engine fed decoded moves and trades, in an order the caller chooses.

Every input goes through the engine's own :class:`~streams.engine.core.Batch`, the code
that runs in production and in ``kessai replay``. Inputs wait per key (an account's
moves, a trade id's copies) in FIFO order, as a Kafka partition keeps one key's
records in order; which key's next input goes next is the caller's choice (property
tests choose at random), and a clock tick ends the batch in progress and runs the
deadlines due at its time. No I/O, no wall clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from schemas import LEDGER_EVENTS
from streams.engine.core import Batch, Outputs, Rules, StatusOut
from streams.engine.core import Engine as Core
from streams.ledger import domain
from streams.ledger.messages import Move
from streams.money import to_units
from streams.runtime.livesums import LiveSums
from streams.settlement.messages import Trade

__all__ = ["Engine", "Entry", "Move"]

#: Decimals of the assets the tests use (bonds count whole yen of face value).
DECIMALS = {"JPYC": 0, "USDC": 6}
RULES = Rules(tokens=DECIMALS, deadline_s=3600.0)

Key = tuple[str, str]


@dataclass(frozen=True)
class Entry:
    """One ``ledger-events`` record, amounts back in units."""

    account: str
    asset: str
    delta_available: int
    delta_locked: int
    available: int
    locked: int
    cause: str
    seq: int
    prev_hash: str
    hash: str


def _units(text: str, asset: str) -> int:
    units = to_units(Decimal(text), DECIMALS.get(asset, 0))
    assert units is not None, text
    return units


@dataclass
class Engine:
    core: Core = field(default_factory=Core)
    #: The metrics' running sums, kept from each batch as the worker keeps them.
    live: LiveSums = field(default_factory=LiveSums)
    journal: list[Entry] = field(default_factory=list)
    statuses: list[StatusOut] = field(default_factory=list)
    #: (id, reason) of each rejection.
    rejections: list[tuple[str, str]] = field(default_factory=list)
    inbox: dict[Key, deque[Move | Trade]] = field(default_factory=dict)
    now: float = 0.0
    _batch: Batch | None = None

    # -- inputs --------------------------------------------------------------------

    def submit_move(self, move: Move) -> None:
        self.inbox.setdefault(("account", move.account), deque()).append(move)

    def submit_trade(self, trade: Trade) -> None:
        self.inbox.setdefault(("trade", trade.trade_id), deque()).append(trade)

    def tick(self, now_s: float) -> None:
        """End the batch in progress; run the deadlines due at ``now_s``."""
        self._finish()
        self.now = max(self.now, now_s)
        self._open().expire()
        self._finish()

    # -- running -------------------------------------------------------------------

    def busy(self) -> list[Key]:
        return [k for k, q in self.inbox.items() if q]

    def run(self, choose: Callable[[list[Key]], Key] = lambda keys: keys[0]) -> None:
        while keys := self.busy():
            self.step(choose(keys))
        self._finish()

    def step(self, key: Key) -> None:
        item = self.inbox[key].popleft()
        batch = self._open()
        if isinstance(item, Move):
            batch.move(item)
        elif batch.engine.seen(item.trade_id):
            self.rejections.append((item.trade_id, "duplicate"))
        else:
            batch.start(item)

    def _open(self) -> Batch:
        if self._batch is None:
            self._batch = Batch(self.core, RULES, self.now)
        return self._batch

    def _finish(self) -> None:
        if self._batch is not None:
            self._collect(self._batch.finish())
            self._batch = None

    def _collect(self, out: Outputs) -> None:
        self.live.add(out.balances, out.locks_delta)
        self.statuses.extend(out.statuses)
        self.rejections.extend(("", reason) for _, reason in out.rejected)
        for topic, _, value in out.records:
            if topic != LEDGER_EVENTS:
                continue
            r: dict[str, Any] = orjson.loads(value)
            asset = r["asset"]
            self.journal.append(
                Entry(
                    account=r["account"],
                    asset=asset,
                    delta_available=_units(r["delta_available"], asset),
                    delta_locked=_units(r["delta_locked"], asset),
                    available=_units(r["available"], asset),
                    locked=_units(r["locked"], asset),
                    cause=r["cause"],
                    seq=r["seq"],
                    prev_hash=r["prev_hash"],
                    hash=r["hash"],
                )
            )

    # -- views ---------------------------------------------------------------------

    @property
    def accounts(self) -> dict[str, domain.AccountState]:
        """Every account's state, decoded from the engine's rows."""
        self._finish()
        return {a: domain.AccountState.from_bytes(raw) for a, raw in self.core.accounts.items()}

    @property
    def applied(self) -> set[str]:
        """Ids of the moves that were applied or used up."""
        return set(self.core.applied)

    def totals(self) -> dict[str, int]:
        """available + locked per asset over all accounts."""
        out: dict[str, int] = {}
        for state in self.accounts.values():
            for asset, (available, locked) in state.balances.items():
                out[asset] = out.get(asset, 0) + available + locked
        return out
