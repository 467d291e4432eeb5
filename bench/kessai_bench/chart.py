"""The bench's PNG chart (issue 7): throughput and latency per variant, at every load.

Drawn from the same results document that :mod:`kessai_bench.report` writes as
``results.json``, so a chart can be redrawn from any past run. Panels, top to bottom:

1. records/s through, one bar per variant, grouped by load (log scale when the bars
   span more than :data:`LOG_SPAN_MIN` times);
2. latency p50 / p95 / p99 per variant at each load that measured latency (a backlog
   has none), always on a log scale: percentiles of a commit-bound variant sit
   orders of magnitude above an at-least-once one;
3. trades settled/s, only when some result carries ``trades_per_s`` (pipeline variants).

Uses :class:`matplotlib.figure.Figure` directly, never pyplot: no global state, no
display, the Agg renderer chosen by ``savefig`` from the ``.png`` name. The same
document gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib (+ numpy, PIL: ~40 MiB) loads only when a chart is drawn
    from matplotlib.axes import Axes

# Bars spanning more than this many times go on a log scale, or the small ones vanish.
LOG_SPAN_MIN = 30.0
DPI = 110
PANEL_HEIGHT_IN = 3.6
# Width grows with the number of bars so that their value labels stay apart.
WIDTH_IN_MIN = 10.0
WIDTH_IN_MAX = 24.0
WIDTH_IN_BASE = 3.0
WIDTH_IN_PER_BAR = 0.8
# Colours by variant, in the order the variants were first measured (tab10, then tab20).
COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
PERCENTILES = (("p50_ms", "p50", "o"), ("p95_ms", "p95", "s"), ("p99_ms", "p99", "^"))
INCOMPLETE_HATCH = "///"
LABEL_FONT_SIZE = 7.5


@dataclass(frozen=True)
class _Grid:
    """The results laid out by (load, variant), each list in the order measured."""

    loads: list[str]
    variants: list[str]
    cells: dict[tuple[str, str], Mapping[str, Any]]

    @classmethod
    def of(cls, results: Sequence[Mapping[str, Any]]) -> _Grid:
        """A load given more than once (``--rate backlog,backlog``) is a group per
        repeat: ``backlog``, ``backlog #2``, ... (the n-th result of a variant at a
        load belongs to the n-th repeat)."""
        cells: dict[tuple[str, str], Mapping[str, Any]] = {}
        seen: dict[tuple[str, str], int] = {}
        loads: list[str] = []
        for r in results:
            n = seen[(r["load"], r["variant"])] = seen.get((r["load"], r["variant"]), 0) + 1
            load = r["load"] if n == 1 else f"{r['load']} #{n}"
            cells[(load, r["variant"])] = r
            if load not in loads:
                loads.append(load)
        variants = list(dict.fromkeys(r["variant"] for r in results))
        return cls(loads, variants, cells)

    def color(self, variant: str) -> str:
        return COLORS[self.variants.index(variant) % len(COLORS)]


def _number(value: float) -> str:
    """Tick and bar labels: ``37,337``, ``17``, ``0.5``."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _value(r: Mapping[str, Any], name: str) -> float | None:
    v = r.get(name)
    return float(v) if isinstance(v, int | float) else None


def _latency(r: Mapping[str, Any]) -> dict[str, float] | None:
    """The result's p50/p95/p99 in ms, or None if it measured none (a backlog)."""
    lat = r.get("latency_ms")
    if not lat:
        return None
    out = {k: float(lat[k]) for k, _, _ in PERCENTILES if isinstance(lat.get(k), int | float)}
    return out if out.get("p50_ms", 0) > 0 else None


