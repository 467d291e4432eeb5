"""`kessai bench`, tiny, on the real broker: the harness works. Never a speed check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from kessai_bench.variants import RATIOS

from streams.devtools import localkafka

RAW = ("raw-at-least-once", "raw-transactional")
PIPELINE = ("pipeline-at-least-once", "pipeline-exactly-once", "matching-exactly-once")

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


def _bench(
    bootstrap: str, tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], Path, dict[str, Any], str]:
    """Run `kessai bench ARGS` into tmp_path; its run, directory, results and page."""
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "streams.cli", "bench", *args, "--out", str(out)],
        env={**os.environ, "KESSAI_BOOTSTRAP": bootstrap},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    [directory] = out.iterdir()
    doc = orjson.loads((directory / "results.json").read_bytes())
    return run, directory, doc, (directory / "results.md").read_text()


@pytest.mark.integration
@pytest.mark.slow
def test_a_tiny_bench_writes_every_variant_with_sane_figures(
    bootstrap: str, tmp_path: Path
) -> None:
    run, directory, doc, markdown = _bench(
        bootstrap,
        tmp_path,
        *("--variants", ",".join(RAW), "--count", str(RECORDS), "--seconds", "5"),
        *("--rate", "0,half,backlog", "--commit-interval-ms", "200", "--drain-idle-s", "20"),
    )
    assert "| variant | load |" in markdown
    assert str(directory / "results.json") in run.stdout

    results = doc["results"]
    loads = list(dict.fromkeys(r["load"] for r in results))
    assert loads[0] == "full speed" and loads[1].endswith("/s") and loads[2] == "backlog"
    assert [(r["variant"], r["load"]) for r in results] == [
        (v, load) for load in loads for v in RAW
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
    raw_ratios = [label for label, a, b in RATIOS if a in RAW and b in RAW]
    assert labels == {(label, load) for label in raw_ratios for load in loads}
    for q in doc["ratios"]:
        assert q["through_rps"] is not None and q["through_rps"] > 0

    machine = doc["machine"]
    assert machine["cores"] >= 1 and machine["cpu_model"] and machine["python"]
    assert machine["kafka"]


def variant_topics_gone(bootstrap: str, topics: dict[str, object]) -> bool:
    present = localkafka.run_sync(_topics(bootstrap))
    return topics["source"] not in present and topics["sink"] not in present


#: Trades per pipeline measurement: a few seconds' worth at the rate below.
TRADES = 60
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _may_ptrace_children_of_others() -> bool:
    """Whether py-spy can attach to a sibling process here (root, or ptrace_scope 0)."""
    try:
        scope = Path("/proc/sys/kernel/yama/ptrace_scope").read_text().strip()
    except OSError:
        scope = "0"
    return os.geteuid() == 0 or scope == "0"


@pytest.mark.integration
@pytest.mark.slow
def test_a_tiny_pipeline_bench_settles_every_trade_on_brokers_of_its_own(
    bootstrap: str, tmp_path: Path
) -> None:
    _, directory, doc, markdown = _bench(
        bootstrap,
        tmp_path,
        *("--variants", ",".join(PIPELINE), "--count", str(TRADES), "--rate", "30"),
        *("--commit-interval-ms", "200", "--profile", "pipeline-exactly-once"),
    )
    assert [r["variant"] for r in doc["results"]] == list(PIPELINE)
    for r in doc["results"]:
        assert r["complete"], r
        assert r["published"] == TRADES
        # The matching variant publishes orders in crossing pairs: one trade a pair.
        trades = TRADES // 2 if r["variant"].startswith("matching") else TRADES
        assert r["outputs"] == r["distinct_keys"] == trades  # one terminal record each
        assert r["latency_ms"]["count"] == trades  # every one paired with its publish
        # Split at the output's own timestamp: each part within the whole.
        split = r["latency_split_ms"]
        assert split["written"]["count"] == split["visible"]["count"] == trades
        for part in ("written", "visible"):
            assert 0 <= split[part]["p50_ms"] <= r["latency_ms"]["max_ms"], split
        assert r["trades_per_s"] == r["through_rps"] > 0
        by_topic = r["kafka_records_by_topic"]
        # Funded beforehand, so every trade settles at once: one status record, two
        # locks and four postings in the journal -- and the funding is not counted.
        assert by_topic["settlements"] == trades, by_topic
        assert by_topic["ledger-events"] == 6 * trades, by_topic
        if r["variant"].startswith("matching"):
            # The engine matches (no record on trades); each pair: both orders
            # accepted and filled, each reserving what its fill then takes whole.
            assert by_topic.get("trades", 0) == 0, by_topic
            assert by_topic["order-events"] == 4 * trades, by_topic
            assert abs(r["orders_per_s"] - 2 * r["trades_per_s"]) <= 0.2, r
        assert r["kafka_records_written"] == sum(by_topic.values())
        assert r["records_per_trade"] == round(r["kafka_records_written"] / trades, 2)
        assert r["kafka_records_per_s"] > r["trades_per_s"]
        assert r["cpu_s"] > r["cpu_startup_s"] > 0
        assert r["peak_rss_mib"] > 0
        assert f"| {r['variant']} |" in markdown
    [ratio] = [q for q in doc["ratios"] if q["label"].startswith("exactly_once")]
    assert ratio["through_rps"] > 0 and ratio["kafka_records_per_s"] > 0

    profiled = doc["results"][1]["profile"]
    if _may_ptrace_children_of_others():
        assert profiled["samples"] > 0, profiled
        assert (directory / profiled["file"]).stat().st_size > 0
        assert "### Profile: `pipeline-exactly-once`" in markdown
        # The worker's own code shows by name (the engine's hot path is kessai's, not faust's).
        packages = {p["package"] for p in profiled["self_by_package"]}
        assert {"kessai (streams/)", "aiokafka"} & packages, packages
    else:
        assert "error" in profiled and "Not taken" in markdown
    chart = directory / "chart.png"
    assert chart.read_bytes()[:8] == PNG_MAGIC
    assert "![throughput and latency per variant](chart.png)" in markdown
