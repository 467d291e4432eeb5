"""The broker's JVM as a process: started detached, found again by its pid, stopped.

- :func:`start`: the broker in a session of its own, so that it outlives the command
  that started it; its pid in ``kafka.pid``;
- :func:`our_pid`, :func:`pid_alive`: whether that pid is still our broker;
- :func:`stop`: SIGTERM (controlled shutdown), then SIGKILL;
- :func:`locked`: one `up`/`down`/`reset` at a time per profile folder;
- :func:`wait_ready`: poll until the broker answers, failing at once if it died, with
  the tails of its logs (:func:`log_sizes`, :func:`log_tails`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from streams.devtools.localkafka import jvm, probes
from streams.devtools.localkafka.errors import BrokerError, tail_text
from streams.devtools.localkafka.layout import Paths, write_atomic
from streams.devtools.localkafka.limits import (
    KILL_WAIT_S,
    LOCK_WAIT_S_MAX,
    POLL_INTERVAL_S,
    PROBE_TIMEOUT_S,
)

__all__ = [
    "cmdline",
    "locked",
    "log_sizes",
    "log_tails",
    "our_pid",
    "pid_alive",
    "read_pid",
    "start",
    "stop",
    "wait_exit",
    "wait_ready",
]


def start(java: str, paths: Paths, heap: str) -> subprocess.Popen[bytes]:
    """Start the broker detached, its output appended to ``kafka.out``; write its pid."""
    paths.logs.mkdir(parents=True, exist_ok=True)
    with paths.stdout_file.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} kessai starts Kafka\n".encode())
        out.flush()
        # A session of its own: Ctrl-C in the terminal, or the end of a test run, must not
        # take the shared broker down. Only `down` stops it.
        proc = subprocess.Popen(
            jvm.broker_command(java, paths, heap),
            cwd=paths.root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    write_atomic(paths.pid_file, f"{proc.pid}\n")
    return proc


def wait_ready(
    bootstrap: str,
    deadline: float,
    timeout_s: float,
    *,
    alive: Callable[[], bool],
    logs: tuple[Paths, dict[Path, int]] | None = None,
    auth: Mapping[str, Any],
) -> None:
    """Poll until ``bootstrap`` answers metadata; fail at once if the process died.

    ``logs``: our broker's paths and the log sizes before it started, for the error.
    """
    while True:
        if not alive():
            assert logs is not None
            raise BrokerError(f"Kafka exited while starting.\n{log_tails(*logs)}")
        remaining_s = deadline - time.monotonic()
        if probes.answers_metadata(bootstrap, max(0.5, min(PROBE_TIMEOUT_S, remaining_s)), auth):
            return
        if time.monotonic() >= deadline:
            where = f"; it is left running, see {logs[0].log_file}" if logs else ""
            raise BrokerError(
                f"{bootstrap} did not answer metadata requests within {timeout_s:.0f} s{where}"
            )
        time.sleep(POLL_INTERVAL_S)


def log_sizes(paths: Paths) -> dict[Path, int]:
    """Where each log ends now (bytes): :func:`log_tails` quotes only what comes after."""
    sizes: dict[Path, int] = {}
    for path in (paths.stdout_file, paths.log_file):
        with contextlib.suppress(OSError):
            sizes[path] = path.stat().st_size
    return sizes


def log_tails(paths: Paths, since: dict[Path, int]) -> str:
    """The last lines each log gained after ``since`` (byte sizes; absent: from the start)."""
    parts = []
    for path in (paths.stdout_file, paths.log_file):
        with contextlib.suppress(OSError), path.open("rb") as handle:
            offset = since.get(path, 0)
            # A smaller file than before was rolled over: all of it is new.
            handle.seek(offset if offset <= path.stat().st_size else 0)
            text = handle.read().decode("utf-8", errors="replace")
            if text.strip():
                parts.append(f"--- last lines of {path}:\n{tail_text(text)}")
    return "\n".join(parts) or f"(no log output in {paths.logs})"


def read_pid(paths: Paths) -> int | None:
    """The pid in the pid file, alive or not; None without one."""
    try:
        text = paths.pid_file.read_text(encoding="ascii").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def our_pid(paths: Paths) -> int | None:
    """The pid in the pid file, if that process is alive and is our broker."""
    pid = read_pid(paths)
    if pid is None or not pid_alive(pid):
        return None
    line = cmdline(pid)
    # A recycled pid belongs to some other program: its command line gives it away.
    if line is not None and ("kafka.Kafka" not in line or str(paths.server_properties) not in line):
        return None
    return pid


def cmdline(pid: int) -> str | None:
    """The process's command line (Linux /proc); None where we cannot tell."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    # A broker that died while the process that started it still runs (a pytest session)
    # stays a zombie until reaped; reap it, so it does not pass for alive.
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rpartition(")")[2].split()[0] == "Z":
            return False
    return True


def stop(paths: Paths, timeout_s: float, *, crash: bool = False) -> bool:
    """Stop our broker, if it runs: SIGTERM, then SIGKILL after ``timeout_s``; with
    ``crash``, SIGKILL at once (no controlled shutdown: the crash tests' lost broker).

    Returns whether it ran. The pid file goes either way.
    """
    pid = our_pid(paths)
    if pid is None:
        paths.pid_file.unlink(missing_ok=True)
        return False
    if not crash:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if crash or not wait_exit(pid, timeout_s):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not wait_exit(pid, KILL_WAIT_S):
            raise BrokerError(f"Kafka (pid {pid}) survived SIGKILL for {KILL_WAIT_S:.0f} s")
    paths.pid_file.unlink(missing_ok=True)
    return True


def wait_exit(pid: int, timeout_s: float) -> bool:
    """Whether ``pid`` exited within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True


@contextlib.contextmanager
def locked(paths: Paths) -> Iterator[None]:
    """One `up`/`down`/`reset` at a time per state dir (parallel test workers, two shells)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    # Python opens files non-inheritable, so the broker never holds this lock.
    with paths.lock_file.open("a") as handle:
        deadline = time.monotonic() + LOCK_WAIT_S_MAX
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BrokerError(
                        f"another kessai process holds {paths.lock_file} "
                        f"for over {LOCK_WAIT_S_MAX:.0f} s"
                    ) from None
                time.sleep(POLL_INTERVAL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
