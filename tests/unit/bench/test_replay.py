"""The replay bench's journal stamps: relative to the clock, ahead of it, never a date."""

from __future__ import annotations

import pytest
from kessai_bench import replay

from streams.kafka.reader import parse_as_of

DAY_MS = 86_400_000
NOW_MS = 1_700_000_000_000


@pytest.mark.parametrize("records", [1, 20_000, 1_000_000, 10_000_000])
def test_the_journal_is_stamped_ahead_of_the_clock_by_its_writing_time(records: int) -> None:
    start = replay.journal_start_ms(NOW_MS, records)
    lead_s = (start - NOW_MS) / 1000
    assert lead_s >= replay.STAMP_LEAD_S_MIN
    assert lead_s >= records / replay.PREFILL_RECORDS_PER_S_MIN


@pytest.mark.parametrize("days", [-400, -8, 1, 30, 4000])
def test_the_stamps_follow_the_clock_whatever_the_day(days: int) -> None:
    # A fixed date falls days behind the clock in time, and its journal with it.
    then = NOW_MS + days * DAY_MS
    assert (
        replay.journal_start_ms(then, 20_000) - then
        == replay.journal_start_ms(NOW_MS, 20_000) - NOW_MS
    )


def test_a_journal_written_past_its_first_stamp_is_refused() -> None:
    start = replay.journal_start_ms(NOW_MS, 20_000)
    replay.check_written_before(start, start - 1)
    for late in (start, start + 5_000):
        with pytest.raises(replay.ReplayBenchError, match="longer than its stamps allow"):
            replay.check_written_before(start, late)


def test_as_of_the_middle_is_the_middle_records_stamp() -> None:
    start = replay.journal_start_ms(NOW_MS, 20_001)
    as_of = replay.as_of_middle(start, 20_001)
    assert as_of.endswith("Z")
    assert parse_as_of(as_of).timestamp_ms == start + 10_000
