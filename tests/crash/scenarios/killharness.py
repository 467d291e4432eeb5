"""The exactly-once kill scenario, shared by the pytest test and a command line.

It feeds ``{prefix}in`` with events, runs ``eos_worker.py`` as a subprocess, SIGKILLs it
mid-stream again and again, restarts it, lets the last run drain, then reads every
output with read_committed and lists each way the outputs break exactly-once.

    python -m tests.crash.scenarios.killharness --kills 6            # patched: no problems
    python -m tests.crash.scenarios.killharness --kills 6 --unpatched  # stock faust

Exits 1 when there are problems. The pytest test runs the patched variant.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.config import Settings
from streams.devtools.processes import ChildProcess, free_port
from streams.kafka import reader
from streams.kafka.admin import create_topics
from streams.kafka.reader import read_committed
from streams.topics import TopicSpec

#: The toy faust app the kill test runs (a module: it runs from the checkout's root).
WORKER = "tests.crash.scenarios.eos_worker"
ACCOUNTS = 37
#: Events fed per batch; a new batch goes in whenever the backlog runs low.
BATCH_EVENTS = 1500
#: Backlog below which another batch is fed, so every kill lands mid-stream.
BACKLOG_MIN = 600
PROGRESS_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 180.0
CRASH_RESTARTS_MAX = 5
#: How long the audit waits for a worker to run the engine (a late restart restores).
ENGINE_LEADER_WAIT_S = 90.0


@dataclass
class Outcome:
    #: Prefix of every topic the scenario made (inputs, outputs, faust's own).
    prefix: str
    events: int
    kills: int
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    #: Worker exits the harness restarted (see _Worker), with the reason logged.
    crashes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


class Tail:
    """Follows ``topic`` with read_committed in a task of its own and collects the ids
    ``pick`` finds (:class:`streams.kafka.reader.Tail` underneath).

    ``pick`` maps a record's JSON value to an id, or None to skip the record.
    """

    def __init__(
        self, settings: Settings, topic: str, pick: Callable[[dict[str, Any]], str | None]
    ) -> None:
        self.ids: set[str] = set()
        self.records = 0
        self._pick = pick
        self._tail = reader.Tail(settings, [topic])
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._tail.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                for r in await self._tail.batch(timeout_ms=200):
                    self.records += 1
                    picked = self._pick(orjson.loads(r.value))
                    if picked is not None:
                        self.ids.add(picked)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a dead tail would look like a stuck worker
            print(f"tail consumer died: {exc!r}", file=sys.stderr)
            raise

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._tail.stop()


async def run_scenario(
    bootstrap: str,
    *,
    kills: int = 6,
    patched: bool = True,
    partitions: int = 4,
    workdir: Path,
    seed: int = 7,
    log: object = print,
    extra_env: dict[str, str] | None = None,
) -> Outcome:
    say = log if callable(log) else print
    started = time.monotonic()
    rng = random.Random(seed)
    prefix = f"eos-{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{t}" for t in ("in", "by-account", "audit", "totals-out")]
    settings = Settings(bootstrap=bootstrap)
    await create_topics(settings, [TopicSpec(name=n, partitions=partitions) for n in names])
    env = {
        **os.environ,
        "EOS_PREFIX": prefix,
        "EOS_PATCHED": "1" if patched else "0",
        "EOS_PARTITIONS": str(partitions),
        "KESSAI_BOOTSTRAP": bootstrap,
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    feed = _Feed(producer, f"{prefix}in", rng)
    tail = Tail(settings, f"{prefix}totals-out", lambda v: str(v["id"]))
    await tail.start()
    workdir.mkdir(parents=True, exist_ok=True)
    outcome = Outcome(prefix=prefix, events=0, kills=0)
    try:
        await feed(BATCH_EVENTS * 2)
        for run_no in range(kills + 1):
            worker = _Worker(env, workdir, f"worker-{run_no}", outcome)
            try:
                if run_no == kills:
                    await _drain(worker, tail, feed)
                else:
                    await _kill_mid_stream(worker, run_no, tail, rng)
                    outcome.kills += 1
                    say(f"kill {outcome.kills}/{kills}: {len(tail.ids)}/{feed.fed} ids committed")
                    if feed.fed - len(tail.ids) < BACKLOG_MIN:
                        await feed(BATCH_EVENTS)
            except _Stuck as stuck:
                outcome.problems.append(str(stuck))
                break
            finally:
                await worker.kill()
    finally:
        await tail.stop()
        await producer.stop()

    outcome.events = feed.fed
    if not outcome.problems:
        await _check(settings, prefix, feed.fed, feed.expected, outcome)
    outcome.elapsed_s = time.monotonic() - started
    return outcome


class _Feed:
    """Writes events to the input topic: ``await feed(n)`` sends ``n`` more, each a
    random amount to a random account, and notes each account's expected total."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, rng: random.Random) -> None:
        self.producer, self.topic, self.rng = producer, topic, rng
        #: Events sent so far; their ids are ``e0000000`` up to ``fed - 1``.
        self.fed = 0
        self.expected: dict[str, int] = defaultdict(int)

    async def __call__(self, n: int) -> None:
        for _ in range(n):
            account = f"acct-{self.rng.randrange(ACCOUNTS):02d}"
            amount = self.rng.randrange(1, 1000)
            eid = f"e{self.fed:07d}"
            self.expected[account] += amount
            value = orjson.dumps({"id": eid, "account": account, "amount": amount})
            await self.producer.send(self.topic, value, key=eid.encode())
            self.fed += 1
        await self.producer.flush()


