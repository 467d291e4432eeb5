"""The ledger's HTTP query: ``GET /positions/{account}`` from the live ``accounts`` table.

Served by every worker on its web port (``KESSAI_WEB_PORT``), from the table in its
memory, the same state its agents read and write. JSON; amounts as decimal strings:

    {"account": "alice", "seq": 4, "hash": "...",
     "balances": {"JPYC": {"available": "100488", "locked": "0"}, ...},
     "locks": 0, "queued": 0}

404 for an account this worker holds no state for (never funded, or on a partition
another worker owns: with several workers, ask each), 400 for a malformed id.
``kessai replay --worker URL`` compares it with the re-derived state.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from streams.ledger import domain as core
from streams.ledger.documents import position_document
from streams.runtime.web.ids import bad_id


def register(app: faust.App, accounts: Any, tokens: dict[str, int]) -> None:
    """Serve ``GET /positions/{account}`` on ``app`` from the ``accounts`` table."""

    @app.page("/positions/{account}")
    async def positions(web: View, request: Request, account: str) -> Response:
        if (refused := bad_id(web, "an account id", account)) is not None:
            return refused
        raw = accounts.get(account)
        if not raw:
            return web.json({"error": f"no account {account!r} on this worker"}, status=404)
        state = core.AccountState.from_bytes(raw)
        return web.json(position_document(account, state, tokens))
