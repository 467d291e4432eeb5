"""The kessai worker's faust app: the settlement engine (which matches orders too,
streams/engine/orders.py) wired onto it as a task.

Nothing but wiring lives here (house style: one place per flow). :mod:`streams.runtime.main`
creates the topics and runs it (``kessai worker``, ``make run``).
"""

from __future__ import annotations

import asyncio
import logging

import faust
from faust.web import Request, Response, View

from streams.config import Settings
from streams.engine import agent as engine_agent
from streams.engine.service import EngineService
from streams.kafka.auth import faust_credentials
from streams.runtime.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from streams.runtime.metrics import Metrics, StateCollector, WorkerCollector, health
from streams.runtime.web import dashboard, guard

logger = logging.getLogger(__name__)

#: How often the event-loop lag is probed.
LOOP_LAG_PROBE_S = 0.25


def create_app(settings: Settings) -> faust.App:
    datadir = settings.state_dir / "faust" / settings.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        # SASL/SCRAM over TLS on the secure profile (None: plaintext); faust hands it to
        # every client it makes.
        broker_credentials=faust_credentials(settings),
        # faust reads and writes nothing itself any more: the engine commits its own
        # transactions (docs/adr/0032, 0035). Its consumer only keeps the
        # worker in the app's group (faust's leader topic).
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        # The cluster's (streams.runtime.main resolves it before the app is made).
        topic_replication_factor=settings.replication_factor or 1,
        topic_allow_declare=True,
        # faust makes it even with nothing to keep: under the state dir, not the cwd.
        datadir=str(datadir),
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        # Host check and bearer token (streams/runtime/web/guard.py); faust's own pages
        # showed every table, uncommitted, to anyone who asked.
        web_application_options={"middlewares": [guard.middleware(settings)]},
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
    )
    metrics = Metrics()
    engine = engine_agent.register(app, settings, metrics)
    serve_metrics(app, metrics, settings, engine)
    return app


def serve_metrics(
    app: faust.App,
    metrics: Metrics,
    settings: Settings,
    engine: EngineService,
) -> None:
    """``GET /metrics`` (Prometheus' text format) and ``GET /health``."""
    worker = WorkerCollector(app, engine)
    metrics.registry.register(worker)
    sums = StateCollector(lambda: engine_agent.state_sums(engine), settings.tokens)
    metrics.registry.register(sums)
    dashboard.register(app, metrics.recent_settlements)

    @app.task  # type: ignore[untyped-decorator]  # faust's task decorator is untyped
    async def event_loop_lag() -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LOOP_LAG_PROBE_S)
            worker.event_loop_lag_s = max(0.0, loop.time() - started - LOOP_LAG_PROBE_S)

    @app.page("/health")
    async def health_page(web: View, request: Request) -> Response:
        status, body = health(app, settings.health_lag_max, engine)
        return web.json(body, status=status)

    @app.page("/metrics")
    async def exposition(web: View, request: Request) -> Response:
        # A header, not content_type=: aiohttp refuses parameters (charset) there.
        return web.bytes(metrics.exposition(), headers={"Content-Type": METRICS_CONTENT_TYPE})
