"""The engine's window (ADR 0033) on a real broker and worker: a settled trade leaves
memory once its trade time is older than the window, ``GET /trades/{id}`` still finds
it (the archive, indexed into SQLite), a resend of it and a new trade that old are
refused ``stale_trade``, nothing else moves, and ``kessai replay`` agrees."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas import CUSTODY, PAYMENTS, TRADES
from streams import cli
from streams.devtools import localkafka
from streams.kafka.admin import ensure_public_topics
from tests.support.logs import collect
from tests.support.workers import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOND = "JP1103551Q43"
WINDOW = {"KESSAI_SETTLEMENT_DEADLINE_S": "2", "KESSAI_TRADE_WINDOW_S": "4",
          "KESSAI_FAIL_MODE": "atomic"}  # fmt: skip


def _trade(tid: str, buyer: str, seller: str, at: float) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"trade_id": tid, "venue": "v", "isin": BOND, "buyer": buyer, "seller": seller,
            "quantity": 100_000, "price": "99.5", "currency": "JPYC",
            "accrued_interest": "0", "trade_time": stamp}  # fmt: skip


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _finished_rows(web: str) -> float | None:
    with urllib.request.urlopen(f"{web}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith('kessai_table_rows{table="engine-finished-trades"}'):
                return float(line.split()[-1])
    return None


async def _wait(what: str, predicate: Any, timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = await asyncio.to_thread(predicate)
        if got:
            return got
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.5)


async def test_a_trade_leaves_the_window_stays_findable_and_its_resend_is_stale(
    bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = localkafka.up_private(tmp_path, log=lambda line: None)
    run = uuid.uuid4().hex[:6]
    buyer, seller, tid, old = f"b-{run}", f"s-{run}", f"v:w-{run}", f"v:old-{run}"
    try:
        await ensure_public_topics(settings)
        env = {"KESSAI_BOOTSTRAP": settings.bootstrap, "KESSAI_STATE_DIR": str(tmp_path),
               **WINDOW}  # fmt: skip
        with running_worker(tmp_path / "worker.log", env) as worker:
            await worker.ready()
            producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
            await producer.start()

            async def send(topic: str, key: str, value: dict[str, Any]) -> None:
                await producer.send_and_wait(topic, orjson.dumps(value), key=key.encode())

            try:
                await send(PAYMENTS, buyer, {"payment_id": f"p-{run}", "account": buyer,
                           "token": "JPYC", "amount": "1000000", "kind": "deposit"})  # fmt: skip
                await send(CUSTODY, seller, {"movement_id": f"c-{run}", "account": seller,
                           "isin": BOND, "quantity": 100_000, "kind": "deposit"})  # fmt: skip
                trade = _trade(tid, buyer, seller, time.time())
                await send(TRADES, tid, trade)

                def settled(seen: list[dict[str, Any]]) -> bool:
                    return any(r.get("trade_id") == tid and r["status"] == "settled"
                               for r in seen if r["topic"] == "settlements")  # fmt: skip

                assert settled(await collect(settings, ["settlements"], settled))
                web = worker.url
                # Held, then gone from memory once its trade time is 4 s old (the engine
                # runs a batch for that alone), and still found: from the archive.
                assert _get(f"{web}/trades/{tid}")[0] == 200
                await _wait("the trade to leave memory", lambda: _finished_rows(web) == 0)
                _, doc = await _wait(
                    "the archived trade",
                    lambda: (got := _get(f"{web}/trades/{tid}"))[0] == 200 and got,
                )
                assert doc["stage"] == "settled" and doc["trade_id"] == tid, doc
                # The same record again, and a new trade as old: both stale, nothing moves.
                await send(TRADES, tid, trade)
                await send(TRADES, old, _trade(old, buyer, seller, time.time() - 60))
            finally:
                await producer.stop()

            def refused(seen: list[dict[str, Any]]) -> list[str]:
                return [r["ref"] for r in seen
                        if r["topic"] == "rejections" and r["reason"] == "stale_trade"]  # fmt: skip

            seen = await collect(
                settings, ["rejections", "settlements"], lambda s: len(refused(s)) >= 2
            )
            assert len(refused(seen)) == 2, refused(seen)
            statuses = [r for r in seen if r["topic"] == "settlements"]
            assert [(r["trade_id"], r["status"]) for r in statuses] == [(tid, "settled")]
            positions = _get(f"{web}/positions/{seller}")[1]
            assert positions["balances"]["JPYC"]["available"] == "99500", positions
            assert worker.alive, worker.log_tail()
            monkeypatch.setenv("KESSAI_BOOTSTRAP", settings.bootstrap)
            for name, value in WINDOW.items():
                monkeypatch.setenv(name, value)
            assert await asyncio.to_thread(cli.main, ["replay"]) == 0
    finally:
        localkafka.down(settings)
