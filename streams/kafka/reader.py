"""Reading committed records: kessai's one way, for auditors, tests and tools alike.

Every reader here uses ``isolation_level="read_committed"``: records of aborted (or
still open) transactions never count.

- :func:`read_committed`: every committed record of a topic, from the beginning to
  the last stable offset when the read starts.
- :class:`Tail`: follow topics as they are written, from their beginning or from
  where they end now, until a condition holds.
- :func:`cuts_for` and :func:`read_batches`: the bulk read underneath, below.


:func:`read_batches` yields each partition's records in offset order, a batch at a
time (``getmany``; never an await per record), read with ``read_committed`` from the
beginning up to each partition's **end**:

- no cut-off: the last stable offset when the read starts (the head);
- ``--as-of`` a time T: the first offset whose timestamp is later than T
  (``offsets_for_times``), so every record stamped at or before T counts. An
  account's records all live on one partition (key ``account``), so cutting each
  partition at T gives every account its state at T;
- ``--as-of`` offsets ``P:O``: partition P up to, not including, offset O (a
  consumer's position: "what had been read when the position was O").

Records are handed over as aiokafka fetched them, a list per partition; decoding is
the caller's business. :func:`cuts_for` fixes the cut-offs once, so that several
processes can each read some of the partitions (:mod:`streams.audit.command`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.config import Settings
from streams.errors import KessaiError
from streams.kafka.auth import client_kwargs

__all__ = [
    "AsOf",
    "AsOfError",
    "Batch",
    "Cut",
    "HistoryGone",
    "Tail",
    "committed_consumer",
    "cuts_for",
    "parse_as_of",
    "read_batches",
    "read_committed",
    "require_history",
]

#: Records per ``getmany``. Large: the per-call overhead is what a bulk read pays for.
FETCH_RECORDS_MAX: Final = 50_000
#: Bytes per partition per fetch (aiokafka's default, 1 MiB, is ~4,000 journal records).
PARTITION_FETCH_BYTES_MAX: Final = 4 * 1024 * 1024
FETCH_BYTES_MAX: Final = 16 * 1024 * 1024
#: A read that makes no progress for this long is stuck: the broker went away.
STALL_S_MAX: Final = 60.0

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_OFFSETS_RE: Final = re.compile(r"^(\d+|\d+:\d+(,\d+:\d+)*)$")


class AsOfError(KessaiError, ValueError):
    """An ``--as-of`` value that is neither a time nor offsets."""


@dataclass(frozen=True, slots=True)
class AsOf:
    """A cut-off: a time (ms since the epoch, inclusive) or per-partition end offsets."""

    timestamp_ms: int | None = None
    #: Partition -> end offset (exclusive). ``-1`` as a key: every partition.
    offsets: Mapping[int, int] | None = None
    text: str = ""

    def describe(self) -> str:
        return self.text or "the head of the log"


def parse_as_of(text: str) -> AsOf:
    """``2026-11-28T03:00:00+09:00``, ``2026-11-28T03:00Z``, ``1500`` or ``0:1500,3:20``.

    A time without a zone is refused: "03:00" in Tokyo and in UTC are nine hours apart,
    and an audit must not depend on the machine's zone.
    """
    text = text.strip()
    if _OFFSETS_RE.fullmatch(text):
        if ":" not in text:
            return AsOf(offsets={-1: int(text)}, text=f"offset {text} in every partition")
        ends = {}
        for item in text.split(","):
            partition, offset = item.split(":")
            if int(partition) in ends:
                raise AsOfError(f"--as-of {text!r}: partition {partition} given twice")
            ends[int(partition)] = int(offset)
        return AsOf(offsets=ends, text=f"offsets {text}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise AsOfError(
            f"--as-of {text!r} is neither an ISO-8601 time (2026-11-28T03:00:00+09:00) "
            "nor offsets (1500, or PARTITION:OFFSET[,PARTITION:OFFSET...])"
        ) from None
    if moment.tzinfo is None:
        raise AsOfError(f"--as-of {text!r} has no time zone; add Z or an offset such as +09:00")
    if moment < _EPOCH:
        raise AsOfError(f"--as-of {text!r} is before 1970: Kafka has no timestamps then")
    # Whole ms (Kafka's unit), floored, in integers: a float would turn .001 into .000999.
    ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    return AsOf(timestamp_ms=ms, text=moment.astimezone(UTC).isoformat(timespec="milliseconds"))


@dataclass(frozen=True, slots=True)
class Cut:
    """Where one partition's read starts and ends (exclusive)."""

    partition: int
    start: int
    end: int

    @property
    def records_max(self) -> int:
        """Offsets to cover; commit markers take offsets too, so records are fewer."""
        return self.end - self.start


