"""`kessai positions` against the real broker: only committed journal records count."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas import LEDGER_EVENTS, encode, key_for
from streams import cli
from streams.topics import TopicSpec
from tests.support.journal import chained, change
from tests.support.topics import create_fresh

pytestmark = pytest.mark.integration

#: More than one partition, so that the read spans partitions as the real journal does.
PARTITIONS = 3
READ_TIMEOUT_S = 30.0


COMMITTED_FIRST = [
    change("acct-alice", 1, "JPYC", "1000", "0", "1000", "0"),
    change("acct-bob", 1, "USDC", "2.5", "0", "2.5", "0"),
    change("acct-alice", 2, "JPYC", "-300", "300", "700", "300"),  # a lock
]
#: Counted, these would repeat alice's seq 3 (a journal error) and add carol.
ABORTED = [
    change("acct-alice", 3, "JPYC", "999999", "0", "1000699", "300"),
    change("acct-carol", 1, "JPYC", "5", "0", "5", "0"),
]
COMMITTED_LATER = [
    change("acct-alice", 3, "USDC", "10.25", "0", "10.25", "0"),
    change("acct-bob", 2, "USDC", "-1.5", "1.5", "1.0", "1.5"),  # a lock
]
# Chained as the ledger would have: the committed records one journal, the aborted
# ones a failed attempt that chained onto the first three.
_COMMITTED = chained([*COMMITTED_FIRST, *COMMITTED_LATER])
COMMITTED_FIRST, COMMITTED_LATER = _COMMITTED[:3], _COMMITTED[3:]
ABORTED = chained([*COMMITTED_FIRST, *ABORTED])[3:]


async def _produce(bootstrap: str, topic: str, transactional_id: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=transactional_id, acks="all"
    )
    await producer.start()
    try:
        for batch, commit in ((COMMITTED_FIRST, True), (ABORTED, False), (COMMITTED_LATER, True)):
            await producer.begin_transaction()
            for event in batch:
                await producer.send_and_wait(
                    topic, encode(event), key=key_for(LEDGER_EVENTS, event)
                )
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()


async def _every_value(bootstrap: str, topic: str) -> list[bytes]:
    """Every record value on *topic*, aborted ones included (read_uncommitted)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_uncommitted",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)  # the high watermark here
        values: list[bytes] = []
        pending = {tp for tp in tps if end[tp] > 0}
        deadline = asyncio.get_running_loop().time() + READ_TIMEOUT_S
        while pending:
            assert asyncio.get_running_loop().time() < deadline, f"{topic} not read to its end"
            for recs in (await consumer.getmany(*pending, timeout_ms=500)).values():
                values.extend(r.value for r in recs)
            pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
        return values
    finally:
        await consumer.stop()


def test_positions_count_committed_records_only(
    bootstrap: str,
    unique_name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KESSAI_BOOTSTRAP", bootstrap)
    name = unique_name("positions")
    asyncio.run(create_fresh(bootstrap, TopicSpec(name=name, partitions=PARTITIONS)))
    asyncio.run(_produce(bootstrap, name, transactional_id=name))
    # The aborted records are really in the log: only read_committed leaves them out.
    on_log = asyncio.run(_every_value(bootstrap, name))
    assert all(encode(e) in on_log for e in ABORTED)

    code = cli.main(["positions", "--topic-name", name, "--format", "json"])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == [
        {"account": "acct-alice", "asset": "JPYC", "available": "700", "locked": "300"},
        {"account": "acct-alice", "asset": "USDC", "available": "10.25", "locked": "0"},
        {"account": "acct-bob", "asset": "USDC", "available": "1.0", "locked": "1.5"},
    ]

    assert cli.main(["positions", "--topic-name", name, "--format", "csv", "--asset", "USDC"]) == 0
    assert capsys.readouterr().out == (
        "account,asset,available,locked\nacct-alice,USDC,10.25,0\nacct-bob,USDC,1.0,1.5\n"
    )

    # Counted, the aborted records would also break the chains.
    assert cli.main(["verify", "--topic-name", name]) == 0, capsys.readouterr().err
