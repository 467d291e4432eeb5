"""`make run`'s demo, end to end on the real broker: the README's first command works.

It runs ``kessai demo --once``: a real worker process, payments and custody records
published to the real topics, and every expected ledger-event and rejection read
back with read_committed (the demo exits non-zero if any is missing or wrong).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

DEMO_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_demo_settles_payments_and_rejects_bad_ones(bootstrap: str) -> None:
    env = {**os.environ, "KESSAI_BOOTSTRAP": bootstrap, "KESSAI_WEB_PORT": str(_free_port())}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    for expected in (
        "insufficient_funds",
        "duplicate",
        "unknown_token",
        "malformed",
        "demo OK",
    ):
        assert expected in out, out
    # alice: 5,000,000 JPYC deposited, 1,200,000 withdrawn.
    assert "-1200000          3800000" in out, out
