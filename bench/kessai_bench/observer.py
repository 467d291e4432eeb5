"""The latency observer: sees a variant's output as an auditor would.

A read_committed consumer, with no group, reads the output topic from the beginning
while the variant runs, and counts the records *pick* accepts (all, by default).
Latency is publish -> visible to a read_committed reader (for a transactional
variant, that includes waiting for the commit):

- by default, ``now - record timestamp``: the timestamp is the load generator's
  publish time, carried through unchanged by the variant (the raw passthrough);
- with an *origin* topic (the settlement pipeline, whose records are new records
  with timestamps of their own), the observer reads the input too and pairs each
  picked output with the input record of the same key: ``seen - input timestamp``.
  It splits that in two at the output's own timestamp (the engine's: the clock of
  the batch that applied the input, taken as the batch began; before issue 20, when
  it was appended to the produce batch): ``written - published`` (the broker, the
  process's fetch and the batch's queue) and ``seen - written`` (the batch's work,
  the commit and the reader's fetch).

It also counts distinct keys, so a repeated record shows.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

#: Records per getmany call.
FETCH_RECORDS_MAX = 10_000
#: An empty fetch waits at most this long on the broker; short, so a record that
#: becomes visible is seen soon (a fetch with data returns at once anyway).
FETCH_WAIT_MS = 50
POLL_TIMEOUT_MS = 100


@dataclass(frozen=True, kw_only=True)
class Observed:
    records: int
    distinct_keys: int
    #: Wall-clock (epoch ms) when the first / last record was seen.
    first_seen_ms: float
    last_seen_ms: float
    latencies_ms: array[float]  # one per record
    #: With an origin: publish -> output written, and output written -> seen.
    to_written_ms: array[float] = field(default_factory=lambda: array("d"))
    to_seen_ms: array[float] = field(default_factory=lambda: array("d"))


class Observer:
    """Reads *topic* (read_committed) in the background; :meth:`stop` returns what it saw."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        *,
        pick: Callable[[bytes], bool] | None = None,
        origin: str | None = None,
        origin_key: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.pick = pick
        self.origin = origin
        self.origin_key = origin_key
        self.records = 0
        self._keys: set[bytes | None] = set()
        self._latencies: array[float] = array("d")
        #: With an origin topic: publish time per input key, seen time per output key.
        self._published_ms: dict[bytes | None, float] = {}
        self._seen_ms: dict[bytes | None, float] = {}
        self._written_ms: dict[bytes | None, float] = {}
        self._first_ms = 0.0
        self._last_ms = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=FETCH_RECORDS_MAX,
            fetch_max_wait_ms=FETCH_WAIT_MS,
        )
        await consumer.start()
        topics = [self.topic] if self.origin is None else [self.topic, self.origin]
        tps = [TopicPartition(t, p) for t in topics for p in range(self.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        for tp in tps:
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer))

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stop.is_set():
            batch = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS)
            if not batch:
                continue
            now_ms = time.time() * 1000
            before = self.records
            for tp, recs in batch.items():
                if tp.topic != self.topic:  # the origin: note when each key was published
                    if self.origin_key is None:
                        self._published_ms.update((r.key, r.timestamp) for r in recs)
                    else:
                        for r in recs:
                            key = self.origin_key(r.value) if r.value is not None else None
                            if key is not None:
                                self._published_ms[key] = r.timestamp
                    continue
                for r in recs:
                    if self.pick is not None and (r.value is None or not self.pick(r.value)):
                        continue
                    if self.origin is None:
                        self._latencies.append(now_ms - r.timestamp)
                    else:
                        self._seen_ms.setdefault(r.key, now_ms)
                        self._written_ms.setdefault(r.key, r.timestamp)
                    self._keys.add(r.key)
                    self.records += 1
            if self.records != before:
                if not before:
                    self._first_ms = now_ms
                self._last_ms = now_ms

    async def wait_for(self, records: int, *, idle_s: float, timeout_s: float) -> bool:
        """Wait until *records* were seen; False if none came for *idle_s* or at *timeout_s*."""
        deadline = time.monotonic() + timeout_s
        seen, progress_at = self.records, time.monotonic()
        while self.records < records:
            now = time.monotonic()
            if self.records != seen:
                seen, progress_at = self.records, now
            if now - progress_at > idle_s or now > deadline:
                return False
            if self._task is not None and self._task.done():
                self._task.result()  # raises what killed it
                return False
            await asyncio.sleep(0.05)
        return True

    async def stop(self) -> Observed:
        self._stop.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            if self._consumer is not None:
                await self._consumer.stop()
        to_written, to_seen = array("d"), array("d")
        if self.origin is not None:
            published, written = self._published_ms, self._written_ms
            for key, seen in self._seen_ms.items():
                if key in published:
                    self._latencies.append(seen - published[key])
                    to_written.append(written[key] - published[key])
                    to_seen.append(seen - written[key])
        return Observed(
            records=self.records,
            distinct_keys=len(self._keys),
            first_seen_ms=self._first_ms,
            last_seen_ms=self._last_ms,
            latencies_ms=self._latencies,
            to_written_ms=to_written,
            to_seen_ms=to_seen,
        )
