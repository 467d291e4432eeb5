"""The ledger and the settlement saga in one process, routed as the agents route them.

Each key (an account, a trade) has its own FIFO inbox, as a Kafka partition keeps
order per key; which inbox moves next is the caller's choice. Property tests choose
at random to explore interleavings; replay (a later issue) can choose in log order.
No I/O, no clock: time enters as ``tick(now_s)`` records, as it does on Kafka.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from streams.ledger import core as ledger
from streams.settlement import core as saga_core

Key = tuple[Literal["account", "trade"], str]


@dataclass(frozen=True, slots=True)
class Move:
    """A deposit or withdrawal from the bridge (payments) or custodian (custody)."""

    command_id: str
    account: str
    asset: str
    units: int
    kind: Literal["deposit", "withdrawal"]


@dataclass(frozen=True, slots=True)
class Credit:
    cause: str
    account: str
    asset: str
    units: int


@dataclass(frozen=True, slots=True)
class Tick:
    now_s: float


@dataclass
class Engine:
    accounts: dict[str, ledger.AccountState] = field(default_factory=dict)
    applied: set[str] = field(default_factory=set)
    sagas: dict[str, saga_core.Saga] = field(default_factory=dict)
    journal: list[ledger.Posting] = field(default_factory=list)
    statuses: list[saga_core.StatusChanged] = field(default_factory=list)
    rejections: list[tuple[str, str]] = field(default_factory=list)
    inbox: dict[Key, deque[Any]] = field(default_factory=dict)

    # -- inputs --------------------------------------------------------------------

    def submit_move(self, move: Move) -> None:
        self._send(("account", move.account), move)

    def submit_trade(self, trade: saga_core.Trade) -> None:
        self._send(("trade", trade.trade_id), trade)

    def tick(self, now_s: float) -> None:
        for trade_id in self.sagas:
            self._send(("trade", trade_id), Tick(now_s))

    # -- running -------------------------------------------------------------------

    def busy(self) -> list[Key]:
        return [k for k, q in self.inbox.items() if q]

    def run(self, choose: Callable[[list[Key]], Key] = lambda keys: keys[0]) -> None:
        while keys := self.busy():
            self.step(choose(keys))

    def step(self, key: Key) -> None:
        message = self.inbox[key].popleft()
        if key[0] == "account":
            self._on_account(key[1], message)
        else:
            self._on_trade(key[1], message)

    def _send(self, key: Key, message: Any) -> None:
        self.inbox.setdefault(key, deque()).append(message)

    # -- the ledger agent ----------------------------------------------------------

    def _state(self, account: str) -> ledger.AccountState:
        return self.accounts.get(account) or ledger.AccountState()

    def _commit(self, account: str, state: ledger.AccountState, postings: list[Any]) -> None:
        self.accounts[account] = state
        self.journal.extend(postings)

    def _reply(self, lock: str, what: Literal["granted", "queued", "posted", "voided"]) -> None:
        trade_id = lock.rsplit("/", 1)[0]
        self._send(("trade", trade_id), saga_core.Reply(trade_id, lock, what))

    def _grant(self, account: str) -> None:
        for granted in ledger.grant_waiting(self._state(account), account=account):
            self._commit(account, granted.state, granted.postings)
            self._reply(granted.lock_id, "granted")

    def _on_account(self, account: str, m: Any) -> None:
        state = self._state(account)
        if isinstance(m, Move):
            result = ledger.move_units(
                state,
                command_id=m.command_id,
                account=account,
                asset=m.asset,
                units=m.units,
                kind=m.kind,
                duplicate=m.command_id in self.applied,
            )
            if isinstance(result, ledger.LedgerRejection):
                self.rejections.append((m.command_id, result.reason))
                return
            self.applied.add(m.command_id)
            self._commit(account, *result)
            self._grant(account)
        elif isinstance(m, Credit):
            if m.cause in self.applied:
                return
            self.applied.add(m.cause)
            self._commit(
                account,
                *ledger.credit(state, cause=m.cause, account=account, asset=m.asset, units=m.units),
            )
            self._grant(account)
        elif isinstance(m, saga_core.LockCmd):
            r = ledger.request_lock(
                state, lock_id=m.lock_id, account=account, asset=m.asset, units=m.units
            )
            if isinstance(r, ledger.Locked):
                self._commit(account, r.state, r.postings)
                self._reply(m.lock_id, "granted")
            elif isinstance(r, ledger.Queued):
                self.accounts[account] = r.state
                self._reply(m.lock_id, "queued")
        elif isinstance(m, saga_core.PostCmd):
            res = ledger.post_lock(state, lock_id=m.lock_id, account=account)
            if res.outcome == "posted":
                self._commit(account, res.state, res.postings)
                self._send(
                    ("account", m.to_account),
                    Credit(f"credit:{m.lock_id}", m.to_account, res.asset, res.units),
                )
                self._reply(m.lock_id, "posted")
        else:
            assert isinstance(m, saga_core.VoidCmd), m
            res = ledger.void_lock(state, lock_id=m.lock_id, account=account)
            self._commit(account, res.state, res.postings)
            self._reply(m.lock_id, "voided")
            if res.outcome == "voided":
                self._grant(account)

    # -- the settlement agent ------------------------------------------------------

    def _on_trade(self, trade_id: str, m: Any) -> None:
        if isinstance(m, saga_core.Trade):
            if trade_id in self.sagas:
                self.rejections.append((trade_id, "duplicate"))
                return
            saga, commands, statuses = saga_core.start(m)
        else:
            saga = self.sagas[trade_id]
            if isinstance(m, Tick):
                saga, commands, statuses = saga_core.on_deadline(saga, m.now_s)
            else:
                saga, commands, statuses = saga_core.on_reply(saga, m)
        self.sagas[trade_id] = saga
        self.statuses.extend(statuses)
        for command in commands:
            self._send(("account", command.account), command)

    # -- views ---------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """available + locked per asset over all accounts."""
        out: dict[str, int] = {}
        for state in self.accounts.values():
            for asset, (available, locked) in state.balances.items():
                out[asset] = out.get(asset, 0) + available + locked
        return out
