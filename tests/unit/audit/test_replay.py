"""kessai replay's derivation over hand-made logs (the real-broker runs are in
tests/integration/test_audit.py)."""

from __future__ import annotations

import orjson
from aiokafka.structs import ConsumerRecord

from schemas import CUSTODY, ORDERS, PAYMENTS, TRADES
from streams.audit.replay import TOPICS, Log, derive
from streams.config import Settings
from streams.engine.manifest import Manifest, Segment
from streams.engine.service import rules_of
from streams.topics import ENGINE_LOG


def _record(
    topic: str, offset: int, key: bytes | None, value: bytes | None
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, offset, 1_700_000_000_000, 0, key, value, None, 0, 0, ())


def test_a_tombstone_on_every_input_topic_is_a_rejection_not_a_crash() -> None:
    """L8: a null value on an input topic crashed the replay: a denial of service on
    the auditors."""
    logs: dict[str, Log] = {topic: {} for topic in TOPICS}
    for topic in (PAYMENTS, CUSTODY, TRADES, ORDERS):
        logs[topic] = {0: [_record(topic, 5, b"k", None)]}
    batch = Manifest(1, 1_700_000_000.0, rules_of(Settings()).to_json())
    batch.segments = [Segment(t, 0, 5, 6) for t in (PAYMENTS, CUSTODY, TRADES, ORDERS)]
    logs[ENGINE_LOG] = {0: [_record(ENGINE_LOG, 0, None, batch.to_bytes())]}
    derived = derive(logs, Settings())
    assert len(derived.rejections) == 4
    assert sorted(orjson.loads(r)["source_topic"] for r in derived.rejections) == sorted(
        (PAYMENTS, CUSTODY, TRADES, ORDERS)
    )
    assert all(orjson.loads(r)["source_offset"] == 5 for r in derived.rejections)


def test_replay_runs_each_batch_under_the_rules_it_ran_with_not_its_own_settings() -> None:
    """A worker run with KESSAI_SETTLEMENT_DEADLINE_S=20, replayed with the default
    (3,600 s), used to differ on every trade that failed at its deadline: the deadline
    now comes from the engine's log."""
    from streams.engine.core import Rules

    trade = orjson.dumps({"trade_id": "t1", "venue": "v", "isin": "JP1103551Q43",
        "buyer": "b", "seller": "s", "quantity": 100_000, "price": "100",
        "currency": "JPYC", "trade_time": "2023-11-14T22:13:20Z"})  # fmt: skip
    rules = Rules(tokens={"JPYC": 0, "USDC": 6}, deadline_s=20.0).to_json()
    first = Manifest(1, 1_700_000_000.0, rules, [Segment(TRADES, 0, 0, 1)])
    later = Manifest(2, 1_700_000_021.0, rules)  # no input: its clock fails t1
    logs: dict[str, Log] = {topic: {} for topic in TOPICS}
    logs[TRADES] = {0: [_record(TRADES, 0, b"t1", trade)]}
    logs[ENGINE_LOG] = {0: [_record(ENGINE_LOG, 0, None, first.to_bytes()),
                            _record(ENGINE_LOG, 1, None, later.to_bytes())]}  # fmt: skip
    derived = derive(logs, Settings())  # the default deadline: 3,600 s
    assert [(w[1]["status"], w[1]["reason"]) for w in derived.statuses["t1"]] == [
        ("pending", "insufficient_securities"),
        ("failed", "insufficient_securities"),
    ]


def _tiling(committed: list[int], segments: list[tuple[int, int]]) -> list[str]:
    """The tiling check's differences for one trades partition."""
    rules = rules_of(Settings()).to_json()
    logs: dict[str, Log] = {topic: {} for topic in TOPICS}
    logs[TRADES] = {0: [_record(TRADES, o, b"k%d" % o, b"{}") for o in committed]}
    batches = [Manifest(i + 1, 1_700_000_000.0, rules, [Segment(TRADES, 0, start, end)])
               for i, (start, end) in enumerate(segments)]  # fmt: skip
    logs[ENGINE_LOG] = {
        0: [_record(ENGINE_LOG, i, None, b.to_bytes()) for i, b in enumerate(batches)]
    }
    [tiling] = [c for c in derive(logs, Settings()).log_checks if "tile" in c.name]
    assert tiling.compared == len(segments)
    return tiling.examples


def test_a_gap_of_aborted_records_between_two_batches_is_no_gap() -> None:
    """A matcher killed mid-transaction leaves an aborted record and its marker (here
    offsets 1 and 2) that read_committed never shows: the engine's next segment starts
    at 3. The fresh-clone CI of 2026-12-04 reported that as records skipped."""
    assert _tiling(committed=[0, 3], segments=[(0, 1), (3, 4)]) == []


def test_a_committed_record_left_out_between_two_batches_is_reported() -> None:
    assert _tiling(committed=[0, 1, 3], segments=[(0, 1), (3, 4)]) == [
        "trades[0] from 1 to 3 skipped at engine-log[0]@1"
    ]
    assert _tiling(committed=[0, 1, 2], segments=[(0, 2), (1, 3)]) == [
        "trades[0] from 1 to 2 applied twice at engine-log[0]@1"
    ]
    assert _tiling(committed=[0, 1, 2], segments=[(0, 1)]) == [
        "trades[0]: 2 committed record(s) from offset 1 never applied by the engine"
    ]


