"""The per-venue token bucket (streams/security/quota.py): how many records pass."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.security.quota import Limit, Quota, row_key, take


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


def test_rows_are_keyed_by_venue_without_clashes() -> None:
    assert row_key("venue-a") != row_key("venue-a1")
    assert row_key('a","b') != row_key("a")


def test_a_venue_spread_over_partitions_shares_one_bucket() -> None:
    """Issue 19: its client picks the partition; a bucket per partition gave it N times
    the limit. Records of one batch come partition after partition, so back in time."""
    quota = Quota({}, Limit(per_s=1, burst=2))
    at = [(0, 10.0), (1, 10.0), (2, 10.0), (3, 10.0), (0, 10.5), (1, 10.2)]
    refused = [p for p, t in at if quota.admit("venue-a", p, t) is not None]
    assert refused == [2, 3, 0, 1]
    assert quota.admit("venue-b", 3, 10.5) is None  # another venue: its own bucket
    assert quota.admit("venue-a", 2, 11.0) is None  # a second later: one more earned
    assert list(quota.rows) == [row_key("venue-a"), row_key("venue-b")]
    reason, message = quota.admit("venue-a", 2, 11.0) or ("", "")
    assert reason == "rate_limited" and "partition 2" in message, message
