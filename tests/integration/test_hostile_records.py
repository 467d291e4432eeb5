"""Hostile records on the real broker: each ends as a rejection with its reason, the
valid trade after them settles, and the worker never stops.

- a tombstone (null value) on every input topic: ``malformed``, "no value" (H4: it
  raised in the codec, and faust's supervisor acked it or crash-looped);
- a ``trades`` record with a 999 KB key, and a valid payment padded with 600 KB of
  whitespace: ``malformed`` (C1: the rejection quoting the first, and the ledger
  command carrying the second, outgrew the producer's request limit, and the worker
  crash-looped on the commit).
"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas import CUSTODY, ORDERS, PAYMENTS, TRADES
from streams.config import Settings
from streams.kafka.admin import ensure_public_topics
from tests.support.logs import collect
from tests.support.records import bond_deposit, cash_deposit, trade_time
from tests.support.workers import running_worker

pytestmark = pytest.mark.integration

BOND = "JP1103551Q43"


async def test_tombstones_and_oversized_records_are_rejected_and_a_trade_after_settles(
    bootstrap: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    settings = Settings(bootstrap=bootstrap)
    await ensure_public_topics(settings)
    buyer, seller, tid = f"hb-{run}", f"hs-{run}", f"venue-a:h-{run}"
    trade = {
        "trade_id": tid, "venue": "venue-a", "isin": BOND, "buyer": buyer, "seller": seller,
        "quantity": 100_000, "price": "99.5", "currency": "JPYC", "accrued_interest": "12",
        "trade_time": trade_time(),
    }  # fmt: skip
    padded = orjson.dumps(cash_deposit(f"pad-{run}", buyer, "1"))[:-1] + b"\n" * 600_000 + b"}"
    hostile: list[tuple[str, bytes, bytes | None, str]] = [
        (topic, f"tomb-{topic}-{run}".encode(), None, "no value (a tombstone)")
        for topic in (PAYMENTS, CUSTODY, TRADES, ORDERS)
    ]
    hostile += [
        (TRADES, f"big-{run}".encode() + b"k" * 999_000, b"{}", "more than 512"),
        (PAYMENTS, buyer.encode(), padded, "more than 65536"),
    ]
    valid: list[tuple[str, str, dict[str, Any]]] = [
        (PAYMENTS, buyer, cash_deposit(f"hp-{run}", buyer, "99512")),
        (CUSTODY, seller, bond_deposit(f"hc-{run}", seller, BOND, 100_000)),
        (TRADES, tid, trade),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=1_048_000)
    await producer.start()
    with running_worker(tmp_path / "worker.log", {"KESSAI_BOOTSTRAP": bootstrap}) as worker:
        try:
            for topic, key, value, _ in hostile:
                await producer.send_and_wait(topic, value, key=key)
            for topic, text_key, record in valid:
                await producer.send_and_wait(topic, orjson.dumps(record), key=text_key.encode())
        finally:
            await producer.stop()

        def ours(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                r for r in seen
                if r["topic"] == "rejections" and run in (r.get("key") or "")
            ]  # fmt: skip

        def settled(seen: list[dict[str, Any]]) -> bool:
            return any(r.get("trade_id") == tid and r["status"] == "settled" for r in seen)

        seen = await collect(
            settings,
            ["rejections", "settlements"],
            lambda s: settled(s) and len(ours(s)) >= len(hostile),
        )
        assert settled(seen), f"{tid} did not settle; worker log {worker.log_path}"
        assert worker.alive and "fail-stop" not in worker.log_tail(), worker.log_path
        # M3: faust's table and router pages are off, and a foreign Host is refused.
        assert _status(f"{worker.url}/table/orders/") == 404
        assert _status(f"{worker.url}/router/") == 404
        assert _status(f"{worker.url}/health", host="evil.example") == 403
        assert _status(f"{worker.url}/health") in (200, 503)  # answered: ok, or busy
    rejections = ours(seen)
    assert len(rejections) == len(hostile), rejections
    for topic, _key, value, detail in hostile:
        [r] = [
            r for r in rejections
            if r["source_topic"] == topic and detail in r["detail"]
            and r["value_bytes"] == (0 if value is None else len(value))
        ]  # fmt: skip
        assert r["reason"] == "malformed", r
        assert len(r["key"]) <= 256, r


def _status(url: str, *, host: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
