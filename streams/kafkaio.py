"""Small Kafka helpers shared by the CLI, the tests and (later) replay.

- :func:`create_topics`: idempotent topic creation with an admin client.
- :func:`read_committed`: every committed record of a topic, read from the beginning
  with ``isolation_level="read_committed"`` up to the last stable offset -- how an
  auditor, and the kill test, see a topic.

Bulk reads use ``getmany`` batches, never a per-record await.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

#: Records fetched per getmany call in bulk reads.
FETCH_RECORDS_MAX = 10_000


@dataclass(frozen=True, kw_only=True)
class TopicSpec:
    name: str
    partitions: int
    #: Extra topic configs, e.g. ``{"cleanup.policy": "compact"}``.
    config: Mapping[str, str] | None = None


async def create_topics(
    bootstrap: str, specs: Iterable[TopicSpec], *, replication: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    A topic that exists with another partition count is an error: co-partitioned
    topics must share their count, and Kafka cannot shrink one.
    """
    specs = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        existing = await _partition_counts(admin, [s.name for s in specs])
        for spec in specs:
            have = existing.get(spec.name)
            if have is not None and have != spec.partitions:
                raise ValueError(
                    f"topic {spec.name!r} exists with {have} partitions, want {spec.partitions}"
                )
        missing = [s for s in specs if s.name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        s.name,
                        num_partitions=s.partitions,
                        replication_factor=replication,
                        topic_configs=dict(s.config or {}),
                    )
                    for s in missing
                ]
            )
            # aiokafka returns per-topic errors instead of raising them.
            for entry in response.topic_errors:
                name, code = entry[0], entry[1]
                # A racing worker may create one first: that is what we wanted.
                if code not in (0, TopicAlreadyExistsError.errno):
                    message = entry[2] if len(entry) > 2 else ""
                    raise RuntimeError(f"creating topic {name!r}: error {code} {message}")
        return [s.name for s in missing]
    finally:
        await admin.close()


async def delete_topics_starting_with(bootstrap: str, prefixes: Iterable[str]) -> list[str]:
    """Delete every topic whose name starts with one of ``prefixes``; return their names."""
    prefixes = tuple(prefixes)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    # list_topics first: describing a missing topic can auto-create it on brokers
    # that allow that, with the broker's default partition count.
    present = set(await admin.list_topics())
    names = [n for n in names if n in present]
    if not names:
        return {}
    described = await admin.describe_topics(names)
    counts: dict[str, int] = {}
    for entry in described:
        if entry.get("error_code", 0) == 0 and entry.get("partitions"):
            counts[entry["topic"]] = len(entry["partitions"])
    return counts


async def read_committed(
    bootstrap: str, topic: str, *, timeout_s: float = 60.0
) -> list[ConsumerRecord]:
    """All committed records of ``topic``, partition by partition in offset order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=FETCH_RECORDS_MAX,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        # Under read_committed, end_offsets is the last stable offset.
        end = await consumer.end_offsets(tps)
        records: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in tps}
        deadline = time.monotonic() + timeout_s
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: {sorted(map(str, pending))} not at end")
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, recs in batch.items():
                records[tp].extend(r for r in recs if r.offset < end[tp])
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
        return [r for tp in tps for r in records[tp]]
    finally:
        await consumer.stop()
