"""In-process, no Kafka: what the ledger's two tables themselves cost per account.

:func:`profile_tables` splits the cost between the values, the keys and faust's
store (tracemalloc) and prices the values in other shapes; :func:`replay_rss` reads
a fresh process's RSS growth while it rebuilds the tables as faust's memory store does.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from kessai_bench.memory.records import (
    ACCOUNTS_MAX,
    RAW_CODEC,
    TABLES,
    ChangelogRecord,
    TableCodec,
    funding,
    ledger_writes,
    table_codecs,
)
from kessai_bench.memory.worker import proc_status_kib
from streams.topics import ACCOUNTS_TABLE, APPLIED_TABLE

#: Accounts in the in-process tracemalloc profile (the cost per account is linear).
PROFILE_ACCOUNTS: Final = 100_000

#: The accounts' values in the shapes priced by the profile; the one the worker keeps
#: follows from the table's codec (:func:`current_shape`).
SHAPE_DICTS: Final = "JSON dicts (json table)"
SHAPE_BYTES: Final = "JSON bytes (raw table)"
SHAPE_TUPLES: Final = "tuples (seq, ((asset, available, locked), ...))"
#: What a raw table holds for a state the agent has just written: orjson's own bytes.
SHAPE_ORJSON: Final = "JSON bytes as orjson.dumps returns them (a raw table, once written)"


def current_shape(codec: TableCodec) -> str:
    return SHAPE_BYTES if codec.value_serializer == RAW_CODEC else SHAPE_DICTS


def profile_tables(accounts: int, *, partitions: int = 4) -> dict[str, Any]:
    """Bytes the two tables hold for *accounts* funded accounts, part by part (tracemalloc).

    Built the way faust's memory store rebuilds them (``stores/memory.py``): per
    changelog record, ``data[key] = value`` and ``_key_partition[key] = partition``,
    keys and values decoded with each table's codec as the worker declares it. Only
    the final state of each key is kept, as after recovery. The accounts' values are
    also priced in the other shapes. Scaffolding lists are left out of every figure.
    """
    assert 0 < accounts <= ACCOUNTS_MAX, accounts
    codec = table_codecs(partitions)
    acct, appl = _final_records(accounts, partitions)
    gc.collect()
    shape = current_shape(codec[ACCOUNTS_TABLE])
    parts, shapes = _Tracer(codec[ACCOUNTS_TABLE], codec[APPLIED_TABLE]).run(acct, appl, shape)
    return {
        "accounts": accounts,
        "codecs": {
            name: {"key": c.key_serializer, "value": c.value_serializer}
            for name, c in codec.items()
        },
        "key_chars": {"account": len(acct[0].key) - 2, "command_id": len(appl[0].key) - 2},
        "value_bytes": {"accounts": len(acct[-1].value), "applied": len(appl[-1].value)},
        "parts_bytes_per_account": {k: round(v / accounts, 1) for k, v in parts.items()},
        "tables_bytes_per_account": round(sum(parts.values()) / accounts, 1),
        "current_shape": shape,
        "value_shapes_bytes_per_account": {k: round(v / accounts, 1) for k, v in shapes.items()},
    }


def _final_records(
    accounts: int, partitions: int
) -> tuple[list[ChangelogRecord], list[ChangelogRecord]]:
    """Each key's last changelog record, as recovery keeps it: ``accounts``, ``applied``."""
    final: dict[tuple[str, bytes], ChangelogRecord] = {}
    for i in range(accounts):
        for r in ledger_writes(funding(i), partitions=partitions):
            final[r.table, r.key] = r  # a key's last write is what recovery keeps
    acct = [r for (t, _), r in final.items() if t == ACCOUNTS_TABLE]
    appl = [r for (t, _), r in final.items() if t == APPLIED_TABLE]
    return acct, appl


