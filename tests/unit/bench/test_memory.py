"""The memory bench's pure parts: the rows it prefills, parsing, figures, report.

Whether the prefill equals what a real worker writes is the integration test's job
(tests/integration/bench/test_memory.py); these pin down each piece on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kessai_bench import memory

from schemas import CUSTODY, PAYMENTS, MoveBonds, MoveCash, decode
from streams.engine.core import Batch, Engine
from streams.ledger.domain import AccountState
from streams.money import to_units
from streams.runtime.batches import partition_of

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
def test_the_engines_partition_is_the_java_clients_partition(partitions: int) -> None:
    # The partition the funder gives each deposit, as the bridges' producers choose it.
    for key, signed in JAVA_MURMUR2.items():
        expected = (signed & 0x7FFFFFFF) % partitions
        assert partition_of(key, partitions) == expected, key


def _journal_hash(seq: int, asset: str, units: int, cause: str, prev: str) -> str:
    """A deposit's journal record hash, computed here independently of
    streams.ledger.journal (docs/journal.md: RFC 8785 bytes without "hash")."""
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


def test_one_funding_is_one_account_row_two_applied_ids_and_the_inflow() -> None:
    rows = memory.engine_rows([memory.funding(42)])

    h1 = _journal_hash(1, "JPYC", 10_000_000, "payment:cash-00000042", "0" * 64)
    h2 = _journal_hash(2, "JP1103551Q43", 1_000_000, "custody:bond-00000042", h1)
    # Byte for byte: plain UTF-8 keys, the ledger's state layout, cash first.
    assert [(r.table, r.key, r.value) for r in rows[:3]] == [
        (
            "engine-accounts",
            b"acct-00000042",
            b'{"seq":2,"balances":{"JPYC":[10000000,0],"JP1103551Q43":[1000000,0]},'
            b'"locks":{},"waiting":[],"hash":"' + h2.encode() + b'"}',
        ),
        ("engine-applied", b"payment:cash-00000042", b"1"),
        ("engine-applied", b"custody:bond-00000042", b"1"),
    ]
    # The inflow's rows come in no particular order (the engine keeps a set).
    assert sorted((r.table, r.key, r.value) for r in rows[3:]) == [
        ("engine-inflow", b"JP1103551Q43", b"1000000"),
        ("engine-inflow", b"JPYC", b"10000000"),
    ]


def test_the_inflow_is_a_running_total_across_batches() -> None:
    fundings = [memory.funding(i) for i in range(5)]
    rows = memory.engine_rows(fundings, batch_accounts=2)

    accounts = [r for r in rows if r.table == "engine-accounts"]
    assert [r.key.decode() for r in accounts] == [f.account for f in fundings]
    assert len({r.value for r in accounts}) == 5  # each its own chain
    inflow = [(r.key, int(r.value)) for r in rows if r.table == "engine-inflow"]
    assert len(inflow) == 2 * 3  # both assets, once per batch
    last = dict(inflow)
    assert last == {b"JPYC": 5 * memory.CASH_UNITS, memory.BOND_ISIN.encode(): 5 * memory.BOND_FACE}
    # Cut into batches or not, each key's last row is the same.
    whole = {(r.table, r.key): r.value for r in memory.engine_rows(fundings)}
    assert {(r.table, r.key): r.value for r in rows} == whole


def test_the_rows_restore_the_engine_the_deposits_leave() -> None:
    fundings = [memory.funding(i) for i in range(3)]
    restored = Engine()
    for r in memory.engine_rows(fundings, batch_accounts=2):
        restored.restore_row(r.table, r.key.decode(), r.value)
    applied = Engine()
    batch = Batch(applied, memory.rules(), memory.FUND_CLOCK_S)
    for i, (topic, key, value) in enumerate(d for f in fundings for d in memory.deposits(f)):
        batch.record(topic, 0, i, key, value, memory.FUND_CLOCK_S)
    batch.finish()

    assert restored.accounts == applied.accounts
    assert (
        restored.applied == applied.applied == {i for f in fundings for i in memory.command_ids(f)}
    )
    assert restored.inflow == applied.inflow
    state = AccountState.from_bytes(restored.accounts["acct-00000001"])
    assert state == AccountState(
        seq=2,
        balances={"JPYC": [memory.CASH_UNITS, 0], memory.BOND_ISIN: [memory.BOND_FACE, 0]},
        hash=state.hash,
    )
    assert len(state.hash) == 64


def test_the_deposits_are_valid_records_and_the_ids_match_them() -> None:
    f = memory.funding(5)
    (cash_topic, cash_key, cash_raw), (bond_topic, bond_key, bond_raw) = memory.deposits(f)
    cash, bonds = decode(PAYMENTS, cash_raw), decode(CUSTODY, bond_raw)

    assert (cash_topic, bond_topic) == (PAYMENTS, CUSTODY)
    assert cash_key == bond_key == f.account.encode()
    assert isinstance(cash, MoveCash) and isinstance(bonds, MoveBonds)
    assert memory.command_ids(f) == (f"payment:{cash.payment_id}", f"custody:{bonds.movement_id}")
    assert (cash.token, cash.kind, bonds.isin, bonds.kind) == (
        "JPYC",
        "deposit",
        memory.BOND_ISIN,
        "deposit",
    )
    assert to_units(cash.amount, memory.TOKENS[cash.token]) == memory.CASH_UNITS
    assert bonds.quantity == memory.BOND_FACE


def test_finished_rows_restore_as_settled_trades_inside_the_window_oldest_first() -> None:
    """The rebuild bench's finished trades: the engine's own row of a settled trade, each
    with its id and times, read back as finished (not open) and leaving in order."""
    from kessai_bench.memory.records import finished_rows

    from streams.engine.core import trade_time_of
    from streams.topics import ENGINE_TRADES

    rows = list(finished_rows(5, newest_s=1_800_000_000.0, span_s=500.0))
    engine = Engine()
    for row in rows:
        assert row.table == ENGINE_TRADES
        engine.restore_row(row.table, row.key.decode(), row.value)
    engine.restored()
    assert not engine.open and list(engine.finished) == [f"done-{i:08d}" for i in range(5)]
    for i, row in enumerate(rows):
        outcome = orjson.loads(row.value)
        assert outcome["stage"] == "settled" and outcome["trade"]["trade_id"] == row.key.decode()
        assert trade_time_of(row.value) == 1_800_000_000.0 - 500.0 + 100.0 * i
        assert outcome["trade"]["deadline_at_s"] > outcome["trade"]["trade_time_s"]
    assert [tid for _, tid in sorted(engine.leaving)] == list(engine.finished)


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


def test_milestones_are_recognised_in_the_workers_log_lines() -> None:
    prefix = "[2026-11-25 20:21:57,732] [19237] [INFO] "
    takeover = prefix + "engine: this worker holds the inputs; taking over"
    restored = prefix + "engine: restored 300004 rows in 4.27 s (100000 accounts, 0 open trades)"
    nothing = prefix + "engine: restored 0 rows in 0.05 s (0 accounts, 0 open trades, batch 0)"

    assert memory.milestone(prefix + "[^Worker]: Worker ready ") == "ready"
    assert memory.milestone(takeover) == "takeover"
    assert memory.milestone(restored) == memory.milestone(nothing) == "restored"
    assert memory.milestone(prefix + "[^Worker]: Starting...") is None
    assert memory.restored(restored) == (300_004, 4.27)
    assert memory.restored(nothing) == (0, 0.05)
    assert memory.restored(takeover) is None


def test_proc_status_reads_this_processes_memory() -> None:
    kib = memory.proc_status_kib(os.getpid())
    assert 0 < kib["VmRSS"] <= kib["VmHWM"]
    assert 0 < kib["RssAnon"] <= kib["VmRSS"]
    assert memory.proc_status_kib(2**22 + 1) == {}  # no such process


# --------------------------------------------------------------------- figures


def test_restore_figures_from_milestones_and_the_restore_line() -> None:
    done = memory.restore_figures(
        {"ready": 3.004, "takeover": 6.0, "restored": 46.0, "leading": 46.3},
        (400_000, 40.0),
    )
    assert done == {
        "start_to_ready_s": 3.0,
        "start_to_takeover_s": 6.0,
        "start_to_leading_s": 46.3,
        "restore_rows": 400_000,
        "restore_s": 40.0,
        "restore_rows_per_s": 10_000,
    }
    # Nothing to restore: no rate.
    empty = memory.restore_figures({"ready": 5.0, "leading": 5.5}, (0, 0.13))
    assert empty["restore_s"] == 0.13 and empty["restore_rows_per_s"] is None
    # Given up on before the engine restored.
    stuck = memory.restore_figures({"takeover": 10.0}, None)
    assert stuck["restore_s"] is None and stuck["start_to_leading_s"] is None
    assert stuck["start_to_takeover_s"] == 10.0


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


def test_the_profile_splits_the_engines_state_into_parts() -> None:
    prof = memory.profile_tables(2_000, partitions=4)
    parts = prof["parts_bytes_per_account"]

    assert prof["key_chars"] == {"account": 13, "command_id": 21}
    assert all(v > 0 for v in parts.values()), parts
    assert prof["tables_bytes_per_account"] == pytest.approx(sum(parts.values()), abs=1)
    # The parts are the engine's state: its keys, rows and containers, no more.
    assert prof["engine_bytes_per_account"] == pytest.approx(
        prof["tables_bytes_per_account"], rel=0.05
    )
    # Two applied ids per account, one account key: the ids weigh about twice as much.
    assert 1.5 < parts["applied: ids (str)"] / parts["accounts: keys (str)"] < 3
    # Right-sized rows: about their length each, not orjson's ~4 KiB buffer.
    row = parts["accounts: rows (JSON bytes)"]
    assert prof["value_bytes"]["accounts"] < row < prof["value_bytes"]["accounts"] + 64


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
        "changelog_records": 300_100,
        "changelog_bytes_on_disk_at_start": 28_445_025,
        "rss_kib": 230_000,
        "rss_anon_kib": 210_000,
        "peak_rss_kib": 260_000,
        "bytes_per_account": bytes_per_account,
        "marginal_bytes_per_account": 1_184,
        "start_to_leading_s": 49.2,
        "restore_s": 45.7,
        "restore_rows_per_s": 6_567,
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
    row = (
        "| 100,000 | 300,100 | 27 | 224.6 | 205.1 | 253.9 | 1,670 | 1,184 | 49.2 | 45.70 | 6,567 |"
    )
    assert row in over
    assert "**over**" in over
    assert "**under**" in memory.markdown(_doc(900))

    doc = _doc(900)
    doc["profile"] = memory.profile_tables(500, partitions=4)
    with_profile = memory.markdown(doc)
    assert "| applied: ids (str) |" in with_profile
    assert "| all parts |" in with_profile

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
