"""The recycle mode's pure parts: cut-offs on the JP calendar or every day, the saga's
fail days and cancellation, the failing reasons, and the settings that choose them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from streams.bonds.terms import start_of
from streams.config import Settings
from streams.errors import ConfigError
from streams.ledger.messages import Reply, VoidCmd
from streams.settlement import saga as dvp
from streams.settlement.fails import DAY_S, FailRules, PenaltyRules, penalties
from streams.settlement.messages import Trade

BOND = "JP1103771Q62"
T1 = FailRules(cutoff_s=14 * 3600.0, max_days=3, business_days=True)
ALWAYS = FailRules(cutoff_s=DAY_S, max_days=3, business_days=False)


def dated(settlement_date: str = "2025-11-05") -> Trade:
    starts = start_of(dt.date.fromisoformat(settlement_date))
    return Trade(
        "t1", BOND, "b", "s", 100_000_000, "JPYC", 98_878_424, starts + 14 * 3600,
        settlement_date=settlement_date, starts_at_s=starts,
    )  # fmt: skip


def jst(day: str, hour: float) -> float:
    return start_of(dt.date.fromisoformat(day)) + hour * 3600


@pytest.mark.parametrize(
    ("rules", "n", "expected"),
    [
        # Wed 5 Nov 2025, then Thu 6, Fri 7, Mon 10 (the weekend is no fail day).
        (T1, 0, jst("2025-11-05", 14)),
        (T1, 1, jst("2025-11-06", 14)),
        (T1, 3, jst("2025-11-10", 14)),
        # At T+0 every day is one, and the cut-off is the day's end.
        (ALWAYS, 0, jst("2025-11-06", 0)),
        (ALWAYS, 3, jst("2025-11-09", 0)),
    ],
)
def test_cutoffs_follow_the_settlement_dates_calendar(
    rules: FailRules, n: int, expected: float
) -> None:
    assert rules.cutoff(dated(), n) == expected


def test_a_trade_without_dates_has_its_deadline_then_one_a_day() -> None:
    undated = Trade("t1", BOND, "b", "s", 50_000, "JPYC", 50_000, 1_000.0)
    assert [T1.cutoff(undated, n) for n in range(3)] == [1_000 + n * DAY_S for n in range(3)]


def test_rules_survive_the_manifest() -> None:
    assert FailRules.from_json(T1.to_json()) == T1
    charged = dataclasses.replace(
        T1, penalties=PenaltyRules("jsda", reference_rate=Decimal("0.01"))
    )
    assert FailRules.from_json(charged.to_json()) == charged
    assert FailRules.from_json(None) is None


@pytest.mark.parametrize(
    ("rules", "reason", "expected"),
    [
        # The domain review's worked numbers, on the ¥100m trade's 98,878,424 JPYC.
        (PenaltyRules("csdr"), "insufficient_securities", [("seller", "s", "b", 988)]),
        (PenaltyRules("csdr"), "insufficient_cash", [("buyer", "b", "s", 2031)]),
        (
            PenaltyRules("csdr"),
            "insufficient_securities_and_cash",
            [("seller", "s", "b", 988), ("buyer", "b", "s", 2031)],
        ),
        (PenaltyRules("jsda"), "insufficient_securities", [("seller", "s", "b", 6772)]),
        # JSDA charges a fail to deliver only; and nothing once R reaches 3 %.
        (PenaltyRules("jsda"), "insufficient_cash", []),
        (PenaltyRules("jsda", reference_rate=Decimal("0.03")), "insufficient_securities", []),
    ],
)
def test_a_fail_days_penalty_is_the_policys_worked_number(
    rules: PenaltyRules, reason: str, expected: list[tuple[str, str, str, int]]
) -> None:
    got = penalties(dated(), reason, rules)
    assert [(p.side, p.liable, p.counterparty, p.units) for p in got] == expected


def _cutoff(saga: dvp.Saga, *, cash_short: bool = False) -> dvp.Outcome:
    return dvp.on_cutoff(
        saga,
        saga.due,
        cash_short=cash_short,
        max_days=T1.max_days,
        next_s=T1.cutoff(saga.trade, saga.fail_days + 1),
    )


def test_past_the_cutoff_a_trade_is_failing_recycles_and_is_cancelled_after_max_days() -> None:
    saga, commands, statuses = dvp.start(dated(), recycle=True)
    saga, _, statuses = dvp.on_reply(saga, Reply("t1", "t1/bonds", "queued"))
    assert [(s.status, s.reason) for s in statuses] == [("pending", "insufficient_securities")]
    # Not yet: a moment before the cut-off nothing happens.
    early = dvp.on_cutoff(saga, saga.due - 1, cash_short=True, max_days=3, next_s=0)
    assert early == (saga, [], [])
    saga, commands, statuses = _cutoff(saga, cash_short=True)
    assert commands == []
    assert [(s.status, s.reason) for s in statuses] == [
        ("failing", "insufficient_securities_and_cash")
    ]
    assert (saga.fail_days, saga.due) == (1, jst("2025-11-06", 14))
    # The next day, the same reason: one more fail day, no repeated status.
    saga, _, statuses = _cutoff(saga, cash_short=True)
    assert (saga.fail_days, statuses) == (2, [])
    # The buyer's cash arrived: the reason changes.
    saga, _, statuses = _cutoff(saga, cash_short=False)
    assert [(s.status, s.reason) for s in statuses] == [("failing", "insufficient_securities")]
    # The third day after the settlement date's: cancelled, its queued lock withdrawn.
    saga, commands, statuses = _cutoff(saga)
    assert (saga.stage, saga.reason, saga.terminal) == ("cancelled", "max_fail_days", True)
    assert commands == [VoidCmd("t1/bonds", "t1", "s")]
    assert [(s.status, s.reason) for s in statuses] == [("cancelled", "max_fail_days")]
    # Anything later is no-op.
    assert _cutoff(saga) == (saga, [], [])


def test_a_failing_trade_settles_when_both_legs_lock_and_reports_failing_reasons() -> None:
    saga, _, _ = dvp.start(dated(), recycle=True)
    saga, _, _ = dvp.on_reply(saga, Reply("t1", "t1/bonds", "queued"))
    saga, _, _ = _cutoff(saga)
    saga, _, _ = dvp.on_reply(saga, Reply("t1", "t1/bonds", "granted"))
    saga, _, statuses = dvp.on_reply(saga, Reply("t1", "t1/cash", "queued"))
    # Past the cut-off a queued leg's status is failing, not pending.
    assert [(s.status, s.reason) for s in statuses] == [("failing", "insufficient_cash")]
    saga, commands, _ = dvp.on_reply(saga, Reply("t1", "t1/cash", "granted"))
    assert [type(c).__name__ for c in commands] == ["PostCmd", "PostCmd"]
    for leg in ("bonds", "cash"):
        saga, _, statuses = dvp.on_reply(saga, Reply("t1", f"t1/{leg}", "posted"))
    assert (saga.stage, [s.status for s in statuses]) == ("settled", ["settled"])


def test_in_the_recycle_mode_every_end_but_settled_is_cancelled() -> None:
    saga, _, _ = dvp.start(dated(), recycle=True)
    _, _, statuses = dvp.on_matured(saga)
    assert [(s.status, s.reason) for s in statuses] == [("cancelled", "instrument_matured")]
    _, _, statuses = dvp.on_reply(saga, Reply("t1", "t1/bonds", "refused"))
    assert [(s.status, s.reason) for s in statuses] == [("cancelled", "too_many_locks")]
    atomic, _, _ = dvp.start(dated())
    _, _, statuses = dvp.on_matured(atomic)
    assert [s.status for s in statuses] == ["failed"]


def test_settings_choose_the_mode_and_the_cutoff_by_the_settlement_lag() -> None:
    default = Settings.from_env({})
    assert (default.fail_mode, default.cutoff_s, default.max_fail_days) == ("recycle", DAY_S, 60)
    t1 = Settings.from_env({"KESSAI_SETTLEMENT_LAG": "1"})
    assert t1.cutoff_s == 14 * 3600
    chosen = Settings.from_env({"KESSAI_CUTOFF": "15:30", "KESSAI_FAIL_MODE": "atomic"})
    assert (chosen.cutoff_s, chosen.fail_mode) == (15.5 * 3600, "atomic")
    assert default.penalties == PenaltyRules("csdr")
    jsda = Settings.from_env(
        {"KESSAI_PENALTY_POLICY": "jsda", "KESSAI_PENALTY_REFERENCE_RATE": "0.01"}
    )
    assert jsda.penalties == PenaltyRules("jsda", reference_rate=Decimal("0.01"))
    assert Settings.from_env({"KESSAI_PENALTY_POLICY": "none"}).penalties is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KESSAI_CUTOFF", "2pm"),
        ("KESSAI_CUTOFF", "24:30"),
        ("KESSAI_CUTOFF", "00:00"),
        ("KESSAI_CUTOFF", "13:60"),
        ("KESSAI_FAIL_MODE", "cancel"),
        ("KESSAI_MAX_FAIL_DAYS", "0"),
        ("KESSAI_TRADE_AHEAD_S", "-1"),
        ("KESSAI_PENALTY_POLICY", "fine"),
        ("KESSAI_PENALTY_CASH_RATE", "2"),
        ("KESSAI_PENALTY_SECURITIES_RATE", "0.1bp"),
        ("KESSAI_PENALTY_REFERENCE_RATE", "NaN"),
    ],
)
def test_bad_settings_are_refused_with_their_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
