"""Broker failures for the settlement crash scenario (issue 19).

The scenario runs on a local cluster of three brokers and one KRaft controller
(:mod:`streams.devtools.localkafka.cluster`); at points of the run, between its worker
kills, :class:`BrokerChaos` SIGKILLs a broker:

1. the leader of the engine's transaction coordinator (FindCoordinator, key type 1,
   for ``{app_id}-engine``): every commit of the engine goes through it;
2. another broker, whose data directory is deleted too (a lost machine): it comes
   back empty, formatted with the cluster's id, and copies every partition back;
3. any broker, brought back at once (a restart).

Each time it measures, as a client sees it, how long from the kill until a settlement
written after the kill is read back (read_committed), and after the restart how long
until every partition of every topic is in sync again. The audit is the scenario's.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.errors import CoordinatorNotAvailableError, KafkaError

from streams.config import Settings
from streams.devtools.localkafka import cluster as localcluster
from streams.devtools.localkafka.cluster import Cluster
from streams.devtools.processes import free_port
from streams.kafka.admin import out_of_sync_partitions
from tests.crash.scenarios.killharness import Tail

#: Partitions of every topic the scenario's cluster makes (as the single broker's).
PARTITIONS: Final = 4
#: How long a settlement may take to show up after a broker is lost.
FIRST_SETTLEMENT_TIMEOUT_S: Final = 120.0
#: FindCoordinator asks, a second apart, while no coordinator is available yet.
COORDINATOR_ATTEMPTS: Final = 60
#: How long a restarted broker (an empty one too) may take to be in sync again.
IN_SYNC_TIMEOUT_S: Final = 300.0


@dataclass(frozen=True)
class Loss:
    """One broker failure of the plan."""

    #: "coordinator": the engine's transaction coordinator; "other": not the last
    #: victim; "any".
    whom: str
    #: Delete its data directory before it comes back.
    wipe: bool = False
    #: Seconds it stays down after the first settlement without it (at most).
    down_s: float = 5.0


#: The issue's plan: the coordinator's broker, then a lost disk, then a restart.
PLAN: Final = (Loss("coordinator"), Loss("other", wipe=True), Loss("any", down_s=0.0))


@dataclass
class Recovery:
    """What one broker failure cost, measured."""

    broker: str
    what: str
    #: Kill -> a settlement written after it is read back (None: none in the timeout).
    first_settlement_s: float | None = None
    #: Restart -> every partition in sync again (None: not in the timeout).
    in_sync_s: float | None = None
    #: Bytes of log segments in its data directory once in sync (wiped: copied back).
    data_bytes: int = 0

    def render(self) -> str:
        first = "-" if self.first_settlement_s is None else f"{self.first_settlement_s:.1f} s"
        in_sync = "-" if self.in_sync_s is None else f"{self.in_sync_s:.1f} s"
        return (
            f"{self.broker} ({self.what}): first settlement {first}, in sync {in_sync} "
            f"holding {self.data_bytes / 2**20:.1f} MiB"
        )


class Running(Protocol):
    """What the chaos needs of a run: its clock (idling feeds the market and restarts
    crashed workers) and its follower of ``settlements``."""

    terminal: Tail

    async def idle(self, seconds: float) -> None: ...


def start_cluster(workdir: Path, log: Callable[[str], None] = print) -> Cluster:
    """A fresh cluster of three brokers under ``workdir``, on free ports, on the jars of
    the project's broker when it has them (no second Maven run)."""
    state = workdir / "state"
    shared_libs = Settings.from_env().state_dir / "kafka" / "libs"
    if shared_libs.is_dir() and not (state / "kafka" / "libs").exists():
        shutil.copytree(shared_libs, state / "kafka" / "libs")
    cluster = Cluster(state, 3, base_port=free_port(run=4))
    localcluster.up(cluster, partitions=PARTITIONS, log=log)
    return cluster


