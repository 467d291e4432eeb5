"""The memory bench's pure parts: the records it prefills, parsing, figures, report.

Whether the prefill equals what a real worker writes is the integration test's job
(tests/integration/bench/test_memory.py); these pin down each piece on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kessai_bench import memory

from schemas import CUSTODY, PAYMENTS, MoveBonds, MoveCash, decode
from streams.ledger.domain import AccountState
from streams.money import to_units

# Kafka's own murmur2 test vectors (clients' UtilsTest.testMurmur2), as signed ints.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


# ------------------------------------------------------------------ the records


@pytest.mark.parametrize("partitions", [1, 4, 7, 12])
def test_command_partition_is_the_java_clients_partition(partitions: int) -> None:
    for key, signed in JAVA_MURMUR2.items():
        expected = (signed & 0x7FFFFFFF) % partitions
        assert memory.command_partition(key.decode(), partitions) == expected, key


def test_accounts_spread_over_every_partition() -> None:
    seen = {memory.command_partition(memory.funding(i).account, 4) for i in range(100)}
    assert seen == {0, 1, 2, 3}


def test_one_funding_is_four_changelog_records_on_its_commands_partition() -> None:
    f = memory.funding(42)
    writes = memory.ledger_writes(f, partitions=4)

    partition = memory.command_partition("acct-00000042", 4)
    assert [(w.table, w.partition) for w in writes] == [
        ("accounts", partition),
        ("applied", partition),
        ("accounts", partition),
        ("applied", partition),
    ]

    # The journal records the two deposits make, hashed here independently of
    # streams.ledger.journal (docs/journal.md: RFC 8785 bytes without "hash").
    def record(seq: int, asset: str, units: int, cause: str, prev: str) -> str:
        body = {
            "schema_version": 2,
            "account": "acct-00000042",
            "asset": asset,
            "delta_available": str(units),
            "delta_locked": "0",
            "available": str(units),
            "locked": "0",
            "cause": cause,
            "seq": seq,
            "prev_hash": prev,
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    h1 = record(1, "JPYC", 10_000_000, "payment:cash-00000042", "0" * 64)
    h2 = record(2, "JP1103551Q43", 1_000_000, "custody:bond-00000042", h1)
    # Byte for byte: faust's json codec, the ledger's state layout, cash first.
    assert [(w.key, w.value) for w in writes] == [
        (
            b'"acct-00000042"',
            b'{"seq":1,"balances":{"JPYC":[10000000,0]},"locks":{},"waiting":[],'
            b'"hash":"' + h1.encode() + b'"}',
        ),
        (b'"payment:cash-00000042"', b"true"),
        (
            b'"acct-00000042"',
            b'{"seq":2,"balances":{"JPYC":[10000000,0],"JP1103551Q43":[1000000,0]},'
            b'"locks":{},"waiting":[],"hash":"' + h2.encode() + b'"}',
        ),
        (b'"custody:bond-00000042"', b"true"),
    ]


def test_the_final_state_reads_back_as_the_ledger_state() -> None:
    final = memory.ledger_writes(memory.funding(3), partitions=4)[2]
    state = AccountState.from_json(orjson.loads(final.value))

    assert state == AccountState(
        seq=2,
        balances={"JPYC": [memory.CASH_UNITS, 0], memory.BOND_ISIN: [memory.BOND_FACE, 0]},
        hash=state.hash,
    )
    assert len(state.hash) == 64


def test_the_deposits_are_valid_records_and_the_moves_match_them() -> None:
    f = memory.funding(5)
    (cash_topic, cash_key, cash_raw), (bond_topic, bond_key, bond_raw) = memory.deposits(f)
    cash, bonds = decode(PAYMENTS, cash_raw), decode(CUSTODY, bond_raw)
    cash_move, bond_move = memory.moves(f)

    assert (cash_topic, bond_topic) == (PAYMENTS, CUSTODY)
    assert cash_key == bond_key == f.account.encode()
    assert isinstance(cash, MoveCash) and isinstance(bonds, MoveBonds)
    # What the intake makes of them (streams/ledger/agent.py, to_move).
    assert cash_move.command_id == f"payment:{cash.payment_id}"
    assert cash_move.units == to_units(cash.amount, memory.TOKENS[cash.token])
    assert (cash_move.asset, cash_move.kind) == (cash.token, cash.kind) == ("JPYC", "deposit")
    assert bond_move.command_id == f"custody:{bonds.movement_id}"
    assert (bond_move.asset, bond_move.units, bond_move.kind) == (
        bonds.isin,
        bonds.quantity,
        bonds.kind,
    )
    assert cash.amount == Decimal(memory.CASH_UNITS)


def test_fundings_are_distinct() -> None:
    ids = [memory.funding(i) for i in range(1000)]
    for attr in ("account", "payment_id", "movement_id"):
        assert len({getattr(f, attr) for f in ids}) == 1000
    with pytest.raises(AssertionError):
        memory.funding(memory.ACCOUNTS_MAX)


@given(st.integers(min_value=0, max_value=50), st.integers(min_value=1, max_value=7))
def test_chunks_keep_every_item_in_order(n: int, size: int) -> None:
    items = [memory.funding(i) for i in range(n)]
    chunks = list(memory.chunks(iter(items), size))

    assert [f for c in chunks for f in c] == items
    assert all(0 < len(c) <= size for c in chunks)


# ------------------------------------------------------------ the worker's log


def test_milestones_are_recognised_in_faust_log_lines() -> None:
    prefix = "[2026-11-25 20:21:57,732] [19237] [INFO] [^---KessaiRecovery]: "
    assert memory.milestone(prefix + "Restoring state from changelog topics... ") == (
        "recovery_started"
    )
    assert memory.milestone(prefix + "Done reading from changelog topics ") == "recovery_read"
    assert memory.milestone(prefix + "Worker ready ") == "ready"
    assert memory.milestone(prefix + "Seek stream partitions to committed offsets.") is None


def test_remaining_records_are_read_from_faust_progress_lines() -> None:
    line = (
        "[^---KessaiRecovery]: Still fetching changelog topics for recovery, estimated "
        "time remaining 31.13 seconds (total remaining=322343):"
    )
    assert memory.remaining(line) == 322343
    assert memory.remaining("Worker ready") is None
    assert memory.remaining("(total remaining=):") is None


def test_proc_status_reads_this_processes_memory() -> None:
    kib = memory.proc_status_kib(os.getpid())
    assert 0 < kib["VmRSS"] <= kib["VmHWM"]
    assert 0 < kib["RssAnon"] <= kib["VmRSS"]
    assert memory.proc_status_kib(2**22 + 1) == {}  # no such process


# --------------------------------------------------------------------- figures


def test_recovery_figures_from_milestones() -> None:
    done = memory.recovery_figures(
        {"recovery_started": 4.0, "recovery_read": 44.0, "ready": 44.5},
        records=400_000,
        remaining=(40.0, 10_000),
    )
    assert done["recovery_s"] == 40.0 and done["recovery_records_per_s"] == 10_000
    assert done["start_to_ready_s"] == 44.5

    # No changelog to read: faust skips the lines, recovery is nothing.
    empty = memory.recovery_figures({"ready": 5.0}, records=0, remaining=None)
    assert empty["recovery_s"] == 0.0 and empty["recovery_records_per_s"] is None

    # Given up on: the rate so far, from faust's last progress line.
    stuck = memory.recovery_figures(
        {"recovery_started": 10.0}, records=4_000_000, remaining=(110.0, 3_000_000)
    )
    assert stuck["recovery_s"] is None and stuck["start_to_ready_s"] is None
    assert stuck["recovery_records_per_s"] == 10_000
    assert stuck["last_remaining"] == 3_000_000


def _result(accounts: int, rss_kib: int, anon_kib: int) -> dict[str, Any]:
    return {"accounts": accounts, "rss_kib": rss_kib, "rss_anon_kib": anon_kib}


def test_bytes_per_account_are_against_the_empty_worker_and_the_smaller_count() -> None:
    results = [
        _result(1_000_000, 1_000_000, 970_000),
        _result(0, 100_000, 80_000),
        _result(100_000, 200_000, 170_000),
    ]
    memory.per_account(results)
    big, empty, small = results

    assert empty["bytes_per_account"] is None and empty["marginal_bytes_per_account"] is None
    assert small["bytes_per_account"] == 1024  # 100,000 KiB more for 100,000 accounts
    assert small["anon_bytes_per_account"] == round(90_000 * 1024 / 100_000)
    assert small["marginal_bytes_per_account"] is None  # nothing between it and 0
    assert big["bytes_per_account"] == round(900_000 * 1024 / 1_000_000)  # 922
    assert big["marginal_bytes_per_account"] == round(800_000 * 1024 / 900_000)  # 910


def test_no_baseline_no_bytes_per_account() -> None:
    results = [_result(100_000, 200_000, 170_000)]
    memory.per_account(results)
    assert results[0]["bytes_per_account"] is None


@pytest.mark.parametrize(
    ("text", "counts"),
    [("0,100000,1000000", [0, 100_000, 1_000_000]), (" 1_000 , 0 ", [1_000, 0]), ("0", [0])],
)
def test_account_counts_parse(text: str, counts: list[int]) -> None:
    assert memory.parse_accounts(text) == counts


@pytest.mark.parametrize("text", ["100000", "0,-5", "0,1e6", "0,5,5", f"0,{10**8}", ""])
def test_account_counts_need_the_baseline_and_sane_numbers(text: str) -> None:
    with pytest.raises(memory.MemoryBenchError):
        memory.parse_accounts(text)


def test_worker_env_parses_name_value_pairs() -> None:
    assert memory.parse_env(["MALLOC_ARENA_MAX=2", "X="]) == {"MALLOC_ARENA_MAX": "2", "X": ""}
    for bad in ("NOVALUE", "=3", "A B=1"):
        with pytest.raises(memory.MemoryBenchError):
            memory.parse_env([bad])


def test_the_profile_splits_the_tables_cost_into_parts() -> None:
    prof = memory.profile_tables(2_000, partitions=4)
    parts = prof["parts_bytes_per_account"]
    shapes = prof["value_shapes_bytes_per_account"]

    assert prof["key_chars"] == {"account": 13, "command_id": 21}
    assert all(v > 0 for v in parts.values()), parts
    assert prof["tables_bytes_per_account"] == pytest.approx(sum(parts.values()), abs=1)
    # Two applied ids per account, one account key: the ids weigh about twice as much.
    assert 1.5 < parts["applied: keys (str)"] / parts["accounts: keys (str)"] < 3
    # The values are counted in the shape the worker keeps them in.
    current = prof["current_shape"]
    assert parts[f"accounts: values, {current}"] == pytest.approx(shapes[current], rel=0.05)
    # Right-sized JSON bytes are the cheapest shape, a dict per account dearer, and
    # bytes straight from orjson.dumps dearest of all (its whole buffer, ~4 KiB).
    assert min(shapes, key=shapes.__getitem__) == memory.SHAPE_BYTES
    assert shapes[memory.SHAPE_DICTS] > 3 * shapes[memory.SHAPE_BYTES]
    assert max(shapes, key=shapes.__getitem__) == memory.SHAPE_ORJSON


def test_right_sized_bytes_are_an_equal_copy_in_a_block_of_their_size() -> None:
    value = orjson.dumps({"seq": 2, "balances": {"JPYC": [10_000_000, 0]}})
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        copy = memory.right_sized(value)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert copy == value and copy is not value
    assert grown < len(value) + 64


def test_the_profile_follows_the_ledgers_table_declarations() -> None:
    codecs = memory.table_codecs(4)
    # As streams/ledger/agent.py declares them: string keys through faust's json codec.
    assert codecs["accounts"].key_serializer == codecs["applied"].key_serializer == "json"
    assert memory.current_shape(codecs["accounts"]) == (
        memory.SHAPE_BYTES if codecs["accounts"].value_serializer == "raw" else memory.SHAPE_DICTS
    )
    raw = memory.TableCodec(key_serializer="json", value_serializer="raw")
    value = b'{"seq":1}'
    kept = raw.loads_value(value)
    assert kept == value and kept is not value  # one bytes object per record
    assert memory.TableCodec("json", "json").loads_value(value) == {"seq": 1}


# ---------------------------------------------------------------------- report


def _doc(bytes_per_account: int) -> dict[str, Any]:
    machine = {
        "cores": 2,
        "cpu_model": "test cpu",
        "ram_gib": 8.0,
        "python": "3.11",
        "kafka": "3.9.2",
        "faust_streaming": "0.15.3",
        "load_average_at_start": [0.5, 0.4, 0.3],
    }
    result = {
        "accounts": 100_000,
        "ready": True,
        "changelog_records": 400_000,
        "changelog_bytes_on_disk_at_start": 28_445_025,
        "rss_kib": 230_000,
        "rss_anon_kib": 210_000,
        "peak_rss_kib": 260_000,
        "bytes_per_account": bytes_per_account,
        "marginal_bytes_per_account": 1_184,
        "start_to_ready_s": 49.2,
        "recovery_s": 45.7,
        "recovery_records_per_s": 8_751,
    }
    run = {
        "command": "python -m kessai_bench.memory",
        "started_utc": "2026-11-25T20:00:00+00:00",
        "partitions": 4,
        "cash": "10,000,000 JPYC",
        "bond": "1,000,000 face of JP1103551Q43",
        "worker_env": {},
        "target_bytes_per_account": 1024,
    }
    return {"run": run, "machine": machine, "results": [result], "profile": None, "notes": []}


def test_markdown_has_a_row_per_count_and_the_verdict(tmp_path: Any) -> None:
    over = memory.markdown(_doc(1_670))
    row = "| 100,000 | 400,000 | 27 | 224.6 | 205.1 | 253.9 | 1,670 | 1,184 | 49.2 | 45.7 | 8,751 |"
    assert row in over
    assert "**over**" in over
    assert "**under**" in memory.markdown(_doc(900))

    doc = _doc(900)
    doc["profile"] = memory.profile_tables(500, partitions=4)
    with_profile = memory.markdown(doc)
    assert f"| {doc['profile']['current_shape']} (the worker) |" in with_profile
    assert "| applied: keys (str) |" in with_profile

    touched = _doc(900)
    touched["results"][0].update(
        touched_accounts=20_000,
        touch_s=20.2,
        rss_after_touch_kib=330_000,
        touch_bytes_per_account=5_120,
    )
    assert "| 100,000 | 20,000 | 20.2 | 224.6 | 322.3 | 5,120 |" in memory.markdown(touched)
    assert "K touched" not in memory.markdown(_doc(900))

    json_path, md_path = memory.write(_doc(900), tmp_path / "out")
    assert orjson.loads(json_path.read_bytes())["results"][0]["bytes_per_account"] == 900
    assert md_path.read_text().startswith("# kessai worker memory per funded account")
