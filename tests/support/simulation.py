"""The ledger and the settlement sagas in one process, through the agents' own handlers.

Every message goes where the agents would send it, encoded and decoded by
:mod:`streams.wire`, and is handled by the same functions the agents and
``kessai replay`` call: :func:`streams.settlement.intake.forward_once` (the trade
intake's duplicate check), :func:`streams.ledger.handler.handle_command` and
:func:`streams.settlement.handler.handle_inbox`, over dicts instead of faust tables. So
the property tests explore exactly what runs in production, under interleavings Kafka
allows.

Each key (an account, a trade) has its own FIFO inbox, as a Kafka partition keeps the
order of one key's records; which inbox moves next is the caller's choice (property
tests choose at random). Clock ticks go to a partition's own inbox, as the ticker
sends one per partition. No I/O, no clock: time enters as ``tick(now_s)``.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from streams import wire
from streams.ledger import domain
from streams.ledger.handler import Ledger, handle_command
from streams.ledger.messages import Credit, Move, Route
from streams.money import to_units
from streams.runtime.livesums import LiveSums, SummedTable
from streams.settlement import saga
from streams.settlement.handler import handle_inbox
from streams.settlement.intake import forward_once
from streams.settlement.messages import Tick, Trade

__all__ = ["PARTITIONS", "Engine", "Entry", "Move"]

#: Partitions of the internal topics, for the ticks and the sagas' partition of record.
PARTITIONS = 4
#: Decimals of the assets the tests use (bonds count whole yen of face value).
DECIMALS = {"JPYC": 0, "USDC": 6}

Key = Route | tuple[Literal["tick"], str]


@dataclass(frozen=True)
class Entry:
    """One ``ledger-events`` record, amounts back in units."""

    account: str
    asset: str
    delta_available: int
    delta_locked: int
    available: int
    locked: int
    seq: int
    prev_hash: str
    hash: str


def partition_of(trade_id: str) -> int:
    return zlib.crc32(trade_id.encode()) % PARTITIONS


def _units(text: str, asset: str) -> int:
    units = to_units(Decimal(text), DECIMALS.get(asset, 0))
    assert units is not None, text
    return units


@dataclass
class Engine:
    #: The metrics' running sums, kept by every write to ``accounts`` and ``sagas`` as
    #: the agents keep them (streams/runtime/livesums.py).
    live: LiveSums = field(default_factory=LiveSums)
    #: The ledger's three tables and the sagas' three, as the handlers keep them.
    ledger: Ledger = field(default_factory=lambda: Ledger({}, {}, {}))
    sagas: MutableMapping[str, Any] = field(default_factory=dict)
    outcomes: dict[str, Any] = field(default_factory=dict)
    seen: dict[str, bool] = field(default_factory=dict)
    journal: list[Entry] = field(default_factory=list)
    statuses: list[saga.StatusChanged] = field(default_factory=list)
    rejections: list[tuple[str, str]] = field(default_factory=list)
    #: Moves and credits that changed balances (a refused move's id is used up in the
    #: ledger's ``applied`` too, but moved nothing).
    moved: set[str] = field(default_factory=set)
    inbox: dict[Key, deque[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Saga writes keep the running sums, as the settlement agent's do.
        self.sagas = SummedTable(self.sagas, self.live.saga)

    # -- inputs --------------------------------------------------------------------

    def submit_move(self, move: Move) -> None:
        self._send(("account", move.account), move)

    def submit_trade(self, trade: Trade) -> None:
        """What the trade intake forwards (or rejects as a duplicate)."""
        forwarded = forward_once(self.seen, trade)
        if isinstance(forwarded, tuple):
            self.rejections.append((trade.trade_id, forwarded[0]))
            return
        self._send(("trade", trade.trade_id), forwarded)

    def tick(self, now_s: float) -> None:
        for p in range(PARTITIONS):
            self._send(("tick", str(p)), Tick(now_s))

    # -- running -------------------------------------------------------------------

    def busy(self) -> list[Key]:
        return [k for k, q in self.inbox.items() if q]

    def run(self, choose: Callable[[list[Key]], Key] = lambda keys: keys[0]) -> None:
        while keys := self.busy():
            self.step(choose(keys))

    def step(self, key: Key) -> None:
        raw = self.inbox[key].popleft()
        if key[0] == "account":
            self._on_command(raw)
        elif key[0] == "trade":
            self._on_inbox(partition_of(key[1]), raw)
        else:
            self._on_inbox(int(key[1]), raw)

    def _send(self, key: Key, message: Any) -> None:
        self.inbox.setdefault(key, deque()).append(wire.to_wire(message))

    # -- what the agents do -------------------------------------------------------

    def _on_command(self, raw: bytes) -> None:
        command = wire.ledger_command(raw)
        out = handle_command(self.ledger, 0, command, lambda asset: DECIMALS.get(asset, 0))
        self.live.apply(out.postings, out.locks_delta)
        if out.refused:
            self.rejections.append((getattr(command, "command_id", ""), "refused"))
        elif isinstance(command, Move | Credit):
            self.moved.add(command.command_id if isinstance(command, Move) else command.cause)
        for r in out.records:
            asset = r["asset"]
            self.journal.append(
                Entry(
                    account=r["account"],
                    asset=asset,
                    delta_available=_units(r["delta_available"], asset),
                    delta_locked=_units(r["delta_locked"], asset),
                    available=_units(r["available"], asset),
                    locked=_units(r["locked"], asset),
                    seq=r["seq"],
                    prev_hash=r["prev_hash"],
                    hash=r["hash"],
                )
            )
        for route, sent in out.sends:
            self._send(route, sent)

    def _on_inbox(self, partition: int, raw: bytes) -> None:
        out = handle_inbox(self.sagas, partition, wire.inbox_message(raw), self.outcomes)
        if out.repeated is not None:
            self.rejections.append((out.repeated, "repeated_trade"))
        self.statuses.extend(status for _, status in out.statuses)
        for command in out.commands:
            self._send(("account", command.account), command)

    # -- views ---------------------------------------------------------------------

    @property
    def accounts(self) -> dict[str, domain.AccountState]:
        """Every account's state, decoded from the table's bytes."""
        return {a: domain.AccountState.from_bytes(raw) for a, raw in self.ledger.accounts.items()}

    @property
    def applied(self) -> set[str]:
        """Ids of the moves and credits that changed balances."""
        return set(self.moved)

    def totals(self) -> dict[str, int]:
        """available + locked per asset over all accounts."""
        out: dict[str, int] = {}
        for state in self.accounts.values():
            for asset, (available, locked) in state.balances.items():
                out[asset] = out.get(asset, 0) + available + locked
        return out
