"""The per-venue token bucket (streams/security/quota.py): how many records pass."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.security.quota import Limit, row_key, take


def _run(times_ms: list[int], limit: Limit) -> list[bool]:
    row = None
    passed = []
    for at in times_ms:
        ok, row = take(row, at, limit)
        passed.append(ok)
    return passed


def test_a_burst_passes_up_to_its_size_then_the_rate_refills_it() -> None:
    limit = Limit(per_s=10, burst=5)
    # Eight records in the same millisecond: five pass.
    assert _run([1_000] * 8, limit) == [True] * 5 + [False] * 3
    # 100 ms later one more has been earned, and 1 s later the bucket is full again.
    assert _run([1_000] * 5 + [1_100, 1_100], limit) == [True] * 6 + [False]
    assert _run([1_000] * 5 + [2_000] * 6, limit) == [True] * 10 + [False]


def test_time_going_back_refills_nothing() -> None:
    limit = Limit(per_s=1, burst=1)
    assert _run([5_000, 1_000, 1_000, 6_000], limit) == [True, False, False, True]


@given(
    gaps=st.lists(st.integers(0, 500), min_size=1, max_size=300),
    per_s=st.integers(1, 50),
    burst=st.integers(1, 20),
)
def test_no_window_passes_more_than_the_burst_and_the_rate(
    gaps: list[int], per_s: int, burst: int
) -> None:
    limit = Limit(per_s=per_s, burst=burst)
    times = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    passed = [t for t, ok in zip(times, _run(times, limit), strict=True) if ok]
    for i, start in enumerate(passed):
        for j in range(i, len(passed)):
            span_ms = passed[j] - start
            # At most the burst plus what the rate earned over the window.
            assert j - i + 1 <= burst + span_ms * per_s // 1000, (passed, i, j)


@given(per_s=st.integers(1, 100), count=st.integers(1, 200))
def test_a_venue_within_its_rate_is_never_refused(per_s: int, count: int) -> None:
    step_ms = -(-1000 // per_s)  # at or below the rate
    assert all(_run([n * step_ms for n in range(count)], Limit(per_s=per_s, burst=1)))


def test_rows_are_keyed_by_venue_and_partition_without_clashes() -> None:
    assert row_key("venue-a", 1) != row_key("venue-a", 11)
    assert row_key('a",1', 2) != row_key("a", 1)
