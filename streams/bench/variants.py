"""What the bench measures: one :class:`Variant` per process under test.

A variant names its input and output topics, starts the process under test (a child,
so that its CPU and peak RSS are its own) and says how many output records it expects
for the records published. The runner does the rest identically for every variant:
create the topics, start the latency observer on the output, run the load generator
on the input, wait for the outputs, stop the process and read its usage.

Today: the raw passthrough ceiling, at-least-once and transactional. **Extension
point** for the rest of issue 7: a ``PipelineVariant`` whose ``start`` runs
``kessai worker`` (under ``at_least_once`` or ``exactly_once``) on topics renamed
under the run's prefix, whose ``prepare`` funds the accounts the load generator
trades between, whose output topic is ``settlements`` (one terminal record per
funded trade), registered in :data:`VARIANTS` and paired in :data:`RATIOS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from streams.bench import passthrough
from streams.bench.procs import Child

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
    #: The exactly-once commit interval (transaction length).
    commit_interval_ms: float
    #: Where the variant's process writes its stderr.
    log_dir: Path


class Variant(ABC):
    """One thing to measure. Subclasses set ``name``, ``title`` and ``description``."""

    name: str
    #: Short label for tables.
    title: str
    description: str

    def source(self, ctx: Context) -> str:
        """The topic the load generator publishes trades onto."""
        return f"{ctx.prefix}trades"

    def sink(self, ctx: Context) -> str:
        """The topic whose records the latency observer waits for."""
        return f"{ctx.prefix}out"

    def expected_outputs(self, published: int) -> int:
        """Output records on :meth:`sink` once every published record went through."""
        return published

    async def prepare(self, ctx: Context) -> None:  # noqa: B027  # optional hook
        """Set-up before the process starts (topics beyond source/sink, funding)."""

    @abstractmethod
    async def start(self, ctx: Context) -> Child:
        """Start the process under test; return once it is ready to consume."""


class RawPassthrough(Variant):
    """The ceiling: :mod:`streams.bench.passthrough` in one mode."""

    def __init__(self, mode: passthrough.Mode) -> None:
        self.mode = mode
        transactional = mode == "transactional"
        self.name = f"raw-{mode.replace('_', '-')}"
        self.title = (
            "raw passthrough, transactional" if transactional else "raw passthrough, at-least-once"
        )
        self.description = (
            "aiokafka consume->produce, no processing; one transactional producer, "
            "send_offsets_to_transaction + commit every commit interval; read_committed consumer"
            if transactional
            else "aiokafka consume->produce, no processing; acks=all, offsets committed "
            "after the produced records are acked, every commit interval"
        )

    async def start(self, ctx: Context) -> Child:
        child = Child(
            "streams.bench.passthrough",
            [
                "--mode",
                self.mode,
                "--bootstrap",
                ctx.bootstrap,
                "--source",
                self.source(ctx),
                "--sink",
                self.sink(ctx),
                "--partitions",
                str(ctx.partitions),
                "--group",
                f"{ctx.prefix}group",
                "--commit-interval-ms",
                str(ctx.commit_interval_ms),
            ],
            ctx.log_dir / f"{ctx.prefix}{self.name}.log",
        )
        try:
            await child.wait_ready(passthrough.READY_WORD, timeout_s=READY_TIMEOUT_S)
        except BaseException:
            child.kill()
            raise
        return child


#: Every variant, by name, in the order a run measures them.
VARIANTS: dict[str, Variant] = {
    v.name: v for v in (RawPassthrough("at_least_once"), RawPassthrough("transactional"))
}

#: Ratios reported when both variants ran at the same rate: (label, numerator, denominator).
RATIOS: tuple[tuple[str, str, str], ...] = (
    ("transactional ÷ at-least-once (raw)", "raw-transactional", "raw-at-least-once"),
)
