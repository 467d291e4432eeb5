"""The bench chart: a real PNG of the right size, drawn from synthetic results; no broker."""

from __future__ import annotations

import copy
import struct
from pathlib import Path
from typing import Any

import pytest
from kessai_bench import chart
from matplotlib.figure import Figure
from PIL import Image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A chart of a few panels with text and bars; an empty or failed canvas is far smaller.
PNG_BYTES_MIN = 20_000
# Pixels of one colour that only bars cover: a legend swatch or a latency marker has ~200.
BAR_PIXELS_MIN = 2_000
LOADS = ("full speed", "18,301/s", "backlog")


def _result(
    variant: str,
    load: str,
    through_rps: float,
    p50_ms: float | None,
    **extra: Any,
) -> dict[str, Any]:
    latency = (
        None
        if p50_ms is None
        else {"count": 1000, "p50_ms": p50_ms, "p95_ms": p50_ms * 3, "p99_ms": p50_ms * 5}
    )
    return {
        "variant": variant,
        "title": variant.replace("-", " "),
        "load": load,
        "through_rps": through_rps,
        "latency_ms": latency,
        "cpu_s": 3.0,
        "peak_rss_mib": 50.0,
        "complete": True,
        **extra,
    }


def _doc(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "run": {
            "id": "2026-11-25T120000Z",
            "partitions": 4,
            "limit": "6 s per measurement",
            "commit_interval_ms": 1000.0,
        },
        "machine": {"cores": 2, "cpu_model": "AMD EPYC", "kafka": "3.9.2"},
        "results": results,
    }


def _raw_doc() -> dict[str, Any]:
    """2 variants x 3 loads, the backlog without latency, as `kessai bench` makes today."""
    return _doc(
        [
            _result("raw-at-least-once", LOADS[0], 37_000.0, 17.0),
            _result("raw-transactional", LOADS[0], 36_000.0, 866.0),
            _result("raw-at-least-once", LOADS[1], 18_200.0, 9.7),
            _result("raw-transactional", LOADS[1], 17_200.0, 705.0),
            _result("raw-at-least-once", LOADS[2], 66_900.0, None),
            _result("raw-transactional", LOADS[2], 59_200.0, None),
        ]
    )


def _pipeline_doc() -> dict[str, Any]:
    """The raw variants plus pipeline ones that also count trades settled."""
    doc = _raw_doc()
    for load, rps, p50 in ((LOADS[0], 1_500.0, 40.0), (LOADS[2], 2_000.0, None)):
        for variant in ("pipeline-at-least-once", "pipeline-exactly-once"):
            doc["results"].append(
                _result(
                    variant,
                    load,
                    rps,
                    p50,
                    trades_per_s=rps / 3,
                    kafka_records_per_s=rps * 4,
                )
            )
    return doc


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")  # the first chunk, always
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _pixels(path: Path, hex_color: str) -> int:
    """How many pixels of the PNG are exactly *hex_color*."""
    want = tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    with Image.open(path) as img:
        colors = img.convert("RGB").getcolors(maxcolors=1 << 24)
    assert colors is not None
    return sum(n for n, rgb in colors if rgb == want)


def test_draws_a_png_of_the_figure_size_with_a_bar_colour_per_variant(tmp_path: Path) -> None:
    path = chart.draw(_raw_doc(), tmp_path / "chart.png")

    assert path == tmp_path / "chart.png"
    assert path.stat().st_size > PNG_BYTES_MIN
    width, height = _png_size(path)
    assert width == round(chart.WIDTH_IN_MIN * chart.DPI)  # 6 bars: the minimum width
    assert height == round((1.4 + 2 * chart.PANEL_HEIGHT_IN) * chart.DPI)  # two panels
    assert _pixels(path, chart.COLORS[0]) > BAR_PIXELS_MIN
    assert _pixels(path, chart.COLORS[1]) > BAR_PIXELS_MIN
    assert _pixels(path, chart.COLORS[2]) == 0  # no third variant


