"""Does a first start with a backlog waiting process that backlog? (hole 12)

Each trial: a fresh consumer group (app id), its changelogs prefilled with 2,000 funded
accounts, 200 deposits waiting on ``payments``; then ``kessai worker`` starts, and the
trial passes when the group's committed offsets reach the end of ``payments`` within
30 s. Before the fix in ``KessaiConsumer.seek_to_committed`` 4 trials in 15 skipped
their whole backlog; the pytest regression is tests/integration/test_seek_on_start.py.

    .venv/bin/python -m tests.crash.scenarios.backlog_start --trials 10

Runs on a private broker of its own under --workdir (stopped at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from kessai_bench import memory

from schemas import PAYMENTS, MoveCash, encode
from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.processes import free_port

ACCOUNTS = 2_000
BACKLOG = 200
PARTITIONS = 4
WAIT_S = 30.0


async def _committed(bootstrap: str, group: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: m.offset for tp, m in offsets.items() if tp.topic == PAYMENTS}


async def _ends(bootstrap: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(PAYMENTS, p) for p in range(PARTITIONS)])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def trial(broker: Settings, n: int, workdir: Path) -> bool:
    settings = replace(
        broker,
        app_id=f"backlog-start-{n}",
        partitions=PARTITIONS,
        web_port=free_port(),
        tokens=dict(memory.TOKENS),
    )
    await memory.create_kessai_topics(settings)
    await memory.prefill(settings, [memory.funding(i) for i in range(ACCOUNTS)])
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(BACKLOG):
            account = memory.funding(i).account
            top_up = MoveCash(
                payment_id=f"top-{n}-{i}",
                account=account,
                token=memory.CASH_TOKEN,
                amount=Decimal(1),
                kind="deposit",
            )
            await producer.send(PAYMENTS, encode(top_up), key=account.encode())
        await producer.flush()
    finally:
        await producer.stop()
    end = await _ends(settings.bootstrap)
    worker = memory.Worker(
        settings, log_path=workdir / f"worker-{n}.log", cwd=workdir / f"worker-{n}"
    )
    try:
        if not await worker.wait_ready(120.0):
            raise SystemExit(f"trial {n}: the worker was not ready in 120 s ({worker.log_path})")
        deadline = time.monotonic() + WAIT_S
        committed = await _committed(settings.bootstrap, settings.app_id)
        while committed != end and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            committed = await _committed(settings.bootstrap, settings.app_id)
    finally:
        await worker.stop()
    ok = committed == end
    print(f"trial {n}: payments end {end}, committed {committed}: {'ok' if ok else 'SKIPPED'}")
    return ok


async def main(trials: int, workdir: Path) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    broker = localkafka.up_private(workdir / "broker", tokens=dict(memory.TOKENS))
    try:
        results = [await trial(broker, n, workdir) for n in range(trials)]
    finally:
        localkafka.down(broker)
    skipped = results.count(False)
    print(f"{skipped} of {trials} starts skipped their backlog")
    return 1 if skipped else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="fresh starts (default 10)")
    parser.add_argument(
        "--workdir", type=Path, default=Path("/tmp/kessai-backlog-start"), help="broker and logs"
    )
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.trials, args.workdir)))
