"""What ``kessai worker`` does: say what the settings leave open, create the topics the
worker relies on, then run the faust app of :mod:`streams.runtime.app`."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from typing import Final

from aiokafka.errors import KafkaError

from streams.config import Settings
from streams.kafka.admin import ensure_worker_topics, resolved_replication
from streams.runtime.app import create_app

__all__ = ["run", "security_warnings"]

#: How long a worker's start retries a broker that answers with a retriable error
#: (one broker of a cluster just lost and still in the metadata, one still starting).
START_RETRY_S: Final = 90.0
START_RETRY_PAUSE_S: Final = 1.0


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


def run(settings: Settings, worker_args: list[str] | None = None) -> None:
    """Create the topics, then run faust's ``worker`` command with ``worker_args``
    (default ``-l info``) until it stops."""
    for line in security_warnings(settings):
        print(f"kessai: WARNING: {line}", file=sys.stderr)
    settings, created = prepare_topics(settings)
    if created:
        print(f"kessai: created topics {', '.join(created)}", file=sys.stderr)
    if settings.event_loop == "uvloop":
        import uvloop  # an optional dependency: kessai[uvloop]

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = create_app(settings)
    # faust's command line reads sys.argv itself.
    sys.argv = ["kessai worker", "worker", *(worker_args or ["-l", "info"])]
    app.main()


def prepare_topics(settings: Settings) -> tuple[Settings, list[str]]:
    """The settings with the cluster's replication resolved, and the topics created.

    A retriable Kafka error (a broker of the cluster down but still in the metadata,
    or starting) is retried for :data:`START_RETRY_S`, each try said on stderr: a
    worker starts while one broker of three is lost, as the cluster serves."""
    deadline = time.monotonic() + START_RETRY_S
    while True:
        try:
            return asyncio.run(_prepare_topics(settings))
        except KafkaError as err:
            if not err.retriable or time.monotonic() > deadline:
                raise
            print(
                f"kessai: Kafka at {settings.bootstrap} not ready ({err!r}); "
                f"trying again in {START_RETRY_PAUSE_S:.0f} s",
                file=sys.stderr,
            )
            time.sleep(START_RETRY_PAUSE_S)


async def _prepare_topics(settings: Settings) -> tuple[Settings, list[str]]:
    # faust declares topics of its own (its group's leader topic): the same replication.
    replication = await resolved_replication(settings)
    settings = dataclasses.replace(settings, replication_factor=replication)
    return settings, await ensure_worker_topics(settings)