class _Tracer:
    """Builds the tables part by part under tracemalloc, keeping every part alive until
    the end so that each one's bytes are its own."""

    def __init__(self, accounts: TableCodec, applied: TableCodec) -> None:
        self.a_codec, self.p_codec = accounts, applied
        self.parts: dict[str, int] = {}
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

    def run(
        self, acct: list[ChangelogRecord], appl: list[ChangelogRecord], shape: str
    ) -> tuple[dict[str, int], dict[str, int]]:
        """(bytes per part of the tables, bytes of the accounts' values per shape)."""
        tracemalloc.start()
        try:
            self._tables(acct, appl, shape)
            traced = self.traced
            dicts: list[Any] = [orjson.loads(r.value) for r in acct]  # outside the count
            shapes = {
                SHAPE_DICTS: traced(lambda: [orjson.loads(r.value) for r in acct])[1],
                SHAPE_BYTES: traced(lambda: [bytes(bytearray(r.value)) for r in acct])[1],
                SHAPE_TUPLES: traced(lambda: [_as_tuple(v) for v in dicts])[1],
                SHAPE_ORJSON: traced(lambda: [orjson.dumps(v) for v in dicts])[1],
            }
        finally:
            tracemalloc.stop()
        self.keep.clear()
        return self.parts, shapes

    def _tables(self, acct: list[ChangelogRecord], appl: list[ChangelogRecord], shape: str) -> None:
        part, a_codec, p_codec = self.part, self.a_codec, self.p_codec
        a_keys = part("accounts: keys (str)", lambda: [a_codec.loads_key(r.key) for r in acct])
        a_vals = part(
            f"accounts: values, {shape}", lambda: [a_codec.loads_value(r.value) for r in acct]
        )
        part("accounts: store dict", lambda: dict(zip(a_keys, a_vals, strict=True)))
        part(
            "accounts: store key->partition dict",
            lambda: {k: r.partition for k, r in zip(a_keys, acct, strict=True)},
        )
        p_keys = part("applied: keys (str)", lambda: [p_codec.loads_key(r.key) for r in appl])
        part(
            "applied: store dict",
            lambda: {k: p_codec.loads_value(r.value) for k, r in zip(p_keys, appl, strict=True)},
        )
        part(
            "applied: store key->partition dict",
            lambda: {k: r.partition for k, r in zip(p_keys, appl, strict=True)},
        )


def replay_rss(accounts: int, *, partitions: int = 4) -> dict[str, Any]:
    """This process's RSS growth per account while it rebuilds the tables from the
    changelog records, as faust's memory store does, with no Kafka and no faust.

    Every record, superseded states included, partition by partition in offset order:
    what the allocator is left with after a replay, without the worker's fetch
    buffers and events. Run it in a fresh process (``--replay-rss N``): an RSS delta
    means nothing in one that has already grown and shrunk.
    """
    assert 0 < accounts <= ACCOUNTS_MAX, accounts
    by_tp: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
    for i in range(accounts):
        for r in ledger_writes(funding(i), partitions=partitions):
            by_tp.setdefault((r.table, r.partition), []).append((r.key, r.value))
    gc.collect()
    before = proc_status_kib(os.getpid())
    codec = table_codecs(partitions)
    stores: dict[str, tuple[dict[Any, Any], dict[Any, int]]] = {t: ({}, {}) for t in TABLES}
    for (table, partition), items in sorted(by_tp.items()):
        data, key_partition = stores[table]
        loads_key, loads_value = codec[table].loads_key, codec[table].loads_value
        for raw_key, raw_value in items:
            key = loads_key(raw_key)
            data[key] = loads_value(raw_value)
            key_partition[key] = partition
    gc.collect()
    after = proc_status_kib(os.getpid())
    assert len(stores[ACCOUNTS_TABLE][0]) == accounts, len(stores[ACCOUNTS_TABLE][0])
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


def _as_tuple(value: Mapping[str, Any]) -> tuple[int, tuple[tuple[str, int, int], ...]]:
    balances = value["balances"]
    return (value["seq"], tuple((a, int(b[0]), int(b[1])) for a, b in balances.items()))
