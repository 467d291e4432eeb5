"""The worker's dashboard: a static page of its own assets (no CDN), served at ``/``.

``static/dashboard.js`` polls ``/metrics`` (Prometheus' text format, parsed in the
page), ``/health`` and ``/api/settlements/recent`` every :data:`REFRESH_S` seconds,
and draws its charts as SVG by hand (no chart library: three line charts did not
justify vendoring one). :func:`register` wires the routes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import faust
from faust.web import Request, Response, View

#: Where the page's files live (package data).
STATIC: Final = Path(__file__).with_name("static")
#: How often the page refreshes, in seconds (the page reads it from its own markup).
REFRESH_S: Final = 2


def register(app: faust.App, recent: Any) -> None:
    """Serve ``/`` (the page), ``/static/*`` (its script and style) and
    ``/api/settlements/recent`` (the last status records this worker published, newest
    first, from ``recent``: a bounded sequence of JSON-ready dicts)."""
    page = (STATIC / "dashboard.html").read_bytes()

    @app.page("/")
    async def dashboard(web: View, request: Request) -> Response:
        return web.bytes(page, content_type="text/html")

    @app.page("/api/settlements/recent")
    async def recent_settlements(web: View, request: Request) -> Response:
        return web.json(list(reversed(recent)))

    app.web.add_static("/static/", STATIC)
