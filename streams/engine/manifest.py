"""The engine's log: one record per batch, what replay needs to run it again. Pure.

A batch's outcome depends on its input records, the order they were applied in, the
batch's clock and the rules (tokens, deadline, limits). The records are in the input
topics for good; the rest is not, so each batch writes one :class:`Manifest` to
``{app_id}-engine-log`` in its own transaction: its number, its clock, the input
segments in the order they were applied, and the rules. ``kessai replay`` reads the
log, fetches each segment and applies it with the recorded clock and rules.

The segments tile each input partition without gaps or overlaps from its start: a
segment starts where the same partition's previous one ended (a replay checks that
nothing was skipped or applied twice). Each manifest also carries every input
partition's position after the batch: where the next holder of the engine resumes,
whatever the consumer group's committed offsets say (they are reset by hand, or
expire, without the engine's state following them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["Manifest", "Segment"]

#: The version of the log's records.
VERSION = 1


@dataclass(frozen=True, slots=True)
class Segment:
    """Records ``start`` up to ``end`` (exclusive) of one input partition, applied in
    offset order. Offsets taken by transaction markers are inside, records are not."""

    topic: str
    partition: int
    start: int
    end: int


@dataclass
class Manifest:
    """One batch: its number (from 1, gap-free), clock, segments and rules."""

    seq: int
    now_s: float
    rules: dict[str, Any]
    segments: list[Segment] = field(default_factory=list)
    #: (topic, partition) -> the next offset to apply, every input partition.
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    #: A simulated market (``KESSAI_CLOCK=ticks``): the clock at the batch's end (its
    #: ``clock`` records may move it past ``now_s``), and the wall clock when the batch
    #: ran (what ``kessai replay`` checks against the broker's time). None otherwise.
    end_s: float | None = None
    wall_s: float | None = None

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {
            "v": VERSION,
            "seq": self.seq,
            "now_s": self.now_s,
            "segments": [[s.topic, s.partition, s.start, s.end] for s in self.segments],
            "positions": [[t, p, o] for (t, p), o in sorted(self.positions.items())],
            "rules": self.rules,
        }
        if self.end_s is not None:
            data["end_s"], data["wall_s"] = self.end_s, self.wall_s
        return orjson.dumps(data)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        data = orjson.loads(raw)
        assert data["v"] == VERSION, data["v"]
        return cls(
            seq=data["seq"],
            now_s=data["now_s"],
            rules=data["rules"],
            segments=[Segment(t, p, s, e) for t, p, s, e in data["segments"]],
            positions={(t, p): o for t, p, o in data.get("positions", [])},
            end_s=data.get("end_s"),
            wall_s=data.get("wall_s"),
        )
