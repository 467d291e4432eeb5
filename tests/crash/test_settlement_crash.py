"""Issue 3's crash test: 20,000 trades through two workers SIGKILLed at random, then
an audit of everything committed. See settlement_crash.py for the scenario and the
checks, and docs/exactly-once.md for what it found.

It runs on a broker of its own (fresh topics, fresh group), so its audit reads whole
topics; the broker's jars are copied from the shared broker's state dir.

Issue 8 asks the same of the secure profile: a smaller run (CI's time) on a private
secure broker, every input signed and written by its principal, the workers checking
each signature, the audit and replay reading as ops.

Issue 21: the plain run is in the recycle mode (the workers' default), its cut-off
inside the run, so trades still short then are failing (with their penalties) when
the workers are killed, and some settle after; the secure run keeps the atomic mode.
The reservations of orders are in the matching crash test (test_matching_crash.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streams.devtools import localkafka
from tests.crash.scenarios.settlement_crash import assert_survived, run_scenario, start_broker
from tests.support.profiles import start_secure_cluster

pytestmark = [pytest.mark.integration, pytest.mark.kill]

TRADES = int(os.environ.get("KESSAI_CRASH_TRADES", "20000"))
KILLS = 6
SECURE_TRADES = int(os.environ.get("KESSAI_SECURE_CRASH_TRADES", "3000"))
SECURE_KILLS = 3


def test_twenty_thousand_trades_survive_sigkills_with_two_workers(
    bootstrap: str, tmp_path: Path
) -> None:
    # `bootstrap` makes sure the shared broker (and so its jars) exists first.
    settings = start_broker(tmp_path, log=lambda line: print(f"[crash broker] {line}"))
    try:
        outcome = localkafka.run_sync(
            run_scenario(
                settings.bootstrap, trades=TRADES, kills=KILLS, workdir=tmp_path, recycle=True
            )
        )
    finally:
        localkafka.down(settings)
    assert_survived(outcome, trades=TRADES, kills=KILLS, recycle=True)
    assert outcome.signed_settlements == 0  # plain: nothing signed, nothing checked


def test_signed_trades_survive_sigkills_under_the_secure_profile(
    bootstrap: str, tmp_path: Path
) -> None:
    # `bootstrap`: as above, the jars; the secure broker is this test's own.
    cluster = start_secure_cluster(tmp_path / "kafka")
    try:
        outcome = localkafka.run_sync(
            run_scenario(
                cluster.admin.bootstrap,
                trades=SECURE_TRADES,
                kills=SECURE_KILLS,
                workdir=tmp_path / "run",
                profile=cluster.profile(),
            )
        )
    finally:
        localkafka.down(cluster.admin)
    assert_survived(outcome, trades=SECURE_TRADES, kills=SECURE_KILLS)
    # The workers checked each trade's signature and passed it on: every settlements
    # record (pending ones too) verifies back to venue-a with the registry alone.
    assert outcome.signed_settlements == outcome.trades + outcome.statuses["pending (on the way)"]
