"""The memory bench's prefill is what the pipeline writes, and a worker can live on it.

``kessai_bench.memory`` measures the worker's RSS on engine changelogs it wrote itself
instead of funding a million accounts through the pipeline. That is only a
measurement if those changelogs are the engine's, so, on brokers of this test's own:

1. on broker A, 200 accounts are funded through a real worker: their cash deposits,
   then, once the engine applied them all, their bond deposits (the order the prefill
   applies them in, so that the account rows match byte for byte);
2. on broker B, the prefill writes the same accounts and ids;
3. both brokers' engine changelogs, read with read_committed, hold the same keys with
   the same last row each (the engine writes a key again in each batch that touches
   it, and batches are cut differently; the last row is what a restore keeps), and
   neither wrote anything to the other changelogs;
4. a worker restores the prefill on broker B (its log says how many rows) and lives
   on it: deposits repeated under the prefilled ids are refused as duplicates (the
   ``applied`` rows), a new deposit continues its account's ``seq``, and a trade
   between two prefilled accounts settles, its postings continuing the prefilled
   balances and ``seq``.

Broker B's inputs are published before its worker starts: a fresh consumer group, a
non-empty changelog to restore and a backlog waiting is the start that used to skip
the backlog (hole 12 in docs/exactly-once.md).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from kessai_bench import memory

from schemas import (
    CUSTODY,
    LEDGER_EVENTS,
    PAYMENTS,
    REJECTIONS,
    SETTLEMENTS,
    TRADES,
    MoveCash,
    encode,
)
from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.processes import free_port
from streams.kafka.reader import read_committed
from streams.topics import (
    ENGINE_ACCOUNTS,
    ENGINE_APPLIED,
    ENGINE_CHANGELOGS,
    ENGINE_INFLOW,
    engine_topic,
)
from tests.support.logs import collect
from tests.support.records import trade_time

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACCOUNTS = 200
WAIT_S = 60.0
#: Accounts whose deposits are sent again to the prefilled worker.
REPEATED = 10

#: changelog name -> key -> every row of that key, in offset order.
Changelogs = dict[str, dict[bytes, list[bytes]]]


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Settings]]:
    """Two brokers of this module's own, started side by side: whole topics hold this
    test's records only, and broker B none of broker A's."""
    workdirs = [tmp_path_factory.mktemp(f"memory-broker-{name}") for name in "ab"]

    def up(workdir: Path) -> Settings:
        return localkafka.up_private(
            workdir, tokens=dict(memory.TOKENS), log=lambda line: print(f"[memory broker] {line}")
        )

    started: list[Settings] = []
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(up, w) for w in workdirs]:
                started.append(future.result())
    except localkafka.LocalKafkaError as err:
        pytest.fail(f"no private Kafka broker: {err}", pytrace=False)
    finally:
        if len(started) < 2:
            for settings in started:
                localkafka.down(settings)
    yield started[0], started[1]
    for settings in started:
        localkafka.down(settings)


def _app(broker: Settings, app_id: str) -> Settings:
    return replace(
        broker,
        app_id=app_id,
        partitions=4,
        web_port=free_port(),
        tokens=dict(memory.TOKENS),
    )


async def _read_until(
    bootstrap: str, topic: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Committed records of *topic* from the start until ``done(records)``."""
    seen = await collect(Settings(bootstrap=bootstrap), [topic], done, timeout_s=WAIT_S)
    assert done(seen), f"{topic}: gave up after {len(seen)} records"
    return seen


def _at_least(n: int) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda seen: len(seen) >= n


async def _changelogs(settings: Settings) -> Changelogs:
    """Every engine changelog, read committed: key -> every row, in offset order."""
    out: Changelogs = {}
    for name in ENGINE_CHANGELOGS:
        rows: defaultdict[bytes, list[bytes]] = defaultdict(list)
        for r in await read_committed(settings, engine_topic(settings.app_id, name)):
            assert r.partition == 0 and not r.headers, r  # neither writer adds any
            rows[r.key].append(r.value)
        out[name] = dict(rows)
    return out


