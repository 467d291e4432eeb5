"""The matching agent's record helpers (no Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.matching.handler import record_time


def test_record_times_that_are_no_time_are_none_not_a_crash() -> None:
    assert record_time(1_764_115_200.0) == datetime(2025, 11, 26, tzinfo=UTC)
    # Any producer can set a timestamp; past year 9999 datetime raised ValueError.
    for bad in (None, 0, 253_402_300_800.0, 1e300):
        assert record_time(bad) is None
