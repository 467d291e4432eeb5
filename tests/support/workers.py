"""Real workers for the tests: ``kessai worker`` processes, on the shared broker or on a
broker of their own (:class:`streams.devtools.processes.WorkerProcess` underneath)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.processes import WorkerProcess


@dataclass(frozen=True)
class PrivateWorker:
    settings: Settings
    worker: WorkerProcess

    @property
    def web(self) -> str:
        """The worker's web address, ``http://127.0.0.1:PORT``."""
        return self.worker.url


@contextmanager
def running_worker(log_path: Path, env: Mapping[str, str]) -> Iterator[WorkerProcess]:
    """One ``kessai worker`` with ``env`` over this process's environment, its output in
    ``log_path``, stopped on exit. It may still be starting: ``await worker.ready()``."""
    worker = WorkerProcess(log_path, env=env)
    try:
        yield worker
    finally:
        worker.stop()


@contextmanager
def private_worker(workdir: Path) -> Iterator[PrivateWorker]:
    """A fresh broker under ``workdir`` and one ``kessai worker`` on it (log:
    ``workdir/worker.log``); both stopped on exit. The worker may still be starting."""
    settings = localkafka.up_private(workdir, log=lambda line: None)
    try:
        env = {"KESSAI_BOOTSTRAP": settings.bootstrap}
        with running_worker(workdir / "worker.log", env) as worker:
            yield PrivateWorker(settings, worker)
    finally:
        localkafka.down(settings)
