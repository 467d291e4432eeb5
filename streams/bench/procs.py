"""Child processes with their own resource usage.

Every measured process (a variant, the load generator) runs as a child of the bench
runner. It is reaped with ``os.wait4``, which returns that one child's rusage: CPU
time (user + system), exactly, with no sampling and no dependency.

Peak RSS is *not* taken from that rusage: on Linux a child's ``ru_maxrss`` includes the
RSS of the parent it was forked from (exec records the old memory map's high-water
mark, and with vfork that map is the parent's), so a 40 MiB child of a 60 MiB runner
reports 60. It is read instead from the child's own ``VmHWM`` in
``/proc/<pid>/status`` (the high-water RSS of its current memory map), polled while
the runner waits for it to exit; ``ru_maxrss`` is only the fallback where there is
no /proc.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

#: How long a child gets to stop cleanly after SIGTERM before SIGKILL.
STOP_GRACE_S = 30.0
REAP_POLL_S = 0.05


def _vm_hwm_kib(pid: int) -> int | None:
    """The peak RSS of *pid*'s memory map so far (``VmHWM``), KiB; None if unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None  # a zombie has no memory map any more


class ChildFailed(RuntimeError):
    """A child process exited with an error or never said it was ready."""


@dataclass(frozen=True, kw_only=True)
class Usage:
    """One finished child: exit code, resource usage and its last stdout line."""

    exit_code: int
    cpu_user_s: float
    cpu_system_s: float
    #: The child's own high-water RSS in KiB (see the module's docstring).
    peak_rss_kib: int
    #: Where it came from: "VmHWM" (exact) or "ru_maxrss" (an upper bound).
    peak_rss_source: str
    last_line: str

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_system_s

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024


class Child:
    """A Python module run as a child process; stdout is a pipe, stderr goes to *log*."""

    def __init__(
        self,
        module: str,
        args: list[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        stdout_to_log: bool = False,
        cwd: Path | None = None,
    ) -> None:
        """Start ``python -m module args``; *env* replaces the environment when given.

        With *stdout_to_log* (a process that says nothing on stdout for the runner, such
        as a faust worker with its banner), stdout goes to *log* too.
        """
        self.name = module
        self.log_path = log
        #: What the child said when it was ready (see :meth:`wait_ready`).
        self.ready_info: dict[str, Any] = {}
        self._log: IO[bytes] = log.open("ab")
        self._log_start = log.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=self._log if stdout_to_log else subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )

    async def wait_log(self, text: str, *, timeout_s: float) -> None:
        """Wait until the child writes *text* to its log (after it was started)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.log_path.open("rb") as f:
                f.seek(self._log_start)
                if text.encode() in f.read():
                    return
            if self.proc.poll() is not None:
                raise ChildFailed(
                    f"{self.name} exited before logging {text!r}; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                raise ChildFailed(f"{self.name} did not log {text!r} in {timeout_s} s")
            await asyncio.sleep(REAP_POLL_S * 4)

    def cpu_s(self) -> float | None:
        """CPU seconds (user + system) the running child used so far; None if unreadable."""
        try:
            with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        # After the command name: state is field 3, utime 14 and stime 15 (man 5 proc).
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def wait_ready(self, word: str, *, timeout_s: float) -> dict[str, Any]:
        """Wait until the child prints a line ``WORD [JSON object]`` on stdout.

        The object (e.g. the CPU time the child spent starting up) is kept in
        :attr:`ready_info` and returned; a bare ``WORD`` gives ``{}``.
        """
        assert self.proc.stdout is not None
        stdout = self.proc.stdout

        async def read() -> dict[str, Any]:
            while True:
                raw = await asyncio.to_thread(stdout.readline)
                if not raw:  # end of file: the child is gone
                    raise ChildFailed(f"{self.name} exited before printing {word}")
                head, _, rest = raw.decode().strip().partition(" ")
                if head == word:
                    info: dict[str, Any] = orjson.loads(rest) if rest else {}
                    return info

        try:
            self.ready_info = await asyncio.wait_for(read(), timeout_s)
        except TimeoutError:
            raise ChildFailed(f"{self.name} did not print {word} in {timeout_s} s") from None
        return self.ready_info

    async def finish(self, *, terminate: bool, timeout_s: float = STOP_GRACE_S) -> Usage:
        """Wait for the child to exit (after SIGTERM if *terminate*); its usage.

        A child still running after *timeout_s* is killed (its usage is still read).
        """
        # Read before the signal too: a child that exits at once leaves no time to poll.
        peak_kib = _vm_hwm_kib(self.proc.pid)
        if terminate and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while True:
            # WNOHANG polling, not a blocking wait4 in a thread: a timed-out thread would
            # still be waiting, and could reap the child under us.
            pid, status, rusage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            peak_kib = _vm_hwm_kib(self.proc.pid) or peak_kib
            if time.monotonic() > deadline:
                self.proc.kill()
                deadline = float("inf")
            await asyncio.sleep(REAP_POLL_S)
        code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = code  # reaped here, not by Popen
        rest: list[str] = []
        if self.proc.stdout is not None:
            rest = self.proc.stdout.read().decode().strip().splitlines()
            self.proc.stdout.close()
        self._log.close()
        return Usage(
            exit_code=code,
            cpu_user_s=rusage.ru_utime,
            cpu_system_s=rusage.ru_stime,
            peak_rss_kib=peak_kib if peak_kib is not None else rusage.ru_maxrss,
            peak_rss_source="VmHWM" if peak_kib is not None else "ru_maxrss",
            last_line=rest[-1] if rest else "",
        )

    def kill(self) -> None:
        """Stop and reap the child at once (the run is failing); no usage is kept."""
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
