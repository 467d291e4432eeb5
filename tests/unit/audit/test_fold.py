"""The auditors' fold of the journal: positions, roots, and every kind of tampering."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kessai_bench.replay import journal as bench_journal

from streams.audit.fold import JournalFold
from streams.audit.positions import decode_records, positions_from_events
from streams.kafka.reader import AsOfError, parse_as_of
from streams.ledger import journal
from streams.runtime.batches import partition_of

PARTITIONS = 4


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def partitioned(records: list[dict[str, Any]]) -> dict[int, list[Rec]]:
    """The records as the topic would hold them: by the account's partition, in order."""
    out: dict[int, list[Rec]] = {p: [] for p in range(PARTITIONS)}
    for record in records:
        p = partition_of(record["account"].encode(), PARTITIONS)
        out[p].append(Rec("ledger-events", p, len(out[p]), record["account"].encode(),
                          orjson.dumps(record)))  # fmt: skip
    return out


def fold(by_partition: dict[int, list[Rec]], *, hashes: bool = True) -> JournalFold:
    f = JournalFold(hashes=hashes)
    for p, recs in by_partition.items():
        f.feed(p, recs)
    return f


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 600), st.integers(1, 25), st.integers(0, 2**32))
def test_the_fold_agrees_with_the_pydantic_reference_and_finds_nothing(
    n: int, accounts: int, seed: int
) -> None:
    records = list(bench_journal(n, accounts, seed=seed))
    by_partition = partitioned(records)
    f = fold(by_partition)

    assert f.problems == [] and f.problems_total == 0 and f.records == n
    every = [r for recs in by_partition.values() for r in recs]
    assert f.positions() == positions_from_events(decode_records(every))
    tips: dict[str, str] = {}
    for record in records:
        tips[record["account"]] = record["hash"]
    assert f.roots() == tips


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 300), st.integers(1, 10), st.integers(0, 2**32))
def test_folding_partitions_apart_and_merging_gives_the_same(
    n: int, accounts: int, seed: int
) -> None:
    by_partition = partitioned(list(bench_journal(n, accounts, seed=seed)))
    whole = fold(by_partition)
    merged = JournalFold(hashes=True)
    for p, recs in by_partition.items():
        part = JournalFold(hashes=True)
        part.feed(p, recs)
        merged.merge(part)
    assert merged.positions() == whole.positions()
    assert merged.journal_root() == whole.journal_root()
    assert merged.records == whole.records


# ---------------------------------------------------------------------- tampering


def journal_of_one_account(n: int = 8) -> list[dict[str, Any]]:
    records = [r for r in bench_journal(4_000, 3, seed=1) if r["account"] == "acct-0000001"]
    assert len(records) >= n
    return records[:n]


def kinds(f: JournalFold) -> list[tuple[str, int | None]]:
    return [(p.kind, p.seq) for p in f.problems]


def feed_one(records: list[dict[str, Any]], *, hashes: bool = True) -> JournalFold:
    f = JournalFold(hashes=hashes)
    f.feed(
        0, [Rec("t", 0, i, r["account"].encode(), orjson.dumps(r)) for i, r in enumerate(records)]
    )
    return f


def test_an_altered_amount_is_caught_by_its_hash_and_its_balance() -> None:
    records = journal_of_one_account()
    forged = {**records[3], "available": str(int(records[3]["available"]) + 1_000_000)}
    f = feed_one([*records[:3], forged, *records[4:]])
    # Its own hash no longer matches; and the next record no longer adds up.
    assert ("altered", 4) in kinds(f)
    assert ("bad_balance", 4) in kinds(f)
    assert f.problems[0].offset == 3


def test_an_altered_record_rehashed_breaks_the_next_link() -> None:
    records = journal_of_one_account()
    forged = {**records[3], "cause": "someone-else"}
    forged["hash"] = journal.record_hash(forged)
    f = feed_one([*records[:3], forged, *records[4:]])
    assert kinds(f) == [("broken_link", 5)]


def test_a_journal_rewritten_whole_verifies_but_its_root_changes() -> None:
    # What a chain cannot stop, and why roots are published: a forger who rewrites
    # every later record gets a consistent journal with another root.
    records = journal_of_one_account()
    forged = journal.rechain([*records[:3], {**records[3], "cause": "someone-else"}, *records[4:]])
    assert feed_one(forged).problems == []
    assert feed_one(forged).journal_root() != feed_one(records).journal_root()


