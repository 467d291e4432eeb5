"""The auditors' commands on the real broker, over what a real worker wrote.

One scenario, run once: a worker settles a trade between two funded accounts. Then:

- ``kessai positions --as-of`` a moment between the deposits and the trade (as a time,
  and as offsets) gives the balances that held then; at the head, those after;
- a copy of the run's journal verifies, with each account's root the hash of its last
  record; a copy with one record altered, one removed and two swapped fails
  ``kessai verify``, which names each.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams import cli
from streams.config import Settings
from streams.kafkaio import TopicSpec, read_committed
from streams.ledger import journal
from streams.topics import ensure_topics
from tests.integration._topics import create_visible
from tests.integration.test_settlement_flow import _free_port, _start_worker

pytestmark = pytest.mark.integration

BOND = "JP1103551Q43"
WAIT_S = 120.0


@dataclass(frozen=True)
class Journal:
    """The run's ledger-events records: (partition, offset, timestamp_ms, value object)."""

    buyer: str
    seller: str
    records: list[tuple[int, int, int, dict[str, Any]]]

    def of(self, account: str) -> list[tuple[int, int, int, dict[str, Any]]]:
        return [r for r in self.records if r[3]["account"] == account]


async def _journal_of(
    bootstrap: str, accounts: set[str]
) -> list[tuple[int, int, int, dict[str, Any]]]:
    out = []
    for r in await read_committed(bootstrap, "ledger-events"):
        try:
            value = orjson.loads(r.value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict) and value.get("account") in accounts:
            out.append((r.partition, r.offset, r.timestamp, value))
    return out


async def _wait_for(
    bootstrap: str, accounts: set[str], done: Callable[[list[Any]], bool]
) -> list[tuple[int, int, int, dict[str, Any]]]:
    deadline = time.monotonic() + WAIT_S
    while True:
        found = await _journal_of(bootstrap, accounts)
        if done(found):
            return found
        assert time.monotonic() < deadline, f"journal never got there: {found}"
        await asyncio.sleep(0.5)


def _seqs(found: list[Any], account: str) -> int:
    return max((r[3]["seq"] for r in found if r[3]["account"] == account), default=0)


