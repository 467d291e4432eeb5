"""A trade's deadline runs on the broker's clock, not its producer's (M1): a trade
stamped a year ahead by its producer used to keep its locks for that year; the inputs
are LogAppendTime now, so it fails at its deadline like any other."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas import TRADES
from streams.devtools import localkafka
from streams.kafka.admin import ensure_public_topics
from tests.support.logs import collect
from tests.support.records import trade_time
from tests.support.workers import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

YEAR_MS = 365 * 24 * 3600 * 1000


async def test_a_trade_stamped_a_year_ahead_still_fails_at_its_deadline(
    bootstrap: str, tmp_path: Path
) -> None:
    settings = localkafka.up_private(tmp_path, log=lambda line: None)
    run = uuid.uuid4().hex[:6]
    tid = f"v:ahead-{run}"
    trade = {"trade_id": tid, "venue": "v", "isin": "JP1103551Q43", "buyer": f"b-{run}",
             "seller": f"s-{run}", "quantity": 100_000, "price": "99.5", "currency": "JPYC",
             "accrued_interest": "0", "trade_time": trade_time()}  # fmt: skip
    env = {"KESSAI_BOOTSTRAP": settings.bootstrap, "KESSAI_SETTLEMENT_DEADLINE_S": "5",
           "KESSAI_FAIL_MODE": "atomic", "KESSAI_TICK_INTERVAL_S": "0.5"}  # fmt: skip
    try:
        await ensure_public_topics(settings)
        with running_worker(tmp_path / "worker.log", env) as worker:
            await worker.ready()
            producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
            await producer.start()
            try:
                ahead = int(time.time() * 1000) + YEAR_MS  # unfunded: it can only fail
                await producer.send_and_wait(
                    TRADES, orjson.dumps(trade), key=tid.encode(), timestamp_ms=ahead
                )
            finally:
                await producer.stop()

            def failed(seen: list[dict[str, Any]]) -> bool:
                return any(r["trade_id"] == tid and r["status"] == "failed" for r in seen)

            # The deadline is 5 s after the broker appended it; 90 s is room for a slow box.
            seen = await collect(settings, ["settlements"], failed, timeout_s=90)
            assert failed(seen), [r for r in seen if r["trade_id"] == tid]
            assert worker.alive, worker.log_tail()
    finally:
        localkafka.down(settings)