def _scale(ax: Axes, values: Iterable[float], *, log: bool) -> None:
    """Y limits with room for labels above the bars; thousands separators on ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    positive = [v for v in values if v > 0]
    if not positive:
        ax.set_ylim(0, 1)
        return
    low, high = min(positive), max(positive)
    fmt = FuncFormatter(lambda v, _pos: _number(v))
    if log:
        ax.set_yscale("log")
        ax.set_ylim(low / 2.5, high * 4)
        # 1-2-5 ticks: labelled often enough to read a value off without counting decades.
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(0, high * 1.18)
    ax.yaxis.set_major_formatter(fmt)


def _width_in(bars: int) -> float:
    return min(max(WIDTH_IN_MIN, WIDTH_IN_BASE + WIDTH_IN_PER_BAR * bars), WIDTH_IN_MAX)


def _offset(j: int, n: int, width: float) -> float:
    return (j - (n - 1) / 2) * width


def _bars(
    ax: Axes,
    grid: _Grid,
    variants: Sequence[str],
    loads: Sequence[str],
    name: str,
    ylabel: str,
) -> None:
    """One bar per variant, grouped by load; a missing cell leaves its slot empty.

    Bars are as wide as in a panel of all the variants, so that a panel of a few
    (trades settled: the pipeline variants only) looks like the one above it.
    """
    values = [
        v
        for load in loads
        for variant in variants
        if (r := grid.cells.get((load, variant))) is not None and (v := _value(r, name))
    ]
    log = bool(values) and max(values) / max(min(values), 1e-9) > LOG_SPAN_MIN
    width = 0.8 / max(len(grid.variants), 1)
    # Past the widest figure the labels would touch: stand them on end.
    rotate = _width_in(len(variants) * len(loads)) >= WIDTH_IN_MAX
    for j, variant in enumerate(variants):
        for i, load in enumerate(loads):
            r = grid.cells.get((load, variant))
            v = _value(r, name) if r is not None else None
            if r is None or v is None or v <= 0:
                continue
            incomplete = not r.get("complete", True)
            x = i + _offset(j, len(variants), width)
            ax.bar(
                x,
                v,
                width * 0.92,
                color=grid.color(variant),
                hatch=INCOMPLETE_HATCH if incomplete else None,
                edgecolor="white" if incomplete else None,
                linewidth=0,
            )
            label = _number(v) + ("\nincomplete" if incomplete else "")
            ax.annotate(
                label,
                (x, v),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=LABEL_FONT_SIZE,
                rotation=90 if rotate else 0,
            )
    _scale(ax, values, log=log)
    ax.set_xticks(range(len(loads)), list(loads))
    ax.set_xlim(-0.6, len(loads) - 0.4)
    ax.set_ylabel(ylabel + (" (log scale)" if log else ""))
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.set_axisbelow(True)


def _latency_panel(ax: Axes, grid: _Grid) -> None:
    """p50 to p99 as a line with a marker per percentile, per variant, per load."""
    loads = [
        load
        for load in grid.loads
        if any((r := grid.cells.get((load, v))) and _latency(r) for v in grid.variants)
    ]
    ax.set_title("Latency, publish → visible to a read_committed consumer", loc="left")
    if not loads:
        ax.text(
            0.5,
            0.5,
            "no latency measured (a backlog has none)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        return
    width = 0.8 / len(grid.variants)
    values: list[float] = []
    for j, variant in enumerate(grid.variants):
        for i, load in enumerate(loads):
            r = grid.cells.get((load, variant))
            lat = _latency(r) if r is not None else None
            if r is None or lat is None:
                continue
            x = i + _offset(j, len(grid.variants), width)
            values += _percentiles(ax, x, lat, grid.color(variant), not r.get("complete", True))
    _scale(ax, values, log=True)
    ax.set_xticks(range(len(loads)), loads)
    ax.set_xlim(-0.6, len(loads) - 0.4)
    ax.set_ylabel("latency, ms (log scale)")
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.set_axisbelow(True)
    _percentile_key(ax)


def _percentiles(
    ax: Axes, x: float, lat: Mapping[str, float], color: str, incomplete: bool
) -> list[float]:
    """One variant at one load: a line from p50 to p99, a marker per percentile, the
    top and bottom values labelled. Returns the values drawn."""
    ys = [lat[k] for k, _, _ in PERCENTILES if k in lat]
    ax.vlines(x, min(ys), max(ys), color=color, linewidth=2)
    for k, _, marker in PERCENTILES:
        if k in lat:
            ax.plot(
                [x],
                [lat[k]],
                marker=marker,
                markersize=7,
                color=color,
                markerfacecolor="white" if incomplete else color,
                markeredgecolor="black",
                markeredgewidth=0.6,
                linestyle="none",
            )
    top, bottom = max(ys), lat["p50_ms"]
    ax.annotate(
        _number(top),
        (x, top),
        xytext=(0, 6),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize=LABEL_FONT_SIZE,
    )
    ax.annotate(
        _number(bottom) + (" (incomplete)" if incomplete else ""),
        (x, bottom),
        xytext=(0, -7),
        textcoords="offset points",
        ha="center",
        va="top",
        fontsize=LABEL_FONT_SIZE,
    )
    return ys


def _percentile_key(ax: Axes) -> None:
    """The legend of the percentile markers, beside the panel."""
    from matplotlib.lines import Line2D

    ax.legend(
        handles=[
            Line2D([], [], marker=m, color="black", markerfacecolor="white", linestyle="none")
            for _, _, m in PERCENTILES
        ],
        labels=[label for _, label, _ in PERCENTILES],
        title="percentile",
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize="small",
    )


def _title(doc: Mapping[str, Any]) -> str:
    run, m = doc["run"], doc.get("machine") or {}
    interval = run.get("commit_interval_ms")
    parts = [
        f"{m.get('cores', '?')} cores, {m.get('cpu_model') or 'unknown CPU'}",
        f"raw commit interval {interval:,g} ms" if interval is not None else None,
        f"{run['partitions']} partitions" if run.get("partitions") else None,
        run.get("limit"),
        f"Kafka {m['kafka']}" if m.get("kafka") else None,
    ]
    return f"kessai bench {run['id']}\n" + " · ".join(p for p in parts if p)


def draw(doc: Mapping[str, Any], path: Path) -> Path:
    """Draw *doc* (a ``results.json`` document) as a PNG at *path*; return *path*.

    Raises ValueError if two results share a variant and a load.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    grid = _Grid.of(doc["results"])
    trades_variants = [
        v
        for v in grid.variants
        if any(_value(grid.cells.get((load, v), {}), "trades_per_s") for load in grid.loads)
    ]
    trades_loads = [
        load
        for load in grid.loads
        if any(_value(grid.cells.get((load, v), {}), "trades_per_s") for v in trades_variants)
    ]
    panels: list[Callable[[Axes], None]] = [
        lambda ax: _bars(ax, grid, grid.variants, grid.loads, "through_rps", "records/s through"),
        lambda ax: _latency_panel(ax, grid),
    ]
    if trades_variants:
        panels.append(
            lambda ax: _bars(
                ax, grid, trades_variants, trades_loads, "trades_per_s", "trades settled/s"
            )
        )
    width_in = _width_in(len(grid.variants) * len(grid.loads))
    fig = Figure(figsize=(width_in, 1.4 + PANEL_HEIGHT_IN * len(panels)), dpi=DPI)
    fig.set_layout_engine("constrained")
    fig.suptitle(_title(doc), fontsize="medium")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        panel(ax)
    axes[0].set_title("Throughput: outputs ÷ (last visible − first publish)", loc="left")
    if trades_variants:
        axes[2].set_title("Trades settled per second (pipeline variants)", loc="left")
    for ax in axes:
        ax.set_xlabel("load offered")
    axes[-1].set_xlabel("load offered (records/s; backlog: all published before the start)")
    handles: list[Patch] = [Patch(color=grid.color(v), label=v) for v in grid.variants]
    if any(not r.get("complete", True) for r in doc["results"]):
        handles.append(
            Patch(
                facecolor="#999999",
                hatch=INCOMPLETE_HATCH,
                edgecolor="white",
                label="incomplete (hatched bar, hollow marker)",
            )
        )
    # Beside the first panel, like the percentile key beside the second: above the
    # panels it would collide with the two-line title.
    axes[0].legend(
        handles=handles,
        title="variant",
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize="small",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path
