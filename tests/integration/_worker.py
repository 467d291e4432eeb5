"""A real worker on a broker of its own, for tests that read what one worker did."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Mapping
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
    try:
        with running_worker(workdir, {"KESSAI_BOOTSTRAP": settings.bootstrap}) as web:
            yield PrivateWorker(settings, web)
    finally:
        localkafka.down(settings)


@contextmanager
def running_worker(workdir: Path, env: Mapping[str, str]) -> Iterator[str]:
    """One ``kessai worker`` with ``env`` over this process's environment (log:
    ``workdir/worker.log``), stopped on exit; yields its web address. The worker may
    still be starting."""
    port = _free_port()
    full_env = {**os.environ, **env, "KESSAI_WEB_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    with (workdir / "worker.log").open("wb") as log:
        worker = _start_worker(full_env, log)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
