"""Topic set-up for integration tests."""

from __future__ import annotations

from streams.config import Settings
from streams.kafka.admin import create_topics
from streams.topics import TopicSpec


async def create_fresh(bootstrap: str, spec: TopicSpec) -> None:
    """Create ``spec``, which must not exist yet; return once the broker shows it (a test
    that starts from "this topic exists" must not race the broker's metadata cache:
    :func:`streams.kafka.admin.create_topics` waits for it)."""
    created = await create_topics(Settings(bootstrap=bootstrap), [spec])
    assert created == [spec.name], f"{spec.name} existed"
