"""The pipeline variant's pure parts, the profile summary, and the settings it sets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from kessai_bench import profile
from kessai_bench.pipeline import (
    CASH_AMOUNT,
    FUNDING_MOVES,
    PipelineVariant,
    _written,
    funding,
    is_terminal,
)
from kessai_bench.trades import ACCOUNTS, BONDS, TradeFactory
from kessai_bench.variants import DEFAULT_VARIANTS, RATIOS, TWEAKS, VARIANTS

from schemas import MoveBonds, MoveCash, decode, key_for
from streams.config import Settings


def test_funding_is_valid_deposits_for_every_account_the_generator_trades_between() -> None:
    records = funding()

    assert len(records) == FUNDING_MOVES == ACCOUNTS * (len(CASH_AMOUNT) + len(BONDS))
    funded: Counter[str] = Counter()
    for topic, key, value in records:
        move = decode(topic, value)  # raises on anything the pipeline would reject
        assert isinstance(move, MoveCash | MoveBonds)
        assert key == key_for(topic, move)
        assert move.kind == "deposit"
        funded[move.account] += 1
    trades = TradeFactory("T", seed=3)
    for _ in range(200):
        t = trades.trade()
        assert funded[t["buyer"]] == funded[t["seller"]] == len(CASH_AMOUNT) + len(BONDS)


def test_funding_covers_far_more_than_a_long_run_spends() -> None:
    # A trade moves at most 1,000,000 face at ~102 + accrued; 10 million trades spread
    # over 1,000 accounts is ~20,000 buys each.
    biggest_cash = 1_000_000 * 103 // 100
    assert CASH_AMOUNT["JPYC"] > 20_000 * biggest_cash
    assert CASH_AMOUNT["USDC"] > 20_000 * biggest_cash  # whole USDC, 6 decimals


def test_only_terminal_settlement_records_count_as_outputs() -> None:
    def record(status: str) -> bytes:
        return orjson.dumps({"trade_id": "t1", "status": status, "reason": None})

    assert is_terminal(record("settled"))
    assert is_terminal(record("failed"))
    assert not is_terminal(record("pending"))
    assert not is_terminal(orjson.dumps({"trade_id": "t1"}))


def test_written_topics_leave_out_inputs_and_kafkas_own() -> None:
    topics = [
        "trades",
        "payments",
        "custody",
        "orders",
        "__consumer_offsets",
        "__transaction_state",
        "settlements",
        "ledger-events",
        "kessai-bench-accounts-changelog",
        "kessai-ledger-commands",
    ]
    assert _written(topics) == [
        "kessai-bench-accounts-changelog",
        "kessai-ledger-commands",
        "ledger-events",
        "settlements",
    ]


def test_every_tweak_is_a_variant_with_its_ratio_to_the_default() -> None:
    for tweak, env in TWEAKS:
        variant = VARIANTS[f"pipeline-exactly-once+{tweak}"]
        assert isinstance(variant, PipelineVariant)
        assert variant.tweaks == env
        assert all(f"{k}={v}" in variant.description for k, v in env.items())
        Settings.from_env(env)  # every tweak is a valid setting
        assert (
            f"+{tweak} ÷ default (pipeline)",
            f"pipeline-exactly-once+{tweak}",
            "pipeline-exactly-once",
        ) in RATIOS
    assert set(DEFAULT_VARIANTS) < set(VARIANTS)
    assert not any("+" in v for v in DEFAULT_VARIANTS)


def test_a_tweak_needs_settings_and_settings_need_a_name() -> None:
    with pytest.raises(AssertionError):
        PipelineVariant("exactly_once", tweak="x")
    with pytest.raises(AssertionError):
        PipelineVariant("exactly_once", env={"KESSAI_EVENT_LOOP": "uvloop"})


@pytest.mark.parametrize(
    ("env", "field", "want"),
    [
        ({}, "event_loop", "asyncio"),
        ({"KESSAI_EVENT_LOOP": "uvloop"}, "event_loop", "uvloop"),
        ({}, "processing_guarantee", "exactly_once"),
        ({"KESSAI_PROCESSING_GUARANTEE": "at_least_once"}, "processing_guarantee", "at_least_once"),
    ],
)
def test_tuning_settings_read_from_the_environment(
    env: dict[str, str], field: str, want: object
) -> None:
    assert getattr(Settings.from_env(env), field) == want


@pytest.mark.parametrize(
    "env",
    [
        {"KESSAI_EVENT_LOOP": "trio"},
        {"KESSAI_PROCESSING_GUARANTEE": "at_most_once"},
    ],
)
def test_a_bad_tuning_setting_says_what_it_wants(env: dict[str, str]) -> None:
    [(name, value)] = env.items()
    with pytest.raises(ValueError, match=f"{name}: '{value}', want"):
        Settings.from_env(env)


# ---------------------------------------------------------------------------- profile

_ROOT = "_run_module_as_main (<frozen runpy>:198);main (streams/cli/__init__.py:56)"
COLLAPSED = "\n".join(
    [
        f"{_ROOT};run (asyncio/base_events.py:640);write (asyncio/selector_events.py:1057) 50",
        f"{_ROOT};ledger (streams/ledger/agent.py:150);loads (pydantic/main.py:20) 20",
        f"{_ROOT};ledger (streams/ledger/agent.py:161) 10",
        f"{_ROOT};send (faust/topics.py:411) 20",
        "not a sample line",
    ]
)


def test_a_profile_summary_gives_self_time_by_frame_and_package() -> None:
    summary = profile.summarise(COLLAPSED, source="p.txt")

    assert summary["samples"] == 100
    assert summary["self"][0] == {"frame": "write (asyncio/selector_events.py)", "pct": 50.0}
    packages = {p["package"]: p["pct"] for p in summary["self_by_package"]}
    assert packages == {"asyncio": 50.0, "pydantic": 20.0, "faust": 20.0, "kessai (streams/)": 10.0}
    # Lines of one function add up; the entry points (every sample has them) are left out.
    assert summary["kessai_inclusive"] == [
        {"frame": "ledger (streams/ledger/agent.py)", "pct": 30.0}
    ]


def test_a_profile_section_in_the_results_page() -> None:
    lines = profile.markdown("pipeline-exactly-once", "40/s", profile.summarise(COLLAPSED))
    text = "\n".join(lines)

    assert "### Profile: `pipeline-exactly-once`, 40/s" in text
    assert "| asyncio | 50.0 |" in text
    assert "| `ledger (streams/ledger/agent.py)` | 30.0 |" in text
    failed = "\n".join(profile.markdown("v", "l", {"error": "ptrace: permission denied"}))
    assert "Not taken: ptrace: permission denied" in failed


# ---------------------------------------------------------------------------- baseline


def test_a_baseline_is_measured_right_after_this_checkouts_exactly_once_pipeline() -> None:
    from kessai_bench.runner import _ratios, _with_baseline

    baseline = PipelineVariant("exactly_once", checkout=("abc1234", Path("/tmp/x")))
    names = ["raw-at-least-once", "pipeline-exactly-once", "pipeline-at-least-once"]

    assert baseline.name == "pipeline-exactly-once@abc1234"
    assert "git revision abc1234" in baseline.description
    assert _with_baseline(names, baseline) == [
        "raw-at-least-once",
        "pipeline-exactly-once",
        "pipeline-exactly-once@abc1234",
        "pipeline-at-least-once",
    ]
    assert _with_baseline(names, None) == names
    assert _ratios(baseline.name)[-1] == (
        "abc1234 ÷ this checkout (pipeline)",
        "pipeline-exactly-once@abc1234",
        "pipeline-exactly-once",
    )
    assert _ratios(None) == RATIOS


def test_a_baseline_that_is_not_a_revision_is_refused_before_anything_runs() -> None:
    from kessai_bench.runner import BenchError, _worktree

    with (
        pytest.raises(BenchError, match="--baseline no-such-rev"),
        _worktree("no-such-rev", log=print),
    ):
        pass