def test_a_removed_record_is_a_gap_and_a_broken_link() -> None:
    records = journal_of_one_account()
    f = feed_one([*records[:3], *records[4:]])
    assert kinds(f)[:2] == [("gap", 5), ("broken_link", 5)]


def test_two_swapped_records_are_out_of_order() -> None:
    records = journal_of_one_account()
    swapped = [*records[:3], records[4], records[3], *records[5:]]
    assert {k for k, _ in kinds(feed_one(swapped))} >= {"gap", "out_of_order", "broken_link"}


def test_a_repeated_record_is_out_of_order() -> None:
    records = journal_of_one_account()
    assert ("out_of_order", 3) in kinds(feed_one([*records[:3], records[2], *records[3:]]))


def test_without_hashes_the_fold_does_not_see_an_alteration_that_adds_up() -> None:
    # kessai positions folds without recomputing hashes (kessai verify does): a
    # changed cause leaves every sum right.
    records = journal_of_one_account()
    forged = {**records[3], "cause": "someone-else"}
    assert feed_one([*records[:3], forged, *records[4:]], hashes=False).problems == []
    assert kinds(feed_one([*records[:3], forged, *records[4:]])) == [("altered", 4)]


def test_a_version_1_record_is_unchained() -> None:
    records = journal_of_one_account(2)
    old = {k: v for k, v in records[0].items() if k not in ("prev_hash", "hash", "schema_version")}
    assert kinds(feed_one([old])) == [("unchained", 1)]


@pytest.mark.parametrize(
    "value",
    [None, b"{not json", b"[]", b'{"account":"a"}', b'{"account":1,"asset":"JPYC","seq":1,'
     b'"delta_available":"1","delta_locked":"0","available":"1","locked":"0"}'],
)  # fmt: skip
def test_an_undecodable_record_is_reported_and_the_fold_goes_on(value: bytes | None) -> None:
    records = journal_of_one_account(2)
    f = JournalFold(hashes=True)
    f.feed(
        2, [Rec("t", 2, 0, b"x", value), Rec("t", 2, 1, b"acct-0000001", orjson.dumps(records[0]))]
    )
    assert [(p.kind, p.partition, p.offset) for p in f.problems] == [("undecodable", 2, 0)]
    assert f.records == 2 and f.seqs() == {"acct-0000001": 1}


def test_a_record_under_another_key_is_wrong_key() -> None:
    records = journal_of_one_account(1)
    f = JournalFold()
    f.feed(0, [Rec("t", 0, 0, b"someone", orjson.dumps(records[0]))])
    assert kinds(f) == [("wrong_key", 1)]


def test_problems_are_capped_but_all_counted() -> None:
    records = journal_of_one_account(1)
    f = JournalFold(problems_max=3)
    f.feed(0, [Rec("t", 0, i, b"x", b"[]") for i in range(10)])
    f.feed(0, [Rec("t", 0, 10, b"acct-0000001", orjson.dumps(records[0]))])
    assert len(f.problems) == 3 and f.problems_total == 10


def test_random_single_tampering_is_always_found() -> None:
    rng = random.Random(5)
    base = list(bench_journal(3_000, 20, seed=3))
    clean = fold(partitioned(base)).journal_root()
    for _ in range(60):
        records = [dict(r) for r in base]
        i = rng.randrange(len(records))
        later = [k for k in range(i + 1, len(records))
                 if records[k]["account"] == records[i]["account"]]  # fmt: skip
        what = rng.choice(["alter", "remove", "swap"])
        if what == "alter":
            field = rng.choice(["available", "locked", "delta_available", "delta_locked", "cause"])
            records[i][field] = "1" + str(records[i][field])
        elif what == "remove":
            del records[i]
        elif later:
            records[i], records[later[0]] = records[later[0]], records[i]
        else:
            continue
        f = fold(partitioned(records))
        if what == "remove" and not later:
            # An account's last record removed leaves a shorter, whole chain: only its
            # root (and so the journal root) tells, which is why roots are published.
            assert f.problems_total == 0 and f.journal_root() != clean
        else:
            assert f.problems_total > 0, (what, i)


# ----------------------------------------------------------------------- --as-of


