"""The ``kessai`` command: one entry point for the broker, the topics, data and workers.

Thin by design: one module per command group (:mod:`~streams.cli.kafka`,
:mod:`~streams.cli.topics`, :mod:`~streams.cli.publish`, :mod:`~streams.cli.instruments`,
:mod:`~streams.cli.audit`,
:mod:`~streams.cli.signers`, :mod:`~streams.cli.book`, :mod:`~streams.cli.worker`,
:mod:`~streams.cli.demo`, :mod:`~streams.cli.bench`), each an ``add_parser`` beside the
handlers it installs; a handler parses nothing and calls one function of the module
that does the work. Settings come from the environment
(:meth:`streams.config.Settings.from_env`), never from flags, so that the worker, the
tests and the command line always agree on them.

Exit codes: 0 success; 1 failure (any :class:`~streams.errors.KessaiError`, printed as
``kessai: error: ...``, no traceback); 2 a usage error (argparse's convention); 130
interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from streams import __version__
from streams.cli import (
    audit,
    bench,
    book,
    demo,
    instruments,
    kafka,
    penalties,
    publish,
    signers,
    topics,
    worker,
)
from streams.cli._common import PROG, Handler, exit_code, fail
from streams.config import Settings
from streams.errors import KessaiError

__all__ = ["main"]

#: The command groups, in the order ``kessai --help`` lists them.
GROUPS = (
    kafka, topics, publish, instruments, audit, penalties, signers, book, worker, demo, bench
)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kessai`` with *argv* (default ``sys.argv[1:]``); return the exit code."""
    try:
        args = _parse(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exit_:  # --help, or a usage error argparse has printed
        return exit_code(exit_)
    try:
        settings = Settings.from_env()
        handler: Handler = args.handler
        return handler(args, settings)
    except KessaiError as err:
        return fail(str(err))
    except KafkaError as err:
        bootstrap = getattr(locals().get("settings"), "bootstrap", "?")
        return fail(f"Kafka at {bootstrap}: {err!r}; is it up? (`kessai kafka status`)")
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    """``kessai``'s whole command line: the root, then each group's commands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "kessai (決済): settle tokenized JGB trades against stablecoin payments, "
            "exactly once, on Kafka."
        ),
        epilog=(
            "Settings come from the environment: KESSAI_BOOTSTRAP (default 127.0.0.1:9092), "
            "KESSAI_PARTITIONS, KESSAI_TOKENS, KESSAI_STATE_DIR (default ./.kessai), "
            "KESSAI_APP_ID. Run `kessai COMMAND --help` for each command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.add_parser(commands)
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    """The parsed command line; raises SystemExit as argparse does."""
    parser = build_parser()
    # parse_known_args: whatever follows `worker` belongs to faust, options included.
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        raise SystemExit(2)
    if args.command == "worker":
        args.worker_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    return args
