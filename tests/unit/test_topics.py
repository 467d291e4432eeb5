"""streams.topics' catalogue without a broker: names, keys, partitions, retention."""

from __future__ import annotations

import pytest

from schemas import TOPIC_MODELS, codec
from streams.topics import (
    BROKER_TIME,
    CATALOGUE,
    ENGINE_ORDERS,
    INPUT_TOPICS,
    KEEP_FOREVER,
    by_name,
    engine_topic,
)


def test_the_catalogue_is_exactly_the_schema_topics() -> None:
    assert [t.name for t in CATALOGUE] == [
        "payments",
        "custody",
        "trades",
        "orders",
        "instruments",
        "reserves",
        "cancellations",
        "fx-rates",
        "clock",
        "settlements",
        "rejections",
        "ledger-events",
        "order-events",
        "penalties",
    ]
    assert {t.name for t in CATALOGUE} == set(TOPIC_MODELS)


def test_key_fields_agree_with_the_codec() -> None:
    # schemas.key_for is what producers use; the catalogue must not tell another story.
    assert {t.name: t.key_field for t in CATALOGUE} == codec._KEY_FIELDS


def test_only_the_outside_world_topics_are_inputs() -> None:
    assert INPUT_TOPICS == (
        "payments",
        "custody",
        "trades",
        "orders",
        "instruments",
        "reserves",
        "cancellations",
        "fx-rates",
        "clock",
    )


def test_every_topic_shares_the_configured_partition_count() -> None:
    specs = [t.spec(7, prefix="x-") for t in CATALOGUE]

    assert {s.partitions for s in specs} == {7}
    assert [s.name for s in specs] == [f"x-{t.name}" for t in CATALOGUE]


def test_every_public_topic_is_kept_forever_and_inputs_carry_broker_time() -> None:
    """kessai replay reads all of them from their start (issue 19): none may expire."""
    for topic in CATALOGUE:
        config = topic.spec(4).config
        assert config is not None
        assert config["retention.ms"] == "-1", topic.name
        assert config["retention.bytes"] == "-1", topic.name
        assert config["cleanup.policy"] == "delete", topic.name  # compaction drops history
    assert dict(KEEP_FOREVER) == dict(by_name("ledger-events").config)
    # Deadlines and valid_until read the broker's clock, never a producer's.
    broker_time = {t.name for t in CATALOGUE if BROKER_TIME.items() <= t.config.items()}
    assert broker_time == set(INPUT_TOPICS)


def test_the_books_rows_are_an_engine_changelog() -> None:
    # The matcher runs in the engine's batch (issue 21): its rows are the engine's.
    assert engine_topic("kessai", ENGINE_ORDERS) == "kessai-engine-orders"
    with pytest.raises(AssertionError):
        engine_topic("kessai", "orders-changelog")
