"""After recovery, every stream partition is read again from its committed offset, or
from the start when its group never committed one (hole 12 in docs/exactly-once.md).

faust hands a first assignment's partitions to the fetcher before recovery pauses
them: what it fetches then waits in the stream queues, and the flow-control resume at
the end of recovery clears it. The seek after recovery must then bring the position
back. aiokafka's ``seek_to_committed`` seeks only ``if offset and offset > 0``, so a
fresh group's partitions stayed at the end and the worker skipped its whole backlog
(seen: 1 start in 5 with a prefilled changelog and inputs waiting).

The race itself cannot be forced from outside, so this test puts a real consumer in
the state it leaves behind (positions at the end, nothing committed or 0 committed)
and runs ``KessaiConsumer.seek_to_committed`` on it, with faust's consumer thread
reduced to the two calls that method makes of it.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from streams.config import Settings
from streams.kafka.admin import create_topics
from streams.runtime.eos import KessaiConsumer
from streams.topics import TopicSpec

pytestmark = pytest.mark.integration

RECORDS_PER_PARTITION = 5


class _Thread:
    """faust's ``AIOKafkaConsumerThread``, as far as the seek uses it: one aiokafka
    consumer, and calls run on it."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer

    def _ensure_consumer(self) -> AIOKafkaConsumer:
        return self.consumer

    async def call_thread(self, fun: Callable[..., Any], *args: Any) -> Any:
        return await fun(*args)

    async def seek_to_committed(self) -> Any:  # stock faust's path, for comparison
        return await self.consumer.seek_to_committed()


def _faust_consumer(consumer: AIOKafkaConsumer, changelogs: set[str]) -> Any:
    app = SimpleNamespace(
        conf=SimpleNamespace(consumer_auto_offset_reset="earliest"),
        tables=SimpleNamespace(changelog_topics=changelogs),
    )
    return SimpleNamespace(_thread=_Thread(consumer), app=app)


async def _consumed_to_the_end(
    bootstrap: str, group: str, tps: list[TopicPartition]
) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    consumer.assign(tps)
    wanted = RECORDS_PER_PARTITION * len(tps)
    seen = 0
    while seen < wanted:
        batches = await consumer.getmany(timeout_ms=10_000)
        assert batches, f"only {seen} of {wanted} records came back"
        seen += sum(len(records) for records in batches.values())
    for tp in tps:
        assert await consumer.position(tp) == RECORDS_PER_PARTITION
    return consumer


async def test_stream_partitions_without_a_committed_offset_are_read_again_from_the_start(
    bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    prefix = unique_name("seek")
    stream, changelog = f"{prefix}payments", f"{prefix}app-accounts-changelog"
    await create_topics(
        Settings(bootstrap=bootstrap),
        [TopicSpec(name=stream, partitions=3), TopicSpec(name=changelog, partitions=1)],
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition in range(3):
            for i in range(RECORDS_PER_PARTITION):
                await producer.send_and_wait(stream, b"v%d" % i, partition=partition)
        for i in range(RECORDS_PER_PARTITION):
            await producer.send_and_wait(changelog, b"c%d" % i, partition=0)
    finally:
        await producer.stop()
    never, zero, two = (TopicPartition(stream, p) for p in range(3))
    log = TopicPartition(changelog, 0)
    tps = [never, zero, two, log]

    async def seek_after_a_first_fetch(stock: bool) -> dict[TopicPartition, int]:
        """Everything fetched; partition 1 committed at 0, partition 2 at 2; seek."""
        consumer = await _consumed_to_the_end(bootstrap, unique_name("group"), tps)
        try:
            await consumer.commit({zero: OffsetAndMetadata(0, ""), two: OffsetAndMetadata(2, "")})
            faust_consumer = _faust_consumer(consumer, {changelog})
            if stock:
                committed = await faust_consumer._thread.seek_to_committed()
            else:
                committed = await KessaiConsumer.seek_to_committed(faust_consumer)
            assert committed == {never: None, zero: 0, two: 2, log: None}
            return {tp: await consumer.position(tp) for tp in tps}
        finally:
            await consumer.stop()

    end = RECORDS_PER_PARTITION
    # aiokafka's own seek: the fresh partition and the one committed at 0 stay at the
    # end, so the records fetched before it would never be processed.
    assert await seek_after_a_first_fetch(stock=True) == {never: end, zero: end, two: 2, log: end}
    # kessai's: every stream partition is back where its group left it, or at the start.
    # The changelog, never committed and recovered already, keeps its position.
    assert await seek_after_a_first_fetch(stock=False) == {never: 0, zero: 0, two: 2, log: end}
