"""Signature checks ahead of the batch, on a thread pool (streams/engine/signatures.py):
the answers are the inline check's, they are used only at their record's place, and a
batch given them writes exactly what a batch that checks inline writes."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import orjson
from aiokafka import ConsumerRecord, TopicPartition
from kessai_bench.signatures import venue_registry
from kessai_bench.trades import TradeFactory

from streams.config import Settings
from streams.engine.core import Batch, Engine, Outputs
from streams.engine.service import rules_of
from streams.engine.signatures import Checker
from streams.security import signing

NOW = time.time()


def _registry() -> tuple[signing.Registry, signing.SigningKey]:
    return venue_registry("venue-sig", "kessai-test")


def _fetched(venue: signing.SigningKey) -> list[tuple[TopicPartition, list[ConsumerRecord]]]:
    """Two partitions of trades: signed, altered after signing, unsigned, not JSON."""
    signed = TradeFactory("S", seed=3, signer=venue)
    plain = TradeFactory("U", seed=4)
    by_partition: dict[int, list[tuple[bytes | None, bytes | None]]] = {0: [], 1: []}
    for n in range(200):
        key, value = signed.record()
        if n % 7 == 3:  # altered: another price
            record = orjson.loads(value)
            record["price"] = "1.5"
            value = orjson.dumps(record)
        elif n % 11 == 5:
            key, value = plain.record()
        elif n % 13 == 6:
            value = b"{not json"
        by_partition[n % 2].append((None if n % 17 == 8 else key, value))
    return [
        (
            TopicPartition("trades", p),
            [
                ConsumerRecord("trades", p, i, int(NOW * 1000), 0, k, v, None, 0, 0, ())
                for i, (k, v) in enumerate(records)
            ],
        )
        for p, records in by_partition.items()
    ]


def _apply(
    fetched: list[tuple[TopicPartition, list[ConsumerRecord]]],
    registry: signing.Registry,
    verified: Any,
) -> Outputs:
    batch = Batch(
        Engine(),
        rules_of(Settings(security_master="off")),
        NOW,
        signers=registry,
        verified=verified,
    )
    for tp, records in fetched:
        for r in records:
            batch.record(tp.topic, tp.partition, r.offset, r.key, r.value, r.timestamp / 1000)
    return batch.finish()


def test_the_pool_answers_what_the_inline_check_answers_on_threads_of_its_own(
    monkeypatch: Any,
) -> None:
    registry, venue = _registry()
    fetched = _fetched(venue)
    threads: set[str] = set()
    verify = signing.verify

    def spy(*args: Any) -> Any:
        threads.add(threading.current_thread().name)
        return verify(*args)

    monkeypatch.setattr(signing, "verify", spy)
    checker = Checker(2, pool_min=1)
    try:
        answers = asyncio.run(checker.check(registry, fetched))
    finally:
        checker.close()
    assert threads and all(name.startswith("kessai-signatures") for name in threads), threads
    assert threading.current_thread().name not in threads
    verdicts = {"ok": 0, "refused": 0, "raised": 0}
    for tp, records in fetched:
        for r in records:
            place = (tp.topic, tp.partition, r.offset)
            try:
                inline = verify(registry, tp.topic, r.key, r.value, signing.broker_time(NOW))
            except Exception:  # not JSON: the batch's decode refuses it before this check
                assert place not in answers
                verdicts["raised"] += 1
                continue
            if r.key is None:  # no hand-off: the batch refuses it (wrong_key) first
                assert place not in answers
                continue
            assert answers[place] == inline
            verdicts["refused" if isinstance(inline, tuple) else "ok"] += 1
    assert verdicts["ok"] > 100 and verdicts["refused"] > 30 and verdicts["raised"], verdicts


def test_a_batch_given_the_answers_writes_what_an_inline_batch_writes() -> None:
    registry, venue = _registry()
    fetched = _fetched(venue)
    checker = Checker(2, pool_min=1)
    try:
        answers = asyncio.run(checker.check(registry, fetched))
    finally:
        checker.close()
    ahead, inline = _apply(fetched, registry, answers), _apply(fetched, registry, None)
    assert ahead.records == inline.records and ahead.changelog == inline.changelog
    reasons = {reason for _, reason in inline.rejected}
    assert {"bad_signature", "malformed", "wrong_key"} <= reasons, reasons
    assert inline.received > 100


def test_an_answer_counts_at_its_place_only_and_goes_once_applied() -> None:
    registry, venue = _registry()
    fetched = _fetched(venue)[:1]
    _, records = fetched[0]
    first = records[0]
    assert not isinstance(
        signing.verify(registry, "trades", first.key, first.value, signing.broker_time(NOW)),
        tuple,
    )
    # A refusal filed under the first record's place refuses it; under a place with
    # no such record, it changes nothing.
    out = _apply(fetched, registry, {("trades", 0, 0): ("bad_signature", "planted")})
    assert out.rejected[0] == ("trades", "bad_signature")
    assert Settings.from_env({"KESSAI_SIGNATURE_THREADS": "0"}).signature_threads == 0
    elsewhere = _apply(fetched, registry, {("trades", 1, 0): ("bad_signature", "planted")})
    assert elsewhere.records == _apply(fetched, registry, None).records
    checker = Checker(1, pool_min=1)
    try:
        asyncio.run(checker.check(registry, fetched))
        assert checker.answers
        checker.applied(fetched)
        assert not checker.answers
        asyncio.run(checker.check(registry, fetched))
        # A fetch with fewer signed records than the pool's minimum is left inline.
        few = Checker(1, pool_min=10_000)
        try:
            assert asyncio.run(few.check(registry, fetched)) == {}
        finally:
            few.close()
        other, _ = _registry()
        asyncio.run(checker.check(other, []))  # another registry: nothing kept
        assert not checker.answers
    finally:
        checker.close()
