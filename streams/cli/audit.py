"""``kessai positions|verify|verify-settlements|replay``: the auditors' commands, reading
committed records only (:mod:`streams.audit`). Nothing here writes to Kafka."""

from __future__ import annotations

import argparse
import sys

from schemas import LEDGER_EVENTS, SETTLEMENTS
from streams.audit import journal, positions
from streams.cli._common import Commands, fail, positive_int
from streams.config import Settings


def add_parser(commands: Commands) -> None:
    _add_positions(commands)
    _add_verify(commands)
    _add_verify_settlements(commands)
    _add_replay(commands)


def _add_positions(commands: Commands) -> None:
    command = commands.add_parser(
        "positions",
        help="show every account's balances per asset as of any moment, from the journal",
        description=(
            "Show every account's available and locked balance per asset, rebuilt by "
            "replaying the committed records of ledger-events from the beginning (records "
            "of aborted transactions never count), up to the head of the log or --as-of. "
            "The replay checks the journal as it goes: each account's seq must run 1, 2, "
            "3, ... and each balance must be the previous one plus its delta. If it does "
            "not, the broken records are named and the exit code is 1. A summary with the "
            "records read per second goes to stderr."
        ),
    )
    _journal_arguments(command)
    command.add_argument(
        "--asset", metavar="X", default=None, help="only positions in asset X (token or ISIN)"
    )
    command.add_argument(
        "--format",
        choices=positions.FORMATS,
        default="table",
        help="table (default), json (amounts as decimal strings) or csv",
    )
    command.set_defaults(handler=run_positions)


def _add_verify(commands: Commands) -> None:
    verify = commands.add_parser(
        "verify",
        help="check the journal's hash chains; print each account's root and the journal's",
        description=(
            "Walk every account's hash chain on ledger-events (committed records, up to the "
            "head or --as-of): recompute each record's SHA-256 over its canonical bytes "
            "(docs/journal.md) and check it links to the account's record before. Reports "
            "every gap, reordered, altered or unlinked record, and exits 1 if there is one. "
            "Prints each account's root (the hash of its last record) and the journal root "
            "(SHA-256 over the accounts' roots), which a counterparty holding the journal "
            "can recompute independently."
        ),
    )
    _journal_arguments(verify)
    verify.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="table (default), json (with the problems) or csv",
    )
    verify.set_defaults(handler=run_verify)


def _add_verify_settlements(commands: Commands) -> None:
    evidence = commands.add_parser(
        "verify-settlements",
        help="check every settlement back to the venue that signed its trade",
        description=(
            "Read every committed settlements record and check its signed_trade with the "
            "signer registry (KESSAI_SIGNERS_FILE) alone: the signature verifies and the "
            "signer may sign that trade; the signed trade is this settlement's (trade_id, "
            "isin, buyer, seller, quantity, currency); and the cash that settled is what "
            "the signed trade makes. Prints a summary and each problem (topic/partition@"
            "offset); exits 1 on any problem, or on an unsigned settlement when signatures "
            "are required. See docs/security.md."
        ),
    )
    evidence.add_argument(
        "--require-signed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="an unsigned settlement is a problem (default: when signatures are checked)",
    )
    evidence.add_argument(
        "--topic-name",
        metavar="NAME",
        default=SETTLEMENTS,
        help=f"read topic NAME instead of {SETTLEMENTS} (a copy, or tests)",
    )
    evidence.set_defaults(handler=run_verify_settlements)


def _add_replay(commands: Commands) -> None:
    replay = commands.add_parser(
        "replay",
        help="re-run the pure cores over the committed logs and reconcile with the outputs",
        description=(
            "Read every committed record of kessai's topics (nothing is written), re-run "
            "the agents' own per-record handlers in this process (intakes over payments, "
            "custody and trades; the ledger over its command log; the settlement sagas "
            "over their inbox; the matcher over orders) and compare what it derives with "
            "ledger-events, settlements, order-events, the matcher's trades, rejections, "
            "the internal logs, the tables' changelogs and, with --worker, the live "
            "accounts table. Prints one line per check and each check's first "
            "differences (where on its topic, derived vs found); exit code 1 if any "
            "check differs. Run it with the worker's settings (KESSAI_TOKENS, "
            "KESSAI_SETTLEMENT_DEADLINE_S, KESSAI_APP_ID): they are part of the logic."
        ),
    )
    replay.add_argument(
        "--topic",
        metavar="NAME=COPY",
        action="append",
        default=[],
        help="read topic COPY in place of NAME (e.g. ledger-events=journal-copy); repeatable",
    )
    replay.add_argument(
        "--worker",
        metavar="URL",
        action="append",
        default=[],
        help=(
            "also compare each account with the live table: GET URL/positions/ACCOUNT "
            "(e.g. http://127.0.0.1:6066); give one per worker"
        ),
    )
    replay.set_defaults(handler=run_replay)


def _journal_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--as-of",
        metavar="T",
        default=None,
        help=(
            "stop at T: an ISO-8601 time with a zone (2026-11-28T03:00:00+09:00, or ...Z): "
            "every record stamped at or before T counts; or offsets: N (every partition "
            "up to, not including, offset N) or P:O[,P:O...] (partition P up to offset O; "
            "partitions not named are read to the head). Default: the head of the log"
        ),
    )
    command.add_argument(
        "--account", metavar="A", default=None, help="only show account A (the fold reads all)"
    )
    command.add_argument(
        "--topic-name",
        metavar="NAME",
        default=LEDGER_EVENTS,
        help=f"read topic NAME instead of {LEDGER_EVENTS} (a copy, or tests)",
    )
    command.add_argument(
        "--jobs",
        metavar="N",
        type=positive_int,
        default=None,
        help=(
            "read and fold in N processes, each with its own partitions "
            "(default: two per core, at most one per partition)"
        ),
    )
    command.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: only when stderr is a terminal)",
    )


def run_positions(args: argparse.Namespace, settings: Settings) -> int:
    return journal.positions_main(
        settings,
        topic=args.topic_name,
        as_of=args.as_of,
        account=args.account,
        asset=args.asset,
        fmt=args.format,
        progress=args.progress,
        jobs=args.jobs,
    )


def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    return journal.verify_main(
        settings,
        topic=args.topic_name,
        as_of=args.as_of,
        account=args.account,
        fmt=args.format,
        progress=args.progress,
        jobs=args.jobs,
    )


def run_verify_settlements(args: argparse.Namespace, settings: Settings) -> int:
    from streams.audit.evidence import verify_settlements_main

    required = settings.verify_signatures if args.require_signed is None else args.require_signed
    return verify_settlements_main(settings, topic=args.topic_name, require_signed=required)


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    from streams.audit import replay  # the flows' handlers: only when asked

    topics = {}
    for item in args.topic:
        name, sep, copy = item.partition("=")
        if not sep or name not in replay.TOPICS or not copy:
            return fail(f"--topic {item!r}: want NAME=COPY, NAME one of {', '.join(replay.TOPICS)}")
        topics[name] = copy
    report = replay.replay(
        settings,
        topics=topics,
        workers=args.worker,
        log=lambda line: print(line, file=sys.stderr),
    )
    sys.stdout.write(report.render())
    return 0 if report.ok else 1
