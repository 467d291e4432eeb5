"""The prefetch queue (streams/runtime/prefetch.py) over a scripted consumer: records
come out once, in offset order per partition; it stops taking at its bound; a seek
drops what was queued and nothing taken after the seek is lost."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from streams.runtime.prefetch import Prefetch

A, B = TopicPartition("trades", 0), TopicPartition("trades", 1)


def _records(tp: TopicPartition, start: int, n: int) -> list[ConsumerRecord]:
    return [
        ConsumerRecord(tp.topic, tp.partition, o, 0, 0, b"k", b"v", None, 0, 0, ())
        for o in range(start, start + n)
    ]


class Scripted:
    """A consumer whose fetches are a list: each getmany takes the next, up to its
    ``max_records`` (the rest stays for the next call), and records each call."""

    def __init__(self, script: list[dict[TopicPartition, list[ConsumerRecord]]]) -> None:
        self.script = script
        self.asked: list[int] = []
        self.seeks: list[tuple[TopicPartition, int]] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, Any]:
        self.asked.append(max_records)
        if not self.script:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        out: dict[Any, Any] = {}
        head = self.script[0]
        for tp in list(head):
            take, head[tp] = head[tp][:max_records], head[tp][max_records:]
            max_records -= len(take)
            if take:
                out[tp] = take
            if not head[tp]:
                del head[tp]
        if not head:
            self.script.pop(0)
        await asyncio.sleep(0)
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def _offsets(fetched: list[tuple[TopicPartition, list[ConsumerRecord]]]) -> dict[Any, list[int]]:
    return {tp: [r.offset for r in records] for tp, records in fetched}


async def test_records_come_out_once_in_order_per_partition() -> None:
    consumer = Scripted([{A: _records(A, 0, 3)}, {B: _records(B, 0, 2)}, {A: _records(A, 3, 2)}])
    prefetch = Prefetch(consumer, max_records=100)
    prefetch.start()
    try:
        await asyncio.sleep(0.05)
        got = await prefetch.take(100)
        assert _offsets(got) == {A: [0, 1, 2, 3, 4], B: [0, 1]}
        assert await prefetch.take(10) == []  # nothing twice
    finally:
        await prefetch.stop()


async def test_it_stops_taking_at_its_bound_until_the_loop_takes() -> None:
    consumer = Scripted([{A: _records(A, 0, 10)}, {A: _records(A, 10, 10)}])
    prefetch = Prefetch(consumer, max_records=4)
    prefetch.start()
    try:
        await asyncio.sleep(0.05)
        assert prefetch.queued == 4 and consumer.asked == [4]  # full: no further fetch
        assert _offsets(await prefetch.take(0)) == {A: [0, 1, 2, 3]}
        await asyncio.sleep(0.05)
        assert _offsets(await prefetch.take(0)) == {A: [4, 5, 6, 7]}
    finally:
        await prefetch.stop()


async def test_a_seek_drops_the_queue_and_loses_nothing_after_it() -> None:
    consumer = Scripted([{A: _records(A, 0, 5)}])
    prefetch = Prefetch(consumer, max_records=100)
    prefetch.start()
    try:
        await asyncio.sleep(0.05)
        assert prefetch.queued == 5

        def back() -> None:  # the loop goes back to offset 2; the log serves it again
            consumer.seek(A, 2)
            consumer.script.append({A: _records(A, 2, 3)})

        await prefetch.seek(back)
        assert consumer.seeks == [(A, 2)]
        await asyncio.sleep(0.05)
        assert _offsets(await prefetch.take(100)) == {A: [2, 3, 4]}
    finally:
        await prefetch.stop()


async def test_take_waits_for_records_or_its_timeout() -> None:
    consumer = Scripted([])
    prefetch = Prefetch(consumer, max_records=10)
    prefetch.start()
    try:
        started = asyncio.get_running_loop().time()
        assert await prefetch.take(50) == []
        assert asyncio.get_running_loop().time() - started >= 0.04
        consumer.script.append({B: _records(B, 7, 1)})
        assert _offsets(await prefetch.take(1_000)) == {B: [7]}
    finally:
        await prefetch.stop()