class HistoryGone(KessaiError):
    """A log read from its start has lost its first records."""


def require_history(cuts: Mapping[str, Sequence[Cut]]) -> None:
    """Raise :class:`HistoryGone` naming every partition of ``cuts`` (topic -> its
    cuts) whose log no longer starts at offset 0.

    Only retention (whole segments deleted) and DeleteRecords move a log's start;
    compaction never does. A reader that folds or replays a log from its start would
    then answer from partial history, as if it were whole: it must stop instead.
    """
    gone = [
        f"{topic}[{c.partition}] starts at offset {c.start:,}"
        for topic, topic_cuts in cuts.items()
        for c in topic_cuts
        if c.start > 0
    ]
    if gone:
        raise HistoryGone(
            "history deleted: "
            + "; ".join(gone)
            + ". The records before those offsets were removed (retention, or "
            "DeleteRecords), so an answer now would come from partial history. kessai "
            "keeps every topic it replays forever (retention.ms=-1): check the topic's "
            "retention.ms, and restore the log from a backup (docs/operations.md)."
        )


#: One partition's records in offset order (aiokafka ``ConsumerRecord``: ``.offset``,
#: ``.timestamp``, ``.key``, ``.value``), handed over as fetched: no copy per record.
Batch = tuple[int, list[Any]]


