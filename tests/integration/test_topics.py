"""Topic creation (streams.kafka.admin) against the real broker, under names of the test's own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.config import Settings
from streams.kafka.admin import (
    TopicsError,
    admin_client,
    describe_public_topics,
    ensure_public_topics,
    ensure_worker_topics,
)
from streams.topics import (
    CATALOGUE,
    ENGINE_CHANGELOG_CONFIG,
    ENGINE_CHANGELOGS,
    TopicSpec,
    engine_topic,
)
from tests.support.topics import create_fresh

pytestmark = pytest.mark.integration

PARTITIONS = 3


async def _existing(bootstrap: str, prefix: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t for t in await admin.list_topics() if t.startswith(prefix)}
    finally:
        await admin.close()


async def test_creates_the_co_partitioned_topics_and_is_idempotent(
    bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    prefix = unique_name("topics")
    settings = Settings(bootstrap=bootstrap, partitions=PARTITIONS)

    created = await ensure_public_topics(settings, prefix=prefix)

    assert created == [f"{prefix}{t.name}" for t in CATALOGUE]
    states = await describe_public_topics(settings, prefix=prefix)
    assert {s.physical_name: s.partitions for s in states} == dict.fromkeys(created, PARTITIONS)
    configs = {s.topic.name: dict(s.config) for s in states if s.topic.config}
    want = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
    broker_time = {"message.timestamp.type": "LogAppendTime"}
    inputs = [
        "payments",
        "custody",
        "trades",
        "orders",
        "instruments",
        "reserves",
        "cancellations",
        "fx-rates",
        "clock",
    ]
    assert configs == {
        **dict.fromkeys(
            ["settlements", "ledger-events", "rejections", "order-events", "penalties"], want
        ),
        **dict.fromkeys(inputs, want | broker_time),
    }

    assert await ensure_public_topics(settings, prefix=prefix) == []
    assert await _existing(bootstrap, prefix) == set(created)


async def test_a_topic_with_another_partition_count_fails_and_creates_nothing(
    bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    prefix = unique_name("mismatch")
    await create_fresh(bootstrap, TopicSpec(name=f"{prefix}trades", partitions=PARTITIONS - 1))

    with pytest.raises(TopicsError) as raised:
        await ensure_public_topics(
            Settings(bootstrap=bootstrap, partitions=PARTITIONS), prefix=prefix
        )

    message = str(raised.value)
    assert (
        f"topic '{prefix}trades' has {PARTITIONS - 1} partitions, kessai wants {PARTITIONS}"
        in message
    )
    assert "KESSAI_PARTITIONS" in message
    assert await _existing(bootstrap, prefix) == {f"{prefix}trades"}


async def test_a_journal_topic_that_would_expire_is_refused(
    bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    prefix = unique_name("expiring")
    # As a faust worker or a person might have made it: the broker's 7-day default.
    await create_fresh(bootstrap, TopicSpec(name=f"{prefix}ledger-events", partitions=PARTITIONS))

    with pytest.raises(
        TopicsError,
        match=rf"'{prefix}ledger-events' has retention.ms=\d+, kessai wants retention.ms=-1",
    ):
        await ensure_public_topics(
            Settings(bootstrap=bootstrap, partitions=PARTITIONS), prefix=prefix
        )


async def test_a_worker_finds_its_tables_changelogs_made_before_it_starts(
    bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    """faust made the changelogs at start and joined at once: one not yet in the
    broker's metadata was left out of the assignment, and its table failed every write
    (the demo's matcher crashed on each order). The worker's topics are made, and
    visible, first: now the engine's alone (the books' rows among them, issue 21)."""
    settings = Settings(bootstrap=bootstrap, app_id=unique_name("app"))  # the shared 4 partitions
    await ensure_worker_topics(settings)
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    # The engine's changelogs: compacted in small segments (a restore reads what is left).
    engine_changelogs = [engine_topic(settings.app_id, n) for n in ENGINE_CHANGELOGS]
    async with admin_client(settings) as admin:
        resources = [
            ConfigResource(
                ConfigResourceType.TOPIC, name, configs=dict.fromkeys(ENGINE_CHANGELOG_CONFIG)
            )
            for name in engine_changelogs
        ]
        responses = await admin.describe_configs(resources)
    for response in responses:
        for resource in response.to_object()["resources"]:
            found = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
            assert found == dict(ENGINE_CHANGELOG_CONFIG), resource["resource_name"]
    assert await ensure_worker_topics(settings) == []  # idempotent


async def test_an_input_records_time_is_the_brokers_whatever_its_producer_says(
    bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    """A deadline or a signed record's valid_until read from a producer's timestamp
    would be the producer's to choose (M1, H3): a replayed record stamped in the past
    would pass as fresh."""
    prefix = unique_name("brokertime")
    await ensure_public_topics(Settings(bootstrap=bootstrap, partitions=1), prefix=prefix)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        before_ms = int(time.time() * 1000)
        sent = await producer.send_and_wait(f"{prefix}trades", b"{}", timestamp_ms=1_000)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        f"{prefix}trades", bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert record.timestamp_type == 1  # LogAppendTime
    assert record.timestamp >= before_ms - 5_000, (record.timestamp, sent)
