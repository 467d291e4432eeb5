"""What the batch loops share (the engine's, :mod:`streams.engine.service`, and the
matcher's, :mod:`streams.matching.service`): their group membership, and a
transaction's records sent one produce batch per partition.

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
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import faust
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.partitioner import murmur2

from streams.runtime.eos import FAIL_STOP_EXIT

logger = logging.getLogger(__name__)

__all__ = ["Leadership", "Outbox", "partition_of", "run_or_stop"]


def run_or_stop(app: faust.App, name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run a loop as a task of ``app``; when it ends, whatever the cause, end the process
    (fail-stop, exit 70, as an agent's error does: docs/adr/0028-fail-stop-by-process-exit.md).
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


class Outbox:
    """One transaction's records, gathered into one produce batch per partition (a
    record at a time through ``send`` costs ~10x more)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.builders: dict[tuple[str, int], Any] = {}
        self.futures: list[asyncio.Future[Any]] = []

    async def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        builder = self.builders.get((topic, partition))
        if builder is None:
            builder = self.builders[(topic, partition)] = self.producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None) is None:
            # Full: send it and start another for the same partition.
            sent = await self.producer.send_batch(builder, topic, partition=partition)
            self.futures.append(sent)
            builder = self.builders[(topic, partition)] = self.producer.create_batch()
            metadata = builder.append(key=key, value=value, timestamp=None)
            assert metadata is not None, f"a record larger than a batch for {topic}"

    async def flush(self) -> None:
        """Send what is gathered and wait until the broker has all of it."""
        for (topic, partition), builder in self.builders.items():
            self.futures.append(await self.producer.send_batch(builder, topic, partition=partition))
        self.builders = {}
        await asyncio.gather(*self.futures)
        self.futures = []