def test_trades_settled_add_a_panel_and_the_pipeline_variants_a_colour(tmp_path: Path) -> None:
    raw = chart.draw(_raw_doc(), tmp_path / "raw.png")
    pipeline = chart.draw(_pipeline_doc(), tmp_path / "pipeline.png")

    raw_w, raw_h = _png_size(raw)
    w, h = _png_size(pipeline)
    assert h - raw_h == round(chart.PANEL_HEIGHT_IN * chart.DPI)
    assert w > raw_w  # 4 variants x 3 loads need more room than 2 x 3
    # The pipeline variants have bars in two panels now, the raw ones in one.
    assert _pixels(pipeline, chart.COLORS[2]) > BAR_PIXELS_MIN
    assert _pixels(pipeline, chart.COLORS[3]) > BAR_PIXELS_MIN


def test_trades_panel_needs_trades_not_just_more_variants(tmp_path: Path) -> None:
    doc = _pipeline_doc()
    for r in doc["results"]:
        r.pop("trades_per_s", None)

    _, h = _png_size(chart.draw(doc, tmp_path / "chart.png"))

    assert h == round((1.4 + 2 * chart.PANEL_HEIGHT_IN) * chart.DPI)


def test_same_results_same_bytes(tmp_path: Path) -> None:
    a = chart.draw(_pipeline_doc(), tmp_path / "a.png")
    b = chart.draw(_pipeline_doc(), tmp_path / "b.png")

    assert a.read_bytes() == b.read_bytes()


def test_incomplete_and_missing_measurements_still_draw(tmp_path: Path) -> None:
    doc = _pipeline_doc()
    doc["results"][1]["complete"] = False  # raw-transactional at full speed
    doc["results"][1]["through_rps"] = 0.0  # nothing came out at all
    doc["results"][3]["latency_ms"] = None  # raw-transactional at 18,301/s: none seen
    doc["results"][-1]["complete"] = False
    doc["results"][-1]["trades_per_s"] = None
    del doc["machine"]["cpu_model"]

    path = chart.draw(doc, tmp_path / "nested" / "chart.png")

    assert path.stat().st_size > PNG_BYTES_MIN
    assert _png_size(path)[1] == round((1.4 + 3 * chart.PANEL_HEIGHT_IN) * chart.DPI)


def test_no_latency_at_all_still_draws(tmp_path: Path) -> None:
    doc = _raw_doc()
    doc["results"] = [r for r in doc["results"] if r["load"] == "backlog"]

    path = chart.draw(doc, tmp_path / "chart.png")

    assert path.stat().st_size > PNG_BYTES_MIN
    assert _png_size(path)[1] == round((1.4 + 2 * chart.PANEL_HEIGHT_IN) * chart.DPI)
    assert _pixels(path, chart.COLORS[0]) > BAR_PIXELS_MIN


def test_a_load_given_twice_draws_a_group_per_repeat(tmp_path: Path) -> None:
    doc = _raw_doc()
    again = copy.deepcopy(doc["results"])
    doc["results"].extend(again)

    grid = chart._Grid.of(doc["results"])
    first = doc["results"][0]["load"]
    assert grid.loads[: len(grid.loads) // 2] == list(dict.fromkeys(r["load"] for r in again))
    assert f"{first} #2" in grid.loads
    assert grid.cells[(f"{first} #2", again[0]["variant"])] is doc["results"][len(again)]
    chart.draw(doc, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("throughputs", "scale"),
    [((1_000.0, 29_000.0), "linear"), ((1_000.0, 31_000.0), "log")],
)
def test_throughput_goes_log_only_past_a_30x_span(
    throughputs: tuple[float, float], scale: str
) -> None:
    doc = _doc([_result(f"v{i}", "full speed", t, 10.0) for i, t in enumerate(throughputs)])
    grid = chart._Grid.of(doc["results"])
    ax = Figure().subplots()

    chart._bars(ax, grid, grid.variants, grid.loads, "through_rps", "records/s through")

    assert ax.get_yscale() == scale
