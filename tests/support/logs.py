"""Reading what a worker committed, as the tests check it (read_committed, JSON values).

Over :class:`streams.kafka.reader.Tail` and :func:`streams.kafka.reader.read_committed`:
records of other tests on the shared broker are read too, so a test picks its own by
the run id in its keys and ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from schemas import LEDGER_EVENTS
from streams.config import Settings
from streams.kafka.reader import Tail, read_committed

#: How long a test waits for what a worker should write.
WAIT_S = 120.0

Seen = list[dict[str, Any]]


async def collect(
    settings: Settings,
    topics: Sequence[str],
    done: Callable[[Seen], bool],
    *,
    timeout_s: float = WAIT_S,
) -> Seen:
    """Every committed JSON object on ``topics`` from their start, each with its
    ``topic``, until ``done(seen)`` or ``timeout_s``; what was seen either way (the
    test's assertions say what was missing)."""
    seen: Seen = []

    def take(record: Any) -> None:
        # Other tests' bad input on the shared broker is not a JSON object.
        try:
            value = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            return
        if isinstance(value, dict):
            seen.append({"topic": record.topic, **value})

    async with Tail(settings, topics) as tail:
        await tail.until(take, lambda: done(seen), timeout_s=timeout_s)
    return seen


async def read_journal(settings: Settings, run: str) -> Seen:
    """The committed ``ledger-events`` of the accounts whose names end with ``run``, in
    each account's seq order."""
    records = await read_committed(settings, LEDGER_EVENTS)
    out = [orjson.loads(r.value) for r in records]
    return sorted(
        (r for r in out if r["account"].endswith(run)), key=lambda r: (r["account"], r["seq"])
    )
