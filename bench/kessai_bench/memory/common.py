"""What every part of the memory bench shares: its error, its log, how it prints sizes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from streams.errors import KessaiError

#: A long step (a prefill, a restore) says how far it got this often.
PROGRESS_EVERY_S: Final = 30.0

Log = Callable[[str], None]


class MemoryBenchError(KessaiError):
    """The measurement could not be made as asked."""


def mib(kib: int | None) -> str:
    """KiB as MiB with one decimal, ``–`` for none."""
    return "–" if kib is None else f"{kib / 1024:,.1f}"
