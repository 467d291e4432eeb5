"""The catalogue of kessai's public topics, and creating them.

Eight topics carry every record that enters or leaves kessai: four written by the
outside world (``payments``, ``custody``, ``trades``, ``orders``) and four written by
kessai (``settlements``, ``ledger-events``, ``rejections``, ``order-events``); kessai
also writes the trades its matcher makes to ``trades``. Their record models live in
:mod:`schemas`; this module says how each is laid out on the broker: its key, its
partition count, and how long it keeps history.

All eight share ``settings.partitions``. They are co-partitioned: an account's
payments, custody movements and ledger events land on the same partition number, so
one worker task owns an account across topics. A topic with another count would break
that silently, so :func:`ensure_topics` refuses it instead of carrying on.

``ledger-events`` (the journal every balance is rebuilt from) and ``settlements`` (the
record of what was settled) are kept forever; the rest use the broker's defaults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from schemas import (
    CUSTODY,
    LEDGER_EVENTS,
    ORDER_EVENTS,
    ORDERS,
    PAYMENTS,
    REJECTIONS,
    SETTLEMENTS,
    TOPIC_MODELS,
    TRADES,
)
from streams.config import Settings
from streams.kafkaauth import client_kwargs
from streams.kafkaio import TopicSpec, create_topics

__all__ = [
    "CATALOGUE",
    "INPUT_TOPICS",
    "PublicTopic",
    "TopicState",
    "TopicsError",
    "by_name",
    "describe_topics",
    "ensure_topics",
]

#: One admin request; the broker is usually local, a remote one gets some slack.
ADMIN_REQUEST_TIMEOUT_MS = 30_000
#: A topic created a moment ago can be listed before its partitions are in the
#: broker's metadata cache; describing it is retried this often, this far apart.
DESCRIBE_ATTEMPTS_MAX = 50
DESCRIBE_RETRY_S = 0.1

#: History that must never expire: no time limit, no size limit, no compaction (a
#: compacted journal would keep only each key's last balance change).
KEEP_FOREVER: Final[Mapping[str, str]] = MappingProxyType(
    {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
)
_NO_CONFIG: Final[Mapping[str, str]] = MappingProxyType({})

Writer = Literal["outside", "kessai"]


class TopicsError(Exception):
    """A public topic exists on the broker in a shape kessai cannot work with."""


@dataclass(frozen=True, kw_only=True)
class PublicTopic:
    """One public topic: its name, what its records are keyed by, how it is kept."""

    name: str
    #: The record field whose value is the Kafka key (see :func:`schemas.key_for`).
    key_field: str
    #: Who produces it: venues, custodians and chains ("outside"), or kessai's agents.
    writer: Writer
    #: Topic configs kessai sets and checks; anything absent is the broker's default.
    config: Mapping[str, str]
    #: One line for ``kessai topics list``.
    description: str

    def physical_name(self, prefix: str = "") -> str:
        return f"{prefix}{self.name}"

    def spec(self, settings: Settings, *, prefix: str = "") -> TopicSpec:
        return TopicSpec(
            name=self.physical_name(prefix),
            partitions=settings.partitions,
            config=dict(self.config),
        )


CATALOGUE: Final[tuple[PublicTopic, ...]] = (
    PublicTopic(
        name=PAYMENTS,
        key_field="account",
        writer="outside",
        config=_NO_CONFIG,
        description="stablecoin deposits and withdrawals (MoveCash)",
    ),
    PublicTopic(
        name=CUSTODY,
        key_field="account",
        writer="outside",
        config=_NO_CONFIG,
        description="bond deliveries into and out of accounts (MoveBonds)",
    ),
    PublicTopic(
        name=TRADES,
        key_field="trade_id",
        writer="outside",
        config=_NO_CONFIG,
        description="trades executed by venues, to settle DvP (TradeExecuted)",
    ),
    PublicTopic(
        name=ORDERS,
        key_field="isin",
        writer="outside",
        config=_NO_CONFIG,
        description="orders for kessai to match, and cancellations (SubmitOrder)",
    ),
    PublicTopic(
        name=SETTLEMENTS,
        key_field="trade_id",
        writer="kessai",
        config=KEEP_FOREVER,
        description="each trade's settlement status (SettlementStatusChanged), kept forever",
    ),
    PublicTopic(
        name=REJECTIONS,
        key_field="key",
        writer="kessai",
        config=_NO_CONFIG,
        description="input records kessai refused, with a reason code (RecordRejected)",
    ),
    PublicTopic(
        name=LEDGER_EVENTS,
        key_field="account",
        writer="kessai",
        config=KEEP_FOREVER,
        description="the ledger journal: every balance change (BalanceChanged), kept forever",
    ),
    PublicTopic(
        name=ORDER_EVENTS,
        key_field="isin",
        writer="kessai",
        config=_NO_CONFIG,
        description="each order's life in kessai's books (OrderStatusChanged)",
    ),
)

assert [t.name for t in CATALOGUE] == list(TOPIC_MODELS), "one catalogue entry per schema"
assert all(t.key_field in TOPIC_MODELS[t.name].model_fields for t in CATALOGUE)

_BY_NAME: Final[Mapping[str, PublicTopic]] = MappingProxyType({t.name: t for t in CATALOGUE})
#: The topics records come in on: the only ones ``kessai publish`` writes to.
INPUT_TOPICS: Final[tuple[str, ...]] = tuple(t.name for t in CATALOGUE if t.writer == "outside")


def by_name(name: str) -> PublicTopic:
    """The catalogue entry for a public topic's (logical) name; ``KeyError`` if none."""
    return _BY_NAME[name]


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


