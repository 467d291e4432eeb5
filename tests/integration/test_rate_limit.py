"""Per-venue rate limits on the real broker (M13): a venue flooding ``trades`` (spread
over every partition: one bucket per venue, issue 19) and ``orders`` past its bucket
gets ``rate_limited`` rejections, another venue sending at the same time is untouched,
and ``kessai replay``, refilling the same buckets by the records' broker timestamps,
refuses exactly the same records."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas import ORDERS, TRADES
from streams import cli
from streams.devtools import localkafka
from streams.kafka.admin import ensure_public_topics
from tests.support.logs import collect
from tests.support.workers import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOND = "JP1103551Q43"
LIMITS = {"KESSAI_VENUE_RATE": "1", "KESSAI_VENUE_BURST": "3"}
FLOOD = 12


def _trade(venue: str, n: int) -> dict[str, Any]:
    return {"trade_id": f"{venue}:t{n}", "venue": venue, "isin": BOND, "buyer": f"{venue}-b",
            "seller": f"{venue}-s", "quantity": 100_000, "price": "99.5", "currency": "JPYC",
            "accrued_interest": "0", "trade_time": "2026-12-04T00:00:00Z"}  # fmt: skip


def _order(venue: str, n: int) -> dict[str, Any]:
    return {"order_id": f"o{n}", "venue": venue, "account": f"{venue}-a", "isin": BOND,
            "side": "buy", "quantity": 100_000, "price": "90", "currency": "JPYC"}  # fmt: skip


async def _flood(bootstrap: str, partitions: int) -> float:
    """Send the flood and the quiet venue's records; the seconds the sends took."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sends = []
        for n in range(FLOOD):  # the flood, interleaved with a quiet venue
            for venue in ("flood",) + (("quiet",) if n < 3 else ()):
                trade, order = _trade(venue, n), _order(venue, n)
                # Spread over every partition, as a client may: one bucket all the same.
                sends.append(
                    await producer.send(
                        TRADES,
                        orjson.dumps(trade),
                        key=trade["trade_id"].encode(),
                        partition=n % partitions,
                    )
                )
                sends.append(await producer.send(
                    ORDERS, orjson.dumps(order), key=BOND.encode()))  # fmt: skip
        started = time.monotonic()
        await asyncio.gather(*sends)
        return time.monotonic() - started
    finally:
        await producer.stop()


async def test_a_flooding_venue_is_rate_limited_and_replay_agrees(
    bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = localkafka.up_private(tmp_path, log=lambda line: None)
    try:
        await ensure_public_topics(settings)
        env = {"KESSAI_BOOTSTRAP": settings.bootstrap, **LIMITS}
        with running_worker(tmp_path / "worker.log", env) as worker:
            await worker.ready()
            sent_s = await _flood(settings.bootstrap, settings.partitions)

            def limited(seen: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
                return Counter(
                    (r["source_topic"], r["ref"].split(":")[0] if ":" in r["ref"] else r["key"])
                    for r in seen
                    if r["topic"] == "rejections" and r["reason"] == "rate_limited"
                )

            # Each topic: 3 pass at once, one more per second the sends took.
            earned = 3 + int(sent_s) + 1
            trade_ids = {f"{v}:t{n}" for v in ("flood", "quiet") for n in range(FLOOD)
                         if v == "flood" or n < 3}  # fmt: skip
            orders = {(f"{v}", f"o{n}") for v, n in (tid.split(":t") for tid in trade_ids)}

            def done(s: list[dict[str, Any]]) -> bool:
                # Every trade settled-or-pending or limited; every order has its event.
                heard = {r["trade_id"] for r in s if r["topic"] == "settlements"}
                heard |= {r["ref"] for r in s if r["topic"] == "rejections"}
                told = {(r["venue"], r["order_id"]) for r in s if r["topic"] == "order-events"}
                return trade_ids <= heard and orders <= told

            seen = await collect(settings, ["rejections", "order-events", "settlements"], done)
            assert done(seen), "not every record was answered"
            counts = limited(seen)
            assert counts[(TRADES, "flood")] >= FLOOD - earned, counts
            assert counts[(ORDERS, BOND)] >= FLOOD - earned, counts
            # The quiet venue's three trades passed (its trade ids start "quiet:").
            quiet = [r for r in seen if r["topic"] == "rejections" and "quiet" in r["ref"]]
            assert (TRADES, "quiet") not in counts, quiet
            events = Counter(r["reason"] for r in seen if r["topic"] == "order-events")
            assert events["rate_limited"] == counts[(ORDERS, BOND)], events
            assert worker.alive, worker.log_tail()
            # The replay, with the same limits, refuses the very same records.
            monkeypatch.setenv("KESSAI_BOOTSTRAP", settings.bootstrap)
            for name, value in LIMITS.items():
                monkeypatch.setenv(name, value)
            assert await asyncio.to_thread(cli.main, ["replay"]) == 0
    finally:
        localkafka.down(settings)
