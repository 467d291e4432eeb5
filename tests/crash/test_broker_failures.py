"""Issue 19's broker-failure crash test: the settlement crash scenario on a cluster of
three brokers, losing a broker three times between the worker kills: the leader of the
engine's transaction coordinator, then a broker whose disk is lost (it comes back with
an empty data directory), then a restart. The audit is the settlement crash test's.

And the same losses with one replica per topic, which must lose records: without it
the first test could pass on a cluster that protects nothing.

Each loss's recovery is measured and printed (first settlement after the kill, every
partition in sync after the restart): docs/performance.md quotes them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

from streams.devtools import localkafka
from streams.devtools.localkafka import cluster as localcluster
from tests.crash.scenarios.broker_chaos import BrokerChaos, Loss, start_cluster
from tests.crash.scenarios.settlement_crash import APP_ID, assert_survived, run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.kill]

TRADES = int(os.environ.get("KESSAI_BROKER_CRASH_TRADES", "20000"))
KILLS = 4
#: One replica: fewer trades, one lost disk. It must fail, and fails early.
ONE_REPLICA_TRADES = 3000


def test_twenty_thousand_trades_survive_lost_brokers_a_lost_disk_and_sigkilled_workers(
    bootstrap: str, tmp_path: Path
) -> None:
    # `bootstrap`: the shared broker exists, so its jars do (no second Maven run).
    cluster = start_cluster(tmp_path, log=lambda line: print(f"[cluster] {line}"))
    chaos = BrokerChaos(cluster, APP_ID)
    try:
        outcome = localkafka.run_sync(
            run_scenario(
                cluster.bootstrap, trades=TRADES, kills=KILLS, workdir=tmp_path / "run", chaos=chaos
            )
        )
    finally:
        localcluster.down(cluster)
    assert_survived(outcome, trades=TRADES, kills=KILLS)
    # Every loss of the plan happened, and the pipeline came back from each.
    assert [r.what.split(",")[0] for r in outcome.recoveries] == [
        "the engine's transaction coordinator",
        "killed",
        "killed",
    ]
    assert "data directory deleted" in outcome.recoveries[1].what
    for r in outcome.recoveries:
        assert r.first_settlement_s is not None and r.in_sync_s is not None, r.render()


def test_with_one_replica_per_topic_a_lost_disk_loses_records(
    bootstrap: str, tmp_path: Path
) -> None:
    cluster = start_cluster(tmp_path, log=lambda line: print(f"[cluster] {line}"))
    chaos = BrokerChaos(cluster, APP_ID, plan=(Loss("any", wipe=True, down_s=0.0),))
    try:
        outcome = localkafka.run_sync(
            run_scenario(
                cluster.bootstrap,
                trades=ONE_REPLICA_TRADES,
                kills=0,
                workdir=tmp_path / "run",
                chaos=chaos,
                replication=1,
            )
        )
        lost = outcome.problems
        print(outcome.summary())
    except KafkaError as err:  # the venue's own records refused: the log behind them lost
        lost = [repr(err)]
    finally:
        localcluster.down(cluster)
    print("\n".join(lost))
    assert lost, "one replica per topic, a broker's disk lost, and nothing was lost?"
