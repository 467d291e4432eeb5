"""`kessai bench`, tiny, on the real broker: the harness works. Never a speed check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams import localkafka
from streams.bench.variants import RATIOS, VARIANTS

#: A few hundred records per measurement; generous bound for a busy CI machine.
RECORDS = 300
RUN_TIMEOUT_S = 300


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


@pytest.mark.integration
def test_a_tiny_bench_writes_every_variant_with_sane_figures(
    bootstrap: str, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "bench",
            "--count",
            str(RECORDS),
            "--seconds",
            "5",
            "--rate",
            "0,half,backlog",
            "--commit-interval-ms",
            "200",
            "--drain-idle-s",
            "20",
            "--out",
            str(out),
        ],
        env={**os.environ, "KESSAI_BOOTSTRAP": bootstrap},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    [directory] = out.iterdir()
    doc = orjson.loads((directory / "results.json").read_bytes())
    markdown = (directory / "results.md").read_text()
    assert "| variant | load |" in markdown
    assert str(directory / "results.json") in run.stdout

    results = doc["results"]
    loads = list(dict.fromkeys(r["load"] for r in results))
    assert loads[0] == "full speed" and loads[1].endswith("/s") and loads[2] == "backlog"
    assert [(r["variant"], r["load"]) for r in results] == [
        (v, load) for load in loads for v in VARIANTS
    ]
    for r in results:
        assert r["complete"], r
        assert 0 < r["published"] <= RECORDS
        assert r["outputs"] == r["expected_outputs"] == r["published"]
        assert r["distinct_keys"] == r["outputs"]  # nothing repeated
        assert r["through_rps"] > 0
        lat = r["latency_ms"]
        if r["load"] == "backlog":
            assert lat is None  # published before the process started: no latency
        else:
            assert lat["count"] == r["outputs"]
            assert 0 <= lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert r["cpu_s"] > 0
        assert r["peak_rss_mib"] > 0 and r["peak_rss_source"] == "VmHWM"
        assert 200 <= r["value_bytes_mean"] <= 260  # the real pipeline's trade size
        assert f"| {r['variant']} |" in markdown
        assert variant_topics_gone(bootstrap, r["topics"])

    labels = {(q["label"], q["load"]) for q in doc["ratios"]}
    assert labels == {(label, load) for label, _, _ in RATIOS for load in loads}
    for q in doc["ratios"]:
        assert q["through_rps"] is not None and q["through_rps"] > 0

    machine = doc["machine"]
    assert machine["cores"] >= 1 and machine["cpu_model"] and machine["python"]
    assert machine["kafka"]


def variant_topics_gone(bootstrap: str, topics: dict[str, object]) -> bool:
    present = localkafka.run_sync(_topics(bootstrap))
    return topics["source"] not in present and topics["sink"] not in present
