"""One bench run: every variant at every load, side by side, then the report.

Loads: a fixed rate (records/s), full speed (``0``), ``half`` (half the slowest
variant's full-speed throughput measured earlier in the same run, so that every
variant gets the same offered load), or ``backlog``: the records are all published
*before* the process starts, which then drains them -- its own top speed, not
limited by the load generator (which, being Python too, is what limits full speed
on a small machine). Latency means nothing for a backlog and is not reported.

For each load and each variant, in order:

1. create the variant's input and output topics (fresh names under a run prefix,
   the project's partition count) and let the variant prepare;
2. start the process under test and wait until it is ready;
3. start the latency observer (read_committed) on the output topic;
4. run the load generator (a child process) on the input topic (for a backlog,
   before step 2);
5. wait until every expected output was seen (or none came for ``drain_idle_s``);
6. stop the process with SIGTERM and read its CPU time and peak RSS;
7. delete the topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from kessai_bench import CHECKOUT, chart, profile, report, warmup
from kessai_bench.loadgen import LoadStats
from kessai_bench.observer import Observed, Observer
from kessai_bench.report import FULL_SPEED
from kessai_bench.stats import Latency
from kessai_bench.variants import (
    DEFAULT_VARIANTS,
    RATIOS,
    VARIANTS,
    Context,
    PipelineVariant,
    Variant,
)
from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.processes import ChildFailed, ChildProcess, Usage
from streams.errors import KessaiError
from streams.kafka.admin import delete_topics_starting_with

#: ``--rate half``: half the slowest variant's full-speed throughput.
HALF = "half"
#: ``--rate backlog``: publish first at full speed, then start the process.
BACKLOG = "backlog"
RateSpec = float | str
#: A generator that runs past its duration by this much is stuck.
LOADGEN_OVERRUN_S = 60.0
#: Waiting for outputs: at most this long after the generator finished.
DRAIN_TIMEOUT_S = 120.0
VISIBLE_ATTEMPTS_MAX = 100
VISIBLE_RETRY_S = 0.1

Log = Callable[[str], None]


class BenchError(KessaiError):
    """The run could not be done as asked."""


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What to run. ``seconds`` and ``count`` bound each measurement's load."""

    variants: Sequence[str] = DEFAULT_VARIANTS
    rates: Sequence[RateSpec] = (0.0,)
    seconds: float | None = 10.0
    count: int | None = None
    commit_interval_ms: float = 100.0
    partitions: int = 4
    drain_idle_s: float = 15.0
    keep_topics: bool = False
    #: At most this many trades per measurement of a variant on a broker of its own
    #: (the pipeline): it settles hundreds a second, the ceiling copies tens of thousands.
    pipeline_count: int = 5_000
    #: Variants whose process is profiled with py-spy while it works.
    profile: Sequence[str] = ()
    #: A git revision: its exactly-once pipeline is measured after each
    #: ``pipeline-exactly-once`` measurement (the code before a change, side by side).
    baseline: str | None = None
    #: Seconds of load a variant's own broker gets before it is measured
    #: (:mod:`kessai_bench.warmup`: a fresh JVM's JIT otherwise takes a core).
    broker_warmup_s: float = warmup.WARMUP_S
    seed: int = 7
    command: str = "kessai bench"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.seconds is None and self.count is None:
            raise BenchError("give a duration (--seconds), a count (--count) or both")
        unknown = [v for v in (*self.variants, *self.profile) if v not in VARIANTS]
        if unknown:
            raise BenchError(
                f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}"
            )
        if not self.variants:
            raise BenchError("no variant to run")
        for i, rate in enumerate(self.rates):
            if rate == HALF:
                if 0.0 not in self.rates[:i] and BACKLOG not in self.rates[:i]:
                    raise BenchError(
                        "--rate half needs a full-speed rate (0) or the backlog before it"
                    )
            elif rate != BACKLOG and (not isinstance(rate, float) or rate < 0):
                raise BenchError(
                    f"rate must be a number >= 0, {HALF!r} or {BACKLOG!r}, got {rate!r}"
                )

    @property
    def limit(self) -> str:
        parts = []
        if self.seconds is not None:
            parts.append(f"{self.seconds:g} s")
        if self.count is not None:
            parts.append(f"{self.count:,} records")
        return " or ".join(parts) + " per measurement"


