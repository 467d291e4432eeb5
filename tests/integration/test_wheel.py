"""kessai installed from its wheel, away from the checkout: ``kessai --version``,
``kessai kafka up`` and ``kessai worker`` work, state goes to ``KESSAI_STATE_DIR``
and nothing is written inside the installed package; the wheel carries the product's
data files and none of the benchmarks or tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from streams import __version__
from streams.devtools.processes import WorkerProcess, free_port
from tests.support.paths import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _build(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
        timeout=300,
    )
    [wheel] = out.glob("kessai-*.whl")
    return wheel


def test_the_wheel_holds_the_product_and_its_data_only(tmp_path: Path) -> None:
    names = set(zipfile.ZipFile(_build(tmp_path)).namelist())
    for wanted in (
        "streams/devtools/localkafka/pom.xml",
        "streams/runtime/web/static/dashboard.html",
        "schemas/json/trades.json",
        "streams/py.typed",
        "schemas/py.typed",
    ):
        assert wanted in names, wanted
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)[:5]
    assert not [n for n in names if n.startswith(("kessai_bench", "tests/", "bench/"))]


def test_an_installed_kessai_runs_a_broker_and_a_worker_from_anywhere(
    bootstrap: str, tmp_path: Path
) -> None:
    # `bootstrap`: the shared broker ran, so Maven's cache (~/.m2) holds the jars.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(_build(tmp_path / "dist"))],
        check=True,
        timeout=300,
    )  # fmt: skip
    # The installed copy first, then the dependencies of this venv (no .pth files are
    # read from PYTHONPATH, so the checkout's editable install stays out).
    deps = sysconfig.get_paths()["purelib"]
    work = tmp_path / "elsewhere"
    work.mkdir()
    port = free_port(pair=True)
    env = {
        **os.environ,
        "PYTHONPATH": f"{target}{os.pathsep}{deps}",
        "KESSAI_STATE_DIR": str(tmp_path / "state"),
        "KESSAI_BOOTSTRAP": f"127.0.0.1:{port}",
    }
    before = {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()}

    def kessai(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert kessai("--version").strip() == f"kessai {__version__}"
    located = subprocess.run(
        [sys.executable, "-c", "import streams; print(streams.__file__)"],
        env=env, cwd=work, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert located.startswith(str(target)), located
    kessai("kafka", "up")
    try:
        worker = WorkerProcess(tmp_path / "worker.log", env=env, cwd=work)
        try:
            asyncio.run(worker.ready())
        finally:
            assert worker.stop() == 0, worker.log_tail()
        assert "running" in kessai("kafka", "status")
    finally:
        kessai("kafka", "down")
    assert (tmp_path / "state" / "kafka").is_dir()
    after = {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()}
    written = sorted(
        str(p) for p in after if before.get(p) != after[p] and "__pycache__" not in str(p)
    )
    assert not written, f"written inside the installed package: {written}"
