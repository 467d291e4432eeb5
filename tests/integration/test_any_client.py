"""Records from a librdkafka client (Debian's kcat) and from aiokafka, side by side.

librdkafka's default partitioner hashes a key with CRC32, the Java client's and
aiokafka's with murmur2: the same key can land on two partitions. What kessai decides
(an order's book, a trade id's duplicate) must not depend on it (issue 19). The keys
here are chosen so that the two clients disagree, and the test first checks that they
did."""

from __future__ import annotations

import random
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from schemas import check_digit
from streams.config import Settings
from streams.kafka.reader import read_committed
from streams.matching.matcher import row_key
from streams.runtime.batches import partition_of
from streams.topics import ENGINE_ORDERS, engine_topic
from tests.support.logs import collect
from tests.support.profiles import Profile, plain
from tests.support.records import bond_deposit, cash_deposit, trade_time
from tests.support.workers import running_worker

pytestmark = pytest.mark.integration

PARTITIONS = 4
U = 50_000


def _crc32_partition(key: bytes) -> int:
    """librdkafka's ``consistent_random`` for a keyed record: CRC32 of the key."""
    return zlib.crc32(key) % PARTITIONS


def _split(make: Any) -> str:
    """A key from ``make()`` that kcat and aiokafka send to different partitions."""
    while True:
        key: str = make()
        if _crc32_partition(key.encode()) != partition_of(key.encode(), PARTITIONS):
            return key


def _isin() -> str:
    body = "JP9" + "".join(random.choice("0123456789") for _ in range(8))
    return body + check_digit(body)


def _kcat(bootstrap: str, topic: str, key: str, value: dict[str, Any]) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat is not installed: `make tools` installs Debian's kcat")
    subprocess.run(
        [kcat, "-P", "-b", bootstrap, "-t", topic, "-K", "\t"],
        input=key.encode() + b"\t" + orjson.dumps(value) + b"\n",
        check=True,
        timeout=60,
    )


async def _partitions_of(bootstrap: str, topic: str, key: str, want: int = 2) -> set[int]:
    """Where the records keyed ``key`` landed on ``topic`` (read for 10 s at most, or
    until ``want`` records were found)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        found: set[int] = set()
        count = 0
        for _ in range(40):
            for tp, records in (await consumer.getmany(timeout_ms=250)).items():
                mine = [r for r in records if r.key == key.encode()]
                found |= {tp.partition for _ in mine}
                count += len(mine)
            if len(found) >= 2 or count >= want:
                break
        return found
    finally:
        await consumer.stop()


async def test_kcat_and_aiokafka_records_meet_in_one_book_and_one_duplicate_check(
    bootstrap: str, tmp_path: Path
) -> None:
    run = f"{random.randrange(16**6):06x}"
    isin = _split(_isin)
    buyer, seller = f"buyer-k-{run}", f"seller-k-{run}"
    profile: Profile = plain(bootstrap)
    order = {"venue": profile.venue, "isin": isin, "quantity": U, "price": "100",
             "currency": "JPYC"}  # fmt: skip
    trade_id = _split(lambda: f"{profile.venue}:tk-{run}-{random.randrange(10**6)}")
    trade = {"trade_id": trade_id, "venue": profile.venue, "isin": isin, "buyer": buyer,
             "seller": seller, "quantity": U, "price": "100", "currency": "JPYC",
             "trade_time": trade_time()}  # fmt: skip
    try:
        with running_worker(tmp_path / "worker.log", profile.worker_env):
            await profile.send("payments", buyer, cash_deposit(f"kp-{run}", buyer, "1000000"))
            await profile.send("custody", seller, bond_deposit(f"kc-{run}", seller, isin, 2 * U))
            ask = {**order, "order_id": f"ask-{run}", "account": seller, "side": "sell"}
            await profile.send("orders", isin, ask)
            # The ask rests (committed in a batch of its own) before the bid fills it.
            accepted = (f"ask-{run}", "accepted")
            await collect(profile.reader, ["order-events"], lambda s: any(
                (r.get("order_id"), r["event"]) == accepted for r in s))  # fmt: skip
            bid = {**order, "order_id": f"bid-{run}", "account": buyer, "side": "buy"}
            _kcat(bootstrap, "orders", isin, bid)
            await profile.send("trades", trade_id, trade)
            _kcat(bootstrap, "trades", trade_id, trade)
            seen = await collect(
                profile.reader,
                ["order-events", "settlements", "rejections"],
                lambda s: sum(1 for r in s if r["topic"] == "settlements"
                              and r.get("buyer") == buyer and r["status"] == "settled") >= 2
                and any(r["topic"] == "rejections" and trade_id in orjson.dumps(r).decode()
                        for r in s)
                # The fills' events are in the settlement's transaction, but each topic
                # is read at its own pace: wait for them too.
                and sum(1 for r in s if r["topic"] == "order-events"
                        and r.get("order_id") in (f"ask-{run}", f"bid-{run}")
                        and r["event"] == "filled") >= 2,
            )  # fmt: skip
    finally:
        await profile.close()
    # The premise: the two clients put the same keys on different partitions.
    assert len(await _partitions_of(bootstrap, "orders", isin)) == 2
    assert len(await _partitions_of(bootstrap, "trades", trade_id)) == 2
    events = {(r["order_id"], r["event"]) for r in seen if r["topic"] == "order-events"}
    assert {(f"ask-{run}", "filled"), (f"bid-{run}", "filled")} <= events, events
    settled = [r for r in seen if r["topic"] == "settlements" and r.get("buyer") == buyer
               and r["status"] == "settled"]  # fmt: skip
    # One matched trade and the venue's trade, each settled once, whatever the client.
    assert sorted(r["trade_id"] == trade_id for r in settled) == [False, True], settled
    [duplicate] = [r for r in seen if r["topic"] == "rejections"
                   and trade_id in orjson.dumps(r).decode()]  # fmt: skip
    assert duplicate["reason"] == "duplicate", duplicate
    # The resting ask's row, written when it rested (read from aiokafka's partition)
    # and when the bid filled it (read from kcat's), is one key of the engine's
    # one-partition changelog: a restore takes its last value, the ask done.
    ask_key = row_key(isin, profile.venue, f"ask-{run}").encode()
    rows_topic = engine_topic(Settings().app_id, ENGINE_ORDERS)
    rows = [
        r for r in await read_committed(plain(bootstrap).reader, rows_topic) if r.key == ask_key
    ]
    assert len(rows) == 2 and orjson.loads(rows[-1].value)["r"] == 0, rows
