"""`make run`'s demo, end to end on the real broker: the README's first command works.

It runs ``kessai demo --once``: a real worker process (with the demo's short
settlement deadline), deposits on ``payments`` and ``custody``, a venue's trades on
``trades``, late deposits, and every expected settlement status, rejection and
balance read back with read_committed. The demo exits non-zero if any is missing or
wrong; on top of that, this test reads the summary it prints.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

#: Worker start (~12 s on a busy machine), the 30 s deadline, commits: about a minute.
DEMO_TIMEOUT_S = 420


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _line(out: str, pattern: str) -> None:
    assert re.search(pattern, out, re.MULTILINE), f"no line matching {pattern!r} in:\n{out}"


def test_demo_settles_pends_fails_and_rejects(bootstrap: str) -> None:
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
    assert "DEMO FAILED" not in out, out
    _line(out, r"KESSAI_SETTLEMENT_DEADLINE_S=30\b")
    run = re.search(r"^run ([0-9a-f]{6}):", out, re.MULTILINE)
    assert run is not None, out
    r = run[1]

    # The summary: what arrived, counted.
    _line(out, r"^  trades +10 published by the venue: 5 accepted, 5 rejected$")
    _line(out, r"^  settled +4 \(2 of them pending first\)$")
    _line(out, r"^  pending +0$")
    _line(out, r"^  failed +1 \(insufficient_securities 1\)$")
    _line(
        out,
        r"^  rejected +9 records \(duplicate 2, insufficient_funds 1, invalid_isin 1, "
        r"malformed 2, same_account 1, unknown_token 2\)$",
    )

    # Each trade's path, and each bad record's reason.
    _line(out, rf"^  t1-{r} .* 995120 JPYC  settled$")
    _line(out, rf"^  t2-{r} .* 1990\.224371 USDC  settled$")
    _line(out, rf"^  t3-{r} .*  pending \(insufficient_cash\) -> settled$")
    _line(out, rf"^  t4-{r} .*  pending \(insufficient_securities\) -> settled$")
    _line(
        out,
        rf"^  t5-{r} .*  pending \(insufficient_securities\) "
        r"-> failed \(insufficient_securities\)$",
    )
    for marker, topic, reason in (
        ("p6", "payments", "insufficient_funds"),
        ("p3", "payments", "duplicate"),
        ("p7", "payments", "unknown_token"),
        ("p8", "payments", "malformed"),
        ("t6", "trades", "invalid_isin"),
        ("t7", "trades", "same_account"),
        ("t8", "trades", "unknown_token"),
        ("t1", "trades", "duplicate"),
        ("t9", "trades", "malformed"),
    ):
        _line(out, rf"^  {marker}-{r} +{topic} +{reason} ")

    # Positions replayed from the journal: alice paid 995,120 (t1) and 199,600 (t4)
    # out of 5,000,000 less 1,200,000 withdrawn, and holds both bonds.
    _line(out, rf"^  alice-{r} +JPYC +2605280 +0$")
    _line(out, rf"^  alice-{r} +USDC +509\.900629 +0\.000000$")
    _line(out, rf"^  alice-{r} +JP1201791Q29 +500000 +0$")
    _line(out, rf"^  bob-{r} +JP1103551Q43 +8500000 +0$")
    _line(out, rf"^  carol-{r} +JPYC +2500 +0$")
    _line(out, rf"^  dave-{r} +JP1201791Q29 +0 +0$")
    # erin never received anything: no position of hers.
    assert not re.search(rf"^  erin-{r} ", out, re.MULTILINE), out

    assert "Where to look:" in out, out
    assert "demo OK" in out, out
