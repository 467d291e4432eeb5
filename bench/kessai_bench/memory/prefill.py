"""Kafka: kessai's topics, and the engine's changelogs written in bulk (the prefill).

Funding a million accounts through the pipeline would take hours on a small machine;
the prefill writes the rows the settlement engine would have written instead
(:class:`kessai_bench.memory.records.Funder`: the engine's own batches, run here), to
its three changelogs, partition 0; and, when asked, the rows of trades it finished
(:func:`kessai_bench.memory.records.finished_rows`) to ``engine-trades``. Nothing
else: no ``ledger-events`` (the engine never reads them back) and no manifest (a
restore without one starts at batch 0).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from aiokafka import AIOKafkaProducer

from kessai_bench.memory.common import PROGRESS_EVERY_S, Log
from kessai_bench.memory.records import (
    CHANGELOGS,
    FUND_BATCH_ACCOUNTS,
    ChangelogRow,
    Funder,
    Funding,
    chunks,
)
from streams.config import Settings
from streams.kafka.admin import ensure_worker_topics
from streams.topics import ENGINE_TRADES, engine_topic

#: The bulk producer: records wait this long for their batch to fill.
PRODUCE_LINGER_MS: Final = 50
PRODUCE_BATCH_BYTES_MAX: Final = 1_048_576
#: Finished rows appended between two looks at the batches sent.
FINISHED_CHECK_EVERY: Final = 10_000


async def create_kessai_topics(settings: Settings) -> None:
    """The topics ``kessai worker`` creates at start, the engine's changelogs among them."""
    await ensure_worker_topics(settings)


@dataclass(frozen=True, kw_only=True)
class Prefill:
    accounts: int
    #: Finished trades' rows written to ``engine-trades``.
    finished: int
    #: Rows written per changelog topic.
    records: dict[str, int]
    seconds: float


async def prefill(
    settings: Settings,
    accounts: Iterable[Funding],
    *,
    finished: Iterable[ChangelogRow] = (),
    log: Log | None = None,
) -> Prefill:
    """Create kessai's topics, then write the engine's changelog rows of funding
    *accounts* (each account once), then the *finished* trades' rows.

    Rows are appended with aiokafka's batch API (far cheaper per record than
    ``send``), one open batch per topic; an idempotent producer, acks=all. Not a
    transaction: nothing reads the changelogs until the worker starts.
    """
    started = time.monotonic()
    await create_kessai_topics(settings)
    topics = {name: engine_topic(settings.app_id, name) for name in (*CHANGELOGS, ENGINE_TRADES)}
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=PRODUCE_LINGER_MS,
        max_batch_size=PRODUCE_BATCH_BYTES_MAX,
        max_request_size=PRODUCE_BATCH_BYTES_MAX * 2,
    )
    await producer.start()
    writer = _Writer(producer)
    funder = Funder(partitions=settings.partitions)
    counts = {topics[name]: 0 for name in CHANGELOGS}
    n = 0
    last_said = started
    try:
        for chunk in chunks(accounts, FUND_BATCH_ACCOUNTS):
            for row in funder.rows(chunk):
                await writer.append(topics[row.table], row.key, row.value)
                counts[topics[row.table]] += 1
            n += len(chunk)
            writer.check()
            if log is not None and time.monotonic() - last_said > PROGRESS_EVERY_S:
                last_said = time.monotonic()
                log(f"  prefill: {n:,} accounts written ({n / (last_said - started):,.0f}/s)")
        done = 0
        for row in finished:
            await writer.append(topics[row.table], row.key, row.value)
            done += 1
            if done % FINISHED_CHECK_EVERY == 0:
                writer.check()
                if log is not None and time.monotonic() - last_said > PROGRESS_EVERY_S:
                    last_said = time.monotonic()
                    log(f"  prefill: {done:,} finished trades written")
        if done:
            counts[topics[ENGINE_TRADES]] = done
        await writer.close()
    finally:
        await producer.stop()
    return Prefill(accounts=n, finished=done, records=counts, seconds=time.monotonic() - started)


class _Writer:
    """Records appended to one open batch per topic (partition 0), each batch sent
    when full; :meth:`close` sends the rest and waits for every one."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.builders: dict[str, Any] = {}
        self.pending: list[asyncio.Future[Any]] = []

    async def append(self, topic: str, key: bytes, value: bytes) -> None:
        builder = self.builders.get(topic)
        if builder is None:
            builder = self.builders[topic] = self.producer.create_batch()
        while builder.append(key=key, value=value, timestamp=None) is None:
            await self._send(topic)
            builder = self.builders[topic] = self.producer.create_batch()

    async def _send(self, topic: str) -> None:
        builder = self.builders.pop(topic)
        self.pending.append(await self.producer.send_batch(builder, topic, partition=0))

    def check(self) -> None:
        """Forget the batches delivered; a failed one fails the prefill."""
        for fut in self.pending:
            if fut.done():
                fut.result()
        self.pending = [fut for fut in self.pending if not fut.done()]

    async def close(self) -> None:
        for topic in list(self.builders):
            await self._send(topic)
        await asyncio.gather(*self.pending)
