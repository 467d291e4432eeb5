"""Small Kafka helpers shared by the CLI, the tests and the auditors' tools.

- :func:`create_topics`: idempotent topic creation with an admin client.
- :func:`read_committed`: every committed record of a topic, read from the beginning
  with ``isolation_level="read_committed"`` up to the last stable offset -- how an
  auditor, and the kill test, see a topic (over :mod:`streams.audit.reader`, which
  reads in ``getmany`` batches, never a per-record await).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, TopicAuthorizationFailedError, for_code

from streams.config import Settings
from streams.kafkaauth import client_kwargs


@dataclass(frozen=True, kw_only=True)
class TopicSpec:
    name: str
    partitions: int
    #: Extra topic configs, e.g. ``{"cleanup.policy": "compact"}``.
    config: Mapping[str, str] | None = None


async def create_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    *,
    replication: int = 1,
    settings: Settings | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    ``settings``: whose Kafka credentials to connect with (None: plaintext); in this
    module's helpers its bootstrap is not used, ``bootstrap`` is.

    A topic that exists with another partition count is an error: co-partitioned
    topics must share their count, and Kafka cannot shrink one.
    """
    specs = list(specs)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=30_000, **client_kwargs(settings)
    )
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
                    raise CreateTopicsError(name, code, message)
        return [s.name for s in missing]
    finally:
        await admin.close()


class CreateTopicsError(Exception):
    """The broker refused to create a topic; the message names it and the error."""

    def __init__(self, name: str, code: int, message: str | None) -> None:
        kind = for_code(code).__name__
        hint = (
            ": this Kafka user may not create topics (ACLs); create them as a worker or the admin"
            if code == TopicAuthorizationFailedError.errno
            else ""
        )
        detail = f" ({message})" if message else ""
        super().__init__(f"creating topic {name!r}: {kind} (error {code}){detail}{hint}")


async def delete_topics_starting_with(
    bootstrap: str, prefixes: Iterable[str], *, settings: Settings | None = None
) -> list[str]:
    """Delete every topic whose name starts with one of ``prefixes``; return their names."""
    prefixes = tuple(prefixes)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=30_000, **client_kwargs(settings)
    )
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
    bootstrap: str, topic: str, *, timeout_s: float = 60.0, settings: Settings | None = None
) -> list[ConsumerRecord]:
    """All committed records of ``topic``, partition by partition in offset order.

    The head is the last stable offset when the read starts. A thin wrapper over the
    auditors' bulk reader (:mod:`streams.audit.reader`), which streams the same
    records in batches.
    """
    from streams.audit.reader import cuts_for, read_batches

    async def read() -> list[ConsumerRecord]:
        records: dict[int, list[ConsumerRecord]] = {}
        cuts = await cuts_for(bootstrap, topic, settings=settings)
        async for partition, batch in read_batches(bootstrap, topic, cuts, settings=settings):
            records.setdefault(partition, []).extend(batch)
        return [r for p in sorted(records) for r in records[p]]

    try:
        return await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        raise TimeoutError(f"reading {topic}: not at its end after {timeout_s:.0f} s") from None
