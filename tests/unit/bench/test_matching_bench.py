"""``make bench-matching``: a tiny run measures every workload; each asserts its fills
and that no trade is left open."""

from __future__ import annotations

import pytest
from kessai_bench import matching


def test_a_tiny_run_prints_every_workload(capsys: pytest.CaptureFixture[str]) -> None:
    assert matching.main(["--trades", "20", "--rounds", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split(" median")[0].strip() for row in rows] == [
        "venue trade",
        "venue trade, USDC",
        "order pair",
        "order pair, USDC",
        "pair, 1,000 resting",
        "unfunded order",
    ]
