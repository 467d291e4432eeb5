"""The worker under measurement: ``kessai worker`` whose log is watched as it is written,
so that its engine's restore is timed, and whose memory is read from ``/proc``."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from kessai_bench.memory.common import PROGRESS_EVERY_S, Log, MemoryBenchError
from streams.config import Settings
from streams.devtools.processes import WorkerProcess

#: A worker whose engine has not restored by then is given up on (restoring a
#: million accounts takes a while on a small machine).
RECOVERY_TIMEOUT_S: Final = 1_800.0
STOP_GRACE_S: Final = 30.0
LOG_TAIL_LINES: Final = 15

#: Lines of the worker's log that mark its progress (faust's, then the engine's:
#: streams/engine/service.py), by the name they are reported under.
MILESTONES: Final[Mapping[str, str]] = {
    "ready": "Worker ready",
    "takeover": "engine: this worker holds the inputs; taking over",
    "restored": "engine: restored ",
}
#: The engine's line once it has restored: "engine: restored 123 rows in 4.56 s (...)".
_RESTORED: Final = re.compile(r"engine: restored (\d+) rows in ([0-9.]+) s")


def milestone(line: str) -> str | None:
    """Which :data:`MILESTONES` entry a worker log line is, if any."""
    for name, mark in MILESTONES.items():
        if mark in line:
            return name
    return None


def restored(line: str) -> tuple[int, float] | None:
    """(rows, seconds) from the engine's "restored" line, if it is one."""
    found = _RESTORED.search(line)
    return None if found is None else (int(found[1]), float(found[2]))


def proc_status_kib(
    pid: int, fields: Sequence[str] = ("VmRSS", "VmHWM", "RssAnon")
) -> dict[str, int]:
    """Memory fields of ``/proc/<pid>/status`` in KiB (those present)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in fields:
                out[name] = int(rest.split()[0])
    return out


@dataclass
class Watch:
    """What the worker's log said so far, with monotonic times."""

    started: float
    seen: dict[str, float] = field(default_factory=dict)
    #: (rows, seconds) from the engine's "restored" line.
    restored: tuple[int, float] | None = None
    tail: list[str] = field(default_factory=list)


class Worker:
    """``kessai worker`` (:class:`~streams.devtools.processes.WorkerProcess`) whose log
    is watched for its milestones as they are printed, so that the restore is timed."""

    def __init__(
        self,
        settings: Settings,
        *,
        log_path: Path,
        cwd: Path,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        env = {
            "KESSAI_BOOTSTRAP": settings.bootstrap,
            "KESSAI_APP_ID": settings.app_id,
            "KESSAI_PARTITIONS": str(settings.partitions),
            "KESSAI_TOKENS": ",".join(f"{k}:{v}" for k, v in settings.tokens.items()),
            **(extra_env or {}),
        }
        cwd.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self.watch = Watch(started=time.monotonic())
        self._lock = threading.Lock()
        # faust's data directory ("<app id>-data") goes to cwd.
        self.process = WorkerProcess(
            log_path, env=env, port=settings.web_port, cwd=cwd, on_line=self._line
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def _line(self, line: str) -> None:
        now = time.monotonic()
        with self._lock:
            watch = self.watch
            watch.tail = [*watch.tail[-LOG_TAIL_LINES + 1 :], line.rstrip()]
            name = milestone(line)
            if name is not None:
                watch.seen.setdefault(name, now)
            figures = restored(line)
            if figures is not None and watch.restored is None:
                watch.restored = figures

    def since_start(self, name: str) -> float | None:
        with self._lock:
            at = self.watch.seen.get(name)
        return None if at is None else at - self.watch.started

    async def leading(self) -> bool:
        """Whether ``GET /health`` answers 200 with ``"engine": "leading"``; the first
        time it does is the milestone ``leading``."""
        body = await asyncio.to_thread(self.process.health)
        if body is None or body.get("status") != "ok" or body.get("engine") != "leading":
            return False
        with self._lock:
            self.watch.seen.setdefault("leading", time.monotonic())
        return True

    async def wait_ready(self, timeout_s: float, *, log: Log | None = None) -> bool:
        """Wait until the engine has restored (its log line) and leads (``/health``);
        False on timeout, raise if the worker died."""
        deadline = time.monotonic() + timeout_s
        last_said = time.monotonic()
        while self.since_start("restored") is None or not await self.leading():
            if not self.process.alive:
                raise MemoryBenchError(
                    f"the worker exited with {self.process.proc.returncode} before it was "
                    f"ready; log {self.log_path}:\n" + "\n".join(self.watch.tail)
                )
            if time.monotonic() > deadline:
                return False
            if log is not None and time.monotonic() - last_said > PROGRESS_EVERY_S:
                last_said = time.monotonic()
                rss = proc_status_kib(self.pid).get("VmRSS", 0)
                restoring = self.since_start("takeover") is not None
                log(
                    f"  worker: {time.monotonic() - self.watch.started:,.0f} s, "
                    f"RSS {rss / 1024:,.0f} MiB" + (", restoring" if restoring else "")
                )
            await asyncio.sleep(0.2)
        return True

    def memory_kib(self) -> dict[str, int]:
        return proc_status_kib(self.pid)

    async def stop(self, timeout_s: float = STOP_GRACE_S) -> int:
        """SIGTERM, then SIGKILL after *timeout_s*; the exit code."""
        return await asyncio.to_thread(self.process.stop, timeout_s)

    def kill(self) -> None:
        self.process.kill()
