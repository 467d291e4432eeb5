"""What the bench measures: one :class:`Variant` (:mod:`kessai_bench.base`) per
process under test, listed in :data:`VARIANTS`; the runner does the same for each:
create the topics, start the latency observer on the output, run the load generator
on the input, wait for the outputs, stop the process and read its usage.

Variants: the raw passthrough ceiling, at-least-once and transactional (this
module), and the settlement pipeline under at_least_once and exactly_once
(:mod:`kessai_bench.pipeline`, on a broker of its own per measurement). A new one
(the matching engine end to end) subclasses :class:`Variant` and goes in
:data:`VARIANTS`, with its pairs in :data:`RATIOS`.
"""

from __future__ import annotations

from kessai_bench import passthrough
from kessai_bench.base import READY_TIMEOUT_S, Context, Variant
from kessai_bench.pipeline import MatchingVariant, PipelineVariant
from streams.devtools.processes import ChildProcess

__all__ = [
    "DEFAULT_VARIANTS",
    "RATIOS",
    "READY_TIMEOUT_S",
    "TWEAKS",
    "VARIANTS",
    "Context",
    "PipelineVariant",
    "Variant",
]


class RawPassthrough(Variant):
    """The ceiling: :mod:`kessai_bench.passthrough` in one mode."""

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

    async def start(self, ctx: Context) -> ChildProcess:
        child = ChildProcess(
            "kessai_bench.passthrough",
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
            output="pipe",
        )
        try:
            await child.wait_ready(passthrough.READY_WORD, timeout_s=READY_TIMEOUT_S)
        except BaseException:
            child.kill()
            raise
        return child


#: Settings tried on the exactly-once pipeline: (name, settings). Each ``+name``
#: variant is the same code as ``pipeline-exactly-once`` with that one change, measured
#: in the same run. An optimisation that was adopted is the default now, and its
#: variant names the old way: its ratio to the default is then "before ÷ after".
TWEAKS: tuple[tuple[str, dict[str, str]], ...] = (
    ("uvloop", {"KESSAI_EVENT_LOOP": "uvloop"}),
    # The security master required (issue 20): every trade checked against its bond,
    # dated, and a JPYC trade's accrued computed (the end-to-end cost of the checks).
    ("master", {"KESSAI_SECURITY_MASTER": "required"}),
)

#: Every variant, by name, in the order a run measures them.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        RawPassthrough("at_least_once"),
        RawPassthrough("transactional"),
        PipelineVariant("at_least_once"),
        PipelineVariant("exactly_once"),
        MatchingVariant("exactly_once"),
        *(PipelineVariant("exactly_once", tweak=t, env=env) for t, env in TWEAKS),
        PipelineVariant("exactly_once", signed=True),
        PipelineVariant(
            "exactly_once", signed=True, tweak="inline", env={"KESSAI_SIGNATURE_THREADS": "0"}
        ),
    )
}
#: What ``kessai bench`` measures unless told: the ceiling and the pipeline.
DEFAULT_VARIANTS: tuple[str, ...] = (
    "raw-at-least-once",
    "raw-transactional",
    "pipeline-at-least-once",
    "pipeline-exactly-once",
    "matching-exactly-once",
)

#: Ratios reported when both variants ran at the same rate: (label, numerator, denominator).
RATIOS: tuple[tuple[str, str, str], ...] = (
    ("transactional ÷ at-least-once (raw)", "raw-transactional", "raw-at-least-once"),
    ("exactly_once ÷ at_least_once (pipeline)", "pipeline-exactly-once", "pipeline-at-least-once"),
    ("pipeline ÷ raw, at-least-once", "pipeline-at-least-once", "raw-at-least-once"),
    ("pipeline ÷ raw, exactly-once ÷ transactional", "pipeline-exactly-once", "raw-transactional"),
    (
        "orders in ÷ trades in (exactly-once, settled trades)",
        "matching-exactly-once",
        "pipeline-exactly-once",
    ),
    *(
        (f"+{t} ÷ default (pipeline)", f"pipeline-exactly-once+{t}", "pipeline-exactly-once")
        for t, _ in TWEAKS
    ),
    (
        "signatures checked ÷ not (pipeline)",
        "pipeline-exactly-once+signed",
        "pipeline-exactly-once",
    ),
    (
        "signatures on the event loop's thread ÷ on a pool (pipeline)",
        "pipeline-exactly-once+signed-inline",
        "pipeline-exactly-once+signed",
    ),
)
