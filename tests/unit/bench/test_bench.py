"""The bench harness's pure parts: percentiles, payloads, plans, reports; no broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kessai_bench import report
from kessai_bench.runner import BACKLOG, HALF, BenchError, Plan, parse_rates
from kessai_bench.stats import Latency, percentile, ratio
from kessai_bench.trades import TradeFactory
from kessai_bench.variants import RATIOS, VARIANTS

from schemas import TRADES, decode, encode, key_for
from streams import cli
from streams.devtools.processes import ChildProcess

# ------------------------------------------------------------------------ percentiles


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100

    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0], 50) == 1.0


@pytest.mark.parametrize("q", [0, -1, 101])
def test_percentile_refuses_a_rank_out_of_range(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error_and_latency_of_nothing_is_none() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    assert Latency.of([]) is None


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=200))
def test_latency_percentiles_are_ordered_and_observed(values: list[float]) -> None:
    lat = Latency.of(values)

    assert lat is not None
    assert min(values) <= lat.p50_ms <= lat.p95_ms <= lat.p99_ms <= lat.max_ms == max(values)
    assert {lat.p50_ms, lat.p95_ms, lat.p99_ms} <= set(values)
    assert lat.count == len(values)


def test_ratio_is_none_when_a_side_is_missing_or_zero() -> None:
    assert ratio(3.0, 4.0) == 0.75
    assert ratio(None, 4.0) is None
    assert ratio(3.0, None) is None
    assert ratio(3.0, 0.0) is None


# ---------------------------------------------------------------------------- payload


def test_bench_trades_are_what_the_pipeline_reads_byte_for_byte() -> None:
    factory = TradeFactory("Tabc123", seed=1)
    sizes: dict[str, set[int]] = {"JPYC": set(), "USDC": set()}
    keys = set()
    for _ in range(500):
        key, value = factory.record()
        model = decode(TRADES, value)  # a valid TradeExecuted
        assert encode(model) == value  # canonical: what schemas.encode makes of it
        assert key_for(TRADES, model) == key
        assert (model.fx_rate is not None) == (model.currency == "USDC")
        sizes[model.currency].add(len(value))
        keys.add(key)

    assert len(keys) == 500
    # Fixed-width ids and amounts: the size hardly varies, as in the real pipeline (a
    # USDC trade's carries its FX rate, source and time besides).
    for currency, found in sizes.items():
        assert max(found) - min(found) <= 8, currency
    assert 200 <= min(sizes["JPYC"]) <= 260
    assert 300 <= min(sizes["USDC"]) <= 340


def test_bench_trades_are_reproducible_from_the_seed() -> None:
    a, b = TradeFactory("T1", seed=3), TradeFactory("T1", seed=3)

    assert [a.record() for _ in range(20)] == [b.record() for _ in range(20)]


# ------------------------------------------------------------------------------- plan


def test_rates_parse_numbers_full_speed_and_half() -> None:
    assert parse_rates("0, half,2000,Backlog") == [0.0, HALF, 2000.0, BACKLOG]
    with pytest.raises(BenchError):
        parse_rates("fast")
    with pytest.raises(BenchError):
        parse_rates(",")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seconds": None, "count": None}, "duration"),
        ({"variants": ("nope",)}, "unknown variant"),
        ({"variants": ()}, "no variant"),
        ({"rates": (HALF, 0.0)}, "full-speed rate (0) or the backlog before it"),
        ({"rates": (-1.0,)}, ">= 0"),
    ],
)
def test_a_plan_that_cannot_run_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Plan(**kwargs)


def test_every_ratio_names_known_variants() -> None:
    for _, numerator, denominator in RATIOS:
        assert numerator in VARIANTS
        assert denominator in VARIANTS


# ----------------------------------------------------------------------------- report


def _result(variant: str, rate: float, through: float, p50: float, p99: float) -> dict[str, Any]:
    return {
        "variant": variant,
        "title": variant,
        "description": f"what {variant} is",
        "load": report.load_label(rate),
        "rate_target": rate,
        "published": 1000,
        "publish_rate": 1000.0,
        "outputs": 1000,
        "complete": True,
        "through_rps": through,
        "kafka_records_per_s": through * (12 if variant.startswith("pipeline") else 1),
        "latency_ms": {"p50_ms": p50, "p95_ms": p99, "p99_ms": p99, "max_ms": p99},
        "cpu_s": 1.5,
        "cpu_ms_per_1k": 10.0 if variant.endswith("once") else 15.0,
        "peak_rss_mib": 40.0,
    }


def _doc() -> dict[str, Any]:
    results = [
        _result("raw-at-least-once", 0.0, 20_000.0, 100.0, 400.0),
        _result("raw-transactional", 0.0, 15_000.0, 600.0, 1200.0),
        _result("raw-at-least-once", 7500.0, 7_400.0, 10.0, 50.0),
        {**_result("pipeline-exactly-once", 0.0, 1_500.0, 900.0, 1500.0), "records_per_trade": 12},
        {
            **_result("pipeline-exactly-once", 7500.0, 7_400.0, 45.0, 120.0),
            "latency_split_ms": {
                "written": {"p50_ms": 4.0, "p99_ms": 30.0},
                "visible": {"p50_ms": 40.0, "p99_ms": 95.0},
            },
        },
    ]
    return {
        "run": {
            "id": "2026-11-25T120000Z",
            "command": "kessai bench",
            "started_utc": "2026-11-25T12:00:00+00:00",
            "finished_utc": "2026-11-25T12:01:00+00:00",
            "partitions": 4,
            "limit": "10 s per measurement",
            "commit_interval_ms": 1000.0,
            "value_bytes_mean": 245.0,
        },
        "machine": report.machine("3.9.2"),
        "results": results,
        "ratios": report.ratios(results, RATIOS),
        "notes": ["no chart: ModuleNotFoundError: matplotlib"],
    }


def test_ratios_pair_variants_measured_at_the_same_rate_only() -> None:
    doc = _doc()

    # At 7,500/s the transactional variant did not run; the pipeline ran at full speed only.
    [only, pipeline] = doc["ratios"]
    assert (pipeline["label"], pipeline["load"]) == (
        "pipeline ÷ raw, exactly-once ÷ transactional",
        "full speed",
    )
    assert pipeline["through_rps"] == 0.1
    assert pipeline["kafka_records_per_s"] == 1.2
    assert only["load"] == "full speed"
    assert only["through_rps"] == 0.75
    assert only["p50_ms"] == 6.0
    assert only["p99_ms"] == 3.0
    assert only["cpu_ms_per_1k"] == 1.5


def test_machine_says_what_the_figures_were_taken_on() -> None:
    m = report.machine("3.9.2")

    assert m["cores"] and m["cores"] >= 1
    assert m["kafka"] == "3.9.2"
    assert m["python"].startswith("3.")
    assert m["cpu_model"]
    assert len(m["load_average_at_start"]) == 3


def test_markdown_has_one_row_per_measurement_and_the_ratio(tmp_path: Path) -> None:
    json_path, md_path = report.write(_doc(), tmp_path / "run")

    text = md_path.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| raw-")]
    assert len(rows) == 3
    assert (
        "| raw-transactional | full speed | 1,000 | 1,000 | 1,000 | 15,000 | 15,000 | 1.0 | 600 |"
        in text
    )
    assert (
        "| pipeline-exactly-once | full speed | 1,000 | 1,000 | 1,000 | 1,500 | 18,000 | 12.0 "
        "| 900 |" in text
    )
    assert "| transactional ÷ at-least-once (raw) | full speed | 0.750 | 0.750 |" in text
    assert "7,500/s" in text
    assert "| pipeline-exactly-once | 7,500/s | 4 | 30 | 40 | 95 |" in text
    assert "- no chart: ModuleNotFoundError: matplotlib" in text
    assert orjson.loads(json_path.read_bytes())["results"][0]["variant"] == "raw-at-least-once"


# ---------------------------------------------------------------------------- process


def test_a_childs_peak_rss_is_its_own_not_its_parents() -> None:
    # ru_maxrss from wait4 would report this process's RSS (vfork + exec); VmHWM not.
    ballast = bytearray(150 * 1024 * 1024)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    child = ChildProcess(
        "timeit",
        ["-n", "1", "-r", "1", "-s", "import time", "time.sleep(0.3)"],
        Path("/dev/null"),
        output="pipe",
    )

    usage = asyncio.run(child.finish(terminate=False))

    assert usage.exit_code == 0
    assert usage.peak_rss_source == "VmHWM"
    assert 1 < usage.peak_rss_mib < 100
    assert usage.cpu_s > 0
    assert "loop" in usage.last_line
    del ballast


# -------------------------------------------------------------------------------- cli


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KESSAI_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("KESSAI_STATE_DIR", str(tmp_path / "state"))


@pytest.mark.usefixtures("no_broker")
def test_bench_help_says_what_it_measures(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--help"]) == 0

    out = " ".join(capsys.readouterr().out.split())
    assert "raw passthrough ceiling" in out
    assert "read_committed" in out
    assert "bench/results/" in out
    for name in VARIANTS:  # argparse may wrap a name at a hyphen
        assert name in "".join(out.split())


@pytest.mark.usefixtures("no_broker")
@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["bench", "--rate", "fast"], "neither a number nor 'half'"),
        (["bench", "--variants", "raw-magic"], "unknown variant(s) raw-magic"),
    ],
)
def test_bench_usage_errors_exit_2(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2

    assert error in capsys.readouterr().err


@pytest.mark.usefixtures("no_broker")
def test_bench_half_without_full_speed_fails_before_touching_a_broker(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.main(["bench", "--rate", "half", "--out", str(tmp_path)]) == 1

    assert "needs a full-speed rate (0) or the backlog before it" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_signature_bench_measures_both_ways() -> None:
    from kessai_bench.signatures import measure

    result = measure(records=50, rounds=1)
    assert set(result) == {"intake_us", "intake_checked_us", "sign_us", "check_us"}
    assert all(value > 0 for key, value in result.items() if key != "check_us")


def test_the_signed_variant_writes_keys_its_worker_accepts(tmp_path: Path) -> None:
    from kessai_bench.base import Context
    from kessai_bench.pipeline import BENCH_VENUE
    from kessai_bench.variants import VARIANTS

    from streams.config import Settings
    from streams.security import signing

    ctx = Context(
        bootstrap="127.0.0.1:1",
        partitions=4,
        prefix="p-",
        trade_prefix="T",
        commit_interval_ms=100,
        log_dir=tmp_path,
    )
    variant = VARIANTS["pipeline-exactly-once+signed"]
    env = variant._env(ctx)  # type: ignore[attr-defined]
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("KESSAI_")})
    registry, matcher = signing.for_worker(settings)
    assert registry is not None and matcher is not None
    args = variant.load_args(ctx)
    deployment = args[args.index("--deployment") + 1]
    venue = signing.SigningKey.load(
        BENCH_VENUE, Path(args[args.index("--sign-key") + 1]), deployment
    )
    key, value = TradeFactory("T", seed=3, signer=venue).record()
    record = orjson.loads(value)
    assert registry.current().check("trades", key, record, datetime.now(UTC)) is None
    assert VARIANTS["pipeline-exactly-once"].load_args(ctx) == []


def test_half_is_half_the_exactly_once_engines_top_speed_in_this_run() -> None:
    from kessai_bench.runner import _resolve

    def result(variant: str, load: str, rps: float) -> dict[str, object]:
        return {"variant": variant, "load": load, "through_rps": rps, "complete": True}

    results = [
        result("raw-transactional", BACKLOG, 80_000.0),
        result("pipeline-exactly-once", BACKLOG, 7_900.0),
        result("pipeline-exactly-once@36aa8b2", BACKLOG, 222.0),
    ]
    assert _resolve(HALF, results) == 3_950.0
    # Without the engine's: half the slowest full-speed measurement, as before.
    assert _resolve(HALF, [result("raw-transactional", "full speed", 60_000.0)]) == 30_000.0
