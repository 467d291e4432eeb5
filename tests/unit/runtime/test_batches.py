"""What the batch loops share (streams/runtime/batches.py): taking over when a
rebalance comes during the restore; the progress line a busy loop logs."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from streams.runtime.batches import Leadership, Progress

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


def test_a_busy_loop_says_what_it_applied_once_a_minute_and_a_quiet_one_says_nothing() -> None:
    """A worker applying a backlog logged nothing after it took over, so a finished
    engine looked like a hung one (CI, 2026-12-05)."""
    progress = Progress(every_s=60.0)
    assert progress.add(0, 0, 0, now=500.0) is None  # timers only: nothing to say
    assert progress.add(4_000, 10, 3, now=1_000.0) is None  # the window starts here
    line = progress.add(2_000, 5, 2, now=1_060.0)
    assert line == (
        "6,000 records in 2 batches in the last 60 s (100/s): 15 rejected, 5 trades settled"
    )
    assert progress.add(100, 0, 0, now=1_061.0) is None  # a new window
    assert progress.add(0, 0, 0, now=1_126.0) == (
        "100 records in 2 batches in the last 65 s (2/s): 0 rejected, 0 trades settled"
    )
    assert progress.add(0, 0, 0, now=1_500.0) is None
    # After an idle gap, the rate is over the records' own minute, not the gap.
    assert progress.add(600, 0, 0, now=5_000.0) is None
    assert progress.add(600, 1, 1, now=5_060.0) == (
        "1,200 records in 2 batches in the last 60 s (20/s): 1 rejected, 1 trades settled"
    )
