"""``kessai bench``: the benchmarks, when the ``kessai-bench`` distribution is installed.

The benchmarks live in the checkout's ``bench/`` (package ``kessai_bench``), not in the
kessai wheel: a production install carries none of them. ``make venv`` installs them
beside kessai; without them this command says how to get them and exits 1.
"""

from __future__ import annotations

import argparse
import importlib.util

from streams.cli._common import Commands, fail
from streams.config import Settings

#: What to do when the bench is not installed.
INSTALL_HINT = (
    "kessai bench needs the benchmarks, which are not part of the kessai wheel: from a "
    "checkout, `make venv` (or `pip install -e ./bench`) installs them"
)


def add_parser(commands: Commands) -> None:
    if importlib.util.find_spec("kessai_bench") is None:
        bench = commands.add_parser(
            "bench",
            help="measure throughput, latency, CPU and memory (needs kessai-bench)",
            description=INSTALL_HINT,
        )
        bench.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        bench.set_defaults(handler=_not_installed)
        return
    from kessai_bench import command

    command.add_parser(commands)


def _not_installed(args: argparse.Namespace, settings: Settings) -> int:
    return fail(INSTALL_HINT)
