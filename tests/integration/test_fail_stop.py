"""H4: an exception escaping an agent stops the worker without committing the record.

faust's default supervisor restarts a crashed agent inside the worker, and the record
it raised on is acked as processed: its half-made outputs commit and the rest of its
processing is lost. KessaiApp ends the process instead (exit 70), so nothing of the
record commits and a restart resumes before it. ``RAISE_STOCK=1`` runs the same worker
with faust's own handling: the test then fails (the worker goes on, ``half:boom`` and
``ok-2`` commit).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams.config import Settings
from streams.devtools.processes import ChildProcess
from streams.kafka.admin import create_topics
from streams.kafka.reader import read_committed
from streams.runtime.eos import FAIL_STOP_EXIT
from streams.topics import TopicSpec

pytestmark = pytest.mark.integration

#: Seconds for the worker to start, reach ``boom`` and stop.
EXIT_TIMEOUT_S = 90


async def test_an_exception_in_an_agent_stops_the_worker_and_commits_nothing_of_the_record(
    bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    prefix = unique_name("failstop")
    settings = Settings(bootstrap=bootstrap)
    await create_topics(
        settings, [TopicSpec(name=f"{prefix}{t}", partitions=1) for t in ("in", "out")]
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in (b"ok-1", b"boom", b"ok-2"):
            await producer.send_and_wait(f"{prefix}in", value)
    finally:
        await producer.stop()
    env = {**os.environ, "KESSAI_BOOTSTRAP": bootstrap, "RAISE_PREFIX": prefix}
    worker = ChildProcess("tests.support.raising_worker", ["worker"], tmp_path / "w.log", env=env)
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    while worker.alive and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    outputs = [r.value for r in await read_committed(settings, f"{prefix}out")]
    if worker.alive:
        worker.kill()
    assert worker.proc.returncode == FAIL_STOP_EXIT, (outputs, worker.log_tail())
    assert "fail-stop" in worker.log_tail()
    # ok-1 committed (or not yet: the worker may stop before its commit), nothing of
    # boom and nothing after it.
    assert outputs in ([], [b"half:ok-1", b"ok-1"]), outputs
