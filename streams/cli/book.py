"""``kessai book ISIN``: a bond's order books as the matcher last committed them
(:mod:`streams.audit.books` reads them, :mod:`streams.matching.depth` draws them)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from schemas import is_valid_isin
from streams.audit.books import read_books
from streams.cli._common import Commands, fail, positive_int
from streams.config import Settings
from streams.matching import depth


def add_parser(commands: Commands) -> None:
    book = commands.add_parser(
        "book",
        help="show a bond's order books (depth per price level) as last committed",
        description=(
            "Show the order books of one bond, one per currency: price levels best "
            "first, with the face resting and the number of orders at each. Read from "
            "the engine's committed state (its engine-orders changelog, "
            "read_committed), so no worker needs to run, and it is exactly what a "
            "restarted worker resumes from."
        ),
    )
    book.add_argument("isin", metavar="ISIN", help="the bond, e.g. JP1103551Q43")
    book.add_argument(
        "--levels",
        type=positive_int,
        default=depth.LEVELS_DEFAULT,
        metavar="N",
        help=f"price levels per side (default {depth.LEVELS_DEFAULT})",
    )
    book.add_argument(
        "--format", choices=("table", "json"), default="table", help="table (default) or json"
    )
    book.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not is_valid_isin(args.isin):
        return fail(f"{args.isin!r} is not an ISIN (2 letters, 9 letters or digits, check digit)")
    try:
        books = asyncio.run(read_books(settings, args.isin))
    except TimeoutError as err:
        return fail(str(err))
    if args.format == "json":
        print(orjson.dumps(depth.depth_json(books, args.levels)).decode())
    else:
        sys.stdout.write(depth.depth_table(args.isin, books, args.levels))
    return 0
