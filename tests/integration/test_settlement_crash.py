"""Issue 3's crash test: 20,000 trades through two workers SIGKILLed at random, then
an audit of everything committed. See settlement_crash.py for the scenario and the
checks, and docs/exactly-once.md for what it found.

It runs on a broker of its own (fresh topics, fresh group), so its audit reads whole
topics; the broker's jars are copied from the shared broker's state dir.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streams import localkafka
from tests.integration.settlement_crash import run_scenario, start_broker

pytestmark = [pytest.mark.integration, pytest.mark.kill]

TRADES = int(os.environ.get("KESSAI_CRASH_TRADES", "20000"))
KILLS = 6


def test_twenty_thousand_trades_survive_sigkills_with_two_workers(
    bootstrap: str, tmp_path: Path
) -> None:
    # `bootstrap` makes sure the shared broker (and so its jars) exists first.
    settings = start_broker(tmp_path, log=lambda line: print(f"[crash broker] {line}"))
    try:
        outcome = localkafka.run_sync(
            run_scenario(settings.bootstrap, trades=TRADES, kills=KILLS, workdir=tmp_path)
        )
    finally:
        localkafka.down(settings)
    print(outcome.summary())
    assert outcome.problems == [], outcome.summary() + "\n" + "\n".join(outcome.problems)
    assert outcome.trades >= TRADES
    assert outcome.kills == KILLS
    assert outcome.two_workers_s > 0
    # kessai replay re-derived every output and table, live ones included, and agreed.
    assert outcome.replay_checks == 16 and outcome.replay_compared > TRADES
    assert outcome.duplicates == 0
    assert set(outcome.conservation_error.values()) <= {"0", "0.000000"}
    # The market exercised every path: settled, failed for each reason, pending first.
    for status in ("settled", "failed/insufficient_cash", "failed/insufficient_securities"):
        assert outcome.statuses[status] > 0, outcome.statuses
    assert outcome.statuses["pending (on the way)"] > 0, outcome.statuses
    for reason in ("duplicate", "insufficient_funds"):
        assert outcome.rejections[reason] > 0, outcome.rejections
