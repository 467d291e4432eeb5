"""The engine's state read back from its changelogs, and its last manifest.

A worker reads the engine's changelogs into an :class:`~streams.engine.core.Engine`
with a :class:`ChangelogTail`: from their starts, in offset order, committed rows only
(read_committed); the last row of a key wins, as compaction will keep it. A standby
keeps its tail going, so that when it takes over it only reads what was committed
since (a hot standby). Either way the new holder catches up to the changelogs' ends
after its producer fenced the previous holder (:mod:`streams.engine.service`), so
nothing is still being committed under it.
"""

from __future__ import annotations

import time
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import topics
from streams.config import Settings
from streams.engine.core import Engine
from streams.engine.manifest import Manifest
from streams.errors import KessaiError
from streams.kafka.reader import Cut, committed_consumer, cuts_for, read_batches

__all__ = ["ChangelogTail", "RestoreError", "last_manifest", "restore"]

#: Offsets read back from the log's end at a time when looking for its last record
#: (commit and abort markers take offsets too).
TAIL_OFFSETS: Final = 64
#: Longest a catch-up may go without its position moving before it gives up (the worker
#: then stops, and its restart tries again).
STALL_TIMEOUT_S: Final = 60.0
#: Rows applied per fetch at most.
FETCH_RECORDS_MAX: Final = 20_000


class RestoreError(KessaiError, RuntimeError):
    """A changelog could not be read to its end."""


class ChangelogTail:
    """The engine's changelogs, read into ``engine`` as far as they go."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.rows = 0
        #: When the tail began reading (``time.monotonic()``).
        self.started_at = 0.0
        self._names = {
            TopicPartition(topics.engine_topic(settings.app_id, name), 0): name
            for name in topics.ENGINE_CHANGELOGS
        }
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self.started_at = time.monotonic()
        consumer = committed_consumer(self.settings, f"{self.settings.app_id}-engine-restore")
        await consumer.start()
        consumer.assign(list(self._names))
        await consumer.seek_to_beginning(*self._names)
        self._consumer = consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def poll(self, timeout_ms: int) -> int:
        """Apply what has been committed since the last poll; how many rows."""
        assert self._consumer is not None, "start() first"
        fetched = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=FETCH_RECORDS_MAX)
        applied = 0
        for tp, records in fetched.items():
            name = self._names[tp]
            restore_row = self.engine.restore_row
            for r in records:
                restore_row(name, r.key.decode(), r.value)
            applied += len(records)
        self.rows += applied
        return applied

    async def at_end(self) -> bool:
        """Every changelog read up to its committed end as of now."""
        assert self._consumer is not None, "start() first"
        return (await self._behind(await self._consumer.end_offsets(list(self._names))))[0]

    async def _behind(self, ends: dict[TopicPartition, int]) -> tuple[bool, int]:
        """(every changelog read up to ``ends``, the sum of the positions)."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        positions = [await consumer.position(tp) for tp in self._names]
        done = all(at >= ends[tp] for at, tp in zip(positions, self._names, strict=True))
        return done, sum(positions)

    async def catch_up(self) -> int:
        """Apply every row committed up to the changelogs' ends now; rows applied."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        ends = await consumer.end_offsets(list(self._names))
        before, moved_at, last = self.rows, time.monotonic(), -1
        while True:
            done, position = await self._behind(ends)
            if done:
                break
            if position != last:
                last, moved_at = position, time.monotonic()
            elif time.monotonic() - moved_at > STALL_TIMEOUT_S:
                raise RestoreError(f"the engine's changelogs stopped short of {ends}")
            await self.poll(200)
        self.engine.restored()
        return self.rows - before


async def restore(settings: Settings, engine: Engine) -> int:
    """Apply every committed row of the engine's changelogs to ``engine``; how many."""
    tail = ChangelogTail(settings, engine)
    await tail.start()
    try:
        return await tail.catch_up()
    finally:
        await tail.stop()


async def last_manifest(settings: Settings) -> Manifest | None:
    """The last committed batch's manifest (None: the engine never committed one)."""
    topic = topics.engine_topic(settings.app_id, topics.ENGINE_LOG)
    cuts = await cuts_for(settings, topic, client_id=f"{settings.app_id}-engine-restore")
    if not cuts:
        return None
    (cut,) = cuts
    back = TAIL_OFFSETS
    while True:
        start = max(cut.start, cut.end - back)
        last = None
        async for _, records in read_batches(
            settings, topic, [Cut(cut.partition, start, cut.end)],
            client_id=f"{settings.app_id}-engine-restore",
        ):  # fmt: skip
            last = records[-1]
        if last is not None:
            return Manifest.from_bytes(last.value)
        if start == cut.start:
            return None
        back *= 4
