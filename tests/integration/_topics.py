"""Topic set-up for integration tests: create, then wait until the broker shows it."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient

from streams.kafkaio import TopicSpec, create_topics

VISIBLE_ATTEMPTS_MAX = 50
VISIBLE_RETRY_S = 0.1


async def create_visible(bootstrap: str, spec: TopicSpec) -> None:
    """Create *spec* and wait until the broker's metadata describes it.

    A test that starts from "this topic exists" must not race the broker's metadata
    cache, which can lag a creation by some milliseconds.
    """
    assert await create_topics(bootstrap, [spec]) == [spec.name], f"{spec.name} existed"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for _ in range(VISIBLE_ATTEMPTS_MAX):
            [entry] = await admin.describe_topics([spec.name])
            if entry["error_code"] == 0 and len(entry["partitions"]) == spec.partitions:
                return
            await asyncio.sleep(VISIBLE_RETRY_S)
    finally:
        await admin.close()
    raise AssertionError(f"topic {spec.name} is still not in the broker's metadata")
