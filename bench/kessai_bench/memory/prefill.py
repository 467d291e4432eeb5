"""Kafka: kessai's topics, and the ledger's changelogs written in bulk (the prefill).

Funding a million accounts through the pipeline would take hours on a small machine;
the prefill writes the records the ledger agent would have written instead
(:func:`kessai_bench.memory.records.ledger_writes`), to the partitions it would have
written them to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from aiokafka import AIOKafkaProducer

from kessai_bench.memory.common import PROGRESS_EVERY_S, Log
from kessai_bench.memory.records import TABLES, Funding, ledger_writes
from streams.config import Settings
from streams.kafka.admin import create_topics, ensure_worker_topics
from streams.topics import changelog, changelog_specs

#: The bulk producer: records wait this long for their batch to fill.
PRODUCE_LINGER_MS: Final = 50
PRODUCE_BATCH_BYTES_MAX: Final = 1_048_576
#: Changelog records encoded ahead of the producer (bounds the writer's memory).
PRODUCE_CHUNK_ACCOUNTS: Final = 20_000


async def create_kessai_topics(settings: Settings) -> None:
    """The topics ``kessai worker`` creates at start."""
    await ensure_worker_topics(settings)


async def create_changelogs(settings: Settings) -> list[str]:
    """The ledger's two changelog topics, as faust would declare them; returns those
    created (a worker's own topics, :func:`create_kessai_topics`, include them).

    Created here rather than left to the worker, so that they exist before the
    prefill writes; faust then finds them and creates nothing.
    """
    names = {changelog(settings.app_id, table) for table in TABLES}
    specs = changelog_specs(settings.app_id, settings.partitions)
    return await create_topics(settings, [s for s in specs if s.name in names])


@dataclass(frozen=True, kw_only=True)
class Prefill:
    accounts: int
    #: Records written per changelog topic.
    records: dict[str, int]
    seconds: float


async def prefill(
    settings: Settings, accounts: Iterable[Funding], *, log: Log | None = None
) -> Prefill:
    """Write the changelog records of funding *accounts* (creating the topics first).

    One batch per topic partition at a time, built with aiokafka's batch API (far
    cheaper per record than ``send``); an idempotent producer, acks=all.
    """
    started = time.monotonic()
    await create_changelogs(settings)
    topics = {table: changelog(settings.app_id, table) for table in TABLES}
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=PRODUCE_LINGER_MS,
        max_batch_size=PRODUCE_BATCH_BYTES_MAX,
        max_request_size=PRODUCE_BATCH_BYTES_MAX * 2,
    )
    await producer.start()
    counts = dict.fromkeys(topics.values(), 0)
    n = 0
    last_said = started
    try:
        builders: dict[tuple[str, int], Any] = {}
        pending: list[asyncio.Future[Any]] = []

        async def flush(tp: tuple[str, int]) -> None:
            builder = builders.pop(tp)
            pending.append(await producer.send_batch(builder, tp[0], partition=tp[1]))

        for chunk in chunks(accounts, PRODUCE_CHUNK_ACCOUNTS):
            for f in chunk:
                for record in ledger_writes(f, partitions=settings.partitions):
                    tp = (topics[record.table], record.partition)
                    builder = builders.get(tp)
                    if builder is None:
                        builder = builders[tp] = producer.create_batch()
                    while (
                        builder.append(key=record.key, value=record.value, timestamp=None) is None
                    ):
                        await flush(tp)
                        builder = builders[tp] = producer.create_batch()
                    counts[tp[0]] += 1
                n += 1
            # Delivered batches need not be kept; a failed one fails the prefill.
            done = [fut for fut in pending if fut.done()]
            for fut in done:
                fut.result()
            pending = [fut for fut in pending if not fut.done()]
            if log is not None and time.monotonic() - last_said > PROGRESS_EVERY_S:
                last_said = time.monotonic()
                log(f"  prefill: {n:,} accounts written ({n / (last_said - started):,.0f}/s)")
        for tp in list(builders):
            await flush(tp)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return Prefill(accounts=n, records=counts, seconds=time.monotonic() - started)


def chunks(items: Iterable[Funding], size: int) -> Iterator[list[Funding]]:
    """*items* in lists of *size* (the last one shorter), in order."""
    chunk: list[Funding] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
