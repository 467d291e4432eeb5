"""Creating, describing and deleting topics: kessai's one way to do each.

- :func:`create_topics`: create the topics of some :class:`~streams.topics.TopicSpec` s
  that are missing, refuse one that exists with another partition count, and return
  only once the broker's metadata shows every topic created (a producer asking for a
  topic the metadata cache does not show yet is told it does not exist).
- :func:`ensure_public_topics`: the public catalogue (:mod:`streams.topics`), checked
  first: a wrong partition count or a journal topic that would expire is refused,
  naming every such topic, and nothing is created or changed then.
- :func:`ensure_worker_topics`: what a worker needs before it starts: the public
  topics and kessai's internal ones.
- :func:`describe_public_topics` (``kessai topics list``) and
  :func:`delete_topics_starting_with` (tests, benchmarks).

Every function takes the :class:`~streams.config.Settings` to connect with (bootstrap
and credentials).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, TopicAuthorizationFailedError, for_code

from streams.config import Settings
from streams.errors import KessaiError
from streams.kafka.auth import client_kwargs
from streams.topics import (
    CATALOGUE,
    PublicTopic,
    TopicSpec,
    engine_specs,
)

__all__ = [
    "CreateTopicsError",
    "TopicState",
    "TopicsError",
    "admin_client",
    "create_topics",
    "delete_topics_starting_with",
    "describe_public_topics",
    "ensure_public_topics",
    "ensure_worker_topics",
]

#: One admin request; the broker is usually local, a remote one gets some slack.
ADMIN_REQUEST_TIMEOUT_MS: Final = 30_000
#: A topic created a moment ago can be listed before its partitions are in the
#: broker's metadata cache; describing it is retried this often, this far apart.
DESCRIBE_ATTEMPTS_MAX: Final = 50
DESCRIBE_RETRY_S: Final = 0.1
#: ``min.insync.replicas`` of a topic kessai creates: two at most (one broker lost
#: then loses nothing acknowledged, and writes go on).
MIN_INSYNC_MAX: Final = 2


class TopicsError(KessaiError):
    """A topic exists on the broker in a shape kessai cannot work with."""


class CreateTopicsError(KessaiError):
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


@asynccontextmanager
async def admin_client(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client for ``settings``' broker and credentials, closed after."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        request_timeout_ms=ADMIN_REQUEST_TIMEOUT_MS,
        **client_kwargs(settings),
    )
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def create_topics(settings: Settings, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created, once visible.

    A topic that exists with another partition count is a :class:`TopicsError`:
    co-partitioned topics must share their count, and Kafka cannot shrink one.
    """
    specs = list(specs)
    async with admin_client(settings) as admin:
        existing = await _partition_counts(admin, [s.name for s in specs])
        wrong = [
            f"topic {s.name!r} exists with {existing[s.name]} partitions, want {s.partitions}"
            for s in specs
            if s.name in existing and existing[s.name] != s.partitions
        ]
        if wrong:
            raise TopicsError("; ".join(wrong))
        missing = [s for s in specs if s.name not in existing]
        if missing:
            await _create(admin, missing, await replication_of(admin, settings))
            # Only once they can be used (see the module doc).
            await _partition_counts(admin, [s.name for s in missing], created=True)
        return [s.name for s in missing]


async def replication_of(admin: AIOKafkaAdminClient, settings: Settings) -> int:
    """How many replicas each topic kessai creates gets: ``KESSAI_REPLICATION_FACTOR``,
    else the cluster's ``default.replication.factor`` (asked of one broker).

    Asked, not left to the broker (``replication_factor=-1``, KIP-464): aiokafka 0.14's
    ``NewTopic`` refuses -1 without replica assignments."""
    if settings.replication_factor is not None:
        return settings.replication_factor
    brokers = (await admin.describe_cluster())["brokers"]
    node = str(brokers[0]["node_id"])
    resource = ConfigResource(
        ConfigResourceType.BROKER, node, configs=dict.fromkeys(["default.replication.factor"])
    )
    for response in await admin.describe_configs([resource]):
        for found in response.to_object()["resources"]:
            if found["error_code"] != 0:
                raise TopicsError(
                    f"cannot read the cluster's default.replication.factor from broker "
                    f"{node}: error code {found['error_code']} {found['error_message'] or ''}"
                    "; set KESSAI_REPLICATION_FACTOR, or allow DescribeConfigs on the cluster"
                )
            for entry in found["config_entries"]:
                if entry["config_names"] == "default.replication.factor":
                    return int(entry["config_value"])
    raise TopicsError(
        f"broker {node} did not say its default.replication.factor; set KESSAI_REPLICATION_FACTOR"
    )


