"""The scrape benchmark (kessai_bench.scrape) measures what it says, on a small table."""

from __future__ import annotations

from kessai_bench import scrape


def test_a_tiny_run_times_every_way() -> None:
    got = scrape.measure(2_000, rounds=1)
    assert set(got) == {"full_pass_ms", "scrape_ms", "add_us"}
    assert all(v > 0 for v in got.values()), got
    # A scrape over the running sums does not grow with the accounts.
    assert got["scrape_ms"] < got["full_pass_ms"]
