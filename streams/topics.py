"""The catalogue of every topic and table kessai names. Pure: no Kafka client here.

**Public topics.** Eight topics carry every record that enters or leaves kessai: four
written by the outside world (``payments``, ``custody``, ``trades``, ``orders``) and
four written by kessai (``settlements``, ``ledger-events``, ``rejections``,
``order-events``); kessai also writes the trades its matcher makes to ``trades``.
Their record models live in :mod:`schemas`; this module says how each is laid out on
the broker: its key, its partition count, and how long it keeps history.

All public topics share ``settings.partitions``. They are co-partitioned: an account's
payments, custody movements and ledger events land on the same partition number, so
one worker task owns an account across topics. A topic with another count would break
that silently, so :func:`streams.kafka.admin.ensure_public_topics` refuses it.
``ledger-events`` (the journal every balance is rebuilt from) and ``settlements`` (the
record of what was settled) are kept forever; the rest use the broker's defaults.

**The settlement engine's topics.** Its state's changelogs and its log (one record per
batch), one partition each, named ``{app_id}-engine-...`` (:func:`engine_topic`,
:func:`engine_specs`; streams/engine/).

**Tables.** The faust tables the matcher keeps, and :func:`changelog`, the name of the
topic each is rebuilt from.

Everything that names a topic (the worker, the ACL table, the metrics, the auditors'
replay, the bench) imports it from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from schemas import (
    CANCELLATIONS,
    CLOCK,
    CUSTODY,
    FX_RATES,
    INSTRUMENTS,
    LEDGER_EVENTS,
    ORDER_EVENTS,
    ORDERS,
    PAYMENTS,
    PENALTIES,
    REJECTIONS,
    RESERVES,
    SETTLEMENTS,
    TOPIC_MODELS,
    TRADES,
)

__all__ = [
    "BROKER_TIME",
    "CATALOGUE",
    "INPUT_TOPICS",
    "KEEP_FOREVER",
    "OUTPUT_TOPICS",
    "PUBLIC_TOPICS",
    "WORKER_INPUTS",
    "WORKER_OUTPUTS",
    "PublicTopic",
    "TopicSpec",
    "by_name",
    "engine_specs",
    "engine_topic",
]

#: History that must never expire: no time limit, no size limit, no compaction (a
#: compacted journal would keep only each key's last balance change). Every topic
#: ``kessai replay`` reads from its start is kept so (issue 19): a week's default
#: retention would make a replay older than that answer from partial history. To bound
#: the disks, use the cluster's tiered storage (old segments in object storage, the log
#: start unchanged), never retention: docs/operations.md.
KEEP_FOREVER: Final[Mapping[str, str]] = MappingProxyType(
    {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
)
#: The inputs' timestamps are the broker's clock when it appended the record, never the
#: producer's: a trade's deadline, a signed record's ``valid_until`` and a replay all
#: read time from it, and any producer could set its own (docs/security.md, M1, H3).
BROKER_TIME: Final[Mapping[str, str]] = MappingProxyType(
    {"message.timestamp.type": "LogAppendTime"}
)
#: An input: the broker's time, kept forever.
_INPUT: Final[Mapping[str, str]] = MappingProxyType({**BROKER_TIME, **KEEP_FOREVER})

Writer = Literal["outside", "kessai"]


@dataclass(frozen=True, kw_only=True)
class TopicSpec:
    """A topic to create: its name, partition count and the configs kessai sets."""

    name: str
    partitions: int
    #: Extra topic configs, e.g. ``{"cleanup.policy": "compact"}``.
    config: Mapping[str, str] | None = None


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

    def spec(self, partitions: int, *, prefix: str = "") -> TopicSpec:
        return TopicSpec(
            name=self.physical_name(prefix), partitions=partitions, config=dict(self.config)
        )


CATALOGUE: Final[tuple[PublicTopic, ...]] = (
    PublicTopic(
        name=PAYMENTS,
        key_field="account",
        writer="outside",
        config=_INPUT,
        description="stablecoin deposits and withdrawals (MoveCash)",
    ),
    PublicTopic(
        name=CUSTODY,
        key_field="account",
        writer="outside",
        config=_INPUT,
        description="bond deliveries into and out of accounts (MoveBonds)",
    ),
    PublicTopic(
        name=TRADES,
        key_field="trade_id",
        writer="outside",
        config=_INPUT,
        description="trades executed by venues, to settle DvP (TradeExecuted)",
    ),
    PublicTopic(
        name=ORDERS,
        key_field="isin",
        writer="outside",
        config=_INPUT,
        description="orders for the engine to reserve and match, and cancels (SubmitOrder)",
    ),
    PublicTopic(
        name=INSTRUMENTS,
        key_field="isin",
        writer="outside",
        # Kept whole, not compacted: the engine reads every version in order (a halt,
        # then its lifting), and a replay must read what it read (docs/bonds.md).
        config=_INPUT,
        description="the security master: each JGB's terms and status (Instrument)",
    ),
    PublicTopic(
        name=RESERVES,
        key_field="isin",
        writer="outside",
        config=_INPUT,
        description="the custodian's attested holding of each bond at the CSD (ReserveAttested)",
    ),
    PublicTopic(
        name=CANCELLATIONS,
        key_field="trade_id",
        writer="outside",
        config=_INPUT,
        description="a venue's cancellation of a trade not yet settled (CancelTrade)",
    ),
    PublicTopic(
        name=FX_RATES,
        key_field="currency",
        writer="outside",
        config=_INPUT,
        description="the reference rate of each cash token in yen, for its trades (FxRate)",
    ),
    PublicTopic(
        name=CLOCK,
        key_field="to",
        writer="outside",
        config=_INPUT,
        description="a simulated market's clock (AdvanceClock), read under KESSAI_CLOCK=ticks",
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
        config=KEEP_FOREVER,
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
        config=KEEP_FOREVER,
        description="each order's life in kessai's books (OrderStatusChanged)",
    ),
    PublicTopic(
        name=PENALTIES,
        key_field="trade_id",
        writer="kessai",
        config=KEEP_FOREVER,
        description="each fail day's penalty or fails charge of a failing trade (FailPenalty)",
    ),
)

assert [t.name for t in CATALOGUE] == list(TOPIC_MODELS), "one catalogue entry per schema"
assert all(t.key_field in TOPIC_MODELS[t.name].model_fields for t in CATALOGUE)

_BY_NAME: Final[Mapping[str, PublicTopic]] = MappingProxyType({t.name: t for t in CATALOGUE})
#: Every public topic's name, in catalogue order.
PUBLIC_TOPICS: Final[tuple[str, ...]] = tuple(t.name for t in CATALOGUE)
#: The topics records come in on: the only ones ``kessai publish`` writes to.
INPUT_TOPICS: Final[tuple[str, ...]] = tuple(t.name for t in CATALOGUE if t.writer == "outside")
#: The topics only kessai writes (the matcher's trades aside, which go on ``trades``).
OUTPUT_TOPICS: Final[tuple[str, ...]] = tuple(t.name for t in CATALOGUE if t.writer == "kessai")
#: What kessai's workers read, and what they write (the matcher publishes the trades
#: it makes on ``trades``); the secure profile's ACL table grants exactly these.
WORKER_INPUTS: Final[tuple[str, ...]] = (
    TRADES,
    ORDERS,
    PAYMENTS,
    CUSTODY,
    INSTRUMENTS,
    RESERVES,
    CANCELLATIONS,
    FX_RATES,
    CLOCK,
)
WORKER_OUTPUTS: Final[tuple[str, ...]] = (
    SETTLEMENTS,
    PENALTIES,
    LEDGER_EVENTS,
    ORDER_EVENTS,
    REJECTIONS,
)

#: The settlement engine's state (streams/engine/): its changelogs, compacted, one
#: partition each, named ``{app_id}-{name}`` (:func:`engine_topic`).
ENGINE_ACCOUNTS: Final = "engine-accounts"
ENGINE_TRADES: Final = "engine-trades"
ENGINE_APPLIED: Final = "engine-applied"
ENGINE_INFLOW: Final = "engine-inflow"
ENGINE_RATES: Final = "engine-rates"
#: ISIN -> the ``instruments`` record the engine last took (the security master).
ENGINE_INSTRUMENTS: Final = "engine-instruments"
#: ``next:{isin}`` -> a bond's next coupon or redemption; a run id
#: (``coupon:{isin}:{date}``) -> its holders, until paid (streams/engine/actions.py).
ENGINE_ACTIONS: Final = "engine-actions"
#: ``[isin, venue, order_id]`` -> one order's row (the books the engine matches: issue
#: 21, streams/engine/orders.py; the matcher's rows, :mod:`streams.matching.matcher`).
ENGINE_ORDERS: Final = "engine-orders"
#: ``[venue]`` -> a venue's token bucket on ``orders`` (streams/security/quota.py).
ENGINE_ORDER_RATES: Final = "engine-order-rates"
ENGINE_CHANGELOGS: Final[tuple[str, ...]] = (
    ENGINE_ACCOUNTS,
    ENGINE_TRADES,
    ENGINE_APPLIED,
    ENGINE_INFLOW,
    ENGINE_RATES,
    ENGINE_INSTRUMENTS,
    ENGINE_ACTIONS,
    ENGINE_ORDERS,
    ENGINE_ORDER_RATES,
)
#: The engine's manifest: one record per batch (its inputs, in order, its clock and
#: its rules), kept forever, one partition: what ``kessai replay`` re-runs.
ENGINE_LOG: Final = "engine-log"
#: Finished trades' rows once they left the engine's window (ADR 0033): kept forever,
#: one partition, each trade id once.
ENGINE_ARCHIVE: Final = "engine-archive"


def engine_topic(app_id: str, name: str) -> str:
    """The engine's topic ``name`` (a changelog, or the log) in the app ``app_id``."""
    assert name in (*ENGINE_CHANGELOGS, ENGINE_LOG, ENGINE_ARCHIVE), name
    return f"{app_id}-{name}"


