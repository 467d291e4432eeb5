"""``python -m kessai_bench.memory``: its command line, then the run and the report."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from kessai_bench import RESULTS
from kessai_bench.memory.common import MemoryBenchError
from kessai_bench.memory.measure import SETTLE_S, TOUCH_ACCOUNTS, run
from kessai_bench.memory.records import ACCOUNTS_MAX, BOND_FACE, BOND_ISIN, CASH_TOKEN, CASH_UNITS
from kessai_bench.memory.report import NOTES, TARGET_BYTES_PER_ACCOUNT, markdown, write
from kessai_bench.memory.tables_profile import (
    PROFILE_ACCOUNTS,
    profile_tables,
    replay_rss,
    replay_rss_in_child,
)
from kessai_bench.memory.worker import RECOVERY_TIMEOUT_S
from streams.devtools import localkafka

PROG = "python -m kessai_bench.memory"


def parse_accounts(text: str) -> list[int]:
    """``"0,100000,1_000_000"`` -> ``[0, 100000, 1000000]``; 0 (the baseline) required."""
    counts: list[int] = []
    for item in text.split(","):
        item = item.strip().replace("_", "")
        if not item:
            continue
        if not item.isdigit() or int(item) > ACCOUNTS_MAX:
            raise MemoryBenchError(
                f"--accounts: {item!r} is not a count from 0 to {ACCOUNTS_MAX:,}"
            )
        counts.append(int(item))
    if 0 not in counts:
        raise MemoryBenchError(
            "--accounts must include 0: the worker's RSS with no account is the baseline"
        )
    if len(set(counts)) != len(counts):
        raise MemoryBenchError(f"--accounts: {text!r} repeats a count")
    return counts


def parse_env(items: Sequence[str]) -> dict[str, str]:
    """``["MALLOC_ARENA_MAX=2"]`` -> ``{"MALLOC_ARENA_MAX": "2"}``."""
    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not name.replace("_", "").isalnum():
            raise MemoryBenchError(f"--worker-env: {item!r} is not NAME=VALUE")
        env[name] = value
    return env


def _parser() -> argparse.ArgumentParser:
    # The package's docstring describes the whole measurement: it is the help's text.
    from kessai_bench import memory

    assert memory.__doc__ is not None
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=memory.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _where_options(parser)
    _measurement_options(parser)
    return parser


def _where_options(parser: argparse.ArgumentParser) -> None:
    """What is measured and where things go."""
    parser.add_argument(
        "--accounts",
        default="0,100000,1000000",
        help="funded account counts to measure, comma-separated; must include 0, the "
        "baseline (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for memory.json and memory.md (default: bench/results/<UTC time>-memory)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where each count's broker and worker log live (default: a temporary directory)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the workdir (brokers' data, worker logs)"
    )
    parser.add_argument("--partitions", type=int, default=4, help="KESSAI_PARTITIONS (default 4)")


def _measurement_options(parser: argparse.ArgumentParser) -> None:
    """How each count is measured."""
    parser.add_argument(
        "--recovery-timeout-s",
        type=float,
        default=RECOVERY_TIMEOUT_S,
        help="give up on a worker whose engine has not restored after this long; its RSS "
        "so far is reported (default %(default)g)",
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=SETTLE_S,
        help="wait this long after the engine leads before reading RSS (default %(default)g)",
    )
    parser.add_argument(
        "--profile-accounts",
        type=int,
        default=PROFILE_ACCOUNTS,
        help="accounts in the in-process profile of the engine's state (tracemalloc, and "
        "a restore's RSS in a fresh process); 0 skips it (default %(default)s)",
    )
    parser.add_argument(
        "--touch",
        type=int,
        default=TOUCH_ACCOUNTS,
        metavar="K",
        help="after the RSS reading, deposit 1 JPYC into each of the first K accounts "
        "through the pipeline and read RSS again: what the values the worker writes cost "
        "(0 skips it; default %(default)s)",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the worker (repeatable), e.g. MALLOC_ARENA_MAX=2",
    )
    parser.add_argument(
        "--replay-rss",
        type=int,
        default=None,
        metavar="N",
        help=argparse.SUPPRESS,  # internal: the fresh process of replay_rss_in_child
    )


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    from kessai_bench import report  # the machine; imported late, being reworked

    args = _parser().parse_args(argv)
    if args.replay_rss is not None:
        print(orjson.dumps(replay_rss(args.replay_rss, partitions=args.partitions)).decode())
        return 0
    try:
        counts = parse_accounts(args.accounts)
        worker_env = parse_env(args.worker_env)
    except MemoryBenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    out: Path = args.out or RESULTS / (started.strftime("%Y-%m-%dT%H%M%SZ") + "-memory")
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="kessai-memory-"))
    machine = report.machine(localkafka.kafka_version())
    profile = _profile(args)
    try:
        results = asyncio.run(
            run(
                counts,
                workdir=workdir,
                partitions=args.partitions,
                settle_s=args.settle_s,
                recovery_timeout_s=args.recovery_timeout_s,
                worker_env=worker_env,
                touch_accounts=args.touch,
                log=_log,
            )
        )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    doc = {
        "run": _run_facts(args, argv, started, worker_env),
        "machine": machine,
        "results": results,
        "profile": profile,
        "notes": NOTES,
    }
    json_path, md_path = write(doc, out)
    sys.stdout.write(markdown(doc))
    print(f"\nresults: {json_path} and {md_path}")
    if args.keep:
        print(f"brokers' data and worker logs kept in {workdir}")
    return 0 if all(r["ready"] for r in results) else 1


def _profile(args: argparse.Namespace) -> dict[str, Any] | None:
    """The in-process profile and a fresh process's replay, unless skipped (0 accounts)."""
    if args.profile_accounts <= 0:
        return None
    _log(f"profiling the engine's state in-process with {args.profile_accounts:,} accounts")
    profile = profile_tables(args.profile_accounts, partitions=args.partitions)
    profile["replay"] = replay_rss_in_child(args.profile_accounts, partitions=args.partitions)
    return profile


def _run_facts(
    args: argparse.Namespace,
    argv: Sequence[str] | None,
    started: datetime,
    worker_env: dict[str, str],
) -> dict[str, Any]:
    """The report's ``run``: the command, when, and what each account was funded with."""
    return {
        "command": f"{PROG} " + " ".join(sys.argv[1:] if argv is None else argv),
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "partitions": args.partitions,
        "cash": f"{CASH_UNITS:,} {CASH_TOKEN}",
        "bond": f"{BOND_FACE:,} face of {BOND_ISIN}",
        "settle_s": args.settle_s,
        "worker_env": worker_env,
        "touch_accounts": args.touch,
        "target_bytes_per_account": TARGET_BYTES_PER_ACCOUNT,
    }
