"""Hostile input records: what a careless or malicious venue or bridge can publish.

:func:`hostile_records` makes, from a seed, records for every input topic that kessai
must reject, each with the reason class it belongs to: null values, truncated JSON,
values and keys up to the broker's limit, invalid UTF-8, odd Unicode in ids, extreme
numbers, wrong keys, unknown and missing fields, JSON that is not an object. None of
them may ever be accepted: each one's fields are made wrong on purpose.

The fuzz test publishes them on a real broker (tests/integration/test_fuzz.py); the
unit test runs them through the pure intakes (tests/unit/test_hostile.py).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from schemas import (
    CANCELLATIONS,
    CUSTODY,
    FX_RATES,
    INSTRUMENTS,
    KEY_BYTES_MAX,
    ORDERS,
    PAYMENTS,
    RESERVES,
    TRADES,
    VALUE_BYTES_MAX,
    check_digit,
)
from tests.support.records import trade_time

#: Every input topic kessai reads from outside (``clock`` only a simulation reads).
INPUT_TOPICS = (
    PAYMENTS, CUSTODY, TRADES, ORDERS, INSTRUMENTS, RESERVES, CANCELLATIONS, FX_RATES
)  # fmt: skip
#: Largest record (key + value) a producer may send the broker (message.max.bytes
#: 1,048,588, less the record's own overhead).
RECORD_BYTES_MAX = 1_048_000
BOND = "JP1103551Q43"
#: BOND's record in the security master (10-year JGB #355, illustrative terms).
BOND_INSTRUMENT: dict[str, Any] = {
    "isin": BOND, "kind": "fixed", "series": "10-year JGB #355", "coupon_rate": "0.1",
    "coupon_dates": ["06-20", "12-20"], "issue_date": "2019-06-03",
    "maturity_date": "2029-06-20", "face_unit": 50_000, "price_tick": "0.001",
}  # fmt: skip

#: Characters that make an id look like another, or hide, or reorder text.
ODD_CHARACTERS = (
    "\u200b",  # zero-width space
    "\ufeff",  # byte-order mark
    "\u202e",  # right-to-left override
    "\u0301",  # combining acute accent
    "\u0430",  # Cyrillic a
    "\uff41",  # full-width a
    "\u3000",  # ideographic space
    "\x9b",  # C1 control
    "\u00a0",  # no-break space
    "口",
)


@dataclass(frozen=True)
class Hostile:
    """One record to publish, and why it is bad."""

    topic: str
    key: bytes | None
    value: bytes | None
    kind: str
    #: Where to send it; None: where the producer's partitioner puts its key.
    partition: int | None = None


#: The valid trades' trade_time: this process's start, so that records generated twice
#: with one seed are the same bytes, and recent enough for the engine's window.
TRADE_TIME = trade_time()


def valid(topic: str, n: str) -> dict[str, Any]:
    """A valid record of ``topic`` (id suffix ``n``), for the generator to spoil."""
    if topic == PAYMENTS:
        return {"payment_id": f"fz-p{n}", "account": f"fz-a{n}", "token": "JPYC",
                "amount": "100", "kind": "deposit"}  # fmt: skip
    if topic == CUSTODY:
        return {"movement_id": f"fz-m{n}", "account": f"fz-a{n}", "isin": BOND,
                "quantity": 100_000, "kind": "deposit"}  # fmt: skip
    if topic == TRADES:
        return {"trade_id": f"fz-t{n}", "venue": "fz-venue", "isin": BOND,
                "buyer": f"fz-b{n}", "seller": f"fz-s{n}", "quantity": 100_000,
                "price": "99.5", "currency": "JPYC", "trade_time": TRADE_TIME}  # fmt: skip
    if topic == ORDERS:
        return {"order_id": f"fz-o{n}", "venue": "fz-venue", "account": f"fz-a{n}",
                "isin": BOND, "side": "buy", "quantity": 100_000,
                "price": "99.5", "currency": "JPYC"}  # fmt: skip
    if topic == INSTRUMENTS:  # a bond of its own: a spoiled one must not touch BOND's
        body = "JP1" + hashlib.sha256(n.encode()).hexdigest()[:8].upper()
        return {**BOND_INSTRUMENT, "isin": body + check_digit(body), "series": f"fz {n}"}
    if topic == RESERVES:
        return {"attestation_id": f"fz-r{n}", "isin": BOND, "face": 100_000,
                "as_of": TRADE_TIME}  # fmt: skip
    if topic == CANCELLATIONS:  # of no trade: even valid, it changes nothing
        return {"trade_id": f"fz-c{n}", "venue": "fz-venue"}
    if topic == FX_RATES:
        return {"currency": "USDC", "rate": "150.5", "source": f"fz-x{n}", "at": TRADE_TIME}
    raise AssertionError(topic)


#: The field whose value is the record's Kafka key.
KEY_FIELD = {PAYMENTS: "account", CUSTODY: "account", TRADES: "trade_id", ORDERS: "isin",
             INSTRUMENTS: "isin", RESERVES: "isin", CANCELLATIONS: "trade_id",
             FX_RATES: "currency"}  # fmt: skip
#: An id field of each topic, for odd characters.
ID_FIELD = {PAYMENTS: "payment_id", CUSTODY: "movement_id", TRADES: "trade_id",
            ORDERS: "order_id", INSTRUMENTS: "isin", RESERVES: "attestation_id",
            CANCELLATIONS: "trade_id", FX_RATES: "currency"}  # fmt: skip
#: A number-ish field of each topic, for extreme numbers.
NUMBER_FIELD = {PAYMENTS: "amount", CUSTODY: "quantity", TRADES: "quantity",
                ORDERS: "quantity", INSTRUMENTS: "face_unit", RESERVES: "face",
                CANCELLATIONS: "venue", FX_RATES: "rate"}  # fmt: skip
#: JSON texts no number field takes: out of range, fractional, not numbers at all.
EXTREME_NUMBERS: tuple[bytes, ...] = (
    b"0", b"-1", b"18446744073709551616", b"-9223372036854775809", b"1e308", b"1E400",
    b"1.5", b"-0.0", b'"NaN"', b'"-0"', b'"1e5"', b'"' + b"9" * 70 + b'"',
    b'"0.1' + b"0" * 70 + b'"', b"true", b"null", b"[]", b"{}", b'""', b'" 1"',
)  # fmt: skip


def _key(topic: str, record: dict[str, Any]) -> bytes:
    return str(record[KEY_FIELD[topic]]).encode()


def _spoiled(rng: random.Random, topic: str, n: str) -> Iterator[Hostile]:
    """One hostile record of each kind for ``topic``."""
    good = valid(topic, n)
    key = _key(topic, good)
    dumped = orjson.dumps(good)
    yield Hostile(topic, key, None, "tombstone")
    yield Hostile(topic, key, dumped[: rng.randrange(1, len(dumped) - 1)], "truncated_json")
    yield Hostile(topic, key, dumped.replace(b'"', b"\xff", 1), "invalid_utf8")
    yield Hostile(
        topic, key, rng.choice([b"[]", b'"x"', b"42", b"null", b"", b"\x00"]), "not_an_object"
    )
    odd = rng.choice(ODD_CHARACTERS)
    field = ID_FIELD[topic]
    at = rng.randrange(len(good[field]) + 1)
    spoiled = {**good, field: good[field][:at] + odd + good[field][at:]}
    yield Hostile(topic, _key(topic, spoiled), orjson.dumps(spoiled), "odd_unicode")
    placeholder = orjson.dumps({**good, NUMBER_FIELD[topic]: "@@"})
    # An attested face may be 0 (none held): the only extreme number some field takes.
    numbers = [x for x in EXTREME_NUMBERS if topic != RESERVES or x != b"0"]
    extreme = placeholder.replace(b'"@@"', rng.choice(numbers))
    yield Hostile(topic, key, extreme, "extreme_number")
    yield Hostile(topic, key, orjson.dumps({**good, "extra": 1}), "unknown_field")
    # The record's own id: required by every schema (an order's price is not).
    missing = {k: v for k, v in good.items() if k != ID_FIELD[topic]}
    yield Hostile(topic, key, orjson.dumps(missing), "missing_field")
    if topic in (TRADES, ORDERS, INSTRUMENTS, RESERVES, CANCELLATIONS, FX_RATES):  # key: a field
        yield Hostile(topic, b"not-" + key, dumped, "wrong_key")


def _oversized(rng: random.Random, topic: str, n: str) -> Iterator[Hostile]:
    """Keys and values past kessai's bounds, up to the broker's."""
    good = valid(topic, n)
    dumped = orjson.dumps(good)
    big = rng.randrange(VALUE_BYTES_MAX + 1, RECORD_BYTES_MAX - 2 * KEY_BYTES_MAX)
    yield Hostile(
        topic, _key(topic, good), dumped[:-1] + b"\n" * (big - len(dumped)) + b"}", "big_value"
    )
    yield Hostile(
        topic, b"k" * rng.randrange(KEY_BYTES_MAX + 1, RECORD_BYTES_MAX - 100), b"{}", "big_key"
    )


def hostile_records(seed: int, count: int, *, oversized: int = 0, tag: str = "") -> list[Hostile]:
    """``count`` small hostile records over every input topic, in a seeded random
    order, and ``oversized`` more past kessai's size bounds (each up to ~1 MB)."""
    rng = random.Random(seed)
    out: list[Hostile] = []
    i = 0
    while len(out) < count:
        topic = INPUT_TOPICS[i % len(INPUT_TOPICS)]
        out.extend(_spoiled(rng, topic, f"{tag}{i}"))
        i += 1
    out = out[:count]
    for j in range(oversized):
        topic = INPUT_TOPICS[j % len(INPUT_TOPICS)]
        out.extend(list(_oversized(rng, topic, f"{tag}x{j}"))[j % 2 :][:1])
    rng.shuffle(out)
    return out


Maker = Callable[[random.Random, str, str], Iterator[Hostile]]
