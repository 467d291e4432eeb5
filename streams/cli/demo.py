"""``kessai demo``: the end-to-end story behind ``make run`` (:mod:`streams.devtools.demo`)."""

from __future__ import annotations

import argparse

from streams.cli._common import Commands, exit_code
from streams.config import Settings


def add_parser(commands: Commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the end-to-end demo against the broker",
        description=(
            "Run the end-to-end demo: fund accounts, let a simulated venue publish "
            "trades (some short of cash or bonds, some bad), deliver late deposits, then "
            "let two venues send orders that each reserve their cash or bonds and that "
            "kessai's engine matches into trades settled from those reservations (and "
            "refuses one its account cannot pay for), and "
            "show what settled, waited, failed at the deadline or was rejected, each "
            "order's events, the matched trades, the order book and the balances; then "
            "keep the worker running until Ctrl-C."
        ),
    )
    demo.add_argument(
        "--once",
        action="store_true",
        help="stop the worker after the story and exit 0 only if every outcome arrived",
    )
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.devtools import demo

    try:
        return demo.main(settings, once=args.once)
    except SystemExit as exit_:
        return exit_code(exit_)
