"""``kessai bench``: its command line, and what it does once parsed: broker up, run, print.

:func:`add_parser` is called by :mod:`streams.cli.bench` when this package is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from kessai_bench import RESULTS, report, variants, warmup
from kessai_bench.runner import BACKLOG, HALF, BenchError, Plan, RateSpec, parse_rates, run
from streams.cli._common import Commands
from streams.config import Settings
from streams.devtools import localkafka

#: Where results go unless --out says otherwise: one directory per run.
DEFAULT_OUT = RESULTS
#: The raw passthrough's commit interval unless --commit-interval-ms says otherwise.
RAW_COMMIT_INTERVAL_MS = 100.0


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
    broker_warmup_s: float = warmup.WARMUP_S,
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
        broker_warmup_s=broker_warmup_s,
        command=command,
    )

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    status = localkafka.up(settings, log=log)
    kafka = (
        localkafka.kafka_version() if status.managed else "unknown (a broker kessai did not start)"
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


DESCRIPTION = (
    "Benchmark side by side in one run: a load generator publishes realistic "
    "trades at a fixed rate, at full speed or as a backlog drained afterwards, "
    "into each variant: the raw passthrough ceiling (a plain aiokafka "
    "consume->produce loop doing no processing, at-least-once and "
    "transactional, on the local broker, started if need be) and the settlement "
    "pipeline (kessai worker with funded accounts, at_least_once and "
    "exactly_once, on a fresh broker of its own per measurement). For each: "
    "outputs/s (trades settled/s for the pipeline), Kafka records/s, latency "
    "p50/p95/p99 from publish to visible to a read_committed consumer, the "
    "process's CPU time and peak RSS; then the ratios. Results (JSON, Markdown "
    "and a PNG chart, with the machine) go to OUT/<UTC date-time>/. Partitions: "
    "KESSAI_PARTITIONS. A benchmark, not a test: keep the machine otherwise "
    "idle for figures worth quoting."
)
EPILOG = (
    "Examples: `kessai bench` (full speed, half of it, then a backlog; 10 s of "
    "publishing each); "
    "`kessai bench --rate 2000 --seconds 30`; "
    "`kessai bench --variants raw-transactional --count 100000 --rate 0`; "
    "`kessai bench --variants all --rate 40,backlog` (every optimisation too)."
)


def add_parser(commands: Commands) -> None:
    """``kessai bench`` and its options, on the ``kessai`` command line."""
    bench = commands.add_parser(
        "bench",
        help="measure throughput, latency, CPU and memory against the raw ceiling",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    _load_arguments(bench)
    _run_arguments(bench)
    bench.set_defaults(handler=run_command)


def _load_arguments(bench: argparse.ArgumentParser) -> None:
    bench.add_argument(
        "--variants",
        type=_variant_list,
        default=list(variants.DEFAULT_VARIANTS),
        metavar="V[,V...]",
        help=(
            "what to measure, in order, or `all` "
            f"(default: {', '.join(variants.DEFAULT_VARIANTS)}; known: "
            f"{', '.join(variants.VARIANTS)}; a `+tweak` variant is the exactly-once "
            "pipeline with one optimisation, compared with the one without)"
        ),
    )
    bench.add_argument(
        "--rate",
        type=_rate_list,
        default=[0.0, HALF, BACKLOG],
        metavar="R[,R...]",
        help=(
            "loads, each measured for every variant: records/s, 0 for full speed, `half` "
            "for half the exactly-once pipeline's top speed measured earlier in this run "
            "(its backlog or full-speed throughput; else the slowest full-speed one), or "
            "`backlog`: publish first, then start the process and time how fast it "
            "drains (its own top speed; no latency) (default: 0,half,backlog)"
        ),
    )
    bench.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="publish for this long per measurement (default 10 unless --count is given)",
    )
    bench.add_argument(
        "--count",
        type=int,
        default=None,
        help="publish this many records per measurement (with --seconds: whichever first)",
    )
    bench.add_argument(
        "--pipeline-count",
        type=int,
        default=5_000,
        metavar="N",
        help=(
            "publish at most N trades per pipeline measurement (default 5000): it "
            "settles hundreds a second where the raw ceiling copies tens of thousands, "
            "so the same --seconds would leave it hours of backlog"
        ),
    )


def _run_arguments(bench: argparse.ArgumentParser) -> None:
    bench.add_argument(
        "--commit-interval-ms",
        type=float,
        default=RAW_COMMIT_INTERVAL_MS,
        help=(
            "the raw passthrough's offset commit / transaction interval (default "
            f"{RAW_COMMIT_INTERVAL_MS:g}); the pipeline commits each batch when it is applied"
        ),
    )
    bench.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="results directory; each run writes a dated directory in it (default bench/results/)",
    )
    bench.add_argument(
        "--drain-idle-s",
        type=float,
        default=15.0,
        help="give up waiting for outputs after this long without one (default 15)",
    )
    bench.add_argument(
        "--profile",
        type=_variant_list,
        default=[],
        metavar="V[,V...]",
        help=(
            "profile these variants' process with py-spy while it works; the top "
            "entries go in the results, the collapsed stacks beside them"
        ),
    )
    bench.add_argument(
        "--baseline",
        metavar="REV",
        default=None,
        help=(
            "also measure the exactly-once pipeline of git revision REV (a worktree, same "
            "venv), right after this checkout's: an optimisation's before and after in "
            "one run"
        ),
    )
    bench.add_argument(
        "--broker-warmup-s",
        type=float,
        default=warmup.WARMUP_S,
        metavar="S",
        help=(
            "load each pipeline measurement's own fresh broker this long before measuring "
            "(default %(default)g; 0: none): a just-started JVM's JIT compiler otherwise "
            "takes about a core during the measurement"
        ),
    )
    bench.add_argument(
        "--keep-topics",
        action="store_true",
        help="keep the bench topics afterwards (default: deleted after each measurement)",
    )


def _variant_list(text: str) -> list[str]:
    if text.strip() == "all":
        return list(variants.VARIANTS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in variants.VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown variant(s) {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(variants.VARIANTS)}"
        )
    return names


def _rate_list(text: str) -> list[RateSpec]:
    try:
        return parse_rates(text)
    except BenchError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """The handler of ``kessai bench``."""
    seconds = args.seconds if args.seconds is not None or args.count is not None else 10.0
    return main(
        settings,
        variants=args.variants,
        rates=args.rate,
        seconds=seconds,
        count=args.count,
        commit_interval_ms=args.commit_interval_ms,
        out=args.out,
        drain_idle_s=args.drain_idle_s,
        keep_topics=args.keep_topics,
        profile=args.profile,
        baseline=args.baseline,
        pipeline_count=args.pipeline_count,
        broker_warmup_s=args.broker_warmup_s,
        command=_command_line(),
    )


def _command_line() -> str:
    """This process's command line as `kessai ...`, for the record of a run."""
    rest = sys.argv[1:] if sys.argv[1:2] == ["bench"] else ["bench"]
    return shlex.join(["kessai", *rest])
