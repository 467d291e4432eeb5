"""Compressed batches: a venue's producer may compress with any codec Kafka supports.

Each of gzip, snappy, lz4 and zstd, from aiokafka and from kcat (librdkafka, as a
venue's confluent-kafka, Go or .NET client would be): a deposit of cash, a deposit of
bonds and a trade between the two accounts, all compressed. The worker must settle
every trade, and the auditors' committed reader (what ``kessai replay``,
``kessai book`` and ``kessai positions`` read through) must read every input back.

Without aiokafka's codec library (cramjam), the worker raised UnsupportedCodecError on
the first snappy, lz4 or zstd batch, crashed, restarted before the same batch and
crashed again: this test then failed with every such trade unsettled.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas import CUSTODY, PAYMENTS, TRADES
from streams.config import Settings
from streams.kafka.admin import ensure_public_topics
from streams.kafka.reader import read_committed
from tests.support.logs import collect
from tests.support.records import bond_deposit, cash_deposit, trade_time
from tests.support.workers import running_worker

pytestmark = pytest.mark.integration

CODECS = ("gzip", "snappy", "lz4", "zstd")
CLIENTS = ("kcat", "aiokafka")
BOND = "JP1103551Q43"
#: Seconds kcat may take to deliver a handful of records.
KCAT_TIMEOUT_S = 60


def _records(run: str, codec: str, client: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """One funded trade's inputs, per topic: (key, value)."""
    tag = f"{codec}-{client}-{run}"
    buyer, seller, tid = f"zb-{tag}", f"zs-{tag}", f"venue-a:z-{tag}"
    trade = {
        "trade_id": tid,
        "venue": "venue-a",
        "isin": BOND,
        "buyer": buyer,
        "seller": seller,
        "quantity": 100_000,
        "price": "99.5",
        "currency": "JPYC",
        "accrued_interest": "12",
        "trade_time": trade_time(),
    }
    return {
        PAYMENTS: [(buyer, cash_deposit(f"zp-{tag}", buyer, "99512"))],
        CUSTODY: [(seller, bond_deposit(f"zc-{tag}", seller, BOND, 100_000))],
        TRADES: [(tid, trade)],
    }


async def _send_aiokafka(bootstrap: str, codec: str, records: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, acks="all")
    await producer.start()
    try:
        for topic, pairs in records.items():
            for key, value in pairs:
                await producer.send(topic, orjson.dumps(value), key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _send_kcat(bootstrap: str, codec: str, records: dict[str, Any]) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed: `make tools` installs Debian's kcat"
    for topic, pairs in records.items():
        lines = b"".join(key.encode() + b"\t" + orjson.dumps(value) + b"\n" for key, value in pairs)
        # murmur2, as aiokafka and Java hash keys: which partition a librdkafka client's
        # default (CRC32) picks is another issue's (client-independent routing).
        proc = await asyncio.create_subprocess_exec(
            kcat,
            "-P",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-z",
            codec,
            "-K",
            "\t",
            "-X",
            "partitioner=murmur2_random",
            stdin=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(lines), KCAT_TIMEOUT_S)
        assert proc.returncode == 0, f"kcat -z {codec} to {topic}: {err.decode()}"


async def test_every_codec_from_aiokafka_and_kcat_settles(bootstrap: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    settings = Settings(bootstrap=bootstrap)
    await ensure_public_topics(settings)
    sent = {(codec, client): _records(run, codec, client) for codec in CODECS for client in CLIENTS}
    trade_ids = {r[TRADES][0][0] for r in sent.values()}
    with running_worker(tmp_path / "worker.log", {"KESSAI_BOOTSTRAP": bootstrap}) as worker:
        for (codec, client), records in sent.items():
            send = _send_aiokafka if client == "aiokafka" else _send_kcat
            await send(bootstrap, codec, records)

        def settled(seen: list[dict[str, Any]]) -> set[str]:
            return {r["trade_id"] for r in seen if r.get("status") == "settled"} & trade_ids

        seen = await collect(settings, ["settlements"], lambda s: settled(s) == trade_ids)
        missing = sorted(trade_ids - settled(seen))
        assert not missing, f"not settled: {missing}; worker log {worker.log_path}"
        assert worker.alive, f"the worker stopped; log {worker.log_path}"
    # The auditors' reader decodes every codec too.
    for topic in (PAYMENTS, CUSTODY, TRADES):
        keys = {r.key.decode() for r in await read_committed(settings, topic) if r.key}
        ours = {key for records in sent.values() for key, _ in records[topic]}
        assert ours <= keys, f"{topic}: not read back: {sorted(ours - keys)}"
