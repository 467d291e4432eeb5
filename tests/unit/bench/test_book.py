"""The order-book benchmark's harness works (a tiny run; no speed is asserted)."""

from __future__ import annotations

from pathlib import Path

import orjson
from kessai_bench import book


def test_a_tiny_run_writes_both_paths_per_depth_with_the_same_fills(tmp_path: Path) -> None:
    assert (
        book.main(
            ["--depths", "10,300", "--orders", "2000", "--repeat", "1", "--out", str(tmp_path)]
        )
        == 0
    )
    doc = orjson.loads((tmp_path / "book.json").read_bytes())
    results = doc["results"]
    assert [(r["depth"], r["path"]) for r in results] == [
        (10, "book"),
        (10, "matcher"),
        (300, "book"),
        (300, "matcher"),
    ]
    for r in results:
        assert r["operations"] == 2000 and r["operations_per_s"] > 0
        assert sum(r["mix"].values()) == 2000 and all(r["mix"].values())
        assert r["fills"] > 0
        # The book stays near its depth: the flow adds below it and cancels above.
        assert r["depth"] * 0.5 <= r["final_depth"] <= r["depth"] * 1.2
    # Both paths replay one flow: the same fills (run() asserts it against generation).
    assert results[0]["fills"] == results[1]["fills"]
    md = (tmp_path / "book.md").read_text()
    assert "| 300 | 15 | matcher |" in md and doc["machine"]["cores"]


def test_the_flow_is_deterministic() -> None:
    a, b = book.generate(50, 500), book.generate(50, 500)
    assert a.ops == b.ops and a.fills == b.fills and a.mix == b.mix
