"""What every command group shares: the program name, the handler type, exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeAlias

from streams.config import Settings

PROG = "kessai"

#: A command's handler: parsed arguments and the settings in, the exit code out.
Handler = Callable[[argparse.Namespace, Settings], int]
#: What ``add_subparsers`` returns (argparse keeps its class private).
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def fail(message: str) -> int:
    """Say what went wrong on stderr; exit code 1."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


def exit_code(exit_: SystemExit) -> int:
    """The exit code a ``SystemExit`` stands for, as the interpreter would pick it."""
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    print(exit_.code, file=sys.stderr)
    return 1


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value