async def resolved_replication(settings: Settings) -> int:
    """:func:`replication_of` on a connection of its own (a worker's start: faust's own
    topics get the same)."""
    if settings.replication_factor is not None:
        return settings.replication_factor
    async with admin_client(settings) as admin:
        return await replication_of(admin, settings)


def topic_configs(spec: TopicSpec, replication: int) -> dict[str, str]:
    """A topic's configs as kessai creates it: the spec's, and how many replicas must
    be in sync for a write to count: two from 3 replicas on (one broker lost then
    loses nothing acknowledged and writes go on), else one. Always set, never left
    to the broker's default: a cluster whose default is 2 would refuse every write
    to a topic made with ``KESSAI_REPLICATION_FACTOR=1``."""
    configs = dict(spec.config or {})
    configs.setdefault("min.insync.replicas", str(max(1, min(MIN_INSYNC_MAX, replication - 1))))
    return configs


async def _create(admin: AIOKafkaAdminClient, specs: list[TopicSpec], replication: int) -> None:
    response = await admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=replication,
                topic_configs=topic_configs(s, replication),
            )
            for s in specs
        ]
    )
    # aiokafka returns per-topic errors instead of raising them.
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        # A racing worker may create one first: that is what we wanted.
        if code not in (0, TopicAlreadyExistsError.errno):
            message = entry[2] if len(entry) > 2 else ""
            raise CreateTopicsError(name, code, message)


async def _partition_counts(
    admin: AIOKafkaAdminClient, names: list[str], *, created: bool = False
) -> dict[str, int]:
    """The partition count of each topic of ``names`` that exists, waiting out a lagging
    metadata cache. ``created``: every one of ``names`` was just created, so each must
    show up (a topic still undescribed after DESCRIBE_ATTEMPTS_MAX tries is an error,
    not an absence: treating it as missing would let a wrong one pass unchecked)."""
    # list_topics first: describing a missing topic can auto-create it on brokers
    # that allow that, with the broker's default partition count.
    present = set(names) if created else set(await admin.list_topics()) & set(names)
    counts: dict[str, int] = {}
    for attempt in range(DESCRIBE_ATTEMPTS_MAX):
        pending = sorted(present - counts.keys())
        if not pending:
            break
        if attempt:
            await asyncio.sleep(DESCRIBE_RETRY_S)
        for entry in await admin.describe_topics(pending):
            if entry.get("error_code", 0) == 0 and entry.get("partitions"):
                counts[str(entry["topic"])] = len(entry["partitions"])
    unknown = sorted(present - counts.keys())
    if unknown:
        waited_s = DESCRIBE_ATTEMPTS_MAX * DESCRIBE_RETRY_S
        raise TopicsError(
            f"the broker has topics {unknown} but no partitions for them after {waited_s:.0f} s"
        )
    return counts


@dataclass(frozen=True, kw_only=True)
class TopicState:
    """How a catalogue topic looks on the broker right now."""

    topic: PublicTopic
    #: The name on the broker: the catalogue name behind an optional prefix.
    physical_name: str
    #: None when the topic does not exist.
    partitions: int | None
    #: Current values of the configs the catalogue sets (empty when missing).
    config: Mapping[str, str]

    @property
    def exists(self) -> bool:
        return self.partitions is not None

    def config_drift(self) -> dict[str, tuple[str | None, str]]:
        """Catalogue configs whose value differs on the broker: ``{key: (have, want)}``."""
        return {
            key: (self.config.get(key), want)
            for key, want in self.topic.config.items()
            if self.config.get(key) != want
        }


async def describe_public_topics(settings: Settings, *, prefix: str = "") -> list[TopicState]:
    """Each catalogue topic's partition count and kessai-managed configs on the broker."""
    names = [t.physical_name(prefix) for t in CATALOGUE]
    async with admin_client(settings) as admin:
        partitions = await _partition_counts(admin, names)
        wanted = {
            t.physical_name(prefix): t.config
            for t in CATALOGUE
            if t.config and t.physical_name(prefix) in partitions
        }
        configs = await _configs(admin, wanted) if wanted else {}
    return [
        TopicState(
            topic=t,
            physical_name=name,
            partitions=partitions.get(name),
            config=configs.get(name, {}),
        )
        for t, name in zip(CATALOGUE, names, strict=True)
    ]


async def _configs(
    admin: AIOKafkaAdminClient, wanted: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, str]]:
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, name, configs=dict.fromkeys(keys))
        for name, keys in wanted.items()
    ]
    found: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0:
                raise TopicsError(
                    f"cannot read the configs of topic {resource['resource_name']!r}: "
                    f"error code {resource['error_code']} {resource['error_message'] or ''}"
                )
            found[str(resource["resource_name"])] = {
                str(entry["config_names"]): str(entry["config_value"])
                for entry in resource["config_entries"]
            }
    return found


