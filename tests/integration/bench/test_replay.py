"""The replay bench runs end to end on the real broker, small, and its figures hold up."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kessai_bench import replay

from streams.config import Settings
from streams.kafka.reader import cuts_for, parse_as_of, read_committed

pytestmark = pytest.mark.integration


def test_the_replay_bench_runs_and_counts_what_it_wrote(bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "results"
    argv = ["--records", "20000", "--accounts", "300", "--baseline-records", "2000"]
    assert replay.main([*argv, "--bootstrap", bootstrap, "--out", str(out)]) == 0

    doc = json.loads((out / "results.json").read_text())
    runs = {r["name"]: r for r in doc["runs"]}
    assert set(runs) == {"positions-1-process", "positions", "positions-as-of", "verify"}
    for name in ("positions-1-process", "positions", "verify"):
        assert runs[name]["records"] == 20_000, runs[name]
        assert runs[name]["records_per_s"] > 0 and runs[name]["own_peak_mib"] > 0
    # As of the middle timestamp: records are 1 ms apart, so half of them (+1: at T counts).
    assert runs["positions-as-of"]["records"] == 10_001
    assert runs["positions-1-process"]["readers"] == 0
    assert doc["baseline"]["records"] == 2_000
    assert "| `kessai verify" in (out / "results.md").read_text()


async def test_as_of_the_middle_cuts_each_partition_right_after_the_middle_record(
    bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    """Whatever the day: the cut falls after the last record stamped at or before the
    middle, never at a commit marker (the broker stamps those with its own clock)."""
    records, topic = 3 * replay.TXN_RECORDS, unique_name("replay-journal")
    start_ms = replay.journal_start_ms(time.time_ns() // 1_000_000, records)
    await replay.prefill(bootstrap, topic, records, 50, start_ms=start_ms)
    settings = Settings(bootstrap=bootstrap)
    written = await read_committed(settings, topic)
    assert sorted(r.timestamp for r in written) == list(range(start_ms, start_ms + records))

    as_of = parse_as_of(replay.as_of_middle(start_ms, records))
    ends = {c.partition: c.end for c in await cuts_for(settings, topic, as_of)}
    heads = {c.partition: c.end for c in await cuts_for(settings, topic)}
    middle = start_ms + records // 2
    after: dict[int, int] = {}
    for r in written:
        if r.timestamp > middle:
            after.setdefault(r.partition, r.offset)
    assert ends == {p: after.get(p, head) for p, head in heads.items()}
    kept = [r for r in written if r.offset < ends[r.partition]]
    assert len(kept) == records // 2 + 1
    assert max(r.timestamp for r in kept) == middle
