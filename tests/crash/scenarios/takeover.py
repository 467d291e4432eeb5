"""The settlement engine's takeovers, on a broker of their own: a zombie, a kill during a
restore, and offsets reset by hand.

Two workers share one app: one runs the engine, the other stands by. Each scenario
feeds a backlog of funded trades (the bench's market: :mod:`kessai_bench.trades`),
does something to the engine's worker, lets the other finish, and then audits
everything committed (read_committed):

- every trade has exactly one terminal status, and no status twice;
- every account's journal has each ``seq`` once, from 1 without a gap;
- ``kessai replay`` re-runs the engine's log and agrees with every output and
  changelog.

**Zombie** (:func:`zombie`): SIGSTOP the engine's worker in the middle of its backlog,
wait until the other has taken over, SIGCONT it. Its producer was fenced by the new
holder's: it must commit nothing and exit. With fencing off (``KESSAI_ENGINE_FENCING=0``:
a transactional id of its own per worker) the paused worker commits the batch it held,
which the new holder applied again: the audit finds trades settled twice.

**Kill during restore** (:func:`kill_during_restore`): SIGKILL the engine's worker, and
SIGKILL the other while it restores; start both again.

**Offsets reset** (:func:`offsets_reset`): stop both workers, reset the engine group's
offsets to the earliest with Kafka's own ``kafka-consumer-groups`` tool, start a
worker: it resumes from its log, and nothing is applied twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from kessai_bench.pipeline import funding
from kessai_bench.trades import TradeFactory, fx_reference

from schemas import FX_RATES
from streams.audit import replay
from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.localkafka import jvm
from streams.devtools.localkafka.layout import Paths
from streams.devtools.processes import WorkerProcess
from streams.kafka.admin import ensure_worker_topics
from streams.kafka.reader import read_committed
from tests.crash.scenarios.settlement_crash import group_lag

APP_ID = "kessai-takeover"
ENGINE_GROUP = f"{APP_ID}-engine"
INPUTS = ("payments", "custody", "trades")
#: What a worker logs when its engine starts reading its changelogs.
READING = "engine: reading the engine's state from its changelogs"
#: How long after the backlog starts the engine's worker is paused.
ZOMBIE_AFTER_S = 2.0
#: How long a worker may take to lead, to stop, or to catch up.
WAIT_S = 120.0


@dataclass
class Audit:
    """What the audit found."""

    trades: int = 0
    terminal: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Pair:
    """Two workers of one app on a private broker."""

    settings: Settings
    workdir: Path
    env: dict[str, str]
    workers: list[WorkerProcess | None] = field(default_factory=lambda: [None, None])
    starts: int = 0

    def start(self, i: int) -> WorkerProcess:
        self.starts += 1
        log = self.workdir / f"w{i}-{self.starts}.log"
        worker = self.workers[i] = WorkerProcess(log, env=self.env)
        return worker

    def holder(self) -> int | None:
        """The index of the worker whose ``/health`` says it runs the engine."""
        for i, w in enumerate(self.workers):
            body = w.health() if w is not None and w.alive else None
            if body is not None and body.get("engine") == "leading":
                return i
        return None

    async def wait_for(self, what: str, check: Callable[[], object]) -> object:
        deadline = time.monotonic() + WAIT_S
        while not (got := await asyncio.to_thread(check)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not after {WAIT_S:.0f} s; logs in {self.workdir}")
            await asyncio.sleep(0.1)
        return got

    def stop_all(self) -> None:
        for w in self.workers:
            if w is not None and w.alive:
                w.stop()


def start_pair(workdir: Path, *, fencing: bool = True) -> Pair:
    settings = localkafka.up_private(workdir, log=lambda line: None)
    env = {
        "KESSAI_BOOTSTRAP": settings.bootstrap,
        "KESSAI_APP_ID": APP_ID,
        "KESSAI_VENUE_RATE": "1000000000",
        "KESSAI_VENUE_BURST": "1000000000",
    }
    if not fencing:
        env["KESSAI_ENGINE_FENCING"] = "0"
    return Pair(dataclasses.replace(settings, app_id=APP_ID), workdir, env)


async def feed(settings: Settings, trades: int, *, prefix: str, fund: bool) -> None:
    """The funding deposits (``fund``), or ``trades`` trades between funded accounts."""
    await ensure_worker_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    try:
        if fund:  # USDC's reference rate first: the USDC trades convert at it
            await producer.send(FX_RATES, orjson.dumps(fx_reference()), key=b"USDC")
            for topic, key, value in funding():
                await producer.send(topic, value, key=key)
        factory = TradeFactory(prefix)
        for _ in range(trades):
            key, value = factory.record()
            await producer.send("trades", value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def funded_pair(workdir: Path, *, fencing: bool = True, workers: int = 2) -> Pair:
    """A pair whose engine has applied the funding: trades fed after it settle at once
    (fed together, the engine may read trades before the deposits that fund them)."""
    pair = start_pair(workdir, fencing=fencing)
    await feed(pair.settings, 0, prefix="f", fund=True)
    for i in range(workers):
        pair.start(i)
    await pair.wait_for("an engine", lambda: pair.holder() is not None)
    await caught_up(pair)
    return pair


async def caught_up(pair: Pair) -> None:
    """Wait until the engine group has committed every input record."""
    deadline = time.monotonic() + WAIT_S
    while (lag := await group_lag(pair.settings, ENGINE_GROUP, INPUTS)) > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the engine still lags {lag} records; logs in {pair.workdir}")
        await asyncio.sleep(1.0)


async def audit(settings: Settings, trades: int) -> Audit:
    """The checks in the module's docstring, over everything committed."""
    found = Audit(trades=trades)
    statuses = Counter[tuple[str, str]]()
    for r in await read_committed(settings, "settlements", timeout_s=WAIT_S):
        value = orjson.loads(r.value)
        statuses[(value["trade_id"], value["status"])] += 1
    twice = {k: n for k, n in statuses.items() if n > 1}
    if twice:
        found.problems.append(f"{len(twice)} statuses written twice, e.g. {sorted(twice)[:3]}")
    ended = Counter(t for (t, s) in statuses if s in ("settled", "failed"))
    found.terminal = len(ended)
    if found.terminal != trades or any(n > 1 for n in ended.values()):
        found.problems.append(f"{found.terminal} trades ended of {trades} fed")
    seqs: dict[str, list[int]] = defaultdict(list)
    for r in await read_committed(settings, "ledger-events", timeout_s=WAIT_S):
        value = orjson.loads(r.value)
        seqs[value["account"]].append(value["seq"])
    broken = [a for a, s in seqs.items() if s != list(range(1, len(s) + 1))]
    if broken:
        found.problems.append(f"{len(broken)} accounts' journals repeat or skip a seq")
    report = await asyncio.to_thread(replay.replay, settings)
    if not report.ok:
        found.problems.append("kessai replay differs:\n" + report.render())
    return found


