"""Finished trades keep their outcome in the engine's rows; a second copy of a trade id
starts nothing; ``GET /trades/{trade_id}``'s document comes from the open saga or the
outcome."""

from __future__ import annotations

import orjson

from streams.engine.core import Batch, Engine, Rules
from streams.engine.views import lookup_trade
from streams.settlement.messages import Trade

TOKENS = {"JPYC": 0}
RULES = Rules(tokens=TOKENS, deadline_s=60.0)


def _trade(trade_id: str = "t1", deadline_at_s: float = 100.0) -> Trade:
    return Trade(
        trade_id, "JP1103551006", "alice", "bob", 100_000, "JPYC", 100_488, deadline_at_s,
        trade_time_s=10.0, arrived_s=11.0,
    )  # fmt: skip


def _batch(engine: Engine, now: float) -> Batch:
    return Batch(engine, RULES, now)


def test_a_finished_trade_is_kept_as_an_outcome_and_shown_with_both_locks() -> None:
    engine = Engine()
    batch = _batch(engine, 50.0)
    batch.start(_trade())
    batch.finish()
    live = lookup_trade(engine, "t1", TOKENS)
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
    late = _batch(engine, 101.0)
    late.expire()
    out = late.finish()
    assert [(s.status, s.reason) for s in out.statuses] == [("failed", "insufficient_securities")]
    assert "t1" not in engine.open
    row = orjson.loads(engine.finished["t1"])
    assert row["stage"] == "failed" and row["trade"]["trade_time_s"] == 10.0
    # Its bonds lock was queued: the failure voided it.
    assert row["bonds"] == "voided" and row["cash"] == "none"
    done = lookup_trade(engine, "t1", TOKENS)
    assert done is not None
    assert done["stage"] == "failed" and done["terminal"] is True
    assert done["reason"] == "insufficient_securities"
    assert lookup_trade(engine, "t2", TOKENS) is None
    assert engine.seen("t1")  # a later copy is a duplicate, never a second start
