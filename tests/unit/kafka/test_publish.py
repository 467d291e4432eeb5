"""streams.kafka.publish without a broker: line validation, numbering, canonical output."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from schemas import PAYMENTS, TRADES, decode
from streams.kafka.publish import LineError, PublishError, validate_lines
from tests.support.paths import EXAMPLES


def _lines(name: str) -> list[bytes]:
    return (EXAMPLES / name).read_bytes().splitlines(keepends=True)


def test_bad_payments_names_every_bad_line_with_its_reason() -> None:
    valid, errors = validate_lines(PAYMENTS, _lines("bad-payments.jsonl"))

    assert [(e.line, e.reason) for e in errors] == [
        (2, "invalid_amount"),  # amount as a JSON number
        (3, "invalid_amount"),  # negative amount
        # line 4 is blank: skipped, but counted
        (5, "schema"),  # kind missing
        (6, "malformed"),  # cut-off JSON
        (7, "schema"),  # unknown field memo
    ]
    assert errors[0].detail.startswith("amount: must be a decimal string > 0, got 1000.5")
    assert errors[1].detail.startswith('amount: must be a decimal string > 0, got "-250"')
    assert errors[2].detail == "kind: required"
    # The position is within the line itself, not "line 2" of a one-line document.
    assert errors[3].detail.endswith("line 1 column 68 (char 67)")
    assert errors[4].detail == "memo: unknown field"
    assert [key for key, _ in valid] == [b"acct-erin", b"acct-frank"]


def test_line_error_formats_as_file_line_reason_detail() -> None:
    error = LineError(line=7, reason="schema", detail="memo: unknown field")

    assert error.format("in.jsonl") == "in.jsonl:7: schema: memo: unknown field"


def test_blank_lines_are_skipped_but_counted() -> None:
    good = b'{"payment_id":"p","account":"a","token":"JPYC","amount":"1","kind":"deposit"}'
    lines = [b"\n", b"   \n", good + b"\n", b"\r\n", b"{\n", b"", b"[1]"]

    valid, errors = validate_lines(PAYMENTS, lines)

    assert len(valid) == 1
    assert [(e.line, e.reason, e.detail) for e in errors] == [
        (5, "malformed", "unexpected end of data: line 1 column 2 (char 1)"),
        (7, "malformed", "want a JSON object, got a JSON array"),
    ]


def test_valid_lines_become_canonical_bytes_keyed_as_kessai_keys_them() -> None:
    # Spaces and key order: the wire gets the codec's form (an absent accrued_interest
    # stays absent: kessai computes it).
    line = (
        b'{ "venue": "v", "trade_id": "t-9", "isin": "JP1103551Q43", "buyer": "a", '
        b'"seller": "b", "quantity": 100000, "price": "99.50", "currency": "JPYC", '
        b'"trade_time": "2026-01-05T00:00:00+00:00" }\r\n'
    )

    [(key, value)], errors = validate_lines(TRADES, [line])

    assert errors == []
    assert key == b"t-9"
    assert value == (
        b'{"schema_version":1,"trade_id":"t-9","venue":"v","isin":"JP1103551Q43",'
        b'"buyer":"a","seller":"b","quantity":100000,"price":"99.50","currency":"JPYC",'
        b'"trade_time":"2026-01-05T00:00:00Z"}'
    )
    assert decode(TRADES, value) == decode(TRADES, line)


@pytest.mark.parametrize(
    ("name", "topic", "count", "key_field"),
    [
        ("payments.jsonl", "payments", 4, "account"),
        ("custody.jsonl", "custody", 2, "account"),
        ("trades.jsonl", "trades", 3, "trade_id"),
    ],
)
def test_examples_are_valid(name: str, topic: str, count: int, key_field: str) -> None:
    # The README publishes these; a schema change that breaks them must fail here.
    valid, errors = validate_lines(topic, _lines(name))

    assert errors == []
    assert len(valid) == count
    for key, value in valid:
        assert key == orjson.loads(value)[key_field].encode()


def test_unknown_topic_is_refused_before_reading_any_line() -> None:
    def never() -> bytes:
        raise AssertionError("read a line")

    with pytest.raises(PublishError, match="no schema for topic 'paymnets'"):
        validate_lines("paymnets", iter(never, None))


def test_too_many_lines_is_an_error_not_a_truncation() -> None:
    lines = [b"\n"] * 4

    assert validate_lines(PAYMENTS, lines, lines_max=4) == ([], [])
    with pytest.raises(PublishError, match="more than 3 lines"):
        validate_lines(PAYMENTS, lines, lines_max=3)


def test_now_stamps_each_trade_time_and_refuses_to_restamp_a_signed_trade() -> None:
    """`kessai publish trades FILE --now`: the examples' fixed times are older than the
    engine's window; a trade signed already would no longer verify."""
    now = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
    valid, errors = validate_lines(TRADES, _lines("trades.jsonl"), now=now)
    assert errors == [] and valid
    assert {orjson.loads(v)["trade_time"] for _, v in valid} == {"2026-12-05T04:00:00Z"}
    signed = orjson.loads(_lines("trades.jsonl")[0]) | {"signer": "v", "signature": "A" * 86}
    [], [error] = validate_lines(TRADES, [orjson.dumps(signed)], now=now)
    assert error.reason == "signed"
