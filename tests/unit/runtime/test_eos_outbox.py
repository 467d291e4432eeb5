"""The outbox of streams/runtime/eos.py: which held records a commit up to offset c takes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.types import TP

from streams.runtime.eos import Outbox, _Held

P0 = TP("in", 0)
P1 = TP("in", 1)


def _held(offset: int) -> _Held:
    return _Held(offset, raw=("out", b"k", b"v", None, None, None))


def test_take_below_takes_only_records_of_events_before_the_commit_offset() -> None:
    box = Outbox()
    for offset in (3, 3, 4, 5, 5):
        box.hold(P0, _held(offset))
    box.hold(P1, _held(9))
    # Committing P0 up to 5 (next to read): events 3 and 4 are done, 5 is in flight.
    assert [h.offset for h in box.take_below(P0, 5)] == [3, 3, 4]
    assert box.size == 3
    assert box.take_below(P0, 5) == [], "a record is handed out once"
    assert [h.offset for h in box.take_below(P0, 6)] == [5, 5]
    assert [h.offset for h in box.take_below(P1, 10)] == [9]
    assert box.size == 0


def test_records_of_one_partition_must_arrive_in_offset_order() -> None:
    box = Outbox()
    box.hold(P0, _held(7))
    with pytest.raises(AssertionError):
        box.hold(P0, _held(6))


async def test_drop_forgets_revoked_partitions_and_cancels_their_futures() -> None:
    box = Outbox()
    fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    box.hold(P0, _Held(1, raw=("out", None, b"v", None, None, None), result=fut))
    box.hold(P1, _held(2))
    assert box.drop([P0]) == 1
    assert fut.cancelled()
    assert box.size == 1
    assert box.take_below(P0, 100) == []


def test_dropped_offsets_are_those_delivered_before_an_acked_one_and_never_acked() -> None:
    from streams.runtime.eos import dropped_offsets

    # The stall seen in the kill test: committed 1047, 1047-1049 delivered then
    # cleared from a queue, 1050.. processed.
    assert dropped_offsets({1047, 1048, 1049, 1131}, range(1050, 1129), 1047) == [1047, 1048, 1049]
    # Still in flight (nothing later acked yet): not dropped.
    assert dropped_offsets({1047}, [], 1047) == []
    assert dropped_offsets({1131}, range(1050, 1129), 1047) == []
    # Below the committed offset: settled before, ignored.
    assert dropped_offsets({10}, [20], 15) == []
    assert dropped_offsets({10}, [20], None) == [10]
    # Skipped between two acked offsets (acks come in offset order): dropped too.
    assert dropped_offsets({6}, [5, 7], 5) == [6]


def test_the_commit_goes_one_past_the_highest_acked_offset_across_markers() -> None:
    """Offsets 1, 3, 5, 6 are transaction markers (never fetched, never acked)."""
    from streams.runtime.eos import commit_offset

    assert commit_offset([0, 2, 4, 7]) == 8
    assert commit_offset([]) is None


def test_stock_faust_commits_stop_at_transaction_markers() -> None:
    """faust 0.15.3's rule needs every marker noted as a gap; one it missed (here
    5 and 6, right at the committed offset) stops the commit there."""
    from collections import defaultdict
    from types import SimpleNamespace

    from faust.transport.consumer import Consumer
    from intervaltree import IntervalTree

    bare = SimpleNamespace(
        _acked={"tp": [7, 8, 10, 11]},
        _acked_index={"tp": {7, 8, 10, 11}},
        _gap=defaultdict(IntervalTree),
        _committed_offset={"tp": 5},
    )
    # Committed 5; 5 and 6 are markers, 9 another: faust waits for 5 and 6 for ever.
    assert Consumer._new_offset(bare, "tp") is None  # type: ignore[arg-type]


def _consumer_after_a_revocation(late_acks: list[int], committed: int) -> object:
    """A KessaiConsumer as a revocation leaves it: faust forgot the partition's acks,
    then the events still in flight finished and acked again (``late_acks``), and
    their outputs are still held. faust's thread is reduced to the seek's answer."""
    from collections import defaultdict
    from types import SimpleNamespace

    from streams.runtime.eos import KessaiConsumer

    c = object.__new__(KessaiConsumer)
    c._acked = defaultdict(list, {P0: list(late_acks)})
    c._acked_index = defaultdict(set, {P0: set(late_acks)})
    c._gap = defaultdict(list)
    c._committed_offset = defaultdict(lambda: None)
    c._read_offset = defaultdict(lambda: None)
    c._delivered_unacked = defaultdict(set, {P0: set(late_acks)})
    box = Outbox()
    for offset in late_acks:
        box.hold(P0, _held(offset))
    c.transactions = SimpleNamespace(outbox=box)  # type: ignore[assignment]

    async def seek_to_committed() -> dict[TP, int]:
        return {P0: committed}

    c.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    return c


async def test_acks_from_before_a_seek_do_not_carry_the_next_commit() -> None:
    """Hole 14: the new generation re-reads from 897; late acks of 902..919 from the
    old one must not make its first commit 920 (899..919 would then never be redone),
    and their held outputs must not be sent with it."""
    c: Any = _consumer_after_a_revocation(list(range(902, 920)), committed=897)
    await c.perform_seek()
    assert c.transactions.outbox.size == 0
    # The new generation delivers 897.. and has processed 897 and 898 so far.
    c._delivered_unacked[P0].update(range(897, 930))
    for offset in (897, 898):
        c._acked[P0].append(offset)
        c._acked_index[P0].add(offset)
    assert c._new_offset(P0) == 899


async def test_a_revocation_counts_the_open_transactions_it_abandons() -> None:
    from types import SimpleNamespace

    from streams.runtime.eos import ExactlyOnceTransactionManager

    tm: Any = object.__new__(ExactlyOnceTransactionManager)
    tm.outbox = Outbox()
    tm.outbox.hold(P0, _held(3))
    tm.aborts_total = 0
    tm.app = SimpleNamespace(
        conf=SimpleNamespace(id="app"),
        assignor=SimpleNamespace(group_for_topic=lambda topic: 0),
    )
    # Producers (open transactions) for partitions 0 and 1; partition 2 has none.
    tm.producer = SimpleNamespace(_transaction_producers={"app-0-0": object(), "app-0-1": object()})
    await tm.on_partitions_revoked({P0, P1, TP("in", 2)})
    assert tm.aborts_total == 2
    assert tm.outbox.size == 0


async def test_the_livelock_check_skips_a_partition_aiokafka_has_no_position_for() -> None:
    """Right after an assignment aiokafka knows a partition's highwater before its
    position; faust's livelock check then read ``TopicPartitionState.position``, which
    asserts, and the AssertionError crashed the worker (crash test, 2026-12-04)."""
    from types import SimpleNamespace

    import pytest
    from aiokafka import TopicPartition
    from aiokafka.consumer.subscription_state import SubscriptionState
    from faust.types import TP

    from streams.runtime.eos import position_known

    subscriptions = SubscriptionState()
    subscriptions.assign_from_user({TopicPartition("orders", 0)})
    thread = SimpleNamespace(
        _consumer=SimpleNamespace(_fetcher=SimpleNamespace(_subscriptions=subscriptions))
    )
    state = subscriptions.subscription.assignment.state_value(TopicPartition("orders", 0))
    with pytest.raises(AssertionError):
        state.position  # noqa: B018  # what faust's check reads
    assert not position_known(thread, TP("orders", 0))
    state.seek(5)
    assert position_known(thread, TP("orders", 0))
    assert not position_known(thread, TP("orders", 1))  # not assigned here
    assert not position_known(SimpleNamespace(_consumer=None), TP("orders", 0))
