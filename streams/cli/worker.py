"""``kessai worker``: run a worker, the faust app of :mod:`streams.runtime.app`."""

from __future__ import annotations

import argparse

from streams.cli._common import Commands, exit_code
from streams.config import Settings


def add_parser(commands: Commands) -> None:
    worker = commands.add_parser(
        "worker",
        help="run a kessai stream-processing worker (faust)",
        description=(
            "Run a kessai worker: the faust app of streams.runtime.app, which keeps the "
            "ledger, settles trades and matches orders. Arguments after `worker` go to "
            "faust's `worker` command (e.g. `kessai worker -l info`); "
            "`kessai worker -- --help` shows them."
        ),
        allow_abbrev=False,
    )
    worker.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.runtime import main  # faust's start-up cost: only when asked

    rest: list[str] = list(args.worker_args)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    try:
        main.run(settings, rest)
    except SystemExit as exit_:
        return exit_code(exit_)
    return 0
