"""The kessai worker: wires each flow's agents onto one exactly-once faust app.

Nothing but wiring lives here (house style: one place per flow). Run it with
``kessai worker`` (or ``make run``); the worker creates the public topics first.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from streams.config import Settings
from streams.eos import KessaiApp
from streams.ledger import agent as ledger_agent

logger = logging.getLogger(__name__)


def create_app(settings: Settings) -> KessaiApp:
    app = KessaiApp(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        processing_guarantee="exactly_once",
        store="memory://",
        broker_commit_interval=settings.commit_interval_s,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        web_port=settings.web_port,
        web_bind="127.0.0.1",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
    )
    ledger_agent.register(app, settings)
    return app


settings = Settings.from_env()
app = create_app(settings)


def main(worker_args: list[str] | None = None) -> None:
    """Create the public topics, then run faust's ``worker`` command with ``worker_args``
    (default ``-l info``)."""
    from streams.topics import ensure_topics

    created = asyncio.run(ensure_topics(settings))
    if created:
        print(f"kessai: created topics {', '.join(created)}", file=sys.stderr)
    # faust's command line reads sys.argv itself.
    sys.argv = ["kessai worker", "worker", *(worker_args or ["-l", "info"])]
    app.main()
