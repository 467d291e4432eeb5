"""Every hostile record (tests/support/hostile.py) is rejected by the pure intakes, with
a reason, without raising, and its rejection is small: the fuzz test's fast half (the
real-broker half is tests/integration/test_fuzz.py)."""

from __future__ import annotations

from collections import Counter

import orjson

from schemas import (
    CANCELLATIONS,
    CUSTODY,
    FX_RATES,
    INSTRUMENTS,
    ORDERS,
    PAYMENTS,
    REJECTIONS,
    RESERVES,
    TRADES,
    source_of,
)
from streams.bonds.master import instrument_record
from streams.engine import actions
from streams.engine.core import Batch, Engine, Rules
from streams.ledger.intake import intake_record as ledger_intake
from streams.runtime.batches import rejection
from tests.support.hostile import Hostile, hostile_records
from tests.support.intake import trade_intake

TOKENS = {"JPYC": 0, "USDC": 6}
#: A rejection record's bound: far below the producer's 1,000,000-byte request limit.
REJECTION_BYTES_MAX = 16_384


def _reason(h: Hostile) -> tuple[str, str]:
    """The intake's rejection of ``h``; AssertionError if it was accepted."""
    if h.topic in (PAYMENTS, CUSTODY):
        got = ledger_intake(h.topic, h.key, h.value, TOKENS, where=(0, 0))
        assert isinstance(got, tuple), h
        return got
    if h.topic == TRADES:
        trade = trade_intake(h.key, h.value, 1.0, tokens=TOKENS, deadline_s=60)
        assert isinstance(trade, tuple), h
        return trade
    if h.topic == INSTRUMENTS:
        instrument = instrument_record(h.key, h.value, {})
        assert isinstance(instrument, tuple), h
        return instrument
    if h.topic == RESERVES:
        batch = Batch(Engine(), Rules(tokens=TOKENS, deadline_s=60), 1.0)
        refused = actions.attested(batch, h.key, h.value, 1.0, (0, 0))
        assert refused is not None and not batch.engine.reserves, h
        return refused
    if h.topic == CANCELLATIONS:
        batch = Batch(Engine(), Rules(tokens=TOKENS, deadline_s=60), 1.0)
        batch.record(CANCELLATIONS, 0, 0, h.key, h.value, 1.0)
        [(topic, reason)] = batch.out.rejected
        assert topic == CANCELLATIONS, h
        record = orjson.loads(batch.out.records[0][2])
        return reason, record["detail"]
    # Orders through the engine, which matches them (issue 21); FX rates to its references.
    assert h.topic in (ORDERS, FX_RATES)
    batch = Batch(Engine(), Rules(tokens=TOKENS, deadline_s=60), 1.0)
    batch.record(h.topic, 0, 0, h.key, h.value, 1.0)
    [(topic, reason)] = batch.out.rejected
    assert topic == h.topic and not batch.touched_accounts() and not batch.engine.open, h
    assert not batch.engine.fx_rates, h
    [record] = [orjson.loads(v) for t, _, v in batch.out.records if t == REJECTIONS]
    return reason, record["detail"]


def test_every_hostile_record_is_rejected_with_a_reason_and_a_small_rejection() -> None:
    records = hostile_records(seed=18, count=4_000, oversized=16)
    reasons: Counter[str] = Counter()
    for h in records:
        reason, detail = _reason(h)
        assert reason and detail, h
        reasons[reason] += 1
        key, value = rejection(source_of(h.topic, 0, 0, h.key, h.value), reason, detail)
        assert len(value) + len(key or b"") < REJECTION_BYTES_MAX, (h.kind, reason)
    kinds = Counter(h.kind for h in records)
    assert len(kinds) >= 10 and kinds["big_key"] + kinds["big_value"] == 16, kinds
    assert {"malformed", "schema", "wrong_key"} <= reasons.keys(), reasons
