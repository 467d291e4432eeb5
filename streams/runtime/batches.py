"""What the batch loops share (the engine's, :mod:`streams.engine.service`, and the
matcher's, :mod:`streams.matching.service`): fail-stop, their group membership, a
transaction's records sent one produce batch per partition, the histogram of their
commit times and the rejection record of a refused input.

Both loops read with aiokafka directly, apply a whole batch of records in memory and
write everything it causes, with the input offsets, in one Kafka transaction
(docs/adr/0031). One worker holds each loop's inputs (:mod:`streams.runtime.leader`);
the others stand by.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.partitioner import murmur2

from schemas import SchemaError, Source, encode, rejection_for
from streams.config import Settings
from streams.kafka.auth import client_kwargs
from streams.runtime.leader import one_holder

logger = logging.getLogger(__name__)

__all__ = [
    "COMMIT_BUCKETS_S",
    "FAIL_STOP_EXIT",
    "REBALANCE_POLL_S",
    "SESSION_TIMEOUT_MS",
    "CommitTimes",
    "Leadership",
    "Outbox",
    "Progress",
    "Stats",
    "holder_consumer",
    "lags",
    "partition_of",
    "rejection",
    "run_or_stop",
    "transactional_producer",
]

#: How often a loop at work says in its log what it applied (a quiet one says nothing).
PROGRESS_EVERY_S: Final = 60.0
#: How often a loop looks for the assignment that ends a rebalance.
REBALANCE_POLL_S: Final = 0.05
#: The exit status of a worker whose batch loop ended (EX_SOFTWARE).
FAIL_STOP_EXIT = 70
#: Upper bounds of the commit-duration buckets, in seconds.
COMMIT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def run_or_stop(app: faust.App, name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run a loop as a task of ``app``; when it ends, whatever the cause, end the process
    (fail-stop, exit 70: docs/adr/0028-fail-stop-by-process-exit.md).
    Nothing uncommitted survives it; the supervisor's restart stands by and restores
    from what was committed. ``run`` returns only when its inputs went elsewhere."""

    async def task() -> None:
        try:
            await run()
            reason = "its inputs were given to another worker"
        except asyncio.CancelledError:
            raise  # the worker is stopping
        except BaseException as exc:
            logger.critical("%s: %r", name, exc, exc_info=exc)
            reason = f"it raised {exc!r}"
        logger.critical(
            "%s: stopping the worker without committing anything more (fail-stop, exit %d): %s",
            name,
            FAIL_STOP_EXIT,
            reason,
        )
        logging.shutdown()
        sys.stderr.flush()
        os._exit(FAIL_STOP_EXIT)

    task.__name__ = task.__qualname__ = name
    app.task(task)


#: A loop's group: a worker whose heartbeats stop is replaced after this long.
SESSION_TIMEOUT_MS: Final = 6_000
HEARTBEAT_MS: Final = 1_000


def holder_consumer(
    settings: Settings, group: str, *, client_id: str, fetch_wait_ms: int
) -> AIOKafkaConsumer:
    """A loop's consumer: in ``group`` under the one-holder assignor
    (:mod:`streams.runtime.leader`), read_committed, offsets committed by the loop."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        client_id=client_id,
        group_id=group,
        partition_assignment_strategy=(one_holder(),),
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        fetch_max_wait_ms=fetch_wait_ms,
        max_partition_fetch_bytes=1 << 20,
        **client_kwargs(settings),
    )


def transactional_producer(
    settings: Settings, *, client_id: str, transactional_id: str | None
) -> AIOKafkaProducer:
    """A loop's producer: idempotent, acks=all, no linger (a batch is sent whole by
    :class:`Outbox`), transactional unless ``transactional_id`` is None."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        client_id=client_id,
        transactional_id=transactional_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=0,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
        **client_kwargs(settings),
    )


def lags(
    consumer: AIOKafkaConsumer | None, positions: dict[TopicPartition, int]
) -> dict[tuple[str, int], int]:
    """Records waiting per input partition: its last stable offset (the consumer's
    cache, no request) minus the loop's committed position."""
    if consumer is None:
        return {}
    out = {}
    for tp, done in list(positions.items()):
        end = consumer.last_stable_offset(tp)
        if end is not None:
            out[(tp.topic, tp.partition)] = max(0, int(end) - done)
    return out