async def _kill_mid_stream(worker: _Worker, run_no: int, tail: Tail, rng: random.Random) -> None:
    """Wait until the worker commits something, let it run a random moment, SIGKILL it."""
    base = len(tail.ids)
    await worker.wait_for(
        lambda: len(tail.ids) > base,
        PROGRESS_TIMEOUT_S,
        lambda: f"progress after start {run_no}",
    )
    await asyncio.sleep(rng.uniform(0.3, 2.5))
    await worker.kill()


async def _drain(worker: _Worker, tail: Tail, feed: _Feed) -> None:
    """The last run: wait until every event fed is committed, then stop the worker."""
    await worker.wait_for(
        lambda: len(tail.ids) >= feed.fed,
        DRAIN_TIMEOUT_S,
        lambda: f"drain: {len(tail.ids)} of {feed.fed} ids",
    )
    # Give a duplicate the time of a few commits to show up.
    await asyncio.sleep(3.0)
    await worker.stop()


class _Stuck(Exception):
    pass


class WorkerCrashed(_Stuck):
    """A supervised worker crashed more often than ``CRASH_RESTARTS_MAX``, or stalled."""


class Supervised:
    """A worker process restarted when it exits on its own, as a supervisor would.

    ``python -m module args`` with ``env`` (a :class:`~streams.devtools.processes.ChildProcess`
    per start). :meth:`restart_if_crashed` restarts it if it exited without being told
    to, and records why; more than ``CRASH_RESTARTS_MAX`` crashes in all raises
    :class:`WorkerCrashed`. Logs go to ``workdir/{name}-{start}.log``.
    """

    def __init__(
        self,
        module: str,
        args: list[str],
        env: dict[str, str],
        workdir: Path,
        name: str,
        crashes: list[str],
    ) -> None:
        self.module, self.args, self.env = module, args, env
        self.workdir, self.name, self.crashes = workdir, name, crashes
        self.starts = 0
        self.child: ChildProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}-{self.starts}.log"

    @property
    def alive(self) -> bool:
        return self.child is not None and self.child.alive

    def start(self) -> None:
        assert not self.alive, self.name
        self.starts += 1
        self.child = ChildProcess(self.module, self.args, self.log_path, env=self.env)

    def restart_if_crashed(self) -> None:
        """Restart the worker if it exited without being told to (not after kill/stop)."""
        if self.child is None or self.child.alive:
            return
        reason = _last_critical(self.log_path)
        self.crashes.append(f"{self.log_path.name}: exit {self.child.proc.returncode}: {reason}")
        if len(self.crashes) > CRASH_RESTARTS_MAX:
            raise WorkerCrashed(f"workers crashed {len(self.crashes)} times; last: {reason}")
        self.start()

    def kill(self) -> None:
        if self.child is not None:
            self.child.kill()
        self.child = None

    async def stop(self) -> None:
        if self.child is not None:
            await asyncio.to_thread(self.child.stop, 60)
        self.child = None