def engine_specs(app_id: str) -> list[TopicSpec]:
    """The engine's topics: its changelogs (compacted) and its log (kept forever), one
    partition each: one writer needs no more, and each transaction then writes one
    marker per topic."""
    specs = [
        TopicSpec(name=engine_topic(app_id, n), partitions=1, config=dict(ENGINE_CHANGELOG_CONFIG))
        for n in ENGINE_CHANGELOGS
    ]
    specs.extend(
        TopicSpec(name=engine_topic(app_id, name), partitions=1, config=dict(KEEP_FOREVER))
        for name in (ENGINE_LOG, ENGINE_ARCHIVE)
    )
    return specs


def by_name(name: str) -> PublicTopic:
    """The catalogue entry for a public topic's (logical) name; ``KeyError`` if none."""
    return _BY_NAME[name]


#: The engine's changelogs: compacted, in segments small enough to be compacted soon. A
#: restore reads every row still on disk, and Kafka never compacts the active segment:
#: at the default 1 GiB, at 5,000 trades/s (two account rows of ~170 B each) the active
#: segment of ``engine-accounts`` holds ~10 minutes, ~6,000,000 superseded rows, about
#: 40 s more of a restore at the 160,000 rows/s measured. At 64 MiB it holds ~40 s of
#: rows, and a quiet engine rolls each hour (the default is a week). Dirty rows beyond
#: the active segment stay under the cleaner's default ratio (0.5: at most as many
#: again as the live rows). Only for topics created from now on: an existing topic
#: keeps its configs (kafka-configs.sh --alter changes them).
ENGINE_CHANGELOG_CONFIG: Final[Mapping[str, str]] = MappingProxyType(
    {"cleanup.policy": "compact", "segment.bytes": str(64 << 20), "segment.ms": str(3_600_000)}
)
