"""kessai_bench.intake: it runs and prints one line per variant (a figure, not a gate)."""

from __future__ import annotations

import pytest
from kessai_bench import intake


def test_a_small_run_prints_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert intake.main(["--trades", "50", "--rounds", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" median")[0].strip() for line in lines] == [
        "no dates",
        "dates, lag 0, master off",
        "dates, lag 1, master required",
    ]