async def transaction_coordinator(bootstrap: str, transactional_id: str) -> int:
    """The node id of the broker that coordinates ``transactional_id``'s transactions
    (the leader of its ``__transaction_state`` partition); retried while the broker
    says none is available yet (the log still loading, or just moved)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        for _ in range(COORDINATOR_ATTEMPTS - 1):
            try:
                return int(
                    await client.coordinator_lookup(CoordinationType.TRANSACTION, transactional_id)
                )
            except CoordinatorNotAvailableError:
                await asyncio.sleep(1.0)
        return int(await client.coordinator_lookup(CoordinationType.TRANSACTION, transactional_id))
    finally:
        await client.close()


class BrokerChaos:
    """Loses brokers of ``cluster`` as :data:`PLAN` says, one per :meth:`step`."""

    def __init__(self, cluster: Cluster, app_id: str, plan: tuple[Loss, ...] = PLAN) -> None:
        self.cluster, self.app_id, self.plan = cluster, app_id, plan
        self.settings = Settings.from_env({"KESSAI_BOOTSTRAP": cluster.bootstrap})
        self.recoveries: list[Recovery] = []
        self.problems: list[str] = []
        self._last: str | None = None

    def points(self, trades: int) -> list[int]:
        """Where the losses fall, as counts of trades fed: spread over the run."""
        n = len(self.plan)
        return [trades * (i + 1) // (n + 1) for i in range(n)]

    async def step(self, index: int, run: Running, rng: random.Random, say: Any) -> None:
        """Lose the plan's ``index``-th broker, wait for a settlement without it (with
        it restarting, for a restart at once), bring it back (empty if wiped), and wait
        until every partition is in sync."""
        loss = self.plan[index]
        while not run.terminal.ids:  # the engine settles before anything is lost
            await run.idle(0.5)
        victim, what = await self._victim(loss, rng)
        recovery = Recovery(victim, what)
        self.recoveries.append(recovery)
        killed_ms, killed = time.time() * 1000, time.monotonic()
        await asyncio.to_thread(localcluster.kill_node, self.cluster, victim, wipe=loss.wipe)
        say(f"broker {victim} SIGKILLed ({what}): {len(run.terminal.ids)} trades terminal")
        if loss.down_s == 0.0:
            restarted = await self._restart(victim, say)
        while run.terminal.latest_ms <= killed_ms:
            if time.monotonic() - killed > FIRST_SETTLEMENT_TIMEOUT_S:
                waited = FIRST_SETTLEMENT_TIMEOUT_S
                self.problems.append(f"no settlement {waited:.0f} s after {victim}: {what}")
                break
            await run.idle(0.1)
        else:
            recovery.first_settlement_s = time.monotonic() - killed
        if loss.down_s > 0.0:
            await run.idle(rng.uniform(0.0, loss.down_s))
            restarted = await self._restart(victim, say)
        while await self._out_of_sync():
            if time.monotonic() - restarted > IN_SYNC_TIMEOUT_S:
                self.problems.append(f"{victim} not in sync {IN_SYNC_TIMEOUT_S:.0f} s after {what}")
                break
            await run.idle(0.5)
        else:
            recovery.in_sync_s = time.monotonic() - restarted
        data = self.cluster.paths(victim).data
        recovery.data_bytes = sum(f.stat().st_size for f in data.rglob("*.log"))
        say(f"broker {victim} back: {recovery.render()}")

    async def _restart(self, victim: str, say: Any) -> float:
        """Start ``victim`` again (formatting an empty data directory); when, monotonic."""
        await asyncio.to_thread(
            localcluster.start_node, self.cluster, victim, partitions=PARTITIONS, log=say
        )
        return time.monotonic()

    async def _victim(self, loss: Loss, rng: random.Random) -> tuple[str, str]:
        names = self.cluster.names
        if loss.whom == "coordinator":
            node = await transaction_coordinator(self.cluster.bootstrap, f"{self.app_id}-engine")
            victim, what = f"broker-{node}", "the engine's transaction coordinator"
        elif loss.whom == "other":
            victim, what = rng.choice([n for n in names if n != self._last]), "killed"
        else:
            victim, what = rng.choice(names), "killed"
        if loss.wipe:
            what += ", data directory deleted"
        if loss.down_s == 0.0:
            what += ", restarted at once"
        self._last = victim
        return victim, what

    async def _out_of_sync(self) -> list[str]:
        try:
            return await out_of_sync_partitions(self.settings)
        except KafkaError as err:  # the admin asked a broker still starting: again
            return [repr(err)]
