"""The worker's faust app builds: no table, no agent, the engine and the matcher as tasks."""

from __future__ import annotations

from typing import Any

from streams.config import Settings
from streams.runtime.app import create_app


def test_the_app_builds_with_no_faust_table_and_the_engine_as_a_task() -> None:
    """The engine (which matches orders too, streams/engine/orders.py) keeps its state
    itself and commits its own transactions: faust holds no table and runs no agent,
    so it needs no exactly-once of its own."""
    app = create_app(Settings(app_id="kessai-test-app"))
    assert list(app.tables) == []
    assert list(app.agents) == []
    names = {getattr(t, "__name__", "") for t in app._app_tasks}
    assert "engine" in names and "matcher" not in names, names
    guarantee: Any = app.conf.processing_guarantee  # typed as the enum class
    assert guarantee.value == "at_least_once"
