"""Fail-stop: a batch loop that ends, whatever the cause, ends the worker's process.

The engine and the matcher run as faust tasks under
:func:`streams.runtime.batches.run_or_stop`. A loop that raises must not leave the
worker up without it (nothing would read the inputs, /health would still answer), and
a loop that returns has lost its inputs to another worker: either way the process
exits 70, so that its supervisor restarts it and the restart restores what was
committed (docs/adr/0028-fail-stop-by-process-exit.md). Here a real worker process
(tests/support/stopping_worker.py) joins the real broker, reports ready, and is then
told to end its loop.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.devtools.processes import ChildProcess
from streams.runtime.batches import FAIL_STOP_EXIT

pytestmark = pytest.mark.integration

#: Seconds for the worker to join its group and report ready.
READY_TIMEOUT_S = 90
#: Seconds for it to exit once its loop ended.
EXIT_TIMEOUT_S = 30


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("raise", "it raised RuntimeError('a bug in the loop')"),
        ("return", "its inputs were given to another worker"),
    ],
)
async def test_a_loop_that_ends_stops_the_worker_with_exit_70(
    bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
    how: str,
    reason: str,
) -> None:
    trigger = tmp_path / "end-the-loop"
    env = {
        **os.environ,
        "KESSAI_BOOTSTRAP": bootstrap,
        "STOP_APP_ID": unique_name("failstop"),
        "STOP_HOW": how,
        "STOP_TRIGGER": str(trigger),
    }
    args = ["--datadir", str(tmp_path / "data"), "worker", "--loglevel=info"]
    worker = ChildProcess("tests.support.stopping_worker", args, tmp_path / "w.log", env=env)
    try:
        await worker.wait_log("Worker ready", timeout_s=READY_TIMEOUT_S)
        trigger.touch()
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while worker.alive and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        alive = worker.alive
        worker.kill()  # a no-op when it exited
    log = worker.log_tail()
    assert not alive and worker.proc.returncode == FAIL_STOP_EXIT, log
    said = "stopping the worker without committing anything more (fail-stop, exit 70)"
    assert f"stopping-loop: {said}: {reason}" in log, log
