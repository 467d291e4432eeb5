"""What a bench variant is: the :class:`Variant` interface and its :class:`Context`.

A variant names its input and output topics, starts the process under test (a child,
so that its CPU and peak RSS are its own) and says how many output records it expects
for the records published. The runner (:mod:`kessai_bench.runner`) does the rest
identically for every variant. The variants themselves are listed in
:mod:`kessai_bench.variants`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.config import Settings
from streams.devtools.processes import ChildProcess
from streams.kafka.admin import create_topics
from streams.topics import TopicSpec

#: How long a variant's process gets to say it is ready.
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True, kw_only=True)
class Context:
    """What a variant needs to know about this measurement."""

    bootstrap: str
    partitions: int
    #: Prefix of every topic and group name of this measurement (unique per run).
    prefix: str
    #: Trade ids are ``{trade_prefix}-{n:09d}``: short, as a venue's would be, so the
    #: payload has the real pipeline's size.
    trade_prefix: str
    #: The raw passthrough's commit interval (offset commit or transaction); the
    #: pipeline commits each batch as soon as it is applied.
    commit_interval_ms: float
    #: Where the variant's process writes its stderr.
    log_dir: Path
    #: The broker's process (its CPU time is measured too); None: unknown.
    broker_pid: int | None = None


class Variant(ABC):
    """One thing to measure. Subclasses set ``name``, ``title`` and ``description``."""

    name: str
    #: Short label for tables.
    title: str
    description: str
    #: Whether each measurement needs a fresh broker of its own (fixed topic names).
    private_broker: bool = False
    #: Which sink records count as outputs (all when None), given their value.
    pick: Callable[[bytes], bool] | None = None
    #: The least time without a new output before the runner gives up: a pipeline of
    #: several hops, each behind a commit, can go quiet for long under a backlog.
    drain_idle_s_min: float = 0.0
    #: The least output rate (records/s) the drain timeout allows for.
    drain_rate_min: float = 1_000.0
    #: What the load generator publishes on :meth:`source` (``kessai_bench.loadgen``).
    load_kind: str = "trades"
    #: With an :meth:`origin`: the output key an input record pairs with, given its
    #: value (None: it pairs with none); unset, an input pairs by its own key.
    origin_key: Callable[[bytes], bytes | None] | None = None

    def origin(self, ctx: Context) -> str | None:
        """The input topic to pair outputs with by key for latency; None when each
        output carries its input's timestamp."""
        return None

    async def create_topics(self, ctx: Context) -> None:
        """Create the topics the measurement uses (fresh, empty)."""
        await create_topics(
            Settings(bootstrap=ctx.bootstrap),
            [
                TopicSpec(name=self.source(ctx), partitions=ctx.partitions),
                TopicSpec(name=self.sink(ctx), partitions=ctx.partitions),
            ],
        )

    async def extra(self, ctx: Context, outputs: int, span_s: float) -> dict[str, Any]:
        """Variant-specific figures for the result, once the process stopped."""
        return {"kafka_records_written": outputs}

    def source(self, ctx: Context) -> str:
        """The topic the load generator publishes trades onto."""
        return f"{ctx.prefix}trades"

    def sink(self, ctx: Context) -> str:
        """The topic whose records the latency observer waits for."""
        return f"{ctx.prefix}out"

    def expected_outputs(self, published: int) -> int:
        """Output records on :meth:`sink` once every published record went through."""
        return published

    def load_args(self, ctx: Context) -> list[str]:
        """More arguments for the load generator (signing keys), after :meth:`prepare`."""
        return []

    async def prepare(self, ctx: Context) -> None:  # noqa: B027  # optional hook
        """Set-up before the process starts (topics beyond source/sink, funding)."""

    @abstractmethod
    async def start(self, ctx: Context) -> ChildProcess:
        """Start the process under test; return once it is ready to consume."""