def test_as_of_a_time_needs_a_zone_and_keeps_milliseconds() -> None:
    utc_18h = int(datetime(2026, 11, 27, 18, tzinfo=UTC).timestamp()) * 1000
    assert parse_as_of("2026-11-28T03:00:00+09:00").timestamp_ms == utc_18h
    assert parse_as_of("2026-11-27T18:00:00.001Z").timestamp_ms == utc_18h + 1
    assert parse_as_of("2026-11-27T18:00:00.0019z").timestamp_ms == utc_18h + 1
    with pytest.raises(AsOfError, match="no time zone"):
        parse_as_of("2026-11-28T03:00:00")
    with pytest.raises(AsOfError, match="neither an ISO-8601 time"):
        parse_as_of("yesterday")


def test_as_of_offsets() -> None:
    assert parse_as_of("1500").offsets == {-1: 1500}
    assert parse_as_of("0:10,3:20").offsets == {0: 10, 3: 20}
    with pytest.raises(AsOfError, match="given twice"):
        parse_as_of("0:10,0:20")


# ------------------------------------------------- what a forger can craft (review)


def _one(record: dict[str, Any] | bytes, *, key: bytes | None = b"acct-0000001") -> JournalFold:
    value = record if isinstance(record, bytes) else orjson.dumps(record)
    f = JournalFold(hashes=True)
    f.feed(0, [Rec("t", 0, 0, key, value)])
    return f


@pytest.mark.parametrize(
    "change",
    [
        {"schema_version": "2"},
        {"schema_version": None},
        {"schema_version": [2]},
        {"schema_version": 3},
        {"hash": "xyz"},
        {"prev_hash": 5},
        {"cause": 7},
        {"extra": "member"},
        {"available": " 5"},
        {"available": "5_0"},
        {"available": "5e3"},
        {"available": "Infinity"},
        {"available": "NaN"},
        {"available": "٥٠"},
        {"available": "007"},
        {"available": "+5"},
        {"available": 5},
        {"seq": "1"},
    ],
)
def test_a_crafted_record_is_undecodable_and_nothing_raises(change: dict[str, Any]) -> None:
    record = {**journal_of_one_account(1)[0], **change}
    f = _one(record)
    assert [p.kind for p in f.problems] == ["undecodable"], f.problems
    assert len(f.journal_root()) == 64  # the roots still compute


def test_hashes_of_the_right_length_but_not_hex_are_reported_not_raised() -> None:
    record = {**journal_of_one_account(1)[0], "prev_hash": "z" * 64}
    assert kinds(_one(record)) == [("broken_link", 1), ("altered", 1)]
    f = _one({**journal_of_one_account(1)[0], "hash": "A" * 64})
    assert kinds(f) == [("altered", 1)]
    assert len(f.journal_root()) == 64  # the root uses what the hash should have been


def test_a_chained_record_without_its_hash_or_cause_is_undecodable() -> None:
    for member in ("hash", "prev_hash", "cause", "seq"):
        record = {k: v for k, v in journal_of_one_account(1)[0].items() if k != member}
        f = _one(record)
        assert [p.kind for p in f.problems] == ["undecodable"], member
        assert f"missing ['{member}']" in f.problems[0].detail


def test_an_account_on_two_partitions_or_without_a_key_is_wrong_key() -> None:
    records = journal_of_one_account(2)
    f = JournalFold()
    f.feed(0, [Rec("t", 0, 0, b"acct-0000001", orjson.dumps(records[0]))])
    f.feed(1, [Rec("t", 1, 0, b"acct-0000001", orjson.dumps(records[1]))])
    assert kinds(f) == [("wrong_key", 2)]
    assert kinds(_one(records[0], key=None)) == [("wrong_key", 1)]


def test_every_problem_is_counted_by_kind_beyond_the_ones_kept() -> None:
    records = journal_of_one_account(1)
    f = JournalFold(problems_max=2)
    f.feed(0, [Rec("t", 0, i, b"x", b"[]") for i in range(5)])
    gap = {**records[0], "seq": 9}
    f.feed(0, [Rec("t", 0, 5, b"acct-0000001", orjson.dumps(gap))])
    # Two of each kind are kept: the one gap is not crowded out by the undecodables.
    assert [p.kind for p in f.problems] == ["undecodable", "undecodable", "gap"]
    assert f.kinds["undecodable"] == 5 and f.kinds["gap"] == 1


def test_as_of_offsets_that_mix_forms_or_times_before_1970_are_refused() -> None:
    with pytest.raises(AsOfError):
        parse_as_of("1500,3:20")
    with pytest.raises(AsOfError, match="before 1970"):
        parse_as_of("1969-12-31T23:59:59Z")
