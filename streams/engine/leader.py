"""Which worker runs the engine: a consumer-group assignor that gives every partition to
one member.

Every worker's engine consumer joins the group ``{app_id}-engine`` with the same
subscription (``trades``, ``payments``, ``custody``). The group's leader runs
:meth:`OneEngine.assign`: all partitions go to one member and the others get none,
so exactly one engine is active and the rest stand by. The member that holds them
says so in its join metadata, and keeps them: a worker joining or leaving never
moves the engine unless it was the engine.

Leadership is not what protects the money: a consumer group cannot stop a paused
former holder from acting on what it fetched. The engine's fixed transactional id
does (:mod:`streams.engine.service`): a new holder's producer fences the old one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

__all__ = ["HOLDING", "OneEngine", "choose", "one_engine"]

#: The join metadata's user data of the member that holds the engine.
HOLDING = b"engine"


def choose(members: Mapping[str, bytes]) -> str:
    """The member to run the engine, from each member's user data: the holder if there
    is one (the smallest id if, after a split, several claim it), else the smallest id."""
    holders = sorted(m for m, data in members.items() if data == HOLDING)
    return holders[0] if holders else min(members)


class OneEngine(AbstractPartitionAssignor):  # type: ignore[misc]  # aiokafka is untyped
    """All partitions to one member (see the module doc). aiokafka calls assignors'
    class methods, so each engine gets a subclass of its own (:func:`one_engine`)
    whose :attr:`holding` says whether that engine holds the partitions now."""

    name = "kessai-one-engine"
    version = 0
    holding: ClassVar[bool] = False

    @classmethod
    def assign(
        cls,
        cluster: ClusterMetadata,
        members: Mapping[str, ConsumerProtocolMemberMetadata],
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = sorted({t for m in members.values() for t in m.subscription})
        partitions = [(t, sorted(cluster.partitions_for_topic(t) or ())) for t in topics]
        winner = choose({m: bytes(meta.user_data or b"") for m, meta in members.items()})
        return {
            member: ConsumerProtocolMemberAssignment(
                cls.version, partitions if member == winner else [], b""
            )
            for member in members
        }

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(
            cls.version, sorted(topics), HOLDING if cls.holding else b""
        )

    @classmethod
    def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
        cls.holding = bool(assignment.assignment)


def one_engine() -> type[OneEngine]:
    """A :class:`OneEngine` of one's own (its ``holding`` is per engine)."""
    assignor: Any = type("OneEngineOfThisWorker", (OneEngine,), {"holding": False})
    return assignor  # type: ignore[no-any-return]
