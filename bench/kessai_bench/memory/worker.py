"""The worker under measurement: ``kessai worker`` whose log is watched as it is written,
so that its recovery is timed, and whose memory is read from ``/proc``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from kessai_bench.memory.common import PROGRESS_EVERY_S, Log, MemoryBenchError
from streams.config import Settings
from streams.devtools.processes import WorkerProcess

#: A worker that has not said "Worker ready" by then is given up on (recovering a
#: million accounts takes minutes on a small machine).
RECOVERY_TIMEOUT_S: Final = 1_800.0
STOP_GRACE_S: Final = 30.0
LOG_TAIL_LINES: Final = 15

#: Lines of the worker's log that mark its progress (faust's recovery, then
#: streams/runtime/eos.py's KessaiRecovery), by the name they are reported under.
MILESTONES: Final[Mapping[str, str]] = {
    "recovery_started": "Restoring state from changelog topics",
    "recovery_read": "Done reading from changelog topics",
    "recovery_complete": "Recovery complete",
    "ready": "Worker ready",
}
#: faust's progress line while it reads changelogs: "... (total remaining=1234):".
_REMAINING_MARK: Final = "total remaining="
#: faust's lines when a rebalance interrupts recovery (it then starts over).
_RESTART_MARKS: Final = ("Recovery rebalancing again", "Restarting Recovery")


def milestone(line: str) -> str | None:
    """Which :data:`MILESTONES` entry a worker log line is, if any."""
    for name, mark in MILESTONES.items():
        if mark in line:
            return name
    return None


def remaining(line: str) -> int | None:
    """faust's "records still to read" from a recovery progress line, if it is one."""
    _, found, rest = line.partition(_REMAINING_MARK)
    if not found:
        return None
    digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
    return int(digits) if digits else None


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
    restarts: int = 0
    #: (time, records remaining) from faust's last recovery progress line.
    remaining: tuple[float, int] | None = None
    tail: list[str] = field(default_factory=list)


class Worker:
    """``kessai worker`` (:class:`~streams.devtools.processes.WorkerProcess`) whose log
    is watched for its milestones as they are printed, so that recovery is timed."""

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
            if any(mark in line for mark in _RESTART_MARKS):
                watch.restarts += 1
            left = remaining(line)
            if left is not None:
                watch.remaining = (now, left)

    def since_start(self, name: str) -> float | None:
        with self._lock:
            at = self.watch.seen.get(name)
        return None if at is None else at - self.watch.started

    async def wait_ready(self, timeout_s: float, *, log: Log | None = None) -> bool:
        """Wait for ``Worker ready`` and the web port; False on timeout, raise if it died."""
        deadline = time.monotonic() + timeout_s
        last_said = time.monotonic()
        while self.since_start("ready") is None or self.process.health() is None:
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
                left = self.watch.remaining
                log(
                    f"  worker: {time.monotonic() - self.watch.started:,.0f} s, "
                    f"RSS {rss / 1024:,.0f} MiB"
                    + (f", {left[1]:,} changelog records to go" if left else "")
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