def parse_rates(text: str) -> list[RateSpec]:
    """``"0,half,2000,backlog"`` -> ``[0.0, "half", 2000.0, "backlog"]``."""
    out: list[RateSpec] = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item in (HALF, BACKLOG):
            out.append(item)
            continue
        try:
            out.append(float(item))
        except ValueError:
            raise BenchError(
                f"--rate: {item!r} is neither a number nor {HALF!r} nor {BACKLOG!r}"
            ) from None
    if not out:
        raise BenchError("--rate: no rate given")
    return out


async def run(
    bootstrap: str, plan: Plan, out_root: Path, *, kafka_version: str, log: Log
) -> tuple[dict[str, Any], Path]:
    """Run *plan* against *bootstrap*; write the results under *out_root*/<UTC time>/."""
    started = datetime.now(UTC)
    run_id = started.strftime("%Y-%m-%dT%H%M%SZ")
    directory = out_root / run_id
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    machine = report.machine(kafka_version)
    tag = secrets.token_hex(3)
    results: list[dict[str, Any]] = []
    with _worktree(plan.baseline, log) as baseline:
        await _run_loads(bootstrap, plan, tag, logs, results, baseline, log)
        baseline_name = baseline.name if baseline is not None else None
    for empty in [f for f in logs.iterdir() if f.stat().st_size == 0]:
        empty.unlink()
    if not any(logs.iterdir()):
        logs.rmdir()
    sizes = [r["value_bytes_mean"] for r in results if r["value_bytes_mean"]]
    notes: list[str] = []
    doc: dict[str, Any] = {
        "run": {
            "id": run_id,
            "command": plan.command,
            "started_utc": started.isoformat(timespec="seconds"),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "bootstrap": bootstrap,
            "partitions": plan.partitions,
            "rates": list(plan.rates),
            "limit": plan.limit,
            "seconds": plan.seconds,
            "count": plan.count,
            "pipeline_count": plan.pipeline_count,
            "commit_interval_ms": plan.commit_interval_ms,
            "baseline": baseline_name,
            "revision": _revision(),
            "value_bytes_mean": round(sum(sizes) / len(sizes), 1) if sizes else None,
            **plan.extra,
        },
        "machine": machine,
        "results": results,
        "ratios": report.ratios(results, _ratios(baseline_name)),
        "notes": notes,
    }
    try:
        chart.draw(doc, directory / report.CHART_NAME)
        doc["run"]["chart"] = report.CHART_NAME
    except Exception as err:  # a chart must never cost the figures of a run
        log(f"no chart: {type(err).__name__}: {err}")
        doc["notes"].append(f"no chart: {type(err).__name__}: {err}")
    report.write(doc, directory)
    return doc, directory


async def _run_loads(
    bootstrap: str,
    plan: Plan,
    tag: str,
    logs: Path,
    results: list[dict[str, Any]],
    baseline: PipelineVariant | None,
    log: Log,
) -> None:
    """Every load, every variant, in order; each result appended to *results*."""
    for index, spec in enumerate(plan.rates):
        backlog = spec == BACKLOG
        rate = 0.0 if backlog else _resolve(spec, results)
        label = BACKLOG if backlog else report.load_label(rate)
        for name in _with_baseline(plan.variants, baseline):
            variant = baseline if baseline is not None and name == baseline.name else VARIANTS[name]
            ctx = Context(
                bootstrap=bootstrap,
                partitions=plan.partitions,
                prefix=f"bench-{tag}-{index}-{name}-",
                trade_prefix=f"T{tag}",
                commit_interval_ms=plan.commit_interval_ms,
                log_dir=logs,
                broker_pid=broker_pid(Settings.from_env()),
            )
            log(f"{name}, {label} ({plan.limit})")
            result = await _measure(variant, ctx, plan, rate, backlog=backlog, log=log)
            lat = result["latency_ms"]
            latency = (
                f"p50 {lat['p50_ms']:,.0f} ms, p99 {lat['p99_ms']:,.0f} ms"
                if lat
                else "no latency (backlog)"
            )
            log(
                f"  {result['outputs']:,}/{result['published']:,} records out, "
                f"{result['through_rps']:,.0f} records/s through, {latency}, "
                f"CPU {result['cpu_s']:.2f} s, peak RSS {result['peak_rss_mib']:.1f} MiB"
                + ("" if result["complete"] else "  INCOMPLETE")
            )
            results.append(result)


