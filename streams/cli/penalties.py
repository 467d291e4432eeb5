"""``kessai penalties [--month YYYY-MM]``: the fail penalties owed per counterparty
pair and month, from the committed ``penalties`` topic (docs/fails.md)."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys

from schemas import PENALTIES, FailPenalty, SchemaError, decode
from streams.audit import penalties
from streams.cli._common import Commands, fail
from streams.config import Settings
from streams.kafka.reader import read_committed

__all__ = ["add_parser"]

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def add_parser(commands: Commands) -> None:
    command = commands.add_parser(
        "penalties",
        help="sum the fail penalties per counterparty pair and month",
        description=(
            "Read every committed record of `penalties` (one per liable party per fail "
            "day of a failing trade: docs/fails.md) and sum them per month and pair: who "
            "owes whom, in which currency, for how many fail days of how many trades. "
            "Each day's amount is already truncated; the sums are exact."
        ),
    )
    command.add_argument(
        "--month", metavar="YYYY-MM", default=None, help="only this month (default: every month)"
    )
    command.add_argument(
        "--format",
        choices=penalties.FORMATS,
        default="table",
        help="table (default), json (amounts as decimal strings) or csv",
    )
    command.set_defaults(handler=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.month is not None and not _MONTH.match(args.month):
        return fail(f"--month {args.month!r}: want a month as YYYY-MM, e.g. 2025-11")
    try:
        records = asyncio.run(read_committed(settings, PENALTIES))
    except TimeoutError as err:
        return fail(str(err))
    taken: list[FailPenalty] = []
    unreadable = 0
    for record in records:
        try:
            penalty = decode(PENALTIES, record.value)
        except SchemaError:
            unreadable += 1  # only kessai writes this topic: say so, do not stop
            continue
        assert isinstance(penalty, FailPenalty)
        taken.append(penalty)
    sys.stdout.write(penalties.render(penalties.fold(taken, args.month), args.format))
    print(f"{len(taken)} penalty records read", file=sys.stderr)
    if unreadable:
        print(f"{unreadable} records of `{PENALTIES}` do not decode: skipped", file=sys.stderr)
    return 0
