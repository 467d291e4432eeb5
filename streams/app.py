"""The kessai worker: wires each flow's agents onto one exactly-once faust app.

Nothing but wiring lives here (house style: one place per flow). Run it with
``kessai worker`` (or ``make run``); the worker creates the public topics first.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from faust.web import Request, Response, View

from streams.config import Settings
from streams.eos import KessaiApp
from streams.kafkaauth import faust_credentials
from streams.ledger import agent as ledger_agent
from streams.matching import agent as matching_agent
from streams.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from streams.metrics import Metrics, StateCollector, WorkerCollector, health
from streams.settlement import agent as settlement_agent
from streams.web import dashboard_routes as dashboard

logger = logging.getLogger(__name__)

#: How often the event-loop lag is probed.
LOOP_LAG_PROBE_S = 0.25

#: kessai's own topics between its agents, co-partitioned with the public ones
#: (faust's table changelogs are created by faust).
INTERNAL_TOPICS = (
    ledger_agent.LEDGER_COMMANDS,
    ledger_agent.SETTLEMENT_INBOX,
)


def create_app(settings: Settings) -> KessaiApp:
    app = KessaiApp(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        # SASL/SCRAM over TLS on the secure profile (None: plaintext). faust hands it to
        # every client it makes; streams/restore.py's consumer reads it from the conf.
        broker_credentials=faust_credentials(settings),
        processing_guarantee=settings.processing_guarantee,
        store="memory://",
        broker_commit_interval=settings.commit_interval_s,
        producer_linger=settings.producer_linger_ms / 1000,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        # faust compares a memory table's last applied changelog offset with the
        # read_committed high watermark, which can trail it while the transaction
        # that wrote it commits; it then crashes recovery on a rebalance
        # (ConsistencyError). Memory tables are rebuilt from the changelog in this
        # very process, so the check guards nothing here.
        recovery_consistency_check=False,
        # Tables are rebuilt from their changelogs at every rebalance (streams/eos.py,
        # KessaiTableManager): a standby copy would be thrown away unused.
        table_standby_replicas=0,
    )
    app.parallel_commits = settings.parallel_commits
    metrics = Metrics()
    ledger_agent.register(app, settings, metrics)
    settlement_agent.register(app, settings, metrics)
    matching_agent.register(app, settings, metrics)
    serve_metrics(app, metrics, settings)
    return app


def serve_metrics(app: KessaiApp, metrics: Metrics, settings: Settings) -> None:
    """``GET /metrics`` (Prometheus' text format) and ``GET /health``."""
    worker = WorkerCollector(app)
    metrics.registry.register(worker)
    metrics.registry.register(StateCollector(app, settings.tokens))
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
        status, body = health(app, settings.health_lag_max)
        return web.json(body, status=status)

    @app.page("/metrics")
    async def exposition(web: View, request: Request) -> Response:
        # A header, not content_type=: aiohttp refuses parameters (charset) there.
        return web.bytes(metrics.exposition(), headers={"Content-Type": METRICS_CONTENT_TYPE})


settings = Settings.from_env()
app = create_app(settings)


def security_warnings(settings: Settings) -> list[str]:
    """What a worker with these settings leaves open, for its operator to read first."""
    warnings = []
    if settings.kafka_security == "plaintext":
        warnings.append(
            f"DEVELOPMENT PROFILE: Kafka at {settings.bootstrap} without TLS, authentication "
            f"or ACLs (KESSAI_KAFKA_SECURITY=plaintext): anyone who reaches it can publish "
            f"trades and payments. Use the secure profile for anything real "
            f"(`kessai kafka up --secure`, docs/security.md)."
        )
    if not settings.verify_signatures:
        warnings.append(
            "SIGNATURES NOT CHECKED (KESSAI_VERIFY_SIGNATURES=0): a trade, order, payment "
            "or custody record is taken from whoever wrote it."
        )
    return warnings


def main(worker_args: list[str] | None = None) -> None:
    """Create the public topics, then run faust's ``worker`` command with ``worker_args``
    (default ``-l info``)."""
    from streams.kafkaio import TopicSpec, create_topics
    from streams.topics import ensure_topics

    for line in security_warnings(settings):
        print(f"kessai: WARNING: {line}", file=sys.stderr)
    created = asyncio.run(ensure_topics(settings))
    created += asyncio.run(
        create_topics(
            settings.bootstrap,
            [TopicSpec(name=name, partitions=settings.partitions) for name in INTERNAL_TOPICS],
            settings=settings,
        )
    )
    if created:
        print(f"kessai: created topics {', '.join(created)}", file=sys.stderr)
    if settings.event_loop == "uvloop":
        import uvloop  # an optional dependency (the ``fast`` extra)

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # faust's command line reads sys.argv itself.
    sys.argv = ["kessai worker", "worker", *(worker_args or ["-l", "info"])]
    app.main()
