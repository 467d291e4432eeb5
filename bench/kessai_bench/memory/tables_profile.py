"""In-process, no Kafka: what the engine's state itself costs per funded account.

:func:`profile_tables` restores an :class:`~streams.engine.core.Engine` from the
prefill's rows under tracemalloc and splits its cost between the accounts' rows (JSON
bytes), their keys, the ``applied`` ids and the containers; :func:`replay_rss` reads
a fresh process's RSS growth while it restores the same rows.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson

from kessai_bench.memory.records import (
    ACCOUNTS_MAX,
    ChangelogRow,
    engine_rows,
    funding,
    right_sized,
)
from kessai_bench.memory.worker import proc_status_kib
from streams.engine.core import Engine
from streams.topics import ENGINE_ACCOUNTS, ENGINE_APPLIED

#: Accounts in the in-process tracemalloc profile (the cost per account is linear).
PROFILE_ACCOUNTS: Final = 100_000


def profile_tables(accounts: int, *, partitions: int = 4) -> dict[str, Any]:
    """Bytes the engine holds for *accounts* funded accounts, in all and part by part
    (tracemalloc).

    In all: an engine restored from the rows as :mod:`streams.engine.restore` does it
    (``Engine.restore_row``, every row in order, each value a bytes object of its own
    as aiokafka hands it over). Part by part: the same keys, values and containers
    built one at a time, each kept alive until the end so that its bytes are its own.
    ``inflow`` (one entry per asset) costs nothing per account and is left out of the
    parts. Scaffolding lists are left out of every figure.
    """
    assert 0 < accounts <= ACCOUNTS_MAX, accounts
    rows = engine_rows((funding(i) for i in range(accounts)), partitions=partitions)
    acct = _last(rows, ENGINE_ACCOUNTS)
    appl = _last(rows, ENGINE_APPLIED)
    assert len(acct) == accounts, len(acct)
    gc.collect()
    tracemalloc.start()
    try:
        tracer = _Tracer()
        tracer.engine(rows)
        tracer.parts_of(acct, appl)
    finally:
        tracemalloc.stop()
    parts = tracer.parts
    return {
        "accounts": accounts,
        "key_chars": {"account": len(acct[0].key), "command_id": len(appl[0].key)},
        "value_bytes": {"accounts": len(acct[-1].value)},
        "engine_bytes_per_account": round(tracer.engine_bytes / accounts, 1),
        "parts_bytes_per_account": {k: round(v / accounts, 1) for k, v in parts.items()},
        "tables_bytes_per_account": round(sum(parts.values()) / accounts, 1),
    }


def _last(rows: Sequence[ChangelogRow], table: str) -> list[ChangelogRow]:
    """Each key's last row of *table*, as a restore keeps it."""
    return list({r.key: r for r in rows if r.table == table}.values())


def _restore(rows: Sequence[ChangelogRow]) -> Engine:
    """An engine restored from *rows* as the worker restores it from Kafka."""
    engine = Engine()
    for r in rows:
        engine.restore_row(r.table, r.key.decode(), right_sized(r.value))
    engine.restored()
    return engine


class _Tracer:
    """Builds things under tracemalloc (already started), keeping each alive until the
    end so that each one's bytes are its own."""

    def __init__(self) -> None:
        self.parts: dict[str, int] = {}
        self.engine_bytes = 0
        self.keep: list[object] = []

    def traced(self, build: Callable[[], object]) -> tuple[object, int]:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        built = build()
        scaffold = sys.getsizeof(built) if isinstance(built, list) else 0
        self.keep.append(built)
        return built, tracemalloc.get_traced_memory()[0] - before - scaffold

    def part(self, name: str, build: Callable[[], object]) -> Any:
        built, self.parts[name] = self.traced(build)
        return built

    def engine(self, rows: Sequence[ChangelogRow]) -> None:
        _, self.engine_bytes = self.traced(lambda: _restore(rows))

    def parts_of(self, acct: Sequence[ChangelogRow], appl: Sequence[ChangelogRow]) -> None:
        part = self.part
        keys = part("accounts: keys (str)", lambda: [r.key.decode() for r in acct])
        values = part("accounts: rows (JSON bytes)", lambda: [right_sized(r.value) for r in acct])
        part("accounts: dict", lambda: dict(zip(keys, values, strict=True)))
        ids = part("applied: ids (str)", lambda: [r.key.decode() for r in appl])
        part("applied: set", lambda: set(ids))


def replay_rss(accounts: int, *, partitions: int = 4) -> dict[str, Any]:
    """This process's RSS growth per account while it restores an engine from the
    prefill's rows (``Engine.restore_row``), with no Kafka and no faust.

    What the allocator is left with after a restore, without the worker's fetch
    buffers. Run it in a fresh process (``--replay-rss N``): an RSS delta means nothing
    in one that has already grown and shrunk.
    """
    assert 0 < accounts <= ACCOUNTS_MAX, accounts
    rows = engine_rows((funding(i) for i in range(accounts)), partitions=partitions)
    gc.collect()
    before = proc_status_kib(os.getpid())
    engine = _restore(rows)
    gc.collect()
    after = proc_status_kib(os.getpid())
    assert len(engine.accounts) == accounts, len(engine.accounts)
    return {
        "accounts": accounts,
        "rss_bytes_per_account": round((after["VmRSS"] - before["VmRSS"]) * 1024 / accounts),
    }


def replay_rss_in_child(accounts: int, *, partitions: int) -> dict[str, Any]:
    """:func:`replay_rss` in a fresh Python process."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kessai_bench.memory",
            "--replay-rss",
            str(accounts),
            "--partitions",
            str(partitions),
        ],
        capture_output=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return result