async def describe_topics(settings: Settings, *, prefix: str = "") -> list[TopicState]:
    """Each catalogue topic's partition count and kessai-managed configs on the broker."""
    names = [t.physical_name(prefix) for t in CATALOGUE]
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        request_timeout_ms=ADMIN_REQUEST_TIMEOUT_MS,
        **client_kwargs(settings),
    )
    await admin.start()
    try:
        # list_topics first: describing a missing topic can auto-create it on brokers
        # that allow that (ours does not; a shared cluster might).
        present = set(await admin.list_topics()) & set(names)
        partitions = await _partition_counts(admin, present)
        configs: dict[str, dict[str, str]] = {}
        if present:
            wanted = {
                t.physical_name(prefix): t.config
                for t in CATALOGUE
                if t.config and t.physical_name(prefix) in present
            }
            if wanted:
                configs = await _configs(admin, wanted)
    finally:
        await admin.close()
    return [
        TopicState(
            topic=t,
            physical_name=name,
            partitions=partitions.get(name),
            config=configs.get(name, {}),
        )
        for t, name in zip(CATALOGUE, names, strict=True)
    ]


async def _partition_counts(admin: AIOKafkaAdminClient, present: set[str]) -> dict[str, int]:
    """Partition count of each topic in *present*, waiting out a lagging metadata cache.

    Only for topics known to exist (listed, or just created). Treating one as missing
    would let a wrong one pass unchecked, so a topic still undescribed after
    DESCRIBE_ATTEMPTS_MAX tries is an error, not an absence.
    """
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


async def ensure_topics(settings: Settings, *, prefix: str = "") -> list[str]:
    """Create the catalogue topics that are missing; return the (physical) names created.

    ``prefix`` goes in front of every name, so that tests get topics of their own.
    A topic that exists with another partition count than ``settings.partitions``, or
    without the retention the catalogue asks for, raises :class:`TopicsError` naming
    every such topic. Nothing is created then, and nothing existing is ever changed:
    resizing or re-configuring a topic that holds data is a decision for a person.
    """
    assert settings.partitions > 0, settings.partitions
    states = await describe_topics(settings, prefix=prefix)
    problems: list[str] = []
    for state in states:
        if not state.exists:
            continue
        if state.partitions != settings.partitions:
            problems.append(
                f"topic {state.physical_name!r} has {state.partitions} partitions, "
                f"kessai wants {settings.partitions} (KESSAI_PARTITIONS)"
            )
        for key, (have, want) in state.config_drift().items():
            problems.append(
                f"topic {state.physical_name!r} has {key}={have}, kessai wants {key}={want}"
            )
    if problems:
        raise TopicsError(
            "the broker's topics do not match kessai's catalogue:\n  "
            + "\n  ".join(problems)
            + "\nAll public topics share one partition count (they are co-partitioned), and "
            "Kafka cannot shrink a topic; the journal topics must never expire. Fix the "
            "topics by hand (or delete them if they hold nothing you need), or set "
            "KESSAI_PARTITIONS to the count they have."
        )
    # kafkaio checks the counts again at creation time: a topic made in between by
    # someone else still fails loudly rather than passing unchecked.
    try:
        created = await create_topics(
            settings.bootstrap,
            [t.spec(settings, prefix=prefix) for t in CATALOGUE],
            settings=settings,
        )
    except ValueError as err:
        raise TopicsError(
            f"{err} (created while kessai was checking, or not yet visible then)"
        ) from err
    if created:
        # Return only once they can be used: a producer asking for a topic the broker's
        # metadata cache does not show yet would be told it does not exist.
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.bootstrap,
            request_timeout_ms=ADMIN_REQUEST_TIMEOUT_MS,
            **client_kwargs(settings),
        )
        await admin.start()
        try:
            await _partition_counts(admin, set(created))
        finally:
            await admin.close()
    return created
