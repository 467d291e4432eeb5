"""The worker's faust app builds, with the tables and codecs the matcher expects."""

from __future__ import annotations

from typing import Any

from streams.config import Settings
from streams.runtime.app import create_app


def test_the_app_builds_with_its_tables_and_their_codecs() -> None:
    app = create_app(Settings(app_id="kessai-test-app"))

    tables: dict[str, Any] = {name: app.tables[name] for name in app.tables}
    # The matcher's: the settlement engine keeps its state itself (streams/engine/).
    assert set(tables) == {"orders", "order-rates"}
    # The venues' token buckets: raw JSON bytes per [venue, partition].
    assert tables["order-rates"].value_serializer == "raw"
    # Order rows as JSON bytes; their keys are JSON strings (`kessai book` reads them back).
    assert tables["orders"].value_serializer == "raw"
    assert tables["orders"].key_serializer == "json"
    assert app.parallel_commits is True
    assert app.conf.broker_commit_interval == 0.1


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
