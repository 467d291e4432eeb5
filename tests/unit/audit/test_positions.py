"""Positions rebuilt from the ledger journal: the fold, its checks, filters, rendering.

No broker: the CLI tests hand `kessai positions` records through a fake reader.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from schemas import LEDGER_EVENTS, BalanceChanged, SchemaError, decode, encode
from streams import cli
from streams.audit import journal as audit_journal
from streams.audit.positions import (
    JournalError,
    Position,
    decode_records,
    positions_from_events,
    render_csv,
    render_json,
    render_table,
    select,
)
from streams.config import Settings
from streams.kafka.reader import Cut
from tests.support.journal import chained, change

BOND_A = "JP1103551Q43"
BOND_B = "JP1201551P12"


#: Two accounts interleaved, as they come off different partitions; locks move
#: available to locked and back.
JOURNAL = chained([
    change("acct-alice", 1, "JPYC", "1000", "0", "1000", "0"),
    change("acct-bob", 1, "USDC", "2.5", "0", "2.5", "0"),
    change("acct-alice", 2, BOND_A, "5000000", "0", "5000000", "0"),
    change("acct-bob", 2, "USDC", "-1.5", "1.5", "1.0", "1.5"),
    change("acct-alice", 3, "JPYC", "-300", "300", "700", "300"),
    change("acct-bob", 3, BOND_B, "100000", "0", "100000", "0"),
    change("acct-alice", 4, "USDC", "10.25", "0", "10.25", "0"),
    change("acct-bob", 4, BOND_B, "-50000", "50000", "50000", "50000"),
    change("acct-alice", 5, "JPYC", "100", "-100", "800", "200"),  # part of a lock voided
    change("acct-alice", 6, "JPYC", "0", "-200", "800", "0"),  # the rest posted away
])  # fmt: skip


def pos(account: str, asset: str, available: str, locked: str, seq: int) -> Position:
    return Position(
        account=account,
        asset=asset,
        available=Decimal(available),
        locked=Decimal(locked),
        seq=seq,
    )


EXPECTED = {
    ("acct-alice", "JPYC"): pos("acct-alice", "JPYC", "800", "0", 6),
    ("acct-alice", BOND_A): pos("acct-alice", BOND_A, "5000000", "0", 2),
    ("acct-alice", "USDC"): pos("acct-alice", "USDC", "10.25", "0", 4),
    ("acct-bob", "USDC"): pos("acct-bob", "USDC", "1.0", "1.5", 2),
    ("acct-bob", BOND_B): pos("acct-bob", BOND_B, "50000", "50000", 4),
}


# ------------------------------------------------------------------------------ fold


def test_the_fold_keeps_each_account_and_assets_last_state() -> None:
    assert positions_from_events(JOURNAL) == EXPECTED


def test_an_empty_journal_has_no_positions() -> None:
    assert positions_from_events([]) == {}


def test_a_balance_back_to_zero_is_still_a_position() -> None:
    journal = [
        change("a", 1, "JPYC", "5", "0", "5", "0"),
        change("a", 2, "JPYC", "-5", "0", "0", "0"),
    ]

    assert positions_from_events(journal) == {("a", "JPYC"): pos("a", "JPYC", "0", "0", 2)}


@pytest.mark.parametrize(
    ("seqs", "bad_seq", "expected_seq"),
    [
        ([2], 2, 1),  # does not start at 1
        ([1, 3], 3, 2),  # a gap
        ([1, 2, 2], 2, 3),  # a repeat
        ([1, 3, 2], 3, 2),  # out of order
    ],
)
def test_an_account_seq_that_is_not_gap_free_from_1_is_a_journal_error(
    seqs: list[int], bad_seq: int, expected_seq: int
) -> None:
    # Each record is a deposit of 1 on top of the one before it, so only seq is wrong.
    journal = [
        change("acct-alice", seq, "JPYC", "1", "0", str(n), "0") for n, seq in enumerate(seqs, 1)
    ]
    # Another account's records in between do not count towards alice's sequence.
    journal.insert(1, change("acct-bob", 1, "JPYC", "1", "0", "1", "0"))

    with pytest.raises(JournalError) as caught:
        positions_from_events(journal)

    assert (caught.value.account, caught.value.seq) == ("acct-alice", bad_seq)
    assert f"expected seq {expected_seq} next, got {bad_seq}" in caught.value.detail


def test_seq_counts_per_account_across_assets() -> None:
    journal = [
        change("a", 1, "JPYC", "1", "0", "1", "0"),
        change("a", 2, "USDC", "1", "0", "1", "0"),
        change("a", 2, "JPYC", "1", "0", "2", "0"),  # JPYC's 2nd record, but a's 3rd
    ]

    with pytest.raises(JournalError, match="expected seq 3 next, got 2"):
        positions_from_events(journal)


@pytest.mark.parametrize(
    ("bad", "detail"),
    [
        # available: 1000 - 300 is 700, not 600
        (
            change("acct-alice", 2, "JPYC", "-300", "300", "600", "300"),
            "JPYC available: 1000 + -300 is not 600",
        ),
        # locked: 0 + 300 is 300, not 400
        (
            change("acct-alice", 2, "JPYC", "-300", "300", "700", "400"),
            "JPYC locked: 0 + 300 is not 400",
        ),
        # an asset's first record starts from zero: 0 + 5 is not 7
        (
            change("acct-alice", 2, "USDC", "5", "0", "7", "0"),
            "USDC available: 0 + 5 is not 7",
        ),
    ],
)
def test_a_balance_that_is_not_previous_plus_delta_is_a_journal_error(
    bad: BalanceChanged, detail: str
) -> None:
    journal = [change("acct-alice", 1, "JPYC", "1000", "0", "1000", "0"), bad]

    with pytest.raises(JournalError) as caught:
        positions_from_events(journal)

    assert (caught.value.account, caught.value.seq) == ("acct-alice", 2)
    assert detail in caught.value.detail
    assert str(caught.value).startswith(
        "ledger journal is inconsistent at account 'acct-alice' seq 2: "
    )


#: 49 significant digits: Decimal's default context (28 digits) rounds any sum with it.
BIG = "1000000000000000000000000000000.000000000000000001"
BIG_PLUS_1 = "1000000000000000000000000000001.000000000000000001"


def test_sums_are_exact_beyond_decimals_default_28_digits() -> None:
    journal = [
        change("a", 1, "JPYC", BIG, "0", BIG, "0"),
        change("a", 2, "JPYC", "1", "0", BIG_PLUS_1, "0"),
    ]

    # Rounded, 0 + BIG would be 1.000...E+30, not BIG: a false alarm at seq 1.
    assert positions_from_events(journal)[("a", "JPYC")].available == Decimal(BIG_PLUS_1)


def test_a_wrong_sum_is_caught_even_where_rounding_would_hide_it() -> None:
    journal = [
        change("a", 1, "JPYC", BIG, "0", BIG, "0"),
        # Rounded to 28 digits, BIG + 1 is 1.000...E+30, which "equals" 10**30.
        change("a", 2, "JPYC", "1", "0", str(10**30), "0"),
    ]

    with pytest.raises(JournalError) as caught:
        positions_from_events(journal)

    assert caught.value.seq == 2
    assert f"JPYC available: {BIG} + 1 is not {10**30}" in caught.value.detail


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def records_of(journal: Sequence[BalanceChanged], topic: str = "ledger-events") -> list[FakeRecord]:
    return [
        FakeRecord(topic, 0, offset, e.account.encode(), encode(e))
        for offset, e in enumerate(journal)
    ]


def test_records_decode_to_the_events_they_carry() -> None:
    assert list(decode_records(records_of(JOURNAL))) == JOURNAL


def schema_error(raw: bytes) -> SchemaError:
    """What the codec says of *raw* (its reason codes are the codec's business)."""
    with pytest.raises(SchemaError) as caught:
        decode(LEDGER_EVENTS, raw)
    return caught.value


@pytest.mark.parametrize("value", [b"{not json", b'{"account": "acct-alice"}', b"[]"])
def test_a_record_that_does_not_decode_is_a_journal_error_naming_where_it_is(
    value: bytes,
) -> None:
    good = records_of(JOURNAL[:1])
    bad = FakeRecord("ledger-events", 2, 7, b"acct-alice", value)

    with pytest.raises(JournalError) as caught:
        list(decode_records([*good, bad]))

    assert caught.value.detail == (
        f"ledger-events[2]@7 (key 'acct-alice'): does not decode: {schema_error(value)}"
    )
    assert (caught.value.account, caught.value.seq) == (None, None)


def test_a_tombstone_on_the_journal_is_a_journal_error() -> None:
    with pytest.raises(JournalError) as caught:
        list(decode_records([FakeRecord("ledger-events", 0, 3, None, None)]))

    assert caught.value.detail == "ledger-events[0]@3: no value (a tombstone)"


# -------------------------------------------------------------------- filters, output


def test_select_filters_by_account_and_asset_and_sorts() -> None:
    everything = EXPECTED.values()

    assert select(everything) == [
        EXPECTED["acct-alice", BOND_A],
        EXPECTED["acct-alice", "JPYC"],
        EXPECTED["acct-alice", "USDC"],
        EXPECTED["acct-bob", BOND_B],
        EXPECTED["acct-bob", "USDC"],
    ]
    assert select(everything, account="acct-bob") == [
        EXPECTED["acct-bob", BOND_B],
        EXPECTED["acct-bob", "USDC"],
    ]
    assert select(everything, asset="USDC") == [
        EXPECTED["acct-alice", "USDC"],
        EXPECTED["acct-bob", "USDC"],
    ]
    assert select(everything, account="acct-bob", asset="USDC") == [EXPECTED["acct-bob", "USDC"]]
    assert select(everything, account="acct-nobody") == []


def test_json_is_a_sorted_list_with_decimal_strings() -> None:
    # Given in reverse: the output is sorted by account, then asset, whatever the input.
    text = render_json(reversed(list(EXPECTED.values())))

    assert text == (
        "[\n"
        '  {\n    "account": "acct-alice",\n    "asset": "JP1103551Q43",\n'
        '    "available": "5000000",\n    "locked": "0"\n  },\n'
        '  {\n    "account": "acct-alice",\n    "asset": "JPYC",\n'
        '    "available": "800",\n    "locked": "0"\n  },\n'
        '  {\n    "account": "acct-alice",\n    "asset": "USDC",\n'
        '    "available": "10.25",\n    "locked": "0"\n  },\n'
        '  {\n    "account": "acct-bob",\n    "asset": "JP1201551P12",\n'
        '    "available": "50000",\n    "locked": "50000"\n  },\n'
        '  {\n    "account": "acct-bob",\n    "asset": "USDC",\n'
        '    "available": "1.0",\n    "locked": "1.5"\n  }\n'
        "]\n"
    )
    assert json.loads(text)[4] == {
        "account": "acct-bob",
        "asset": "USDC",
        "available": "1.0",
        "locked": "1.5",
    }


def test_json_of_nothing_is_an_empty_list() -> None:
    assert render_json([]) == "[]\n"


def test_csv_has_a_header_and_one_sorted_row_per_position() -> None:
    assert render_csv(reversed(list(EXPECTED.values()))) == (
        "account,asset,available,locked\n"
        "acct-alice,JP1103551Q43,5000000,0\n"
        "acct-alice,JPYC,800,0\n"
        "acct-alice,USDC,10.25,0\n"
        "acct-bob,JP1201551P12,50000,50000\n"
        "acct-bob,USDC,1.0,1.5\n"
    )
    assert render_csv([]) == "account,asset,available,locked\n"


def test_amounts_never_use_exponent_notation() -> None:
    tiny = pos("a", "USDC", "1E-6", "1E+3", 1)

    assert render_csv([tiny]).splitlines()[1] == "a,USDC,0.000001,1000"


def test_the_table_aligns_names_left_and_amounts_right() -> None:
    assert render_table(EXPECTED.values()) == (
        "account     asset         available  locked\n"
        "acct-alice  JP1103551Q43    5000000       0\n"
        "acct-alice  JPYC                800       0\n"
        "acct-alice  USDC              10.25       0\n"
        "acct-bob    JP1201551P12      50000   50000\n"
        "acct-bob    USDC                1.0     1.5\n"
    )


# ----------------------------------------------------------------- the CLI, no broker


@dataclass
class FakeTopic:
    """Stands in for the broker: `kessai positions` reads ``records`` from it."""

    records: list[FakeRecord]
    names_read: list[str]


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeTopic:
    # A leak to a real broker would fail at once: nothing listens on port 1.
    monkeypatch.setenv("KESSAI_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("KESSAI_STATE_DIR", str(tmp_path / "state"))
    fake = FakeTopic(records=[], names_read=[])

    async def cuts_for(
        settings: Settings, name: str, as_of: object = None, **_: object
    ) -> list[Cut]:
        assert settings.bootstrap == "127.0.0.1:1"
        fake.names_read.append(name)
        partitions = sorted({r.partition for r in fake.records})
        return [Cut(p, 0, 1 + max(r.offset for r in fake.records)) for p in partitions]

    async def read_batches(
        settings: Settings, name: str, cuts: list[Cut], **_: object
    ) -> AsyncIterator[tuple[int, list[FakeRecord]]]:
        for cut in cuts:
            yield cut.partition, [r for r in fake.records if r.partition == cut.partition]

    monkeypatch.setattr(audit_journal, "cuts_for", cuts_for)
    monkeypatch.setattr(audit_journal, "read_batches", read_batches)
    return fake


def test_the_command_prints_the_table_by_default(
    topic: FakeTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    topic.records = records_of(JOURNAL)

    assert cli.main(["positions"]) == 0

    out, err = capsys.readouterr()
    assert out == render_table(EXPECTED.values())
    assert "ledger-events as of the head of the log: 10 records, 2 accounts" in err
    assert topic.names_read == ["ledger-events"]


def test_the_command_filters_and_formats(
    topic: FakeTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    topic.records = records_of(JOURNAL)

    argv = ["positions", "--account", "acct-bob", "--asset", "USDC", "--format", "csv"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == "account,asset,available,locked\nacct-bob,USDC,1.0,1.5\n"


def test_an_inconsistent_journal_exits_1_naming_the_record(
    topic: FakeTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    gap = chained([*JOURNAL, change("acct-bob", 6, "USDC", "1", "0", "2.0", "1.5")])[-1]
    topic.records = records_of([*JOURNAL, gap])

    # Filtered to another account: a broken journal is still reported, never hidden.
    assert cli.main(["positions", "--account", "acct-alice"]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert "kessai: error: ledger journal is inconsistent, no position shown" in err
    assert (
        "  gap at partition 0 offset 10 (account 'acct-bob' seq 6): expected seq 5 next, got 6\n"
        in err
    )


def test_an_undecodable_record_exits_1_with_its_partition_and_offset(
    topic: FakeTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    topic.records = [FakeRecord("ledger-events", 3, 41, None, b"[]")]

    assert cli.main(["positions", "--format", "json"]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert "  undecodable at partition 3 offset 41: '[]'" in err


def test_an_empty_topic_prints_no_positions_and_a_note(
    topic: FakeTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["positions", "--format", "json", "--topic-name", "t-nothing"]) == 0

    out, err = capsys.readouterr()
    assert out == "[]\n"
    assert "no committed records on topic 't-nothing'" in err
    assert topic.names_read == ["t-nothing"]


@pytest.mark.parametrize("argv", [["--format", "xml"], ["--bogus"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["positions", *argv]) == 2

    assert "usage: kessai" in capsys.readouterr().err


def test_a_gap_after_a_long_unchained_history_still_stops_positions(
    topic: FakeTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    # 1,001 version-1 records (each an `unchained` problem: more than the fold keeps),
    # then a record that skips seq: the gap must still refuse every position.
    def v1(seq: int, available: int) -> bytes:
        return orjson.dumps({"account": "old", "asset": "JPYC", "delta_available": "1",
            "delta_locked": "0", "available": str(available), "locked": "0",
            "cause": f"c{seq}", "seq": seq})  # fmt: skip

    values = [v1(n, n) for n in range(1, 1002)] + [v1(1500, 999_999)]
    topic.records = [FakeRecord("ledger-events", 0, i, b"old", v) for i, v in enumerate(values)]

    assert cli.main(["positions"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "ledger journal is inconsistent, no position shown (2 problems" in err
    assert "gap at partition 0 offset 1001 (account 'old' seq 1500)" in err
