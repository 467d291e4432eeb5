"""Issue 4's crash test: an order flow through two workers SIGKILLed at random, then an
audit of everything committed against the pure matcher replaying the committed
orders. See matching_crash.py for the scenario and the checks.

It runs on a broker of its own (fresh topics, fresh group); the broker's jars are
copied from the shared broker's state dir.

The engine matches the orders (issue 21: reserved at entry, each fill settled from
the reservations) and commits a whole batch in one transaction
(streams/engine/service.py). That the audits can fail is shown by the
takeover tests (tests/crash/test_engine_takeover.py: with fencing off, a zombie's
batch settles twice and the audit says so).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.devtools import localkafka
from tests.crash.scenarios.matching_crash import TOKENS, Outcome, run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.kill]

ORDERS = 4_000
KILLS = 4


def _run(tmp_path: Path, guarantee: str) -> Outcome:
    settings = localkafka.up_private(
        tmp_path, tokens=TOKENS, log=lambda line: print(f"[match broker] {line}")
    )
    try:
        return localkafka.run_sync(
            run_scenario(
                settings.bootstrap,
                orders=ORDERS,
                kills=KILLS,
                workdir=tmp_path,
                guarantee=guarantee,
            )
        )
    finally:
        localkafka.down(settings)


def test_an_order_flow_survives_sigkills_with_no_duplicate_or_missing_fill(
    bootstrap: str, tmp_path: Path
) -> None:
    # `bootstrap` makes sure the shared broker (and so its jars) exists first.
    outcome = _run(tmp_path, "exactly_once")
    print(outcome.summary())
    # The crashes' reasons too: a stall after a crash is best read with its cause.
    report = "\n".join([outcome.summary(), *outcome.problems, *outcome.crashes])
    assert outcome.problems == [], report
    assert outcome.orders >= ORDERS and outcome.kills == KILLS
    assert outcome.kills_mid_flow > 0, outcome.summary()  # not only kills of idle workers
    assert outcome.duplicates == 0
    # The flow exercised every path: fills of both kinds, cancels, rejections, settling.
    for event in ("accepted", "partially_filled", "filled", "cancelled", "rejected"):
        assert outcome.events[event] > 0, outcome.events
    for reason in ("duplicate", "invalid_quantity", "unknown_token", "invalid_isin"):
        assert outcome.rejections[reason] > 0, outcome.rejections
    assert outcome.trades > 0 and outcome.statuses["settled"] > 0
    # kessai replay re-derived every output and table, live ones included, and agreed.
    assert outcome.replay_checks == 19 and outcome.replay_compared > ORDERS