async def ensure_public_topics(settings: Settings, *, prefix: str = "") -> list[str]:
    """Create the catalogue topics that are missing; return the (physical) names created.

    ``prefix`` goes in front of every name, so that tests get topics of their own.
    A topic that exists with another partition count than ``settings.partitions``, or
    without the retention the catalogue asks for, raises :class:`TopicsError` naming
    every such topic. Nothing is created then, and nothing existing is ever changed:
    resizing or re-configuring a topic that holds data is a decision for a person.
    """
    assert settings.partitions > 0, settings.partitions
    problems: list[str] = []
    for state in await describe_public_topics(settings, prefix=prefix):
        if not state.exists:
            continue
        if state.partitions != settings.partitions:
            problems.append(
                f"topic {state.physical_name!r} has {state.partitions} partitions, "
                f"kessai wants {settings.partitions} (KESSAI_PARTITIONS)"
            )
        for key, (have, want) in state.config_drift().items():
            problems.append(
                f"topic {state.physical_name!r} has {key}={have}, kessai wants {key}={want} "
                f"(kafka-configs.sh --alter --entity-type topics --entity-name "
                f"{state.physical_name} --add-config {key}={want})"
            )
    if problems:
        raise TopicsError(
            "the broker's topics do not match kessai's catalogue:\n  "
            + "\n  ".join(problems)
            + "\nAll public topics share one partition count (they are co-partitioned), and "
            "Kafka cannot shrink a topic; the journal topics must never expire; the inputs "
            "carry the broker's time (LogAppendTime). Fix the "
            "topics by hand (or delete them if they hold nothing you need), or set "
            "KESSAI_PARTITIONS to the count they have. On kessai's own development broker, "
            "`kessai kafka reset --yes` starts over."
        )
    # create_topics checks the counts again: a topic made in between by someone else
    # still fails loudly rather than passing unchecked.
    specs = [t.spec(settings.partitions, prefix=prefix) for t in CATALOGUE]
    try:
        return await create_topics(settings, specs)
    except TopicsError as err:
        raise TopicsError(
            f"{err} (created while kessai was checking, or not yet visible then)"
        ) from err


async def ensure_worker_topics(settings: Settings) -> list[str]:
    """The topics a worker relies on, created if missing: the public catalogue (checked
    as :func:`ensure_public_topics` checks it), and the settlement engine's
    changelogs and log, created and waited for before faust starts."""
    replication = await resolved_replication(settings)  # asked once, not per step
    settings = dataclasses.replace(settings, replication_factor=replication)
    created = await ensure_public_topics(settings)
    internal = engine_specs(settings.app_id)
    created += await create_topics(settings, internal)
    names = [t.physical_name("") for t in CATALOGUE] + [s.name for s in internal]
    async with admin_client(settings) as admin:
        short = await _short_of_replicas(admin, names, replication)
    if short:
        raise TopicsError(
            f"topics with fewer replicas than kessai's replication ({replication}: "
            "KESSAI_REPLICATION_FACTOR, else the cluster's default.replication.factor): "
            + ", ".join(f"{name} ({n})" for name, n in sorted(short.items()))
            + ". A broker lost would lose their data. Add replicas with "
            "kafka-reassign-partitions.sh, or set KESSAI_REPLICATION_FACTOR to what they have."
        )
    return created


async def _short_of_replicas(
    admin: AIOKafkaAdminClient, names: list[str], replication: int
) -> dict[str, int]:
    """The topics of ``names`` with a partition of fewer than ``replication`` replicas:
    name -> the fewest."""
    short: dict[str, int] = {}
    for entry in await admin.describe_topics(names):
        fewest = min((len(p["replicas"]) for p in entry.get("partitions") or []), default=None)
        if fewest is not None and fewest < replication:
            short[entry["topic"]] = fewest
    return short


async def out_of_sync_partitions(settings: Settings) -> list[str]:
    """Every partition of every topic whose in-sync replicas are fewer than its
    replicas (Kafka's "under-replicated"), as ``topic[partition] isr/replicas``: a
    broker down, or back and still copying. Empty when the cluster is whole."""
    async with admin_client(settings) as admin:
        described = await admin.describe_topics()
    return sorted(
        f"{entry['topic']}[{p['partition']}] {len(p['isr'])}/{len(p['replicas'])}"
        for entry in described
        for p in entry.get("partitions") or []
        if len(p["isr"]) < len(p["replicas"])
    )


async def delete_topics_starting_with(settings: Settings, prefixes: Iterable[str]) -> list[str]:
    """Delete every topic whose name starts with one of ``prefixes``; return their names."""
    prefixes = tuple(prefixes)
    async with admin_client(settings) as admin:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
