"""Which worker runs a batch loop: a consumer-group assignor that gives every partition
to one member.

Every worker's engine consumer joins the group ``{app_id}-engine`` with the same
subscription (``trades``, ``payments``, ``custody``), and its matcher's consumer
``{app_id}-matcher`` (``orders``). The group's leader runs :meth:`OneHolder.assign`:
all partitions go to one member and the others get none, so exactly one engine (one
matcher) is active and the rest stand by. Below, "the engine" is either loop.

The member that holds them says so in its join metadata, with the time it was given
them, and keeps them: a worker joining or leaving never moves the engine unless it was
the engine. When two claim them (a holder paused past its session, replaced, then
resumed: it rejoins still claiming), the later holder keeps them; the fenced one exits
on its own.

Leadership is not what protects the money: a consumer group cannot stop a paused
former holder from acting on what it fetched. The loop's fixed transactional id does
(:mod:`streams.engine.service`, :mod:`streams.matching.service`): a new holder's
producer fences the old one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

__all__ = ["HOLDING", "OneHolder", "choose", "holding_data", "one_holder"]

#: How the join metadata's user data of the member that holds the engine starts; then
#: when it was given the engine (ms since the epoch, decimal).
HOLDING = b"engine"


def holding_data(since_ms: int) -> bytes:
    return HOLDING + b":%d" % since_ms


def _since(data: bytes) -> int | None:
    """When a member says it was given the engine; None if it does not hold it."""
    if not data.startswith(HOLDING):
        return None
    _, _, since = data.partition(b":")
    return int(since) if since.isdigit() else 0


def choose(members: Mapping[str, bytes]) -> str:
    """The member to run the engine, from each member's user data: the holder if there
    is one; if several claim it, the one given it last (the earlier one was fenced when
    the later took over), the smallest id on a tie; else the smallest id."""
    holders = [(since, m) for m, data in members.items() if (since := _since(data)) is not None]
    if not holders:
        return min(members)
    return min(holders, key=lambda h: (-h[0], h[1]))[1]


class OneHolder(AbstractPartitionAssignor):  # type: ignore[misc]  # aiokafka is untyped
    """All partitions to one member (see the module doc). aiokafka calls assignors'
    class methods, so each engine gets a subclass of its own (:func:`one_holder`)
    whose :attr:`holding` says whether that engine holds the partitions now."""

    name = "kessai-one-holder"
    version = 0
    #: When this engine was given the partitions (ms since the epoch); None: it was not.
    holding_since: ClassVar[int | None] = None

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
        since = cls.holding_since
        data = b"" if since is None else holding_data(since)
        return ConsumerProtocolMemberMetadata(cls.version, sorted(topics), data)

    @classmethod
    def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
        if not assignment.assignment:
            cls.holding_since = None
        elif cls.holding_since is None:
            cls.holding_since = time.time_ns() // 1_000_000


def one_holder() -> type[OneHolder]:
    """A :class:`OneHolder` of one's own (its ``holding_since`` is per engine)."""
    assignor: Any = type("OneHolderOfThisWorker", (OneHolder,), {"holding_since": None})
    return assignor  # type: ignore[no-any-return]
