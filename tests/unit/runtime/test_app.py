"""The worker's faust app builds, with the tables and codecs the matcher expects."""

from __future__ import annotations

from typing import Any

from streams.config import Settings
from streams.runtime.app import create_app


def test_the_app_builds_with_no_faust_table_and_its_two_loops_as_tasks() -> None:
    """The engine and the matcher keep their state themselves (streams/engine/,
    streams/matching/service.py) and commit their own transactions: faust holds no
    table and runs no agent, so it needs no exactly-once of its own."""
    app = create_app(Settings(app_id="kessai-test-app"))
    assert list(app.tables) == []
    assert list(app.agents) == []
    names = {getattr(t, "__name__", "") for t in app._app_tasks}
    assert {"engine", "matcher"} <= names, names
    guarantee: Any = app.conf.processing_guarantee  # typed as the enum class
    assert guarantee.value == "at_least_once"


def test_the_guarantee_and_tuning_settings_reach_faust() -> None:
    settings = Settings(
        app_id="kessai-test-app-alo",
        processing_guarantee="at_least_once",
        producer_linger_ms=5,
        parallel_commits=False,
        commit_interval_s=1.0,
    )
    app = create_app(settings)

    guarantee: Any = app.conf.processing_guarantee  # typed as the enum class
    assert guarantee.value == "at_least_once"
    assert app.conf.producer_linger == 0.005
    assert app.parallel_commits is False
    assert app.conf.broker_commit_interval == 1.0
