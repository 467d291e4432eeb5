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
from typing import Any

from streams.ledger import domain as ledger
from streams.settlement import saga as saga_core
from streams.settlement import steps
from streams.settlement.steps import Key, Move, Tick

__all__ = ["Engine", "Key", "Move", "Tick"]


@dataclass
class Engine:
    accounts: dict[str, ledger.AccountState] = field(default_factory=dict)
    applied: set[str] = field(default_factory=set)
    sagas: dict[str, saga_core.Saga] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
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

    # -- what the agents do -------------------------------------------------------

    def _on_account(self, account: str, m: Any) -> None:
        command_id = m.command_id if isinstance(m, Move) else getattr(m, "cause", None)
        fx = steps.account_step(
            self.accounts.get(account) or ledger.AccountState(),
            account,
            m,
            already_applied=command_id in self.applied,
        )
        if fx.rejection is not None:
            self.rejections.append(
                (getattr(m, "command_id", getattr(m, "lock_id", "")), fx.rejection.reason)
            )
        self.accounts[account] = fx.state
        self.journal.extend(fx.postings)
        self.applied.update(fx.applied)
        for key, message in fx.sends:
            self._send(key, message)

    def _on_trade(self, trade_id: str, m: Any) -> None:
        fx = steps.trade_step(self.sagas.get(trade_id), m, seen=trade_id in self.seen)
        if fx.duplicate:
            self.rejections.append((trade_id, "duplicate"))
            return
        if isinstance(m, saga_core.Trade):
            self.seen.add(trade_id)
        if fx.saga is not None:
            self.sagas[trade_id] = fx.saga
        self.statuses.extend(fx.statuses)
        for key, message in fx.sends:
            self._send(key, message)

    # -- views ---------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """available + locked per asset over all accounts."""
        out: dict[str, int] = {}
        for state in self.accounts.values():
            for asset, (available, locked) in state.balances.items():
                out[asset] = out.get(asset, 0) + available + locked
        return out
