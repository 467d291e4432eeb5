"""The secure profile's access policy: who may read, write and own which topics. Pure.

Kafka's StandardAuthorizer denies whatever this table does not allow. Principals are
SCRAM users, one per role: the venues (``venue-a``, ``venue-b``) write trades and
orders, the ``bridge`` writes payments and custody, the ``registrar`` keeps the
security master (``instruments``), the ``worker`` runs kessai, ``ops``
reads everything, and ``admin`` is the super user (inter-broker traffic and installing
the ACLs). docs/security.md explains what each rule stops.

:func:`acl_command_args` turns the table into ``kafka.admin.AclCommand`` calls; the
local secure broker (:mod:`streams.devtools.localkafka`) and the compose stack's ACL
script both install it that way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from schemas import (
    CANCELLATIONS,
    CUSTODY,
    FX_RATES,
    INSTRUMENTS,
    ORDERS,
    PAYMENTS,
    RESERVES,
    TRADES,
)
from streams.topics import PUBLIC_TOPICS, WORKER_INPUTS, WORKER_OUTPUTS

__all__ = [
    "ACLS",
    "ADMIN",
    "BRIDGE",
    "OPS",
    "PRINCIPALS",
    "REGISTRAR",
    "VENUES",
    "WORKER",
    "AclRule",
    "acl_command_args",
    "acl_table",
    "table_digest",
]

#: The super user: inter-broker and controller traffic, and installing the ACLs.
ADMIN: Final = "admin"
VENUES: Final = ("venue-a", "venue-b")
BRIDGE: Final = "bridge"
#: Keeps the security master: signs as an ``instruments`` signer (docs/bonds.md).
REGISTRAR: Final = "registrar"
WORKER: Final = "worker"
OPS: Final = "ops"
PRINCIPALS: Final[tuple[str, ...]] = (ADMIN, *VENUES, BRIDGE, REGISTRAR, WORKER, OPS)

Operation = Literal[
    "All",
    "Read",
    "Write",
    "Create",
    "Describe",
    "DescribeConfigs",
    "IdempotentWrite",
]
ResourceKind = Literal["topic", "group", "transactional-id", "cluster"]


@dataclass(frozen=True, kw_only=True)
class AclRule:
    """One ``AclCommand --add`` call: every principal gets every operation on every
    resource (a cross product, as AclCommand makes it)."""

    name: str
    principals: tuple[str, ...]
    operations: tuple[Operation, ...]
    kind: ResourceKind
    #: Resource names; ``("*",)`` is every resource of the kind; empty for ``cluster``.
    resources: tuple[str, ...]
    #: ``prefixed`` matches every name that starts with the resource name.
    pattern: Literal["literal", "prefixed"] = "literal"
    why: str

    def __post_init__(self) -> None:
        assert self.principals and self.operations, self
        assert all(p in PRINCIPALS and p != ADMIN for p in self.principals), self
        assert (self.kind == "cluster") == (not self.resources), self


def acl_table(app_id: str = "kessai") -> tuple[AclRule, ...]:
    """The secure profile's ACLs; ``app_id`` is the workers' faust app id."""
    return (*_writer_rules(), *_worker_rules(app_id), *_reader_rules())


def _writer_rules() -> tuple[AclRule, ...]:
    """The venues, the bridge and the registrar: they write their inputs and read nothing."""
    return (
        # Venues only write. Kafka ACLs are per topic, not per key: a venue allowed to
        # read `settlements` or `order-events` would see every other venue's
        # counterparties, volumes and resting orders. Venues learn outcomes another way.
        AclRule(
            name="venues-write-trades-orders",
            principals=VENUES,
            operations=("Write", "Describe"),
            kind="topic",
            resources=(TRADES, ORDERS, CANCELLATIONS),
            why="venues publish executed trades, orders to match and their trades' "
            "cancellations; they read nothing",
        ),
        AclRule(
            name="bridge-writes-payments-custody-reserves",
            principals=(BRIDGE,),
            operations=("Write", "Describe"),
            kind="topic",
            resources=(PAYMENTS, CUSTODY, RESERVES),
            why="the custody/payments bridge publishes cash and bond movements, and the "
            "custodian's attested holdings, only",
        ),
        AclRule(
            name="registrar-writes-instruments-fx-rates",
            principals=(REGISTRAR,),
            operations=("Write", "Describe"),
            kind="topic",
            resources=(INSTRUMENTS, FX_RATES),
            why="whoever keeps the reference data publishes the bonds' terms and status, "
            "and the cash tokens' reference rates, only",
        ),
    )


def _worker_rules(app_id: str) -> tuple[AclRule, ...]:
    """The workers: read the inputs, write the outputs, own kessai's own topics, group
    and transactional ids."""
    return (
        AclRule(
            name="worker-reads-inputs",
            principals=(WORKER,),
            operations=("Read",),
            kind="topic",
            resources=WORKER_INPUTS,
            why="the workers consume the input topics (the engine matches the orders)",
        ),
        AclRule(
            name="worker-writes-outputs",
            principals=(WORKER,),
            operations=("Write",),
            kind="topic",
            resources=WORKER_OUTPUTS,
            why="the workers publish outcomes, the journal and the order events",
        ),
        AclRule(
            name="worker-manages-public-topics",
            principals=(WORKER,),
            operations=("Create", "Describe", "DescribeConfigs"),
            kind="topic",
            resources=PUBLIC_TOPICS,
            why="a worker creates missing public topics and checks their configs at start",
        ),
        AclRule(
            name="worker-reads-the-cluster-configs",
            principals=(WORKER,),
            operations=("DescribeConfigs",),
            kind="cluster",
            resources=(),
            why="a worker creates its topics with the cluster's default.replication.factor",
        ),
        AclRule(
            name="worker-owns-its-app-prefix",
            principals=(WORKER,),
            operations=("All",),
            kind="topic",
            resources=(f"{app_id}-",),
            pattern="prefixed",
            why="the engine's changelogs (the books' rows among them) and log: {app_id}-...",
        ),
        AclRule(
            name="worker-owns-its-group",
            principals=(WORKER,),
            operations=("All",),
            kind="group",
            resources=(app_id,),
            pattern="prefixed",
            why="the workers' consumer group is the app id",
        ),
        AclRule(
            name="worker-owns-its-transactions",
            principals=(WORKER,),
            operations=("All",),
            kind="transactional-id",
            resources=(app_id,),
            pattern="prefixed",
            why="the engine's producer ({app_id}-engine)",
        ),
    )


def _reader_rules() -> tuple[AclRule, ...]:
    """Operations and auditors: read everything, write nothing."""
    return (
        AclRule(
            name="ops-reads-everything",
            principals=(OPS,),
            operations=("Read", "Describe", "DescribeConfigs"),
            kind="topic",
            resources=("*",),
            why="operations and auditors (positions, verify, replay) read; never write",
        ),
    )


#: The table for the default app id; docs and tests read it.
ACLS: Final[tuple[AclRule, ...]] = acl_table()

_RESOURCE_FLAGS: Final[dict[ResourceKind, str]] = {
    "topic": "--topic",
    "group": "--group",
    "transactional-id": "--transactional-id",
    "cluster": "--cluster",
}


def acl_command_args(rules: Iterable[AclRule]) -> list[list[str]]:
    """``kafka.admin.AclCommand`` arguments (after the connection), one list per JVM,
    that add *rules*.

    Each JVM takes seconds to start, so rules with the same principals, operations
    and pattern type share one call: AclCommand adds the cross product of its
    principals, operations and resources (of any kinds), which is then exactly the
    union of those rules.
    """
    calls: dict[tuple[tuple[str, ...], tuple[str, ...], str], list[str]] = {}
    for rule in rules:
        key = (rule.principals, rule.operations, rule.pattern)
        resources = calls.setdefault(key, [])
        if rule.kind == "cluster":
            resources.append("--cluster")
        for name in rule.resources:
            resources += [_RESOURCE_FLAGS[rule.kind], name]
    out = []
    for (principals, operations, pattern), resources in calls.items():
        args = ["--add", "--force"]
        for principal in principals:
            args += ["--allow-principal", f"User:{principal}"]
        for operation in operations:
            args += ["--operation", operation]
        out.append([*args, *resources, "--resource-pattern-type", pattern])
    return out


def table_digest(rules: Iterable[AclRule]) -> str:
    """Changes when the table does: the broker's ACLs are installed again then."""
    text = "\n".join(" ".join(call) for call in acl_command_args(rules))
    return hashlib.sha256(text.encode()).hexdigest()
