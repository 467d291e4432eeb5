"""The fuzz test: 10,000 hostile records among valid trades on a real broker.

On a broker of its own, one worker reads, in one seeded random order:

- 10,000 hostile records over every input topic, the security master and the
  custodian's attestations included (tests/support/hostile.py: null values,
  truncated JSON, invalid UTF-8, odd Unicode in ids, extreme numbers, unknown and
  missing fields, wrong keys, JSON that is not an object) and 24 more of keys or
  values up to the broker's 1 MiB limit;
- 200 valid trades between funded accounts, of a bond in the security master (which
  the worker requires: published before it starts), and a replay of every funding
  payment and of every tenth trade (valid records sent again: ``duplicate``).

Then: every hostile and replayed record has exactly one rejection, found by the
topic, partition and offset it points at, with a reason; every valid trade settles
once; the balances sum to what was deposited (conservation); and the worker never
stopped or restarted.

The worker reads the mix live (the records sent again go in once it is applied), or,
in the takeover run, finds it all waiting when it starts: a takeover over a backlog of
thousands of hostile ``instruments`` and ``fx-rates`` records, which it reads before
any other input. There a copy on another partition may be read before its original
(Kafka orders nothing across partitions), and then the original is the ``duplicate``.

The signed run does it all again with signature checks on (the secure profile's
checks, on a plain broker): the funding and the valid trades are signed, and among
the records sent again are signed ones that must each fail for their own reason: a
valid trade replayed (``duplicate``), one signed two hours before it is sent
(``expired``), one signed for another deployment (``bad_signature``), one sent under
another Kafka key (``wrong_key``), and one rejected once (``unknown_token``) and then
sent again when it would be a second chance (``duplicate``).

Records sent again include copies on a partition other than their key's (as a
client with another partitioner would send them, or an attacker hoping to miss the
partition that remembers the id): still ``duplicate``. Not here: new orders on
another partition than their bond's, which start a second book (H2, the routing
issue's: kessai's own hash).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from schemas import (
    CUSTODY,
    INSTRUMENTS,
    LEDGER_EVENTS,
    PAYMENTS,
    REJECTIONS,
    SETTLEMENTS,
    TRADES,
)
from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.processes import WorkerProcess
from streams.kafka.admin import ensure_public_topics
from streams.kafka.reader import read_committed
from streams.security import signing
from tests.support.hostile import (
    BOND,
    BOND_INSTRUMENT,
    RECORD_BYTES_MAX,
    Hostile,
    hostile_records,
)
from tests.support.records import bond_deposit, cash_deposit, trade_time

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTILE = 10_000
OVERSIZED = 24
TRADES_VALID = 200
PAIRS = 20
#: Seconds for a whole run (15 s here on 2 cores), within pytest's 600 s: a run out of
#: time says what is missing.
RUN_TIMEOUT_S = 540
Where = tuple[str, int, int]


def _trade(n: int) -> tuple[str, dict[str, Any]]:
    tid = f"fz-venue:trade-{n}"
    return tid, {
        "trade_id": tid, "venue": "fz-venue", "isin": BOND,
        "buyer": f"fz-buyer-{n % PAIRS}", "seller": f"fz-seller-{n % PAIRS}",
        "quantity": 100_000, "price": "99.5", "currency": "JPYC", "trade_time": trade_time(),
    }  # fmt: skip


@dataclass(frozen=True)
class Keys:
    """The signed run's signers and the worker's settings that check them."""

    venue: signing.SigningKey
    bridge: signing.SigningKey
    registrar: signing.SigningKey
    env: dict[str, str]

    @classmethod
    def make(cls, folder: Path) -> Keys:
        deployment = "kessai-fuzz"
        keys = {
            s: signing.SigningKey.generate(s, deployment)
            for s in ("fz-venue", "bridge", "registrar")
        }
        matcher_pem, admin_pem = folder / "kessai.pem", folder / "admin.pem"
        signing.write_private_key(matcher_pem, signing.new_private_key_pem())
        signing.write_private_key(admin_pem, signing.new_private_key_pem())
        matcher = signing.SigningKey.load("kessai", matcher_pem, deployment)
        admin = signing.load_admin_key(admin_pem)
        registry = folder / "signers.json"
        registry.write_bytes(signing.registry_document([
            signing.entry("fz-venue", "venue", keys["fz-venue"].public_text(), ["fz-*"]),
            signing.entry("bridge", "bridge", keys["bridge"].public_text()),
            signing.entry("registrar", "instruments", keys["registrar"].public_text()),
            signing.entry("kessai", "matcher", matcher.public_text()),
        ], deployment=deployment, admin=admin))  # fmt: skip
        env = {
            "KESSAI_VERIFY_SIGNATURES": "1",
            "KESSAI_SIGNERS_FILE": str(registry),
            "KESSAI_REGISTRY_KEY": signing.public_key_text(admin.public_key()),
            "KESSAI_SIGNING_KEY_FILE": str(matcher_pem),
            "KESSAI_SIGNER_ID": "kessai",
        }
        return cls(keys["fz-venue"], keys["bridge"], keys["registrar"], env)

    def sign(self, topic: str, record: dict[str, Any]) -> dict[str, Any]:
        signer = {TRADES: self.venue, INSTRUMENTS: self.registrar}.get(topic, self.bridge)
        return signing.sign(topic, record, signer)


#: What each kind of record sent again must be rejected as.
EXPECTED = {
    "replay": "duplicate",
    "moved": "duplicate",
    "expired": "expired",
    "elsewhere": "bad_signature",
    "rekeyed": "wrong_key",
    "refused": "unknown_token",
    "resent": "duplicate",
}


def _record(keys: Keys | None, topic: str, key: str, value: dict[str, Any], kind: str) -> Hostile:
    signed = value if keys is None else keys.sign(topic, value)
    return Hostile(topic, key.encode(), orjson.dumps(signed), kind)


def _plan(seed: int, keys: Keys | None) -> tuple[list[Hostile], list[Hostile], list[Hostile]]:
    """(funding, the mix of hostile and valid records, replays), each to send in order."""

    def record(topic: str, key: str, value: dict[str, Any], kind: str) -> Hostile:
        return _record(keys, topic, key, value, kind)

    funding = []
    amount = 100_000 * TRADES_VALID
    for i in range(PAIRS):
        buyer, seller = f"fz-buyer-{i}", f"fz-seller-{i}"
        cash = cash_deposit(f"fz-fund-{i}", buyer, str(amount))
        bonds = bond_deposit(f"fz-fund-{i}", seller, BOND, amount)
        funding.append(record(PAYMENTS, buyer, cash, "valid"))
        funding.append(record(CUSTODY, seller, bonds, "valid"))
    trades = [
        record(TRADES, tid, value, "valid") for tid, value in map(_trade, range(TRADES_VALID))
    ]
    mix = hostile_records(seed, HOSTILE, oversized=OVERSIZED) + trades
    random.Random(seed).shuffle(mix)
    replays = [replace(h, kind="replay") for h in funding + trades[::10]]
    replays += [replace(h, kind="moved", partition=_other_partition(h))
                for h in funding[::4] + trades[5::10]]  # fmt: skip
    if keys is not None:
        replays += _signed_replays(keys)
    return funding, mix, replays


def _signed_replays(keys: Keys) -> list[Hostile]:
    """Signed records that verify as bytes, and must still be refused (module doc)."""
    out = []
    for n in range(TRADES_VALID, TRADES_VALID + 20):
        tid, value = _trade(n)
        past = datetime.now(UTC) - timedelta(hours=2)
        stale = signing.sign(TRADES, value, keys.venue, now=past)
        staging = replace(keys.venue, deployment="kessai-staging")
        elsewhere = signing.sign(TRADES, {**value, "trade_id": tid + "-s"}, staging)
        moved = keys.sign(TRADES, {**value, "trade_id": tid + "-k"})
        eurc = keys.sign(TRADES, {**value, "trade_id": tid + "-e", "currency": "EURC"})
        out += [
            Hostile(TRADES, tid.encode(), orjson.dumps(stale), "expired"),
            Hostile(TRADES, (tid + "-s").encode(), orjson.dumps(elsewhere), "elsewhere"),
            Hostile(TRADES, (tid + "-x").encode(), orjson.dumps(moved), "rekeyed"),
            Hostile(TRADES, (tid + "-e").encode(), orjson.dumps(eurc), "refused"),
            Hostile(TRADES, (tid + "-e").encode(), orjson.dumps(eurc), "resent"),
        ]
    return out


def _other_partition(h: Hostile) -> int:
    """A partition that is not the one the producer's partitioner gives ``h``'s key."""
    partitions = list(range(Settings().partitions))
    natural: int = DefaultPartitioner()(h.key, partitions, partitions)
    return (natural + 1) % len(partitions)


async def _send(producer: AIOKafkaProducer, records: list[Hostile]) -> list[Where]:
    futures = [
        await producer.send(h.topic, h.value, key=h.key, partition=h.partition) for h in records
    ]
    metadata = await asyncio.gather(*futures)
    return [(m.topic, m.partition, m.offset) for m in metadata]


async def _committed(settings: Settings, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in await read_committed(settings, topic)]


@pytest.mark.parametrize(
    ("signed", "takeover"), [(False, False), (True, False), (False, True)],
    ids=["unsigned", "signed", "takeover"],
)  # fmt: skip
async def test_ten_thousand_hostile_records_are_rejected_and_every_valid_trade_settles(
    bootstrap: str, tmp_path: Path, signed: bool, takeover: bool
) -> None:
    settings = localkafka.up_private(tmp_path, log=lambda line: print(f"[fuzz broker] {line}"))
    keys = Keys.make(tmp_path) if signed else None
    env = {"KESSAI_BOOTSTRAP": settings.bootstrap, "KESSAI_SECURITY_MASTER": "required",
           **(keys.env if keys else {})}  # fmt: skip
    run = Run(settings, keys, env, tmp_path / "worker.log")
    try:
        await ensure_public_topics(settings)
        await run.go(takeover=takeover)
        worker = run.the_worker()
        _check_rejections(run.rejections, run.bad, run.copies, either=takeover)
        _check_settled(run.statuses, run.trade_ids)
        await _check_conservation(settings)
        assert worker.alive, f"the worker stopped: {worker.log_tail()}"
        log = worker.log_path.read_text()
        assert "CRITICAL" not in log and log.count("[^Worker]: Starting...") <= 1, worker.log_tail()
    finally:
        if run.worker is not None:
            run.worker.stop()
        localkafka.down(settings)


@dataclass
class Run:
    """One fuzz run: what was sent where, and what the worker made of it."""

    settings: Settings
    keys: Keys | None
    env: dict[str, str]
    log_path: Path
    worker: WorkerProcess | None = None
    deadline: float = field(default_factory=lambda: time.monotonic() + RUN_TIMEOUT_S)
    bad: dict[Where, Hostile] = field(default_factory=dict)
    #: Each record sent again on another partition, and where its original went.
    copies: dict[Where, Where] = field(default_factory=dict)
    trade_ids: set[str] = field(default_factory=set)
    rejections: dict[Where, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[str]] = field(default_factory=dict)

    async def go(self, *, takeover: bool) -> None:
        """Live: the worker reads the mix as it comes, and the records sent again once it
        is all applied (a copy on another partition is then read after its original).
        Takeover: all of it is on the broker before the worker starts, so the worker
        takes over with a backlog of hostile reference data, read first."""
        funding, mix, replays = _plan(seed=18, keys=self.keys)
        self.trade_ids = {h.key.decode() for h in mix if h.kind == "valid" and h.key}
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap, acks="all", linger_ms=5,
            max_request_size=RECORD_BYTES_MAX + 1_000,
        )  # fmt: skip
        await producer.start()
        try:
            # The bond first: the engine reads the master to its end as it starts.
            bond = _record(self.keys, INSTRUMENTS, BOND, BOND_INSTRUMENT, "valid")
            await _send(producer, [bond])
            if not takeover:
                await self._start()
                waited = self.deadline - time.monotonic()
                await self.the_worker().wait_log("reference data records read", timeout_s=waited)
            originals = await self._sent(producer, funding + mix)
            if not takeover:
                await self._wait()
            for h, w in zip(replays, await _send(producer, replays), strict=True):
                self.bad[w] = h
                if h.kind == "moved":
                    self.copies[w] = originals[(h.topic, h.key, h.value)]
        finally:
            await producer.stop()
        if takeover:
            await self._start()
        await self._wait()

    async def _start(self) -> None:
        self.worker = WorkerProcess(self.log_path, env=self.env)
        await self.worker.ready()

    def the_worker(self) -> WorkerProcess:
        assert self.worker is not None, "no worker started"
        return self.worker

    async def _sent(
        self, producer: AIOKafkaProducer, records: list[Hostile]
    ) -> dict[tuple[str, bytes | None, bytes | None], Where]:
        """Send, note the bad ones; where each valid one went."""
        originals = {}
        for h, w in zip(records, await _send(producer, records), strict=True):
            if h.kind == "valid":
                originals[(h.topic, h.key, h.value)] = w
            else:
                self.bad[w] = h
        return originals

    async def _wait(self) -> None:
        """Poll until every bad record sent so far has its rejection and every trade a
        terminal status. A copy on another partition counts when it or its original
        has one (which of them it must be is :func:`_check_rejections`'s)."""
        while True:
            self.rejections = defaultdict(list)
            for r in await _committed(self.settings, REJECTIONS):
                where = (r["source_topic"], r["source_partition"], r["source_offset"])
                self.rejections[where].append(r)
            self.statuses = defaultdict(list)
            for s in await _committed(self.settings, SETTLEMENTS):
                self.statuses[s["trade_id"]].append(s["status"])
            missing = {w for w in self.bad.keys() - self.rejections.keys()
                       if self.copies.get(w) not in self.rejections}  # fmt: skip
            unsettled = {t for t in self.trade_ids
                         if not {"settled", "failed"} & set(self.statuses[t])}  # fmt: skip
            if not missing and not unsettled:
                return
            worker = self.the_worker()
            assert worker.alive, f"the worker stopped: {worker.log_tail()}"
            assert time.monotonic() < self.deadline, (
                f"after {RUN_TIMEOUT_S} s: {len(missing)} records without a rejection "
                f"(kinds {Counter(self.bad[w].kind for w in missing)}), {len(unsettled)} "
                f"trades unsettled; log {worker.log_path}"
            )
            await asyncio.sleep(3)


def _check_rejections(
    rejections: dict[Where, list[dict[str, Any]]],
    bad: dict[Where, Hostile],
    copies: dict[Where, Where],
    *,
    either: bool,
) -> None:
    """One rejection per bad record, with a reason; the expected one for each kind sent
    again. A copy on another partition is the ``duplicate``; with ``either`` (a backlog:
    Kafka orders nothing across partitions) its original may be, the copy read first."""
    bad = dict(bad)
    first = [c for c, o in copies.items() if either and c not in rejections and o in rejections]
    for copy in first:
        bad[copies[copy]] = bad.pop(copy)
    reasons: Counter[str] = Counter()
    for w, h in bad.items():
        got = rejections[w]
        assert len(got) == 1, (h.kind, got)
        reasons[got[0]["reason"]] += 1
        assert got[0]["reason"], got
        if h.kind in EXPECTED:
            assert got[0]["reason"] == EXPECTED[h.kind], (h, got)
    extra = rejections.keys() - bad.keys()
    assert not extra, f"rejections of valid records: {[rejections[w] for w in list(extra)[:5]]}"
    assert reasons["malformed"] and reasons["schema"] and reasons["duplicate"], reasons
    print(f"{len(bad)} hostile and replayed records, one rejection each: {dict(reasons)}; "
          f"{len(first)} of {len(copies)} copies on another partition read first")  # fmt: skip


def _check_settled(statuses: dict[str, list[str]], trade_ids: set[str]) -> None:
    for tid in trade_ids:
        terminal = [s for s in statuses[tid] if s in ("settled", "failed")]
        assert terminal == ["settled"], (tid, statuses[tid])


async def _check_conservation(settings: Settings) -> None:
    """Each asset's balances sum to what was deposited: trades only move it."""
    last: dict[tuple[str, str], tuple[int, int]] = {}
    for r in await _committed(settings, LEDGER_EVENTS):
        last[(r["account"], r["asset"])] = (int(r["available"]), int(r["locked"]))
    totals: Counter[str] = Counter()
    for (_account, asset), (available, locked) in last.items():
        totals[asset] += available + locked
    funded = 100_000 * TRADES_VALID * PAIRS
    assert totals == {"JPYC": funded, BOND: funded}, totals
