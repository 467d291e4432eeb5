"""Per-venue rate limits: one token bucket per venue and input topic, refilled by the
broker's clock. Pure.

A venue may send ``per_s`` records a second to ``trades`` and to ``orders``, with
bursts of up to ``burst``; past that a record is rejected ``rate_limited`` and changes
nothing else (its id is not used up, so the venue sends it again later). The matcher's
own trades are not limited.

**One bucket per venue, whatever the partition.** A venue's client picks the partition
(a librdkafka client hashes keys with CRC32, a Java one with murmur2, a third may
spread them round-robin), so a bucket per partition gave a venue the limit times the
partition count (issue 19). One engine reads every partition of ``trades`` (ADR 0031)
and one matcher every partition of ``orders`` (ADR 0032), so a venue's bucket is one
row of one table, written in the transaction that commits the record: a crash never
forgets a record it counted, nor counts one twice. Time is the record's broker
timestamp (the inputs are LogAppendTime), never the worker's clock, so ``kessai
replay`` refills the same buckets over the same records and rejects the same ones.
A batch takes its partitions one after the other, so a venue's records may come
slightly back in time; time going back refills nothing (:func:`take`).

**Arithmetic.** Integers only: a bucket's level is kept in thousandths of a record,
refilled by ``per_s`` thousandths per millisecond of broker time.

A row is ``[level, last_ms]`` as JSON bytes, keyed ``[venue]`` (:func:`row_key`).
Rows keyed ``[venue, partition]`` (before issue 19) are no longer read.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Final

import orjson

from streams.security.signing import MATCHER_SIGNER

__all__ = ["MILLI", "Limit", "Quota", "admit", "row_key", "take"]

#: A bucket's level counts thousandths of a record.
MILLI: Final = 1_000


@dataclass(frozen=True, slots=True)
class Limit:
    """Records a second per venue (and input topic), and the largest burst."""

    per_s: int
    burst: int

    def __post_init__(self) -> None:
        assert self.per_s > 0 and self.burst > 0, self


def row_key(venue: str) -> str:
    """The table key of a venue's bucket (JSON: no separator clashes)."""
    return orjson.dumps([venue]).decode()


def take(row: bytes | None, at_ms: int, limit: Limit) -> tuple[bool, bytes]:
    """Whether one record at broker time ``at_ms`` may pass, and the bucket's new row.

    A new bucket starts full. Time going back (a record stamped before the last one,
    which LogAppendTime makes rare) refills nothing.
    """
    full = limit.burst * MILLI
    if row is None:
        level, last_ms = full, at_ms
    else:
        level, last_ms = orjson.loads(row)
    elapsed = max(0, at_ms - last_ms)
    level = min(full, level + elapsed * limit.per_s)
    last_ms = max(last_ms, at_ms)
    passed = level >= MILLI
    if passed:
        level -= MILLI
    return passed, memoryview(orjson.dumps([level, last_ms])).tobytes()


def admit(
    rows: MutableMapping[str, bytes], venue: str, partition: int, at_s: float, limit: Limit
) -> tuple[str, str] | None:
    """Take one record of ``venue`` (read from ``partition``, which only the message
    names) at broker time ``at_s`` (seconds) from its bucket in ``rows``; why it is
    refused, or None. The row is written either way (its time moved on)."""
    key = row_key(venue)
    passed, rows[key] = take(rows.get(key), round(at_s * 1000), limit)
    if passed:
        return None
    return (
        "rate_limited",
        f"venue {venue!r} sent more than {limit.per_s} records a second (bursts of "
        f"{limit.burst}; this one on partition {partition}); send it again later",
    )


@dataclass(frozen=True, slots=True)
class Quota:
    """An agent's buckets (its table) and the limit they keep."""

    rows: MutableMapping[str, bytes]
    limit: Limit

    def admit(self, venue: str, partition: int, at_s: float) -> tuple[str, str] | None:
        """:func:`admit`, except for the matcher's own trades (venue ``kessai``)."""
        if venue == MATCHER_SIGNER:  # the matcher's own trades
            return None
        return admit(self.rows, venue, partition, at_s, self.limit)