def committed_consumer(settings: Settings, client_id: str = "kessai-reader") -> AIOKafkaConsumer:
    """A consumer of committed records only, with no group, started by the caller: what
    every reader here is built on, for readers that need a consumer of their own."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        client_id=client_id,
        **client_kwargs(settings),
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES_MAX,
        fetch_max_bytes=FETCH_BYTES_MAX,
        max_poll_records=FETCH_RECORDS_MAX,
    )


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """``topic``'s partitions as the broker has them now (none: no such topic).

    aiokafka's consumer learns of a topic it is not subscribed to only from a metadata
    refresh, which its public API does not offer (``topics()`` returns a copy and
    leaves the consumer's own view as it was): the one use of its private client here.
    """
    partitions = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def cuts_for(
    settings: Settings,
    topic: str,
    as_of: AsOf | None = None,
    *,
    client_id: str = "kessai-audit",
) -> list[Cut]:
    """Each partition's start (the log start) and end (see the module doc) for ``as_of``.

    No partitions (an empty list) if the topic does not exist.
    """
    consumer = committed_consumer(settings, client_id)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topic)
        if not tps:
            return []
        return await _cuts(consumer, tps, as_of)
    finally:
        await consumer.stop()


async def _cuts(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], as_of: AsOf | None
) -> list[Cut]:
    start = await consumer.beginning_offsets(tps)
    # Under read_committed, end_offsets is the last stable offset.
    head = await consumer.end_offsets(tps)
    ends = dict(head)
    if as_of is not None and as_of.timestamp_ms is not None:
        # offsets_for_times: the first offset with a timestamp >= the one asked; +1 ms
        # makes records stamped exactly at T count.
        found = await consumer.offsets_for_times({tp: as_of.timestamp_ms + 1 for tp in tps})
        for tp, hit in found.items():
            if hit is not None:
                ends[tp] = min(head[tp], hit.offset)
    elif as_of is not None and as_of.offsets is not None:
        every = as_of.offsets.get(-1)
        known = {tp.partition for tp in tps}
        unknown = sorted(set(as_of.offsets) - known - {-1})
        if unknown:
            raise AsOfError(f"--as-of names partition(s) {unknown}; the topic has {sorted(known)}")
        for tp in tps:
            wanted = as_of.offsets.get(tp.partition, every)
            if wanted is not None:
                ends[tp] = min(head[tp], wanted)
    return [Cut(tp.partition, start[tp], max(start[tp], ends[tp])) for tp in tps]


async def read_batches(
    settings: Settings,
    topic: str,
    cuts: Sequence[Cut],
    *,
    advanced: Callable[[int], object] | None = None,
    client_id: str = "kessai-audit",
) -> AsyncIterator[Batch]:
    """Yield ``(partition, records)`` batches of ``topic``'s committed records within ``cuts``.

    ``advanced(n)`` is told each time the read moves ``n`` offsets on (for a progress
    bar). Raises :class:`TimeoutError` if nothing moves for :data:`STALL_S_MAX`.
    """
    pending = {TopicPartition(topic, c.partition): c for c in cuts if c.end > c.start}
    if not pending:
        return
    consumer = committed_consumer(settings, client_id)
    await consumer.start()
    try:
        consumer.assign(sorted(pending, key=lambda tp: tp.partition))
        for tp, cut in pending.items():
            consumer.seek(tp, cut.start)
        done = {tp: cut.start for tp, cut in pending.items()}
        last_progress = time.monotonic()
        while pending:
            got = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in got.items():
                end = pending[tp].end if tp in pending else -1
                if records and records[-1].offset >= end:
                    records = [r for r in records if r.offset < end]
                if records:
                    yield tp.partition, records
            for tp in list(pending):
                position = await consumer.position(tp)
                end = pending[tp].end
                if position >= end:
                    del pending[tp]
                    consumer.pause(tp)
                    position = end
                if position > done[tp]:
                    if advanced is not None:
                        advanced(position - done[tp])
                    done[tp] = position
                    last_progress = time.monotonic()
            if time.monotonic() - last_progress > STALL_S_MAX:
                raise TimeoutError(
                    f"reading {topic}: no progress for {STALL_S_MAX:.0f} s on partitions "
                    f"{sorted(tp.partition for tp in pending)}"
                )
    finally:
        await consumer.stop()


async def read_committed(
    settings: Settings, topic: str, *, timeout_s: float = 60.0
) -> list[ConsumerRecord]:
    """All committed records of ``topic``, partition by partition in offset order, up
    to the last stable offset when the read starts (:func:`read_batches` underneath).
    """

    async def read() -> list[ConsumerRecord]:
        records: dict[int, list[ConsumerRecord]] = {}
        cuts = await cuts_for(settings, topic)
        async for partition, batch in read_batches(settings, topic, cuts):
            records.setdefault(partition, []).extend(batch)
        return [r for p in sorted(records) for r in records[p]]

    try:
        return await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        raise TimeoutError(f"reading {topic}: not at its end after {timeout_s:.0f} s") from None


class Tail:
    """Follows ``topics`` with read_committed, a batch at a time.

    ``from_end``: start where each partition ends when :meth:`start` runs (so that
    only what is written from then on is read), else from the beginning. Use as an
    async context manager, or :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        *,
        from_end: bool = False,
        client_id: str = "kessai-tail",
    ) -> None:
        self.topics = tuple(topics)
        self.from_end = from_end
        self.consumer = committed_consumer(settings, client_id)

    async def start(self) -> None:
        await self.consumer.start()
        tps = [tp for topic in self.topics for tp in await partitions_of(self.consumer, topic)]
        assert tps, f"no partitions of {self.topics}"
        self.consumer.assign(tps)
        if self.from_end:
            # Under read_committed, the last stable offset: whatever commits from now on
            # comes after it.
            for tp, offset in (await self.consumer.end_offsets(tps)).items():
                self.consumer.seek(tp, offset)
        else:
            await self.consumer.seek_to_beginning(*tps)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def __aenter__(self) -> Tail:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def batch(self, *, timeout_ms: int = 500) -> list[ConsumerRecord]:
        """The records that arrived, in offset order per partition (maybe none)."""
        got = await self.consumer.getmany(timeout_ms=timeout_ms)
        return [r for records in got.values() for r in records]

    async def until(
        self,
        take: Callable[[ConsumerRecord], object],
        done: Callable[[], bool],
        *,
        timeout_s: float,
    ) -> bool:
        """Hand every record to ``take`` until ``done()``; False if ``timeout_s`` passed
        first (the caller says what was missing)."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            for record in await self.batch(timeout_ms=300):
                take(record)
        return True
