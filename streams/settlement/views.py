"""The settlement's HTTP query: ``GET /trades/{trade_id}`` from the live tables.

Served by every worker on its web port, from its ``sagas`` table while the trade
settles and from its ``outcomes`` table once it is terminal. JSON:

    {"trade_id": "t1", "stage": "cash", "terminal": false, "reason": null,
     "trade": {"isin": "JP1103551006", "buyer": "alice", "seller": "bob",
               "quantity": 100000, "currency": "JPYC", "cash_amount": "100488"},
     "locks": {"bonds": {"lock_id": "t1/bonds", "account": "bob",
                         "asset": "JP1103551006", "amount": "100000", "state": "locked"},
               "cash":  {"lock_id": "t1/cash", "account": "alice", "asset": "JPYC",
                         "amount": "100488", "state": "queued"}}}

``stage`` is the saga's stage (``bonds``, ``cash``, ``posting``, then ``settled`` or
``failed``); each lock's ``state`` is its leg's (``none``, ``queued``, ``locked``,
``posted``, ``voided``).
404 for a trade this worker has neither settling nor finished (unknown, still in the
inbox, or on a partition another worker owns: with several workers, ask each), 400
for a malformed id.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from streams.runtime.web.ids import bad_id
from streams.settlement.documents import trade_document
from streams.settlement.handler import saga_from_json
from streams.settlement.messages import Trade


def lookup(
    sagas: Any, outcomes: Any, trade_id: str, tokens: dict[str, int]
) -> dict[str, Any] | None:
    """The document for ``trade_id`` from the two tables, or None."""
    raw = sagas.get(trade_id)
    if raw:
        saga, _ = saga_from_json(raw)
        legs = {"bonds": saga.bonds, "cash": saga.cash}
        return trade_document(saga.trade, saga.stage, saga.reason, legs, tokens)
    done = outcomes.get(trade_id)
    if done:
        trade = Trade(**done["trade"])
        legs = {"bonds": done["bonds"], "cash": done["cash"]}
        return trade_document(trade, done["stage"], done["reason"], legs, tokens)
    return None


def register(app: faust.App, sagas: Any, outcomes: Any, tokens: dict[str, int]) -> None:
    """Serve ``GET /trades/{trade_id}`` on ``app``."""

    @app.page("/trades/{trade_id}")
    async def trades(web: View, request: Request, trade_id: str) -> Response:
        if (refused := bad_id(web, "a trade id", trade_id)) is not None:
            return refused
        doc = lookup(sagas, outcomes, trade_id, tokens)
        if doc is None:
            return web.json({"error": f"no trade {trade_id!r} on this worker"}, status=404)
        return web.json(doc)
