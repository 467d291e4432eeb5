"""Finished trades are kept in ``outcomes``; a trade forwarded twice starts nothing;
``GET /trades/{trade_id}``'s document comes from the saga or the outcome."""

from __future__ import annotations

from typing import Any

from streams.settlement.handler import handle_inbox
from streams.settlement.messages import Tick, Trade
from streams.settlement.views import lookup

TOKENS = {"JPYC": 0}


def _trade(trade_id: str = "t1", deadline_at_s: float = 100.0) -> Trade:
    return Trade(
        trade_id, "JP1103551006", "alice", "bob", 100_000, "JPYC", 100_488, deadline_at_s,
        trade_time_s=10.0, arrived_s=11.0,
    )  # fmt: skip


def test_a_trade_forwarded_twice_while_it_settles_starts_nothing() -> None:
    sagas: dict[str, Any] = {}
    outcomes: dict[str, Any] = {}
    first = handle_inbox(sagas, 0, _trade(), outcomes)
    assert first.commands and first.repeated is None
    row = dict(sagas["t1"])
    again = handle_inbox(sagas, 0, _trade(), outcomes)
    assert again.repeated == "t1"
    assert again.commands == [] and again.statuses == []
    assert sagas["t1"] == row


def test_a_finished_trade_is_kept_as_an_outcome_and_a_late_copy_starts_nothing() -> None:
    sagas: dict[str, Any] = {}
    outcomes: dict[str, Any] = {}
    handle_inbox(sagas, 0, _trade(deadline_at_s=100.0), outcomes)
    failed = handle_inbox(sagas, 0, Tick(now_s=101.0), outcomes)
    assert [s.status for _, s in failed.statuses] == ["failed"]
    assert "t1" not in sagas
    assert outcomes["t1"]["stage"] == "failed"
    assert outcomes["t1"]["reason"] == failed.statuses[0][1].reason
    assert outcomes["t1"]["trade"]["trade_time_s"] == 10.0
    # Its bonds lock was queued: the failure voided it, whatever reply comes later.
    assert outcomes["t1"]["bonds"] == "voided" and outcomes["t1"]["cash"] == "none"
    late = handle_inbox(sagas, 0, _trade(), outcomes)
    assert late.repeated == "t1" and late.commands == []
    assert "t1" not in sagas


def test_without_an_outcomes_table_the_handler_behaves_as_before() -> None:
    sagas: dict[str, Any] = {}
    handle_inbox(sagas, 0, _trade(deadline_at_s=100.0))
    handle_inbox(sagas, 0, Tick(now_s=101.0))
    assert sagas == {}
    assert handle_inbox(sagas, 0, _trade()).repeated is None


def test_the_trade_document_shows_the_stage_and_both_locks() -> None:
    sagas: dict[str, Any] = {}
    outcomes: dict[str, Any] = {}
    handle_inbox(sagas, 0, _trade(), outcomes)
    live = lookup(sagas, outcomes, "t1", TOKENS)
    assert live is not None
    assert live["stage"] == "bonds" and live["terminal"] is False
    assert live["locks"]["bonds"] == {
        "lock_id": "t1/bonds",
        "account": "bob",
        "asset": "JP1103551006",
        "amount": "100000",
        "state": "queued",
    }
    assert live["locks"]["cash"]["account"] == "alice"
    assert live["locks"]["cash"]["amount"] == "100488"
    handle_inbox(sagas, 0, Tick(now_s=101.0), outcomes)
    done = lookup(sagas, outcomes, "t1", TOKENS)
    assert done is not None
    assert done["stage"] == "failed" and done["terminal"] is True
    assert done["reason"] == outcomes["t1"]["reason"]
    assert lookup(sagas, outcomes, "t2", TOKENS) is None
