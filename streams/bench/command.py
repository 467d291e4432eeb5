"""What ``kessai bench`` does once its arguments are parsed: broker up, run, print."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from streams import localkafka
from streams.bench import report
from streams.bench.runner import BenchError, Plan, RateSpec, run
from streams.config import PROJECT_ROOT, Settings

#: Where results go unless --out says otherwise: one directory per run.
DEFAULT_OUT = PROJECT_ROOT / "bench" / "results"


def main(
    settings: Settings,
    *,
    variants: Sequence[str],
    rates: Sequence[RateSpec],
    seconds: float | None,
    count: int | None,
    commit_interval_ms: float,
    out: Path,
    drain_idle_s: float,
    keep_topics: bool,
    command: str,
    profile: Sequence[str] = (),
    baseline: str | None = None,
    pipeline_count: int = 5_000,
) -> int:
    """Run the bench; print the Markdown table and where the results are. Exit code."""
    plan = Plan(
        variants=tuple(variants),
        rates=tuple(rates),
        seconds=seconds,
        count=count,
        commit_interval_ms=commit_interval_ms,
        partitions=settings.partitions,
        drain_idle_s=drain_idle_s,
        keep_topics=keep_topics,
        profile=tuple(profile),
        baseline=baseline,
        pipeline_count=pipeline_count,
        command=command,
    )

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    status = localkafka.up(settings, log=log)
    kafka = (
        localkafka.KAFKA_VERSION if status.managed else "unknown (a broker kessai did not start)"
    )
    doc, directory = asyncio.run(run(status.bootstrap, plan, out, kafka_version=kafka, log=log))
    sys.stdout.write(report.markdown(doc))
    print(f"\nresults: {directory / report.JSON_NAME} and {directory / report.MARKDOWN_NAME}")
    incomplete = [r["variant"] for r in doc["results"] if not r["complete"]]
    if incomplete:
        raise BenchError(
            f"not every output arrived for {', '.join(incomplete)} (see the logs in {directory})"
        )
    return 0
