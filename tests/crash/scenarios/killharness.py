"""What the crash scenarios share: supervised worker processes, a read_committed
follower, the final reconciliation and how an outcome is printed.

Used by :mod:`tests.crash.scenarios.settlement_crash` and
:mod:`tests.crash.scenarios.matching_crash`.
"""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from streams.config import Settings
from streams.devtools.processes import ChildProcess, free_port
from streams.kafka import reader

#: Worker exits restarted in one scenario before it gives up (:class:`WorkerCrashed`).
CRASH_RESTARTS_MAX = 5
#: How long the audit waits for a worker to run the engine (a late restart restores).
ENGINE_LEADER_WAIT_S = 90.0


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
        #: The newest timestamp (ms) of a record ``pick`` found an id in (0: none yet).
        self.latest_ms = 0
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
                        self.latest_ms = max(self.latest_ms, r.timestamp)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a dead tail would look like a stuck worker
            print(f"tail consumer died: {exc!r}", file=sys.stderr)
            raise

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._tail.stop()


class WorkerCrashed(Exception):
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


def _last_critical(log: Path) -> str:
    lines = [
        ln
        for ln in log.read_text(errors="replace").splitlines()
        if "CRITICAL" in ln or "Error" in ln
    ]
    return lines[-1][-300:] if lines else "(no error in the log)"


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