@pytest.fixture(scope="module")
def scenario(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journal]:
    run = uuid.uuid4().hex[:6]
    buyer, seller = f"audit-b-{run}", f"audit-s-{run}"
    accounts = {buyer, seller}
    log_path = tmp_path_factory.mktemp("audit") / "worker.log"

    async def go() -> list[tuple[int, int, int, dict[str, Any]]]:
        await ensure_topics(Settings.from_env({"KESSAI_BOOTSTRAP": bootstrap}))
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:

            async def send(topic: str, key: str, value: dict[str, Any]) -> None:
                await producer.send_and_wait(topic, orjson.dumps(value), key=key.encode())

            await send("payments", buyer, {"payment_id": f"p-{run}", "account": buyer,
                       "token": "JPYC", "amount": "200000", "kind": "deposit"})  # fmt: skip
            await send("custody", seller, {"movement_id": f"c-{run}", "account": seller,
                       "isin": BOND, "quantity": 200_000, "kind": "deposit"})  # fmt: skip
            await _wait_for(bootstrap, accounts, lambda f: all(_seqs(f, a) >= 1 for a in accounts))
            # The trade's records must be stamped after the deposits' millisecond.
            await asyncio.sleep(0.05)
            await send("trades", f"t-{run}", {
                "trade_id": f"t-{run}", "venue": "v1", "isin": BOND, "buyer": buyer,
                "seller": seller, "quantity": 100_000, "price": "99.5", "currency": "JPYC",
                "accrued_interest": "12", "trade_time": "2026-11-25T00:00:00Z"})  # fmt: skip
            # Each side: lock, then the post and the other leg's credit.
            return await _wait_for(
                bootstrap, accounts, lambda f: all(_seqs(f, a) >= 4 for a in accounts)
            )
        finally:
            await producer.stop()

    env = {
        **os.environ,
        "KESSAI_BOOTSTRAP": bootstrap,
        "KESSAI_WEB_PORT": str(_free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    with log_path.open("wb") as log:
        worker = _start_worker(env, log)
        try:
            records = asyncio.run(go())
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
    yield Journal(buyer, seller, records)


def _positions(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> dict[tuple[str, str], tuple[str, str]]:
    assert cli.main(["positions", "--format", "json", *argv]) == 0
    rows = json.loads(capsys.readouterr().out)
    return {(r["account"], r["asset"]): (r["available"], r["locked"]) for r in rows}


def test_positions_as_of_a_moment_between_two_steps(
    scenario: Journal,
    bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KESSAI_BOOTSTRAP", bootstrap)
    b, s = scenario.buyer, scenario.seller
    deposits = [r for r in scenario.records if r[3]["seq"] == 1]
    trade = [r for r in scenario.records if r[3]["seq"] > 1]
    moment_ms = max(r[2] for r in deposits)
    assert moment_ms < min(r[2] for r in trade), "the steps must be apart in time"
    at = datetime.fromtimestamp(moment_ms / 1000, UTC).isoformat(timespec="milliseconds")

    before = {(b, "JPYC"): ("200000", "0"), (s, BOND): ("200000", "0")}
    after = {
        (b, "JPYC"): ("100488", "0"),  # 200,000 - (99.5% of 100,000 + 12)
        (b, BOND): ("100000", "0"),
        (s, BOND): ("100000", "0"),
        (s, "JPYC"): ("99512", "0"),
    }
    for account in (b, s):
        got = _positions(["--as-of", at, "--account", account], capsys)
        assert got == {k: v for k, v in before.items() if k[0] == account}
        assert _positions(["--account", account], capsys) == {
            k: v for k, v in after.items() if k[0] == account
        }

    # As of offsets: the buyer's partition up to (not including) its lock record.
    partition, lock_offset = next((r[0], r[1]) for r in scenario.of(b) if r[3]["seq"] == 2)
    got = _positions(["--as-of", f"{partition}:{lock_offset}", "--account", b], capsys)
    assert got == {(b, "JPYC"): ("200000", "0")}
    got = _positions(["--as-of", f"{partition}:{lock_offset + 1}", "--account", b], capsys)
    assert got == {(b, "JPYC"): ("100488", "99512")}


# --------------------------------------------------------------------- tampering


async def _copy(
    bootstrap: str, topic: str, records: list[tuple[int, int, int, dict[str, Any]]]
) -> None:
    await create_visible(bootstrap, TopicSpec(name=topic, partitions=4))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, _offset, ts, value in records:
            await producer.send_and_wait(
                topic,
                orjson.dumps(value),
                key=value["account"].encode(),
                partition=partition,
                timestamp_ms=ts,
            )
    finally:
        await producer.stop()


def _verify(topic: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    code = cli.main(["verify", "--topic-name", topic, "--format", "json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_verify_passes_a_true_copy_and_names_each_tampering(
    scenario: Journal,
    bootstrap: str,
    unique_name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KESSAI_BOOTSTRAP", bootstrap)
    b, s = scenario.buyer, scenario.seller
    true_copy = unique_name("journal-copy")
    asyncio.run(_copy(bootstrap, true_copy, scenario.records))

    code, doc, err = _verify(true_copy, capsys)
    assert code == 0, err
    assert doc["problems_total"] == 0
    for account in (b, s):
        last = scenario.of(account)[-1][3]
        assert doc["accounts"][account] == {"seq": last["seq"], "root": last["hash"]}
    roots = {a: doc["accounts"][a]["root"] for a in (b, s)}
    assert doc["journal_root"] == journal.journal_root(roots)

    # The buyer's seq 2 altered (hash left as it was), the seller's seq 2 removed, and
    # the buyer's seq 3 and 4 swapped.
    tampered: list[tuple[int, int, int, dict[str, Any]]] = []
    for p, o, ts, v in scenario.records:
        if v["account"] == b and v["seq"] == 2:
            v = {**v, "locked": "1", "delta_locked": "1"}
        if v["account"] == s and v["seq"] == 2:
            continue
        tampered.append((p, o, ts, v))
    i3 = next(i for i, r in enumerate(tampered) if r[3]["account"] == b and r[3]["seq"] == 3)
    i4 = next(i for i, r in enumerate(tampered) if r[3]["account"] == b and r[3]["seq"] == 4)
    tampered[i3], tampered[i4] = tampered[i4], tampered[i3]
    bad_copy = unique_name("journal-tampered")
    asyncio.run(_copy(bootstrap, bad_copy, tampered))

    code, doc, err = _verify(bad_copy, capsys)
    assert code == 1
    found = {(p["kind"], p["account"], p["seq"]) for p in doc["problems"]}
    assert ("altered", b, 2) in found
    assert ("gap", s, 3) in found and ("broken_link", s, 3) in found
    assert ("gap", b, 4) in found and ("out_of_order", b, 3) in found
    assert "problems in the journal" in err

    # positions refuses the tampered copy too (the removal and the swap break seq).
    assert cli.main(["positions", "--topic-name", bad_copy]) == 1
    assert "ledger journal is inconsistent" in capsys.readouterr().err
