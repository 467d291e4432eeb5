"""The engine's HTTP queries, from its memory: ``GET /positions/{account}`` and
``GET /trades/{trade_id}``.

Served by every worker on its web port; only the worker that runs the engine holds the
state, and the others answer 503 with ``{"error": ..., "engine": "standby"}`` (ask
another worker). JSON, amounts as decimal strings.

``/positions/{account}``::

    {"account": "alice", "seq": 4, "hash": "...",
     "balances": {"JPYC": {"available": "100488", "locked": "0"}, ...},
     "locks": 0, "queued": 0}

``/trades/{trade_id}``: the trade, its stage (``bonds``, ``cash``, ``posting``, then
``settled`` or ``failed``), its reason, and each leg's lock with its state (``none``,
``queued``, ``locked``, ``posted``, ``voided``)::

    {"trade_id": "t1", "stage": "cash", "terminal": false, "reason": null,
     "trade": {"isin": "JP1103551006", "buyer": "alice", "seller": "bob",
               "quantity": 100000, "currency": "JPYC", "cash_amount": "100488"},
     "locks": {"bonds": {"lock_id": "t1/bonds", "account": "bob", "asset": "JP1103551006",
                         "amount": "100000", "state": "locked"},
               "cash":  {"lock_id": "t1/cash", "account": "alice", "asset": "JPYC",
                         "amount": "100488", "state": "queued"}}}

404 for an account or trade the engine does not know, 400 for a malformed id.
"""

from __future__ import annotations

from typing import Any

import faust
import orjson
from faust.web import Request, Response, View

from streams.engine.archive import ArchiveIndex
from streams.engine.core import Engine, is_used
from streams.engine.service import EngineService
from streams.ledger import domain
from streams.ledger.documents import position_document
from streams.runtime.web.ids import bad_id
from streams.settlement.documents import trade_document
from streams.settlement.messages import Trade

__all__ = ["lookup_trade", "register"]


def lookup_trade(
    engine: Engine,
    trade_id: str,
    tokens: dict[str, int],
    archive: ArchiveIndex | None = None,
) -> dict[str, Any] | None:
    """The document for ``trade_id``: its open saga, or its outcome (in memory, else in
    the ``archive`` once it left the window); None if none."""
    saga = engine.open.get(trade_id)
    if saga is not None:
        legs = {"bonds": saga.bonds, "cash": saga.cash}
        return trade_document(saga.trade, saga.stage, saga.reason, legs, tokens)
    row = engine.finished.get(trade_id)
    if row is None and archive is not None:
        row = archive.get(trade_id)
    if row is None or is_used(row):
        return None
    done = orjson.loads(row)
    legs = {"bonds": done["bonds"], "cash": done["cash"]}
    return trade_document(Trade(**done["trade"]), done["stage"], done["reason"], legs, tokens)


def register(
    app: faust.App,
    service: EngineService,
    tokens: dict[str, int],
    archive: ArchiveIndex | None = None,
) -> None:
    """Serve both queries on ``app`` from ``service``'s engine (and ``archive``)."""

    def standby(web: View) -> Response:
        return web.json(
            {"error": "the settlement engine runs on another worker", "engine": service.state},
            status=503,
        )

    @app.page("/positions/{account}")
    async def positions(web: View, request: Request, account: str) -> Response:
        if (refused := bad_id(web, "an account id", account)) is not None:
            return refused
        if not service.leading:
            return standby(web)
        raw = service.engine.accounts.get(account)
        if not raw:
            return web.json({"error": f"no account {account!r}"}, status=404)
        return web.json(position_document(account, domain.AccountState.from_bytes(raw), tokens))

    @app.page("/trades/{trade_id}")
    async def trades(web: View, request: Request, trade_id: str) -> Response:
        if (refused := bad_id(web, "a trade id", trade_id)) is not None:
            return refused
        if not service.leading:
            return standby(web)
        doc = lookup_trade(service.engine, trade_id, tokens, archive)
        if doc is None:
            return web.json({"error": f"no trade {trade_id!r}"}, status=404)
        return web.json(doc)