def last_critical(worker: WorkerProcess) -> str:
    lines = [ln for ln in worker.log_path.read_text(errors="replace").splitlines()
             if "CRITICAL" in ln]  # fmt: skip
    return lines[-1] if lines else "(no CRITICAL line)"


async def zombie(workdir: Path, *, trades: int, fencing: bool = True) -> Audit:
    """The zombie scenario (module doc)."""
    pair = await funded_pair(workdir, fencing=fencing)
    try:
        held = pair.holder()
        assert isinstance(held, int)
        zombie_worker = pair.workers[held]
        assert zombie_worker is not None
        feeding = asyncio.ensure_future(feed(pair.settings, trades, prefix="z", fund=False))
        await asyncio.sleep(ZOMBIE_AFTER_S)  # mid-backlog: it holds a batch when stopped
        os.kill(zombie_worker.pid, signal.SIGSTOP)
        await pair.wait_for("the takeover", lambda: pair.holder() == 1 - held)
        os.kill(zombie_worker.pid, signal.SIGCONT)
        await pair.wait_for("the zombie's exit", lambda: not zombie_worker.alive)
        await feeding
        await caught_up(pair)
        pair.stop_all()
        found = await audit(pair.settings, trades)
        found.notes.append(f"the zombie exited {zombie_worker.proc.returncode}: "
                           f"{last_critical(zombie_worker)}")  # fmt: skip
        return found
    finally:
        pair.stop_all()
        localkafka.down(pair.settings)


async def kill_during_restore(workdir: Path, *, trades: int) -> Audit:
    """The kill-during-restore scenario (module doc): a worker started cold is SIGKILLed
    as soon as it starts reading the engine's changelogs, before it has them all."""
    pair = await funded_pair(workdir, workers=1)
    try:
        await feed(pair.settings, trades, prefix="r1", fund=False)
        await caught_up(pair)
        first = pair.workers[0]
        assert first is not None
        first.kill()
        found = Audit()
        reading = threading.Event()

        def watch(line: str) -> None:
            if READING in line:
                reading.set()

        cold = WorkerProcess(workdir / "cold.log", env=pair.env, on_line=watch)
        await pair.wait_for("the cold worker reading", reading.is_set)
        cold.kill()
        log = (workdir / "cold.log").read_text(errors="replace")
        if "engine: restored" in log:
            found.notes.append("the kill came after the restore")
        await feed(pair.settings, trades // 10, prefix="r2", fund=False)
        pair.start(0)
        pair.start(1)
        await pair.wait_for("an engine", lambda: pair.holder() is not None)
        await caught_up(pair)
        pair.stop_all()
        after = await audit(pair.settings, trades + trades // 10)
        after.notes.extend(found.notes)
        return after
    finally:
        pair.stop_all()
        localkafka.down(pair.settings)


def reset_offsets_to_earliest(settings: Settings, group: str) -> str:
    """``kafka-consumer-groups --reset-offsets --to-earliest --all-topics --execute``,
    the tool that ships with Kafka, run from the broker's jars; its output."""
    paths = Paths.of(settings)
    command = [
        *jvm.tool_java(jvm.require_java(), paths),
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "--bootstrap-server", settings.bootstrap, "--group", group,
        "--reset-offsets", "--to-earliest", "--all-topics", "--execute",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


async def offsets_reset(workdir: Path, *, trades: int) -> Audit:
    """The offsets-reset scenario (module doc)."""
    pair = await funded_pair(workdir, workers=1)
    try:
        await feed(pair.settings, trades, prefix="o1", fund=False)
        await caught_up(pair)
        pair.stop_all()
        said = await asyncio.to_thread(reset_offsets_to_earliest, pair.settings, ENGINE_GROUP)
        await feed(pair.settings, trades // 10, prefix="o2", fund=False)
        worker = pair.start(0)
        await pair.wait_for("the engine again", lambda: pair.holder() == 0)
        await caught_up(pair)
        pair.stop_all()
        found = await audit(pair.settings, trades + trades // 10)
        resumed = "the engine's log says" in worker.log_path.read_text(errors="replace")
        if not resumed:
            found.problems.append("the engine did not say it resumed from its log")
        found.notes.append(said.strip().splitlines()[-1] if said.strip() else "(no output)")
        return found
    finally:
        pair.stop_all()
        localkafka.down(pair.settings)