def _last(changelogs: Changelogs) -> dict[str, dict[bytes, bytes]]:
    """Each key's last row: what a restore keeps."""
    return {name: {k: v[-1] for k, v in rows.items()} for name, rows in changelogs.items()}


async def _publish(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def test_the_prefill_is_what_the_pipeline_writes_and_a_worker_lives_on_it(
    brokers: tuple[Settings, Settings], tmp_path: Path
) -> None:
    broker_a, broker_b = brokers
    fundings = [memory.funding(i) for i in range(ACCOUNTS)]
    real, pre = _app(broker_a, "kessai-real"), _app(broker_b, "kessai-prefill")
    await memory.create_kessai_topics(real)

    through_pipeline = await _fund_through_the_pipeline(real, fundings, tmp_path)
    prefilled = await _prefill_equals(pre, fundings, through_pipeline)
    _check_not_vacuous(prefilled, fundings)
    rows = sum(len(v) for keys in prefilled.values() for v in keys.values())
    await _live_on_the_prefill(pre, fundings, rows, tmp_path)


async def _fund_through_the_pipeline(
    real: Settings, fundings: list[memory.Funding], tmp_path: Path
) -> Changelogs:
    """1. Through the pipeline: every cash deposit applied, then every bond deposit."""
    worker = memory.Worker(real, log_path=tmp_path / "real.log", cwd=tmp_path / "real")
    try:
        assert await worker.wait_ready(WAIT_S), worker.watch.tail
        applied = 0
        for topic in (PAYMENTS, CUSTODY):
            await _publish(
                real.bootstrap, [d for f in fundings for d in memory.deposits(f) if d[0] == topic]
            )
            applied += ACCOUNTS
            await _read_until(real.bootstrap, LEDGER_EVENTS, _at_least(applied))
        assert await worker.stop() == 0, worker.watch.tail
    finally:
        worker.kill()
    return await _changelogs(real)


async def _prefill_equals(
    pre: Settings, fundings: list[memory.Funding], through_pipeline: Changelogs
) -> Changelogs:
    """2. and 3. The prefill, read back the same way: each key's last row equal."""
    filled = await memory.prefill(pre, fundings)
    assert filled.records == {
        engine_topic(pre.app_id, ENGINE_ACCOUNTS): ACCOUNTS,
        engine_topic(pre.app_id, ENGINE_APPLIED): 2 * ACCOUNTS,
        engine_topic(pre.app_id, ENGINE_INFLOW): 2,  # one batch: each asset's total once
    }
    prefilled = await _changelogs(pre)
    for name, rows in prefilled.items():
        assert sum(map(len, rows.values())) == filled.records.get(engine_topic(pre.app_id, name), 0)
    real_last, pre_last = _last(through_pipeline), _last(prefilled)
    for name in ENGINE_CHANGELOGS:
        assert real_last[name].keys() == pre_last[name].keys(), name
        for key, value in real_last[name].items():
            assert pre_last[name][key] == value, (name, key)
    # The pipeline wrote an account's row once per batch that touched it: a row with
    # the cash alone first (its bonds came later), then the last one.
    seven = fundings[7].account.encode()
    assert len(through_pipeline[ENGINE_ACCOUNTS][seven]) == 2
    return prefilled


def _check_not_vacuous(prefilled: Changelogs, fundings: list[memory.Funding]) -> None:
    """Not vacuous: each account's state, its ids and the inflow, as they should be."""
    last = _last(prefilled)
    assert len(last[ENGINE_ACCOUNTS]) == ACCOUNTS
    state = orjson.loads(last[ENGINE_ACCOUNTS][fundings[7].account.encode()])
    assert state["seq"] == 2
    assert state["balances"] == {
        memory.CASH_TOKEN: [memory.CASH_UNITS, 0],
        memory.BOND_ISIN: [memory.BOND_FACE, 0],
    }
    ids = {i.encode() for f in fundings for i in memory.command_ids(f)}
    assert last[ENGINE_APPLIED] == dict.fromkeys(ids, b"1")
    assert last[ENGINE_INFLOW] == {
        memory.CASH_TOKEN.encode(): b"%d" % (ACCOUNTS * memory.CASH_UNITS),
        memory.BOND_ISIN.encode(): b"%d" % (ACCOUNTS * memory.BOND_FACE),
    }


async def _live_on_the_prefill(
    pre: Settings, fundings: list[memory.Funding], rows: int, tmp_path: Path
) -> None:
    """4. A worker restores the prefill's *rows* and lives on them."""
    buyer, seller, topped = (f.account for f in fundings[:3])
    top_up = MoveCash(
        payment_id="top-up-1", account=topped, token="JPYC", amount=Decimal(1000), kind="deposit"
    )
    trade = {
        "trade_id": "t-memory-1",
        "venue": "bench",
        "isin": memory.BOND_ISIN,
        "buyer": buyer,
        "seller": seller,
        "quantity": 100_000,
        "price": "99.5",
        "currency": memory.CASH_TOKEN,
        "accrued_interest": "0",
        "trade_time": trade_time(),
    }
    await _publish(
        pre.bootstrap,
        [
            *(d for f in fundings[ACCOUNTS - REPEATED :] for d in memory.deposits(f)),
            (PAYMENTS, topped.encode(), encode(top_up)),
            (TRADES, b"t-memory-1", orjson.dumps(trade)),
        ],
    )
    worker = memory.Worker(pre, log_path=tmp_path / "prefill.log", cwd=tmp_path / "prefill")
    try:
        assert await worker.wait_ready(WAIT_S), worker.watch.tail
        assert worker.watch.restored is not None and worker.watch.restored[0] == rows
        statuses = await _read_until(
            pre.bootstrap, SETTLEMENTS, lambda s: any(r["status"] != "pending" for r in s)
        )
        assert [r["status"] for r in statuses] == ["settled"], statuses
        await _read_until(pre.bootstrap, REJECTIONS, lambda s: len(s) >= 2 * REPEATED)
        assert await worker.stop() == 0, worker.watch.tail
    finally:
        worker.kill()
    rejected = [orjson.loads(r.value) for r in await read_committed(pre, REJECTIONS)]
    assert Counter(r["reason"] for r in rejected) == {"duplicate": 2 * REPEATED}
    repeated = {f.account for f in fundings[ACCOUNTS - REPEATED :]}
    assert {r["key"] for r in rejected} == repeated
    await _check_postings(pre, buyer, seller, topped)


async def _check_postings(pre: Settings, buyer: str, seller: str, topped: str) -> None:
    """The new deposit and the trade's postings continue the prefilled balances and seq."""
    events = [orjson.loads(r.value) for r in await read_committed(pre, LEDGER_EVENTS)]
    assert {e["account"] for e in events} == {buyer, seller, topped}  # nothing repeated
    [top] = [e for e in events if e["account"] == topped]
    assert (top["seq"], top["available"]) == (3, str(memory.CASH_UNITS + 1000))
    for account in (buyer, seller):
        # The prefilled seq was 2: the trade's postings continue it, gap-free.
        seqs = [e["seq"] for e in events if e["account"] == account]
        assert seqs == list(range(3, 3 + len(seqs))) and len(seqs) >= 2, seqs
    cash = 99_500  # 100,000 face at 99.5, no accrued interest
    last = {(e["account"], e["asset"]): (e["available"], e["locked"]) for e in events}
    assert last[buyer, memory.CASH_TOKEN] == (str(memory.CASH_UNITS - cash), "0")
    assert last[buyer, memory.BOND_ISIN] == (str(memory.BOND_FACE + 100_000), "0")
    assert last[seller, memory.CASH_TOKEN] == (str(memory.CASH_UNITS + cash), "0")
    assert last[seller, memory.BOND_ISIN] == (str(memory.BOND_FACE - 100_000), "0")
