"""C1: no record kessai derives from an input can outgrow the producer's request limit.

A 1 MB key on ``trades`` once made a rejection of 1,004,418 bytes, and a valid payment
padded with 600 KB of whitespace a ledger command of 1,200,244 bytes: past the
producer's 1,000,000-byte request limit, the commit failed, and the restarted worker
met the same record again, for ever. Every path that turns an input into a record is
run here with the largest and worst inputs a broker accepts, and each record it writes
must stay under :data:`DERIVED_BYTES_MAX`.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from schemas import (
    CUSTODY,
    KEY_BYTES_MAX,
    ORDERS,
    PAYMENTS,
    TRADES,
    VALUE_BYTES_MAX,
    source_of,
)
from streams.engine.core import Batch, Engine, Rules
from streams.ledger.intake import intake_record as ledger_intake
from streams.ledger.messages import Move
from streams.matching.handler import handle_record
from streams.matching.matcher import Matcher
from streams.runtime.batches import rejection
from tests.support.intake import trade_intake

#: The broker's default largest record (message.max.bytes, 1 MiB + overhead).
BROKER_RECORD_MAX = 1_048_588
#: A derived record's bound: far below the producer's 1,000,000-byte request limit.
DERIVED_BYTES_MAX = 16_384
TOKENS = {"JPYC": 0}


def _hostile() -> Iterator[tuple[str, bytes | None, bytes | None]]:
    """(label, key, value): the largest and oddest records a broker takes."""
    big = BROKER_RECORD_MAX - KEY_BYTES_MAX
    yield "1 MB key, 1-byte value", b"k" * (BROKER_RECORD_MAX - 1), b"{"
    yield "610 KB key, control bytes", b"k" * 610_000, b"\x01" * 65_536
    yield "max key of control bytes", b"\x01" * KEY_BYTES_MAX, b"\x01" * big
    yield "not UTF-8 key and value", b"\xff" * KEY_BYTES_MAX, b"\xfe" * big
    yield "tombstone", b"k", None
    yield "no key, 1 MB of whitespace", None, b"\n" * big


def _padded(topic: str, record: dict[str, object], size: int) -> bytes:
    """``record`` as JSON padded with newlines to ``size`` bytes: still valid."""
    raw = orjson.dumps(record)
    return raw[:-1] + b"\n" * (size - len(raw)) + b"}"


def _valid(topic: str) -> dict[str, object]:
    if topic == PAYMENTS:
        return {"payment_id": "p" * 128, "account": "a" * 128, "token": "JPYC",
                "amount": "1", "kind": "withdrawal"}  # fmt: skip
    if topic == CUSTODY:
        return {"movement_id": "m" * 128, "account": "a" * 128, "isin": "JP1103551Q43",
                "quantity": 100_000, "kind": "withdrawal"}  # fmt: skip
    raise AssertionError(topic)


def _check(label: str, key: bytes | None, value: bytes) -> None:
    size = len(value) + (len(key) if key else 0)
    assert size < DERIVED_BYTES_MAX, f"{label}: {size} bytes"


@pytest.mark.parametrize(("label", "key", "value"), list(_hostile()))
def test_every_rejection_path_stays_small(
    label: str, key: bytes | None, value: bytes | None
) -> None:
    for topic in (PAYMENTS, CUSTODY):
        move = ledger_intake(topic, key, value, TOKENS, where=(3, 2**62))
        assert isinstance(move, tuple), (label, topic)
        _check(f"{topic} {label}", *rejection(source_of(topic, 3, 2**62, key, value), *move))
    trade = trade_intake(key, value, 0.0, tokens=TOKENS, deadline_s=60)
    assert isinstance(trade, tuple), label
    _check(f"trades {label}", *rejection(source_of(TRADES, 0, 1, key, value), *trade))
    out = handle_record(lambda: Matcher({}, tokens=TOKENS), key, value, 1.0)
    assert out.rejection is not None and not out.trades, label
    _check(f"orders {label}", *rejection(source_of(ORDERS, 0, 1, key, value), *out.rejection))
    for event in out.order_events:
        _check(f"order event {label}", event["isin"].encode(), orjson.dumps(event))


@pytest.mark.parametrize("topic", [PAYMENTS, CUSTODY])
def test_a_valid_payment_of_the_largest_size_makes_a_small_command_and_rejection(
    topic: str,
) -> None:
    """Padded to the largest value read, it is still valid: the ledger command that
    carries it, and the rejection of a refused move, point at it instead of quoting it."""
    value = _padded(topic, _valid(topic), VALUE_BYTES_MAX)
    key = b"a" * 128
    move = ledger_intake(topic, key, value, TOKENS, where=(1, 99))
    assert isinstance(move, Move)
    batch = Batch(Engine(), Rules(tokens=TOKENS, deadline_s=60), 1_800_000_000.0)
    batch.move(move)  # nothing to withdraw
    out = batch.finish()
    [(_, reason)] = out.rejected
    assert reason.startswith("insufficient")
    [(_, rejection_key, rejection_value)] = out.records
    _check(f"{topic} refused move", rejection_key, rejection_value)
    too_big = _padded(topic, _valid(topic), VALUE_BYTES_MAX + 1)
    refused = ledger_intake(topic, key, too_big, TOKENS, where=(1, 100))
    assert refused == ("malformed", f"{VALUE_BYTES_MAX + 1} bytes, more than {VALUE_BYTES_MAX}")
