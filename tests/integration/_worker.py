"""A real worker on a broker of its own, for tests that read what one worker did."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from streams import localkafka
from streams.config import Settings
from tests.integration.test_settlement_flow import _free_port, _start_worker


@dataclass(frozen=True)
class PrivateWorker:
    settings: Settings
    #: The worker's web address, ``http://127.0.0.1:PORT``.
    web: str


@contextmanager
def private_worker(workdir: Path) -> Iterator[PrivateWorker]:
    """A fresh broker under ``workdir`` and one ``kessai worker`` on it (log:
    ``workdir/worker.log``); both stopped on exit. The worker may still be starting."""
    settings = localkafka.up_private(workdir, log=lambda line: None)
    port = _free_port()
    env = {
        **os.environ,
        "KESSAI_BOOTSTRAP": settings.bootstrap,
        "KESSAI_WEB_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }
    try:
        with (workdir / "worker.log").open("wb") as log:
            worker = _start_worker(env, log)
            try:
                yield PrivateWorker(settings, f"http://127.0.0.1:{port}")
            finally:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
    finally:
        localkafka.down(settings)
