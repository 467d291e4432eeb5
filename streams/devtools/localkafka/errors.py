"""What the local broker launcher raises, and how its steps report.

- :class:`LocalKafkaError` and its two kinds: a missing tool (:class:`MissingToolError`),
  a broker that cannot be started, stopped or reached (:class:`BrokerError`);
- :data:`Log`: where every step sends its progress lines (``print``, or a caller's own);
- :func:`tail_text`: the end of a tool's output, as quoted in an error.
"""

from __future__ import annotations

from collections.abc import Callable

from streams.devtools.localkafka.limits import LOG_TAIL_LINES
from streams.errors import KessaiError

__all__ = ["BrokerError", "LocalKafkaError", "Log", "MissingToolError", "tail_text"]

#: Where a step reports progress: one line per call.
Log = Callable[[str], None]


class LocalKafkaError(KessaiError):
    """Base of every error this package raises."""


class MissingToolError(LocalKafkaError):
    """``java`` or ``mvn`` is missing, or too old."""


class BrokerError(LocalKafkaError):
    """The broker could not be started, stopped or reached."""


def tail_text(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text``: enough of a tool's output to explain a failure."""
    return "\n".join(text.rstrip().splitlines()[-lines:])