def test_replay_derives_the_archive_and_a_missing_archived_row_is_a_difference() -> None:
    """Under the window (ADR 0033) the replay lets the same ids leave at the same
    batches, and compares what it derived with the archive topic."""
    from streams.audit.replay import compare
    from streams.engine.core import Rules
    from streams.topics import ENGINE_ARCHIVE

    trade = orjson.dumps({"trade_id": "t1", "venue": "v", "isin": "JP1103551Q43",
        "buyer": "b", "seller": "s", "quantity": 100_000, "price": "100",
        "currency": "JPYC", "trade_time": "2023-11-14T22:13:20Z"})  # fmt: skip
    rules = Rules(tokens={"JPYC": 0, "USDC": 6}, deadline_s=20.0, window_s=30.0).to_json()
    first = Manifest(1, 1_700_000_000.0, rules, [Segment(TRADES, 0, 0, 1)])
    later = Manifest(2, 1_700_000_031.0, rules)  # t1 failed at 20 s, leaves at 30 s
    logs: dict[str, Log] = {topic: {} for topic in TOPICS}
    logs[TRADES] = {0: [_record(TRADES, 0, b"t1", trade)]}
    logs[ENGINE_LOG] = {0: [_record(ENGINE_LOG, 0, None, first.to_bytes()),
                            _record(ENGINE_LOG, 1, None, later.to_bytes())]}  # fmt: skip
    derived = derive(logs, Settings())
    assert list(derived.archive) == ["t1"] and "t1" not in derived.engine.finished
    row = derived.archive["t1"]
    archived = {0: [_record(ENGINE_ARCHIVE, 0, b"t1", row)]}

    def archive_check(tables: dict[str, Log]) -> list[str]:
        checks = compare(derived, logs, tables, tokens={"JPYC": 0, "USDC": 6})
        [check] = [c for c in checks if c.name.startswith("engine archive")]
        assert check.compared == 1
        return check.examples

    base: dict[str, Log] = {name: {} for name in ("engine-accounts", "engine-trades",
        "engine-applied", "engine-inflow", "engine-rates", "orders")}  # fmt: skip
    assert archive_check({**base, ENGINE_ARCHIVE: archived}) == []
    assert archive_check({**base, ENGINE_ARCHIVE: {}}) != []  # the row never archived


def test_replay_derives_the_fx_references_kept_beside_the_security_master() -> None:
    """The engine keeps each token's reference rate in ``engine-instruments`` under
    ``fx:{token}`` (docs/fx.md): the replay derives the same row, and a committed
    table without it is a difference."""
    from schemas import FX_RATES
    from streams.audit.replay import compare
    from streams.engine.core import Batch, Engine, Rules
    from streams.topics import ENGINE_INSTRUMENTS

    rate = orjson.dumps({"currency": "USDC", "rate": "151.234", "source": "fixing",
                         "at": "2023-11-14T22:13:20Z"})  # fmt: skip
    rules = Rules(tokens={"JPYC": 0, "USDC": 6}, deadline_s=20.0).to_json()
    first = Manifest(1, 1_700_000_000.0, rules, [Segment(FX_RATES, 0, 0, 1)])
    logs: dict[str, Log] = {topic: {} for topic in TOPICS}
    logs[FX_RATES] = {0: [_record(FX_RATES, 0, b"USDC", rate)]}
    logs[ENGINE_LOG] = {0: [_record(ENGINE_LOG, 0, None, first.to_bytes())]}
    derived = derive(logs, Settings())
    assert str(derived.engine.fx_rates["USDC"].rate) == "151.234"

    def master_check(rows: list[tuple[bytes, bytes]]) -> list[str]:
        table = {0: [_record(ENGINE_INSTRUMENTS, n, k, v) for n, (k, v) in enumerate(rows)]}
        base: dict[str, Log] = {name: {} for name in ("engine-accounts", "engine-trades",
            "engine-applied", "engine-inflow", "engine-rates", "orders")}  # fmt: skip
        checks = compare(derived, logs, {**base, ENGINE_INSTRUMENTS: table},
                         tokens={"JPYC": 0, "USDC": 6})  # fmt: skip
        [check] = [c for c in checks if c.name.startswith("engine security master")]
        return check.examples

    # What the engine itself committed for the record, its batch's changelog row.
    batch = Batch(Engine(), Rules.from_json(rules), 1_700_000_000.0)
    batch.record(FX_RATES, 0, 0, b"USDC", rate, 1_700_000_000.0)
    [row] = [(k, v) for t, k, v in batch.finish().changelog if t == ENGINE_INSTRUMENTS]
    assert row[0] == b"fx:USDC" and row[1] is not None
    assert master_check([(row[0], row[1])]) == []
    assert master_check([]) != []  # the reference never committed
