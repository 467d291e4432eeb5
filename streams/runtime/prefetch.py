"""Take what aiokafka's fetcher has as soon as it has it, while a batch commits.

aiokafka's fetcher sends no fetch to a broker while any partition that broker leads
has records the application has not taken, for up to 0.1 s (``prefetch_backoff``,
not a consumer option; ``aiokafka/consumer/fetcher.py``, ``_get_actions_per_node``).
A batch loop takes records only between commits, so with one broker the fetcher
fetched once right after a batch was taken and then sat idle for the rest of the
batch's work and commit: records that arrived meanwhile waited for the *next* cycle's
fetch and were applied one cycle later, batches stayed small, and each trade paid
more transactions (bench 2026-12-04T154808Z at 1,000 trades/s: 29 ms from publish to
the output being written at the median, 997 µs of broker CPU per trade).

:class:`Prefetch` runs a task that takes each fetch's records at once, into a queue
of its own (bounded: it stops taking at ``max_records`` until the loop takes them),
so the fetcher always fetches again at once, and the loop takes everything fetched
since its last batch. A seek (the loop going back to its committed positions) goes
through :meth:`Prefetch.seek`: the task stops first (a take it was waiting in takes
nothing), what was queued is dropped, the consumer seeks, and the task starts again,
so every record from the new positions on is queued once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

__all__ = ["Prefetch"]

#: How long one take of the fetcher's records waits for some.
TAKE_WAIT_MS: Final = 100

Fetched = list[tuple[TopicPartition, list[ConsumerRecord]]]


class Prefetch:
    """The fetcher's records, taken as they come (see the module doc)."""

    def __init__(self, consumer: AIOKafkaConsumer, *, max_records: int) -> None:
        self.consumer = consumer
        self.max_records = max_records
        self._queue: dict[TopicPartition, list[ConsumerRecord]] = {}
        self._count = 0
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kessai-prefetch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._room.wait()
            fetched = await self.consumer.getmany(
                timeout_ms=TAKE_WAIT_MS, max_records=self.max_records - self._count
            )
            # No await from here to the queue: a stop() lands before or after, whole.
            for tp, records in fetched.items():
                if records:
                    self._queue.setdefault(tp, []).extend(records)
                    self._count += len(records)
            if self._count:
                self._arrived.set()
            if self._count >= self.max_records:
                self._room.clear()

    async def take(self, timeout_ms: int) -> Fetched:
        """Everything queued, by partition in offset order; waits up to ``timeout_ms``
        for something when nothing is."""
        if self._task is not None and self._task.done():
            self._task.result()  # raises what ended it
        if not self._count and timeout_ms > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout_ms / 1000)
        out = [(tp, records) for tp, records in self._queue.items() if records]
        self._queue, self._count = {}, 0
        self._arrived.clear()
        self._room.set()
        return out

    async def seek(self, seek: Callable[[], None]) -> None:
        """Stop taking, drop what is queued, ``seek()`` the consumer, start again."""
        await self.stop()
        self._queue, self._count = {}, 0
        self._arrived.clear()
        self._room.set()
        seek()
        self.start()

    @property
    def queued(self) -> int:
        return self._count