def supervised_workers(env: dict[str, str], workdir: Path, crashes: list[str]) -> list[Supervised]:
    """The two ``kessai worker`` s of a crash test's group, not started yet, each with a
    web port of its own."""
    return [
        Supervised(
            "streams.cli",
            ["worker"],
            {**env, "KESSAI_WEB_PORT": str(free_port())},
            workdir,
            f"w{i}",
            crashes,
        )
        for i in range(2)
    ]


def exit_code(summary: str, crashes: list[str], problems: list[str]) -> int:
    """Print a scenario's outcome for a person; 1 if it found problems."""
    print(summary)
    for c in crashes:
        print("crash (restarted):", c)
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


class _Worker(Supervised):
    """The eos worker, started at once; ``wait_for`` restarts it when it crashes."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str, outcome: Outcome) -> None:
        args = ["worker", "--loglevel=info", "--without-web"]
        super().__init__(WORKER, args, env, workdir, name, outcome.crashes)
        self.start()

    async def wait_for(
        self, cond: Callable[[], bool], timeout_s: float, what: Callable[[], str]
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            self.restart_if_crashed()
            if time.monotonic() > deadline:
                raise _Stuck(
                    f"timed out after {timeout_s:.0f}s waiting for {what()}; log: {self.log_path}"
                )
            await asyncio.sleep(0.1)

    async def kill(self) -> None:  # type: ignore[override]
        await asyncio.to_thread(Supervised.kill, self)


def _last_critical(log: Path) -> str:
    lines = [
        ln
        for ln in log.read_text(errors="replace").splitlines()
        if "CRITICAL" in ln or "Error" in ln
    ]
    return lines[-1][-300:] if lines else "(no error in the log)"


async def _check(
    settings: Settings, prefix: str, fed: int, expected: dict[str, int], outcome: Outcome
) -> None:
    problems = outcome.problems
    all_ids = {f"e{i:07d}" for i in range(fed)}
    for name in ("by-account", "audit", "totals-out"):
        recs = await read_committed(settings, f"{prefix}{name}")
        ids = Counter(orjson.loads(r.value)["id"] for r in recs)
        outcome.counts[name] = len(recs)
        dups = sum(1 for c in ids.values() if c > 1)
        missing = len(all_ids - ids.keys())
        if dups:
            problems.append(f"{name}: {dups} ids committed more than once")
        if missing:
            problems.append(f"{name}: {missing} ids never committed")
    # Running totals: per account, in offset order, each total = previous + amount.
    recs = await read_committed(settings, f"{prefix}totals-out")
    running: dict[str, int] = defaultdict(int)
    broken = 0
    for r in recs:
        v = orjson.loads(r.value)
        running[v["account"]] += v["amount"]
        if v["total"] != running[v["account"]]:
            broken += 1
    if broken:
        problems.append(
            f"totals-out: {broken} running totals disagree with the amounts before them"
        )
    # The table, as its changelog holds it: the last value per account.
    changelog = await read_committed(settings, f"{prefix}app-totals-changelog")
    outcome.counts["changelog"] = len(changelog)
    table: dict[str, int] = {}
    for r in changelog:
        table[orjson.loads(r.key)] = orjson.loads(r.value)
    wrong = {a for a in expected if table.get(a) != expected[a]}
    if wrong:
        a = sorted(wrong)[0]
        problems.append(
            f"table totals: {len(wrong)} accounts wrong, e.g. {a}: {table.get(a)} != {expected[a]}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--unpatched", action="store_true", help="run on stock faust.App")
    parser.add_argument("--bootstrap", default=os.environ.get("KESSAI_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--workdir", type=Path, default=Path(".kessai/killtest"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    outcome = asyncio.run(
        run_scenario(
            args.bootstrap,
            kills=args.kills,
            patched=not args.unpatched,
            workdir=args.workdir,
            seed=args.seed,
        )
    )
    summary = (
        f"events={outcome.events} kills={outcome.kills} counts={outcome.counts} "
        f"crashes={len(outcome.crashes)} elapsed_s={outcome.elapsed_s:.1f}"
    )
    return exit_code(summary, outcome.crashes, outcome.problems)


async def reconcile(settings: Settings, workers: list[Supervised], outcome: Any, say: Any) -> None:
    """``kessai replay`` over everything committed, against the workers' live tables.

    Run it with the workers still up and the pipeline quiet (every input consumed):
    it compares what the logs derive with what the workers hold. The counts go into
    ``outcome.replay_checks`` and ``outcome.replay_compared``; a difference into
    ``outcome.problems``.
    """
    from streams.audit import replay
    from streams.runtime.web.guard import web_auth_headers

    # A worker restarted just before the pipeline went quiet may still be starting:
    # the live comparison needs the engine's holder serving.
    give_up = time.monotonic() + ENGINE_LEADER_WAIT_S
    while await asyncio.to_thread(holder_of, workers) is None:
        if time.monotonic() > give_up:
            outcome.problems.append(f"no worker runs the engine after {ENGINE_LEADER_WAIT_S} s")
            return
        await asyncio.sleep(0.5)
    urls = [f"http://127.0.0.1:{w.env['KESSAI_WEB_PORT']}" for w in workers]
    report = await asyncio.to_thread(replay.replay, settings, workers=urls)
    say(report.render().rstrip("\n"))
    outcome.replay_checks = len(report.checks)
    outcome.replay_compared = sum(c.compared for c in report.checks)
    if not report.ok:
        outcome.problems.append("kessai replay differs:\n" + report.render())
    headers = web_auth_headers(settings)  # the secure profile's workers want their token
    conservation = await asyncio.to_thread(_conservation_errors, urls, headers)
    say(f"conservation error, summed over {len(urls)} workers' /metrics: {conservation}")
    if not conservation:
        outcome.problems.append("/metrics: no kessai_conservation_error_units on any worker")
    off = {asset: e for asset, e in conservation.items() if abs(e) > 1e-9}
    if off:
        outcome.problems.append(f"/metrics: the conservation gauge is off zero: {off}")


def holder_of(workers: list[Supervised], loop: str = "engine") -> Supervised | None:
    """The worker whose ``/health`` says it runs ``loop`` (``engine`` or ``matcher``),
    if one does now."""
    for w in workers:
        url = f"http://127.0.0.1:{w.env['KESSAI_WEB_PORT']}/health"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if orjson.loads(response.read()).get(loop) == "leading":
                    return w
        except (OSError, ValueError):
            continue
    return None


def _conservation_errors(urls: list[str], headers: dict[str, str]) -> dict[str, float]:
    """``kessai_conservation_error_units`` per asset, summed over the workers (the
    gauge is per worker: a trade's two legs may sit on two workers)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    total: dict[str, float] = defaultdict(float)
    for url in urls:
        request = urllib.request.Request(f"{url}/metrics", headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            if family.name == "kessai_conservation_error_units":
                for s in family.samples:
                    total[s.labels["asset"]] += s.value
    return dict(total)


if __name__ == "__main__":
    raise SystemExit(main())
