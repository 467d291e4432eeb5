"""What the batch loops share (streams/runtime/batches.py): taking over when a
rebalance comes during the restore."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from streams.runtime.batches import Leadership

A, B = TopicPartition("trades", 0), TopicPartition("trades", 1)


async def test_a_restore_that_spans_a_rebalance_seeks_once_the_assignment_is_back() -> None:
    """CI, 2026-12-04: a worker joining during the engine's restore revoked its inputs
    for a moment; the loop took the empty set for them and stopped at the next
    assignment, although the inputs had stayed with it."""
    leadership, taken = Leadership(), {A, B}
    await leadership.on_partitions_assigned(taken)
    await leadership.on_partitions_revoked(taken)  # the rebalance, in flight
    seeks: list[int] = []

    async def seek() -> None:
        seeks.append(leadership.generation)

    waiting = asyncio.create_task(leadership.seek_when_settled(taken, seek))
    await asyncio.sleep(0.2)
    assert not waiting.done() and seeks == []  # no seek while nothing is assigned
    await leadership.on_partitions_assigned(taken)  # kept
    assert await waiting == 2 and seeks == [2]
    # Given to another worker: no seek, None.
    await leadership.on_partitions_revoked(taken)
    await leadership.on_partitions_assigned({A})
    assert await leadership.seek_when_settled(taken, seek) is None and seeks == [2]