def _resolve(spec: RateSpec, results: Sequence[dict[str, Any]]) -> float:
    """A rate: the number given, or for ``half`` half the exactly-once pipeline's top
    speed measured so far in this run (its backlog or full-speed throughput; without
    one, the slowest complete full-speed measurement's)."""
    if spec != HALF:
        assert isinstance(spec, float)
        return spec
    ours = [r["through_rps"] for r in results
            if r["variant"] == BASELINE_BESIDE and r["load"] in (FULL_SPEED, BACKLOG)
            and r["complete"]]  # fmt: skip
    if ours:
        return float(round(max(ours) / 2))
    full = [r["through_rps"] for r in results if r["load"] == FULL_SPEED and r["complete"]]
    if not full:
        raise BenchError("--rate half: no complete full-speed or backlog measurement to halve")
    return float(round(min(full) / 2))


#: The variant a baseline revision is measured beside.
BASELINE_BESIDE = "pipeline-exactly-once"


def _with_baseline(names: Sequence[str], baseline: Variant | None) -> list[str]:
    """*names*, with the baseline's right after ``pipeline-exactly-once``."""
    out: list[str] = []
    for name in names:
        out.append(name)
        if baseline is not None and name == BASELINE_BESIDE:
            out.append(baseline.name)
    return out


def _ratios(baseline: str | None) -> tuple[tuple[str, str, str], ...]:
    """The ratios; with a baseline (its variant's name), "before ÷ after" too."""
    if baseline is None:
        return RATIOS
    label = f"{baseline.rsplit('@', 1)[1]} ÷ this checkout (pipeline)"
    return (*RATIOS, (label, baseline, BASELINE_BESIDE))


