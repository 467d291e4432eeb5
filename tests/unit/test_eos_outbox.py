"""The outbox of streams/eos.py: which held records a commit up to offset c takes."""

from __future__ import annotations

import asyncio

import pytest
from faust.types import TP

from streams.eos import Outbox, _Held

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
    from streams.eos import dropped_offsets

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
    from streams.eos import commit_offset

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
