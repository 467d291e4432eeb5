"""streams.devtools.processes without a broker: readiness, stop, kill, ports."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from streams.devtools import processes
from streams.devtools.processes import ChildProcess, free_port

SLEEP = ["-n", "1", "-r", "1", "-s", "import time", "time.sleep(60)"]


@pytest.mark.parametrize(
    ("health", "ready"),
    [
        ({"status": "starting"}, False),
        ({"status": "recovering"}, False),
        ({"status": "ok", "lag_records_max": 0, "partitions": 0}, False),  # not joined yet
        ({"status": "ok", "lag_records_max": 0, "partitions": 2}, True),
        ({"status": "lagging", "lag_max": 10, "behind": {"trades[0]": 50}}, True),
    ],
)
def test_a_worker_is_ready_once_it_consumes_partitions(
    health: dict[str, object], ready: bool
) -> None:
    assert processes._consuming(health) is ready


def test_stop_terminates_and_kill_takes_the_whole_group(tmp_path: Path) -> None:
    child = ChildProcess("timeit", SLEEP, tmp_path / "a.log")
    assert child.alive
    started = time.monotonic()
    code = child.stop(timeout_s=10)
    assert code != 0 and not child.alive and time.monotonic() - started < 10
    other = ChildProcess("timeit", SLEEP, tmp_path / "b.log")
    other.kill()
    assert other.proc.returncode == -9 and not other.alive


def test_the_log_tail_says_what_the_child_printed(tmp_path: Path) -> None:
    child = ChildProcess(
        "timeit", ["-n", "1", "-r", "1", "print('hello from the child')"], tmp_path / "c.log"
    )
    assert child.proc.wait(30) == 0
    assert "hello from the child" in child.log_tail()
    child.stop()


def test_a_free_pair_of_ports_is_free_twice() -> None:
    port = free_port(pair=True)
    for p in (port, port + 1):
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))  # raises if taken
