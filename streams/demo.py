"""The demo behind ``make run``: a worker, some money moving, and where to look.

It creates the topics, starts a worker in the background, then plays a small story
through the real pipeline with ids unique to this run:

- the bridge deposits JPYC and USDC for alice and bob, and bonds for bob;
- alice withdraws part of her JPYC;
- then four things the ledger must refuse without changing a balance: an
  overdraft, a replayed payment id, a token nobody configured, and bytes that are
  not even JSON (a venue's bug must never stop the worker).

It waits for the worker's committed output (read_committed), prints the balances
and rejections, and says where the logs, topics and metrics are. With ``--once``
it stops the worker and exits 0 only if every expected outcome arrived; without it,
the worker keeps running in the foreground until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import (
    CUSTODY,
    LEDGER_EVENTS,
    PAYMENTS,
    REJECTIONS,
    MoveBonds,
    MoveCash,
    encode,
    key_for,
)
from streams.config import Settings

#: How long the demo waits for the worker's committed results.
RESULTS_TIMEOUT_S = 180.0
DEMO_BOND = "JP1103551Q43"


@dataclass
class _Expected:
    #: cause id -> (account, asset, available after)
    postings: dict[str, tuple[str, str, Decimal]] = field(default_factory=dict)
    #: payment id (or the raw record's marker) -> reason
    rejections: dict[str, str] = field(default_factory=dict)


def _story(run: str) -> tuple[list[tuple[str, MoveCash | MoveBonds]], _Expected]:
    """The records to publish, in order, and what the ledger must make of them."""
    alice, bob = f"alice-{run}", f"bob-{run}"

    def pay(n: int, account: str, token: str, amount: str, kind: str) -> tuple[str, MoveCash]:
        return PAYMENTS, MoveCash.model_validate(
            {
                "payment_id": f"demo-{run}-{n}",
                "account": account,
                "token": token,
                "amount": amount,
                "kind": kind,
            }
        )

    records: list[tuple[str, MoveCash | MoveBonds]] = [
        pay(1, alice, "JPYC", "5000000", "deposit"),
        pay(2, alice, "USDC", "2500.125", "deposit"),
        pay(3, bob, "JPYC", "1000000", "deposit"),
        (
            CUSTODY,
            MoveBonds.model_validate(
                {
                    "movement_id": f"demo-{run}-4",
                    "account": bob,
                    "isin": DEMO_BOND,
                    "quantity": 10_000_000,
                    "kind": "deposit",
                }
            ),
        ),
        pay(5, alice, "JPYC", "1200000", "withdrawal"),
        pay(6, bob, "JPYC", "9999999", "withdrawal"),  # overdraft
        pay(3, bob, "JPYC", "1000000", "deposit"),  # replayed id
        pay(7, bob, "EURC", "10", "deposit"),  # unknown token
    ]
    expected = _Expected(
        postings={
            f"payment:demo-{run}-1": (alice, "JPYC", Decimal(5_000_000)),
            f"payment:demo-{run}-2": (alice, "USDC", Decimal("2500.125")),
            f"payment:demo-{run}-3": (bob, "JPYC", Decimal(1_000_000)),
            f"custody:demo-{run}-4": (bob, DEMO_BOND, Decimal(10_000_000)),
            f"payment:demo-{run}-5": (alice, "JPYC", Decimal(3_800_000)),
        },
        rejections={
            f"demo-{run}-6": "insufficient_funds",
            f"demo-{run}-3": "duplicate",
            f"demo-{run}-7": "unknown_token",
            f"demo-{run}-8": "malformed",
        },
    )
    return records, expected


async def _publish(
    settings: Settings, run: str, records: list[tuple[str, MoveCash | MoveBonds]]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for topic, record in records:
            # One at a time, in order: the replayed id must arrive after the original.
            await producer.send_and_wait(topic, encode(record), key=key_for(topic, record))
        # What a buggy venue might send: cut-off JSON. The publish tool would refuse it,
        # so it goes through a bare producer, as it would in real life.
        await producer.send_and_wait(
            PAYMENTS, f'{{"payment_id": "demo-{run}-8", "amount": 12.5'.encode(), key=b"mallory"
        )
    finally:
        await producer.stop()


async def _collect(settings: Settings, run: str, expected: _Expected) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """Read ledger-events and rejections (read_committed) until the story is told."""
    consumer = AIOKafkaConsumer(
        LEDGER_EVENTS,
        REJECTIONS,
        bootstrap_servers=settings.bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    postings: dict[str, dict] = {}  # type: ignore[type-arg]
    rejections: dict[str, dict] = {}  # type: ignore[type-arg]
    await consumer.start()
    try:
        deadline = time.monotonic() + RESULTS_TIMEOUT_S
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                for r in records:
                    value = orjson.loads(r.value)
                    if r.topic == LEDGER_EVENTS and value["cause"] in expected.postings:
                        postings[value["cause"]] = value
                    elif r.topic == REJECTIONS and f"-{run}-" in value.get("value", ""):
                        # The original may not parse: find our id in its text.
                        text = value["value"]
                        start = text.index(f"demo-{run}-")
                        pid = text[start:].split('"', 1)[0]
                        rejections[pid] = value
            if len(postings) == len(expected.postings) and len(rejections) == len(
                expected.rejections
            ):
                break
    finally:
        await consumer.stop()
    return postings, rejections


def _report(expected: _Expected, postings: dict, rejections: dict) -> list[str]:  # type: ignore[type-arg]
    problems: list[str] = []
    print("\nLedger (committed ledger-events):")
    print(f"  {'seq':>3}  {'account':<22} {'asset':<13} {'delta':>16} {'available':>16}")
    for cause, (account, asset, available) in expected.postings.items():
        got = postings.get(cause)
        if got is None:
            problems.append(f"no ledger-event for {cause}")
            continue
        print(
            f"  {got['seq']:>3}  {account:<22} {asset:<13} "
            f"{got['delta_available']:>16} {got['available']:>16}"
        )
        if Decimal(got["available"]) != available:
            problems.append(f"{cause}: available {got['available']} != {available}")
    print("\nRejections (nothing changed):")
    for pid, reason in expected.rejections.items():
        got = rejections.get(pid)
        if got is None:
            problems.append(f"no rejection for {pid}")
            continue
        print(f"  {pid:<24} {got['reason']:<20} {got['detail']}")
        if got["reason"] != reason:
            problems.append(f"{pid}: reason {got['reason']} != {reason}")
    return problems


def main(settings: Settings, *, once: bool = False) -> int:
    from streams import localkafka
    from streams.topics import ensure_topics

    localkafka.up(settings)
    created = asyncio.run(ensure_topics(settings))
    if created:
        print(f"created topics: {', '.join(created)}")
    log_dir = settings.state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    worker_log = log_dir / "worker.log"
    run = uuid.uuid4().hex[:6]
    print(f"starting a worker (log: {worker_log}) ...")
    with worker_log.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        records, expected = _story(run)
        print(f"publishing {len(records)} payment and custody records (run {run}) ...")
        asyncio.run(_publish(settings, run, records))
        postings, rejections = asyncio.run(_collect(settings, run, expected))
        if worker.poll() is not None:
            print(f"the worker exited with {worker.returncode}: see {worker_log}")
            return 1
        problems = _report(expected, postings, rejections)
        _where_to_look(settings, worker_log)
        if problems:
            print("\nDEMO FAILED:\n  " + "\n  ".join(problems))
            return 1
        print("\ndemo OK: every payment settled on the ledger or was refused with a reason.")
        if once:
            return 0
        print("the worker keeps running; Ctrl-C stops it.")
        worker.wait()
        return worker.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()


def _where_to_look(settings: Settings, worker_log: Path) -> None:
    print("\nWhere to look:")
    print(f"  worker log        {worker_log}")
    print(f"  broker            {settings.bootstrap}  (kessai kafka status)")
    print(f"  worker web        http://127.0.0.1:{settings.web_port}/")
    print("  journal           kessai topics list; ledger-events, rejections (read_committed)")
    print("  publish your own  kessai publish payments examples/payments.jsonl")
