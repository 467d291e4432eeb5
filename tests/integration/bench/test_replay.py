"""The replay bench runs end to end on the real broker, small, and its figures hold up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kessai_bench import replay

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