def _revision() -> str | None:
    """The checkout's git revision (``+dirty`` with uncommitted changes), if any."""
    git = ["git", "-C", str(CHECKOUT)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


@contextlib.contextmanager
def _worktree(revision: str | None, log: Log) -> Iterator[PipelineVariant | None]:
    """A git worktree of *revision* (removed afterwards) and the variant that runs it."""
    if revision is None:
        yield None
        return
    git = ["git", "-C", str(CHECKOUT)]
    try:
        short = subprocess.run(
            [*git, "rev-parse", "--short", "--verify", f"{revision}^{{commit}}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except subprocess.CalledProcessError as err:
        raise BenchError(f"--baseline {revision}: {err.stderr.strip()}") from None
    directory = Path(tempfile.mkdtemp(prefix="kessai-baseline-"))
    subprocess.run(
        [*git, "worktree", "add", "--detach", str(directory), short],
        check=True,
        capture_output=True,
    )
    log(f"baseline: git revision {short} ({revision}) checked out in {directory}")
    try:
        yield PipelineVariant("exactly_once", checkout=(short, directory))
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(directory)], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


async def _measure(
    variant: Variant, ctx: Context, plan: Plan, rate: float, *, backlog: bool, log: Log
) -> dict[str, Any]:
    if not variant.private_broker:
        return await _measure_on(variant, ctx, plan, rate, backlog=backlog)
    workdir = Path(tempfile.mkdtemp(prefix="kessai-bench-"))
    try:
        settings = await asyncio.to_thread(
            localkafka.up_private, workdir, log=lambda line: log(f"  broker: {line}")
        )
        try:
            own = dataclasses.replace(
                ctx, bootstrap=settings.bootstrap, broker_pid=broker_pid(settings)
            )
            if plan.broker_warmup_s > 0:
                log(f"  broker: warming up for {plan.broker_warmup_s:.0f} s")
                copied = await warmup.warm(settings.bootstrap, ctx.partitions,
                                           plan.broker_warmup_s)  # fmt: skip
                log(f"  broker: warm ({copied:,} records copied)")
            return await _measure_on(variant, own, plan, rate, backlog=backlog)
        finally:
            await asyncio.to_thread(localkafka.down, settings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def broker_pid(settings: Settings) -> int | None:
    """The pid of the local broker of *settings* (None: not one kessai started)."""
    from streams.devtools.localkafka.layout import Paths
    from streams.devtools.localkafka.process import read_pid

    return read_pid(Paths.of(settings))


def process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of process *pid* so far (None: unknown)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields 14 and 15 of proc(5), counted from the state field (3) here.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, kw_only=True)
class _Observed:
    """What one measurement saw, from the load to the process's exit."""

    load: LoadStats
    load_usage: Usage
    #: What the process said when it was ready (its start-up CPU time).
    ready_info: dict[str, Any]
    expected: int
    complete: bool
    profiled: dict[str, Any] | None
    usage: Usage
    seen: Observed
    span_s: float
    extra: dict[str, Any]
    #: The broker's CPU seconds from the process's start to its last output (None:
    #: unknown).
    broker_cpu_s: float | None = None


async def _measure_on(
    variant: Variant, ctx: Context, plan: Plan, rate: float, *, backlog: bool
) -> dict[str, Any]:
    source, sink = variant.source(ctx), variant.sink(ctx)
    await variant.create_topics(ctx)
    try:
        await _wait_visible(ctx.bootstrap, [source, sink], ctx.partitions)
        await variant.prepare(ctx)
        observed = await _observe(variant, ctx, plan, rate, sink, backlog=backlog)
    finally:
        if not plan.keep_topics and not variant.private_broker:
            await delete_topics_starting_with(Settings(bootstrap=ctx.bootstrap), [ctx.prefix])
    if observed.usage.exit_code != 0:
        raise ChildFailed(f"{variant.name} exited {observed.usage.exit_code}; see {ctx.log_dir}")
    result = _result(variant, plan, rate, observed, backlog=backlog)
    result["topics"] = {"source": source, "sink": sink, "kept": plan.keep_topics}
    result["loadgen"] = {
        "cpu_s": round(observed.load_usage.cpu_s, 3),
        "peak_rss_mib": round(observed.load_usage.peak_rss_mib, 1),
        "elapsed_s": round(observed.load.elapsed_s, 3),
    }
    result.update(observed.extra)
    if observed.profiled is not None:
        result["profile"] = observed.profiled
    return result


async def _observe(
    variant: Variant, ctx: Context, plan: Plan, rate: float, sink: str, *, backlog: bool
) -> _Observed:
    """Start the process, load it (before, for a backlog), wait for its outputs, stop it."""
    count_max = plan.pipeline_count if variant.private_broker else None
    if backlog:
        load, load_usage = await _load(ctx, plan, variant, rate, count_max=count_max)
    child = await variant.start(ctx)
    broker_before = process_cpu_s(ctx.broker_pid)
    start_ms = time.time() * 1000
    spy = None
    if variant.name in plan.profile:
        slug = "".join(c if c.isalnum() else "-" for c in (BACKLOG if backlog else str(rate)))
        spy = profile.Recording.start(
            child.proc.pid, ctx.log_dir.parent / f"profile-{variant.name}-{slug}.txt"
        )
    observer = Observer(
        ctx.bootstrap,
        sink,
        ctx.partitions,
        pick=variant.pick,
        origin=variant.origin(ctx),
        origin_key=variant.origin_key,
    )
    try:
        await observer.start()
        if not backlog:
            load, load_usage = await _load(ctx, plan, variant, rate, count_max=count_max)
            start_ms = load.first_publish_ms
        expected = variant.expected_outputs(load.records)
        complete = await observer.wait_for(
            expected,
            idle_s=max(plan.drain_idle_s, variant.drain_idle_s_min),
            timeout_s=DRAIN_TIMEOUT_S + expected / variant.drain_rate_min,
        )
        broker_after = process_cpu_s(ctx.broker_pid)
        profiled = await _stop_profile(spy) if spy is not None else None
    except BaseException:
        child.kill()
        await observer.stop()
        raise
    usage = await child.finish(terminate=True)
    seen = await observer.stop()
    span_s = (seen.last_seen_ms - start_ms) / 1000
    return _Observed(
        load=load,
        load_usage=load_usage,
        ready_info=child.ready_info,
        expected=expected,
        complete=complete,
        profiled=profiled,
        usage=usage,
        seen=seen,
        span_s=span_s,
        extra=await variant.extra(ctx, seen.records, span_s),
        broker_cpu_s=None
        if broker_before is None or broker_after is None
        else broker_after - broker_before,
    )


def _result(
    variant: Variant, plan: Plan, rate: float, o: _Observed, *, backlog: bool
) -> dict[str, Any]:
    """One measurement's figures, up to its ``topics`` (the report's order)."""
    load, usage, seen, span_s = o.load, o.usage, o.seen, o.span_s
    process: dict[str, Any] = orjson.loads(usage.last_line) if usage.last_line else {}
    # CPU per record leaves out the start-up (imports, connecting) when the process says
    # what it was.
    startup_cpu: float | None = o.ready_info.get("cpu_s")
    latency = None if backlog else Latency.of(seen.latencies_ms)
    written = o.extra.get("kafka_records_written")
    return {
        "variant": variant.name,
        "title": variant.title,
        "description": variant.description,
        "load": BACKLOG if backlog else report.load_label(rate),
        "rate_target": rate,
        "published": load.records,
        "publish_rate": round(load.rate, 1),
        "value_bytes_mean": round(load.value_bytes / load.records, 1) if load.records else None,
        "expected_outputs": o.expected,
        "outputs": seen.records,
        "distinct_keys": seen.distinct_keys,
        "complete": o.complete and seen.records >= o.expected,
        "through_rps": round(seen.records / span_s, 1) if seen.records and span_s > 0 else 0.0,
        "kafka_records_per_s": round(written / span_s, 1) if written and span_s > 0 else 0.0,
        "process_rps": process.get("rate"),
        "commits": process.get("commits"),
        "latency_ms": None if latency is None else latency.__dict__,
        "latency_split_ms": None if backlog else _split(seen),
        "cpu_s": round(usage.cpu_s, 3),
        "cpu_user_s": round(usage.cpu_user_s, 3),
        "cpu_system_s": round(usage.cpu_system_s, 3),
        "cpu_startup_s": startup_cpu,
        "cpu_ms_per_1k": round((usage.cpu_s - (startup_cpu or 0.0)) * 1e6 / seen.records, 2)
        if seen.records
        else None,
        "peak_rss_mib": round(usage.peak_rss_mib, 1),
        "peak_rss_source": usage.peak_rss_source,
        "broker_cpu_s": None if o.broker_cpu_s is None else round(o.broker_cpu_s, 3),
        "broker_cpu_ms_per_1k": round(o.broker_cpu_s * 1e6 / seen.records, 2)
        if o.broker_cpu_s is not None and seen.records
        else None,
    }


def _split(seen: Observed) -> dict[str, Any] | None:
    """Publish -> written and written -> seen (see :mod:`kessai_bench.observer`)."""
    written, visible = Latency.of(seen.to_written_ms), Latency.of(seen.to_seen_ms)
    if written is None or visible is None:
        return None
    return {"written": written.__dict__, "visible": visible.__dict__}


async def _stop_profile(spy: profile.Recording) -> dict[str, Any]:
    """The profile's summary; a profiler that failed (no ptrace permission) is reported
    in the result, never fatal to the run."""
    try:
        return await spy.stop()
    except (OSError, RuntimeError) as err:
        return {"error": str(err)}


async def _load(
    ctx: Context, plan: Plan, variant: Variant, rate: float, *, count_max: int | None
) -> tuple[LoadStats, Usage]:
    """Run the load generator onto ``variant``'s source, as the variant asks (its
    ``load_kind``, its ``load_args``: signing keys)."""
    topic, kind = variant.source(ctx), variant.load_kind
    count = plan.count
    if count_max is not None:
        count = min(count, count_max) if count is not None else count_max
    args = ["--bootstrap", ctx.bootstrap, "--topic", topic, "--rate", str(rate)]
    args += ["--prefix", ctx.trade_prefix, "--seed", str(plan.seed), "--kind", kind]
    if plan.seconds is not None:
        args += ["--seconds", str(plan.seconds)]
    if count is not None:
        args += ["--count", str(count)]
    args += variant.load_args(ctx)
    gen = ChildProcess(
        "kessai_bench.loadgen", args, ctx.log_dir / f"{ctx.prefix}loadgen.log", output="pipe"
    )
    budget = (plan.seconds or 0.0) + LOADGEN_OVERRUN_S
    if count is not None and plan.seconds is None:
        budget += count / (rate or 1_000)  # a generous bound
    usage = await gen.finish(terminate=False, timeout_s=budget)
    if usage.exit_code != 0 or not usage.last_line:
        raise ChildFailed(f"the load generator exited {usage.exit_code}; see {ctx.log_dir}")
    data = orjson.loads(usage.last_line)
    data.pop("rate", None)
    return LoadStats(**data), usage


async def _wait_visible(bootstrap: str, names: list[str], partitions: int) -> None:
    """Wait until the broker's metadata describes every topic of *names* in full."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for _ in range(VISIBLE_ATTEMPTS_MAX):
            entries = await admin.describe_topics(names)
            if all(e["error_code"] == 0 and len(e["partitions"]) == partitions for e in entries):
                return
            await asyncio.sleep(VISIBLE_RETRY_S)
    finally:
        await admin.close()
    raise BenchError(f"topics {names} are still not in the broker's metadata")
