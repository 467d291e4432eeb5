"""``make bench-fails``: a tiny run measures every workload under both rules, and each
ends with no trade open (the bench asserts it)."""

from __future__ import annotations

import pytest
from kessai_bench import fails


def test_a_tiny_run_prints_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert fails.main(["--trades", "20", "--rounds", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split(" median")[0].split() for row in rows] == [
        ["funded", "atomic,", "strict", "FIFO"],
        ["funded", "recycle,", "any", "fit,", "csdr"],
        ["fail,", "then", "settle", "atomic,", "strict", "FIFO"],
        ["fail,", "then", "settle", "recycle,", "any", "fit,", "csdr"],
        ["partial", "recycle,", "any", "fit,", "csdr"],
    ]