def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key, as aiokafka's and Java's)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class Leadership(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Remembers what the group gave this worker; the loop reads it."""

    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()
        #: Counts assignments: records fetched under an older one are dropped (the
        #: positions go back to the committed offsets at each assignment).
        self.generation = 0
        #: Held while a batch is applied and committed.
        self.lock = asyncio.Lock()

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # Waits for a batch being committed: a revocation never lands mid-transaction.
        async with self.lock:
            self.assigned = set()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.assigned = set(assigned)
        self.generation += 1

    async def seek_when_settled(
        self, taken: set[TopicPartition], seek: Callable[[], Awaitable[None]]
    ) -> int | None:
        """After a restore: wait out a rebalance in flight (another worker joining
        during the restore revokes everything for a moment); then, if the assignment is
        still ``taken``, ``seek()`` under the lock (a revocation waits for it) and
        return the assignment's generation. None: another worker holds the inputs now.
        (CI, 2026-12-04: a loop that started mid-rebalance took the empty set for its
        inputs and stopped at the next assignment.)"""
        while True:
            while not self.assigned:
                await asyncio.sleep(REBALANCE_POLL_S)
            async with self.lock:
                if not self.assigned:
                    continue
                if self.assigned != taken:
                    return None
                await seek()
                return self.generation


class Outbox:
    """One transaction's records, gathered into one produce batch per partition (a
    record at a time through ``send`` costs ~10x more)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.builders: dict[tuple[str, int], Any] = {}
        self.futures: list[asyncio.Future[Any]] = []

    async def add(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Gather one record; ``timestamp_ms`` None: stamped when appended."""
        builder = self.builders.get((topic, partition))
        if builder is None:
            builder = self.builders[(topic, partition)] = self.producer.create_batch()
        if builder.append(key=key, value=value, timestamp=timestamp_ms) is None:
            # Full: send it and start another for the same partition.
            sent = await self.producer.send_batch(builder, topic, partition=partition)
            self.futures.append(sent)
            builder = self.builders[(topic, partition)] = self.producer.create_batch()
            metadata = builder.append(key=key, value=value, timestamp=timestamp_ms)
            assert metadata is not None, f"a record larger than a batch for {topic}"

    async def flush(self) -> None:
        """Send what is gathered and wait until the broker has all of it."""
        for (topic, partition), builder in self.builders.items():
            self.futures.append(await self.producer.send_batch(builder, topic, partition=partition))
        self.builders = {}
        await asyncio.gather(*self.futures)
        self.futures = []


@dataclass
class CommitTimes:
    """A histogram of commit durations, read by the worker's metrics at scrape time."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(COMMIT_BUCKETS_S) + 1))
    total_s: float = 0.0

    def observe(self, seconds: float) -> None:
        i = next((k for k, le in enumerate(COMMIT_BUCKETS_S) if seconds <= le), -1)
        self.counts[i] += 1
        self.total_s += seconds

    def plus(self, other: CommitTimes) -> CommitTimes:
        """Both histograms in one (the engine's commits and the matcher's)."""
        counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        return CommitTimes(counts, self.total_s + other.total_s)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count at or below)`` per bucket, ``+Inf`` last, as Prometheus wants."""
        out, running = [], 0
        for le, n in zip((*map(str, COMMIT_BUCKETS_S), "+Inf"), self.counts, strict=True):
            running += n
            out.append((le, running))
        return out


@dataclass
class Stats:
    """What a loop did since it started, for logs, metrics and the bench."""

    batches: int = 0
    records: int = 0
    #: How long each batch's transaction took, from its first record sent to its commit.
    commits: CommitTimes = field(default_factory=CommitTimes)


@dataclass
class Progress:
    """What a loop applied since it last said so: a log line at most every ``every_s``
    while records come, so that a busy worker's log shows it at work (a batch logs
    nothing of its own). A window starts at the first batch with records in it: an
    idle hour before it is not in its rate."""

    every_s: float = PROGRESS_EVERY_S
    since: float = 0.0
    batches: int = 0
    records: int = 0
    rejected: int = 0
    settled: int = 0

    def add(
        self, records: int, rejected: int, settled: int, *, now: float | None = None
    ) -> str | None:
        """Count one batch; what to log once ``every_s`` has passed since the window's
        first records (then a new window starts), else None."""
        now = time.monotonic() if now is None else now
        if records and not self.records:
            self.since, self.batches, self.rejected, self.settled = now, 0, 0, 0
        self.batches += 1
        self.records += records
        self.rejected += rejected
        self.settled += settled
        elapsed = now - self.since
        if not self.records or elapsed < self.every_s:
            return None
        line = (
            f"{self.records:,} records in {self.batches:,} batches in the last "
            f"{elapsed:.0f} s ({self.records / elapsed:,.0f}/s): {self.rejected:,} "
            f"rejected, {self.settled:,} trades settled"
        )
        self.batches, self.records, self.rejected, self.settled = 0, 0, 0, 0
        return line


def rejection(source: Source, reason: str, detail: str) -> tuple[bytes | None, bytes]:
    """The ``rejections`` record (key, value) of the input at ``source``, refused with
    ``reason``, stamped now. Both are bounded whatever the input's size: the key is the
    input's key cut to its first characters, the value points at the input."""
    error = SchemaError(reason, detail)  # type: ignore[arg-type]
    key = source[3]
    record = rejection_for(source, error, at=datetime.now(UTC))
    return (None if key is None else key.encode()), encode(record)
