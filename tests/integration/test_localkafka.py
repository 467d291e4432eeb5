"""streams.devtools.localkafka against the real, shared broker.

These tests start the broker if none runs and never stop it: other tests share it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.config import Settings
from streams.devtools import localkafka

pytestmark = pytest.mark.integration

#: The idempotent path is a pid check and one local metadata round trip.
UP_WARM_S_MAX = 2.0


@pytest.fixture
def running() -> localkafka.Status:
    settings = Settings.from_env()
    current = localkafka.up(settings, log=lambda line: None)
    if not current.managed:
        # Only off CI, where KESSAI_BOOTSTRAP may name someone else's cluster: CI runs
        # the broker kessai starts, so a skip there would hide a broken `up`.
        if os.environ.get("CI"):
            pytest.fail(f"CI must manage its own broker: {current.message}")
        pytest.skip(f"the broker is not kessai's to manage: {current.message}")
    assert current.running and current.pid is not None, current
    return current


def test_up_again_is_fast_and_keeps_the_pid(running: localkafka.Status) -> None:
    started_s = time.monotonic()
    again = localkafka.up(Settings.from_env(), log=lambda line: None)
    took_s = time.monotonic() - started_s

    assert again.pid == running.pid
    assert again.running and again.managed
    assert took_s < UP_WARM_S_MAX, f"idempotent up took {took_s:.2f} s"


def test_status_reports_the_running_broker(running: localkafka.Status) -> None:
    current = localkafka.status(Settings.from_env())

    assert current.running and current.managed
    assert current.pid == running.pid
    assert str(current.pid) in current.message
    assert current.log_file.is_file()
    assert (current.data_dir / "meta.properties").is_file()
    cmdline = Path(f"/proc/{current.pid}/cmdline")
    if cmdline.exists():
        assert b"kafka.Kafka" in cmdline.read_bytes()


async def test_metadata_answers_with_one_broker(running: localkafka.Status) -> None:
    # up() from inside a running event loop (as in async tests) must work too.
    assert localkafka.up(Settings.from_env(), log=lambda line: None).pid == running.pid
    admin = AIOKafkaAdminClient(bootstrap_servers=running.bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()

    port = int(running.bootstrap.rpartition(":")[2])
    assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [("127.0.0.1", port)]
    assert cluster["controller_id"] == 1
