"""One message on one trade's saga, and the row a finished trade leaves. Pure.

:func:`trade_step` starts a saga for a new trade or moves it on with a reply from an
account; the engine (:mod:`streams.engine.core`) routes both. When a trade is terminal
its saga goes, and its *outcome* (:func:`outcome_json`: the trade, its final stage and
reason, each leg's last state) stays in the engine's trade rows, for
``GET /trades/{trade_id}`` and against a second copy of the trade id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.ledger.messages import Command, Reply
from streams.settlement import saga as core
from streams.settlement.messages import Trade

__all__ = ["TradeEffects", "outcome_json", "trade_json", "trade_step"]


@dataclass
class TradeEffects:
    saga: core.Saga
    commands: list[Command] = field(default_factory=list)
    statuses: list[core.StatusChanged] = field(default_factory=list)


def trade_step(saga: core.Saga | None, m: Trade | Reply, *, recycle: bool = False) -> TradeEffects:
    """A new trade (``saga`` None; ``recycle``: its mode), or a reply on its open saga."""
    if isinstance(m, Trade):
        new, commands, statuses = core.start(m, recycle=recycle)
    else:
        assert saga is not None, m
        new, commands, statuses = core.on_reply(saga, m)
    return TradeEffects(new, commands, statuses)


def trade_json(trade: Trade) -> dict[str, Any]:
    """``dataclasses.asdict(trade)``, a field at a time (a tenth of its cost); a
    converted trade's rate too (``GET /trades/{id}`` shows it once finished)."""
    row = {
        "trade_id": trade.trade_id,
        "isin": trade.isin,
        "buyer": trade.buyer,
        "seller": trade.seller,
        "quantity": trade.quantity,
        "currency": trade.currency,
        "cash_units": trade.cash_units,
        "deadline_at_s": trade.deadline_at_s,
        "trade_time_s": trade.trade_time_s,
        "arrived_s": trade.arrived_s,
        "signed": trade.signed,
    }
    if trade.fx_rate:
        row.update(fx_rate=trade.fx_rate, fx_source=trade.fx_source, fx_time=trade.fx_time)
    return row


def outcome_json(saga: core.Saga) -> dict[str, Any]:
    """The row of a terminal saga: the trade, its stage and reason, and each leg's
    final state. A failed (or cancelled) trade's queued or locked legs are ``voided``:
    its end sent their voids in the same step."""
    ended = saga.stage in ("failed", "cancelled")

    def final(leg: str) -> str:
        return "voided" if ended and leg in ("queued", "locked") else leg

    return {
        "trade": trade_json(saga.trade),
        "stage": saga.stage,
        "reason": saga.reason,
        "bonds": final(saga.bonds),
        "cash": final(saga.cash),
    }
