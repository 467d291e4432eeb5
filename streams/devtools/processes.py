"""Child processes: kessai's one way to start, watch and stop a worker (or any module).

- :class:`ChildProcess`: ``python -m MODULE ARGS`` in a session of its own (so that a
  SIGKILL takes its whole process group), its output appended to a log file;
  :meth:`~ChildProcess.stop` (SIGTERM, then SIGKILL), :meth:`~ChildProcess.kill`,
  and its resource usage when it is reaped.
- :class:`WorkerProcess`: ``kessai worker`` on a web port of its own, ready once
  ``GET /health`` says it joined and recovered (:meth:`WorkerProcess.ready`).
- :func:`free_port`: a loopback port nobody listens on.

The demo, the benchmarks and the tests all start their workers here.

A finished child is reaped with ``os.wait4``, which returns that one child's rusage:
CPU time (user + system), exactly, with no sampling and no dependency.

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
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal

import orjson

from streams.errors import KessaiError

__all__ = ["ChildFailed", "ChildProcess", "Usage", "WorkerProcess", "free_port"]

#: How long a child gets to stop cleanly after SIGTERM before SIGKILL.
STOP_GRACE_S: Final = 30.0
REAP_POLL_S: Final = 0.05
#: How long a worker may take to join, recover its tables and resume its streams.
READY_TIMEOUT_S: Final = 120.0
#: One ``GET /health`` while waiting for a worker.
HEALTH_TIMEOUT_S: Final = 2.0
#: Lines of a log quoted when a child fails.
LOG_TAIL_LINES: Final = 20


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


def free_port(*, pair: bool = False, run: int = 1) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now; with ``pair``, one
    whose successor is free too (a broker and its controller); with ``run``, the first
    of that many free consecutive ports (a local cluster's nodes)."""
    count = max(run, 2 if pair else 1)
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port + count > 65000:
            continue
        if all(_bindable(port + i) for i in range(1, count)):
            return port
    raise ChildFailed(f"no {count} consecutive free ports")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ChildFailed(KessaiError, RuntimeError):
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


class ChildProcess:
    """``python -m module args`` as a child in a session of its own, started at once.

    ``output``: where its stdout goes. ``"log"``: with stderr, appended to ``log_path``.
    ``"pipe"``: to this process (:meth:`wait_ready` reads a ``WORD {json}`` line from it;
    stderr goes to the log). ``"watch"``: with stderr through a thread that appends each
    line to the log and hands it to ``on_line`` as it is printed (to time milestones).
    ``env`` replaces the environment when given.
    """

    def __init__(
        self,
        module: str,
        args: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        output: Literal["log", "pipe", "watch"] = "log",
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        assert (output == "watch") == (on_line is not None), (output, on_line)
        self.name = module
        self.log_path = log_path
        #: What the child said when it was ready (see :meth:`wait_ready`).
        self.ready_info: dict[str, Any] = {}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log_path.open("ab")
        self._log_start = log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=self._log if output == "log" else subprocess.PIPE,
            stderr=subprocess.STDOUT if output == "watch" else self._log,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        self._reader: threading.Thread | None = None
        if on_line is not None:
            self._reader = threading.Thread(
                target=self._watch, args=(on_line,), name=f"{module}-log", daemon=True
            )
            self._reader.start()

    def _watch(self, on_line: Callable[[str], None]) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._log.write(raw)
            self._log.flush()  # followable while the child runs
            on_line(raw.decode("utf-8", "replace"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines the child wrote to its log (since it started)."""
        with self.log_path.open("rb") as f:
            f.seek(self._log_start)
            text = f.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

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
        if self.proc.stdout is not None and self._reader is None:
            rest = self.proc.stdout.read().decode().strip().splitlines()
        self._close()
        return Usage(
            exit_code=code,
            cpu_user_s=rusage.ru_utime,
            cpu_system_s=rusage.ru_stime,
            peak_rss_kib=peak_kib if peak_kib is not None else rusage.ru_maxrss,
            peak_rss_source="VmHWM" if peak_kib is not None else "ru_maxrss",
            last_line=rest[-1] if rest else "",
        )

    def stop(self, timeout_s: float = STOP_GRACE_S) -> int:
        """SIGTERM, then SIGKILL to its process group after ``timeout_s``; the exit code.
        Blocks: from a coroutine, ``await asyncio.to_thread(child.stop)``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                return self.proc.returncode
        self._close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the child's whole process group and reap it; no usage is kept."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


def _consuming(health: dict[str, Any]) -> bool:
    status = health.get("status")
    return status == "lagging" or (status == "ok" and int(health.get("partitions") or 0) > 0)


class WorkerProcess(ChildProcess):
    """``kessai worker`` (``python -m streams.cli worker``) with ``env`` over this
    process's environment, serving its web port ``port`` (default: a free one).

    ``cwd``: where it runs (faust's data directory goes there; a checkout there is the
    code that runs, ``python -m`` putting it first on ``sys.path``).
    """

    def __init__(
        self,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        cwd: Path | None = None,
        worker_args: Sequence[str] = ("-l", "info"),
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        full_env = {
            **os.environ,
            **(env or {}),
            "KESSAI_WEB_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
        }
        super().__init__(
            "streams.cli",
            ["worker", *worker_args],
            log_path,
            env=full_env,
            cwd=cwd,
            output="log" if on_line is None else "watch",
            on_line=on_line,
        )

    @property
    def url(self) -> str:
        """Its web address: ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict[str, Any] | None:
        """``GET /health``'s body (200 or 503 alike), or None while it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=HEALTH_TIMEOUT_S) as r:
                body: dict[str, Any] = orjson.loads(r.read())
                return body
        except urllib.error.HTTPError as err:
            answer: dict[str, Any] = orjson.loads(err.read())
            return answer
        except (OSError, ValueError):
            return None

    async def ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """Wait until ``GET /health`` says the worker joined its group, recovered its
        tables and consumes its partitions (``lagging`` behind a backlog, or ``ok`` with
        at least one partition); raise :class:`ChildFailed` with its log's tail if it
        exits or times out first.

        A worker that owns no partition (more workers than partitions) is never ready
        by this test. Workers of older revisions (the bench's ``--baseline``) answer
        ``ok`` with no partition before they first join: that is not ready either."""
        deadline = time.monotonic() + timeout_s
        while True:
            body = await asyncio.to_thread(self.health)
            if body is not None and _consuming(body):
                return body
            if self.proc.poll() is not None:
                raise ChildFailed(
                    f"the worker exited with {self.proc.returncode} before it was ready; "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                status = body.get("status") if body else "no answer"
                raise ChildFailed(
                    f"the worker was not ready after {timeout_s:.0f} s (/health: {status}); "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.2)
