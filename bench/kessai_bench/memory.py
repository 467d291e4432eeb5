"""The worker's memory per funded account (issue 7, item 4: "at most 1 KiB per account").

Funding a million accounts through the pipeline would take hours on a small machine,
so the state is written directly instead, exactly as the pipeline would have left it:
for each account count N, on a broker of its own (:func:`streams.devtools.localkafka.up_private`),

1. kessai's topics are created as ``kessai worker`` creates them;
2. the ``accounts`` and ``applied`` changelog topics are written with the records the
   ledger agent writes when it applies one cash deposit (JPYC) and one bond deposit
   (one ISIN) per account (:func:`ledger_writes`): the states come from the ledger's
   own pure step (:func:`streams.ledger.handler.account_step`), keys and values are
   serialized with each table's own codec (:func:`table_codecs`, read from the
   worker's faust app), and each record goes to the partition
   faust sends it to -- the partition of ``kessai-ledger-commands`` that the account's
   commands come from, which aiokafka's default partitioner (murmur2 of the UTF-8
   account id) chooses (:func:`command_partition`);
3. ``kessai worker`` starts, rebuilds both tables from the changelogs (faust's
   recovery), says ``Worker ready``; a few seconds later its ``VmRSS`` and ``VmHWM``
   are read from ``/proc/<pid>/status``;
4. with ``--touch K``, 1 JPYC is deposited through the pipeline into K of the accounts
   (:func:`touch`) and the RSS read again: recovery fills the tables with values read
   from Kafka, a running worker also holds the values its agents built;
5. the worker is stopped with SIGTERM, the broker too.

Bytes per account = (RSS(N) - RSS(0)) / N. An in-process ``tracemalloc`` profile
(:func:`profile_tables`, no Kafka) splits the cost of the tables between the values,
the keys and faust's store, and prices the values in other shapes.

That the prefill is what the pipeline writes is checked, not assumed:
``tests/integration/bench/test_memory.py`` funds accounts through a real worker and
compares both changelogs with the prefill record by record, partition by partition,
then lets a worker recover the prefill and settle a trade on it.

    python -m kessai_bench.memory --accounts 0,100000,1000000 --out DIR
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from faust.serializers import codecs

from kessai_bench import RESULTS
from schemas import CUSTODY, LEDGER_EVENTS, PAYMENTS, MoveBonds, MoveCash, encode
from streams.config import DEFAULT_TOKENS, Settings
from streams.devtools import localkafka
from streams.devtools.processes import WorkerProcess, free_port
from streams.errors import KessaiError
from streams.kafka.admin import create_topics, ensure_worker_topics
from streams.ledger import journal
from streams.ledger.domain import AccountState
from streams.ledger.handler import account_step
from streams.ledger.messages import Move
from streams.topics import ACCOUNTS_TABLE, APPLIED_TABLE, TopicSpec, changelog

# -- what one funded account is -------------------------------------------------------

#: The cash token and bond each account is funded with, and how much of each.
CASH_TOKEN: Final = "JPYC"
CASH_UNITS: Final = 10_000_000  # JPYC has 0 decimals: ten million yen
BOND_ISIN: Final = "JP1103551Q43"
BOND_FACE: Final = 1_000_000
#: The worker's tokens (KESSAI_TOKENS); the default set, so "JPYC" has 0 decimals.
TOKENS: Final[Mapping[str, int]] = {"JPYC": 0, "USDC": 6}

#: The ledger's two tables (streams/ledger/agent.py) and their changelogs' config as
#: faust declares it for a non-windowed table (faust.tables.base, compacting=True).
TABLES: Final = (ACCOUNTS_TABLE, APPLIED_TABLE)
CHANGELOG_CONFIG: Final[Mapping[str, str]] = {"cleanup.policy": "compact"}
#: faust's codec for a table declared with ``value_type=bytes`` (tables/base.py); any
#: other type gets "json" (orjson with OPT_NON_STR_KEYS | OPT_UTC_Z).
RAW_CODEC: Final = "raw"

# -- limits ---------------------------------------------------------------------------

ACCOUNTS_MAX: Final = 10_000_000
#: The bulk producer: records wait this long for their batch to fill.
PRODUCE_LINGER_MS: Final = 50
PRODUCE_BATCH_BYTES_MAX: Final = 1_048_576
#: Changelog records encoded ahead of the producer (bounds the writer's memory).
PRODUCE_CHUNK_ACCOUNTS: Final = 20_000
#: A worker that has not said "Worker ready" by then is given up on (1M accounts: see
#: notes/2026-11-25-bench-memory.md for how long it takes).
RECOVERY_TIMEOUT_S: Final = 1_800.0
#: Left to a ready worker before its RSS is read (start-up garbage, first commits).
SETTLE_S: Final = 5.0
RSS_SAMPLES: Final = 5
STOP_GRACE_S: Final = 30.0
PROGRESS_EVERY_S: Final = 30.0
#: Accounts the worker is made to write after recovery (``--touch``), and how long
#: it gets to apply their deposits.
TOUCH_ACCOUNTS: Final = 20_000
TOUCH_TIMEOUT_S: Final = 600.0
#: Accounts in the in-process tracemalloc profile (the cost per account is linear).
PROFILE_ACCOUNTS: Final = 100_000
LOG_TAIL_LINES: Final = 15
#: Issue 7's aim.
TARGET_BYTES_PER_ACCOUNT: Final = 1024

#: Lines of the worker's log that mark its progress (faust's recovery, then
#: streams/runtime/eos.py's KessaiRecovery), by the name they are reported under.
MILESTONES: Final[Mapping[str, str]] = {
    "recovery_started": "Restoring state from changelog topics",
    "recovery_read": "Done reading from changelog topics",
    "recovery_complete": "Recovery complete",
    "ready": "Worker ready",
}
#: faust's progress line while it reads changelogs: "... (total remaining=1234):".
_REMAINING_MARK: Final = "total remaining="
#: faust's lines when a rebalance interrupts recovery (it then starts over).
_RESTART_MARKS: Final = ("Recovery rebalancing again", "Restarting Recovery")

Log = Callable[[str], None]


class MemoryBenchError(KessaiError):
    """The measurement could not be made as asked."""


# -- the funding and the records it leaves -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Funding:
    """One account and the ids of its two opening deposits."""

    account: str
    payment_id: str
    movement_id: str


def funding(i: int) -> Funding:
    """Account number *i*: ``acct-00000042``, paid by ``cash-00000042`` and ``bond-00000042``."""
    assert 0 <= i < ACCOUNTS_MAX, i
    return Funding(f"acct-{i:08d}", f"cash-{i:08d}", f"bond-{i:08d}")


def deposits(f: Funding) -> list[tuple[str, bytes, bytes]]:
    """The two records the bridges publish to fund *f*: ``(topic, key, value)``."""
    cash = MoveCash(
        payment_id=f.payment_id,
        account=f.account,
        token=CASH_TOKEN,
        amount=Decimal(CASH_UNITS),  # 0 decimals: units are yen
        kind="deposit",
    )
    bonds = MoveBonds(
        movement_id=f.movement_id,
        account=f.account,
        isin=BOND_ISIN,
        quantity=BOND_FACE,
        kind="deposit",
    )
    key = f.account.encode()
    return [(PAYMENTS, key, encode(cash)), (CUSTODY, key, encode(bonds))]


def moves(f: Funding) -> tuple[Move, Move]:
    """The two commands the ledger's intake forwards for *f*'s deposits, cash first.

    Command ids as the intake builds them (``payment:<payment_id>``,
    ``custody:<movement_id>``); ``source`` only ever feeds a rejection, so it is left out.
    """
    return (
        Move(f"payment:{f.payment_id}", f.account, CASH_TOKEN, CASH_UNITS, "deposit"),
        Move(f"custody:{f.movement_id}", f.account, BOND_ISIN, BOND_FACE, "deposit"),
    )


_PARTITIONER = DefaultPartitioner()


def command_partition(account: str, partitions: int) -> int:
    """The partition of ``kessai-ledger-commands`` that *account*'s commands go to.

    The intake sends them with ``key=account.encode()`` and no partition; faust's
    transactional producers are aiokafka producers with its default partitioner (the
    Java client's murmur2), unless ``producer_partitioner`` is set (kessai does not).
    faust writes every table change to the changelog partition of the event being
    processed (``Collection._send_changelog``: ``event.message.partition``), so this is
    also the account's partition in both changelogs.
    """
    assert partitions > 0, partitions
    every = list(range(partitions))
    partition: int = _PARTITIONER(account.encode(), every, every)
    return partition


@dataclass(frozen=True, slots=True)
class TableCodec:
    """How faust serializes one table's keys and values: the table's own declaration."""

    key_serializer: str
    value_serializer: str

    def dumps_key(self, key: object) -> bytes:
        return right_sized(codecs.dumps(self.key_serializer, key))

    def dumps_value(self, value: object) -> bytes:
        return right_sized(codecs.dumps(self.value_serializer, value))

    def loads_key(self, raw: bytes) -> Any:
        return codecs.loads(self.key_serializer, raw)

    def loads_value(self, raw: bytes) -> Any:
        """What faust's memory store keeps for a changelog value.

        A raw value is the record's own bytes object, one per record as aiokafka
        hands it over: copied here, so that it is counted like one.
        """
        if self.value_serializer == RAW_CODEC:
            return right_sized(raw)
        return codecs.loads(self.value_serializer, raw)


def right_sized(data: bytes) -> bytes:
    """A copy of *data* in a block of its own size.

    orjson 3.13's ``dumps`` returns bytes objects that keep its whole output buffer:
    about 4 KiB of memory each, whatever their length (measured: 4,106 bytes of RSS
    per kept 93-byte value, 144 for a copy). A record read from Kafka is sized to
    its length; so are the records built here.
    """
    return memoryview(data).tobytes()


@functools.cache
def table_codecs(partitions: int = 4) -> dict[str, TableCodec]:
    """The ledger's tables' codecs, read from the worker's own faust app (no broker).

    So the prefill and the profile follow the tables as ``streams/ledger/agent.py``
    declares them today (the accounts table went from JSON dicts to raw bytes).
    """
    from streams.runtime.app import create_app  # builds faust apps: only when needed

    app = create_app(Settings(app_id="kessai-memory-bench", partitions=partitions))
    tables: Mapping[str, Any] = app.tables  # faust types them without their codecs
    return {
        name: TableCodec(
            key_serializer=str(tables[name].key_serializer),
            value_serializer=str(tables[name].value_serializer),
        )
        for name in TABLES
    }


@dataclass(frozen=True, slots=True)
class ChangelogRecord:
    table: str
    partition: int
    key: bytes
    value: bytes


def account_value(state: AccountState, codec: TableCodec) -> bytes:
    """The changelog value the ledger agent writes for *state*.

    A raw table holds ``AccountState.to_bytes()``; a json one gets
    ``AccountState.to_json()`` through faust's json codec. Both are the same JSON.
    """
    if codec.value_serializer == RAW_CODEC:
        return right_sized(state.to_bytes())
    return codec.dumps_value(state.to_json())


def _decimals_of(asset: str) -> int:
    # The worker the prefill stands for runs with the default tokens.
    return DEFAULT_TOKENS.get(asset, 0)


def ledger_writes(f: Funding, *, partitions: int) -> list[ChangelogRecord]:
    """The changelog records the ledger agent writes while applying *f*'s two deposits.

    In the agent's order: ``accounts[account] = state`` then ``applied[id] = True``,
    once per deposit; the states come from the ledger's own step, starting from an
    empty account (the table's default), as ``streams/ledger/agent.py`` does.
    """
    codec = table_codecs(partitions)
    partition = command_partition(f.account, partitions)
    key = codec[ACCOUNTS_TABLE].dumps_key(f.account)
    state = AccountState()
    out: list[ChangelogRecord] = []
    for move in moves(f):
        fx = account_step(state, f.account, move, already_applied=False)
        assert fx.rejection is None and not fx.sends, fx
        journal.chain(state, fx.state, fx.postings, _decimals_of)
        value = account_value(fx.state, codec[ACCOUNTS_TABLE])
        out.append(ChangelogRecord(ACCOUNTS_TABLE, partition, key, value))
        # What the next command of this account starts from: the stored value, decoded.
        state = AccountState.from_json(orjson.loads(value))
        applied = codec[APPLIED_TABLE]
        out.extend(
            ChangelogRecord(
                APPLIED_TABLE, partition, applied.dumps_key(command_id), applied.dumps_value(True)
            )
            for command_id in fx.applied
        )
    return out


# -- Kafka: topics and the bulk prefill ---------------------------------------------------


async def create_kessai_topics(settings: Settings) -> None:
    """The topics ``kessai worker`` creates at start."""
    await ensure_worker_topics(settings)


async def create_changelogs(settings: Settings) -> list[str]:
    """Both changelog topics, as faust would declare them; returns those created.

    Created here rather than left to the worker, so that they exist before the
    prefill writes; faust then finds them and creates nothing.
    """
    return await create_topics(
        settings,
        [
            TopicSpec(
                name=changelog(settings.app_id, table),
                partitions=settings.partitions,
                config=dict(CHANGELOG_CONFIG),
            )
            for table in TABLES
        ],
    )


@dataclass(frozen=True, kw_only=True)
class Prefill:
    accounts: int
    #: Records written per changelog topic.
    records: dict[str, int]
    seconds: float


async def prefill(
    settings: Settings, accounts: Iterable[Funding], *, log: Log | None = None
) -> Prefill:
    """Write the changelog records of funding *accounts* (creating the topics first).

    One batch per topic partition at a time, built with aiokafka's batch API (far
    cheaper per record than ``send``); an idempotent producer, acks=all.
    """
    started = time.monotonic()
    await create_changelogs(settings)
    topics = {table: changelog(settings.app_id, table) for table in TABLES}
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=PRODUCE_LINGER_MS,
        max_batch_size=PRODUCE_BATCH_BYTES_MAX,
        max_request_size=PRODUCE_BATCH_BYTES_MAX * 2,
    )
    await producer.start()
    counts = dict.fromkeys(topics.values(), 0)
    n = 0
    last_said = started
    try:
        builders: dict[tuple[str, int], Any] = {}
        pending: list[asyncio.Future[Any]] = []

        async def flush(tp: tuple[str, int]) -> None:
            builder = builders.pop(tp)
            pending.append(await producer.send_batch(builder, tp[0], partition=tp[1]))

        for chunk in _chunks(accounts, PRODUCE_CHUNK_ACCOUNTS):
            for f in chunk:
                for record in ledger_writes(f, partitions=settings.partitions):
                    tp = (topics[record.table], record.partition)
                    builder = builders.get(tp)
                    if builder is None:
                        builder = builders[tp] = producer.create_batch()
                    while (
                        builder.append(key=record.key, value=record.value, timestamp=None) is None
                    ):
                        await flush(tp)
                        builder = builders[tp] = producer.create_batch()
                    counts[tp[0]] += 1
                n += 1
            # Delivered batches need not be kept; a failed one fails the prefill.
            done = [fut for fut in pending if fut.done()]
            for fut in done:
                fut.result()
            pending = [fut for fut in pending if not fut.done()]
            if log is not None and time.monotonic() - last_said > PROGRESS_EVERY_S:
                last_said = time.monotonic()
                log(f"  prefill: {n:,} accounts written ({n / (last_said - started):,.0f}/s)")
        for tp in list(builders):
            await flush(tp)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return Prefill(accounts=n, records=counts, seconds=time.monotonic() - started)


def _chunks(items: Iterable[Funding], size: int) -> Iterator[list[Funding]]:
    chunk: list[Funding] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- the worker under measurement ---------------------------------------------------------


def milestone(line: str) -> str | None:
    """Which :data:`MILESTONES` entry a worker log line is, if any."""
    for name, mark in MILESTONES.items():
        if mark in line:
            return name
    return None


def remaining(line: str) -> int | None:
    """faust's "records still to read" from a recovery progress line, if it is one."""
    _, found, rest = line.partition(_REMAINING_MARK)
    if not found:
        return None
    digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
    return int(digits) if digits else None


def proc_status_kib(
    pid: int, fields: Sequence[str] = ("VmRSS", "VmHWM", "RssAnon")
) -> dict[str, int]:
    """Memory fields of ``/proc/<pid>/status`` in KiB (those present)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in fields:
                out[name] = int(rest.split()[0])
    return out


@dataclass
class _Watch:
    """What the worker's log said so far, with monotonic times."""

    started: float
    seen: dict[str, float] = field(default_factory=dict)
    restarts: int = 0
    #: (time, records remaining) from faust's last recovery progress line.
    remaining: tuple[float, int] | None = None
    tail: list[str] = field(default_factory=list)


class Worker:
    """``kessai worker`` (:class:`~streams.devtools.processes.WorkerProcess`) whose log
    is watched for its milestones as they are printed, so that recovery is timed."""

    def __init__(
        self,
        settings: Settings,
        *,
        log_path: Path,
        cwd: Path,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        env = {
            "KESSAI_BOOTSTRAP": settings.bootstrap,
            "KESSAI_APP_ID": settings.app_id,
            "KESSAI_PARTITIONS": str(settings.partitions),
            "KESSAI_TOKENS": ",".join(f"{k}:{v}" for k, v in settings.tokens.items()),
            **(extra_env or {}),
        }
        cwd.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self.watch = _Watch(started=time.monotonic())
        self._lock = threading.Lock()
        # faust's data directory ("<app id>-data") goes to cwd.
        self.process = WorkerProcess(
            log_path, env=env, port=settings.web_port, cwd=cwd, on_line=self._line
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def _line(self, line: str) -> None:
        now = time.monotonic()
        with self._lock:
            watch = self.watch
            watch.tail = [*watch.tail[-LOG_TAIL_LINES + 1 :], line.rstrip()]
            name = milestone(line)
            if name is not None:
                watch.seen.setdefault(name, now)
            if any(mark in line for mark in _RESTART_MARKS):
                watch.restarts += 1
            left = remaining(line)
            if left is not None:
                watch.remaining = (now, left)

    def since_start(self, name: str) -> float | None:
        with self._lock:
            at = self.watch.seen.get(name)
        return None if at is None else at - self.watch.started

    async def wait_ready(self, timeout_s: float, *, log: Log | None = None) -> bool:
        """Wait for ``Worker ready`` and the web port; False on timeout, raise if it died."""
        deadline = time.monotonic() + timeout_s
        last_said = time.monotonic()
        while self.since_start("ready") is None or self.process.health() is None:
            if not self.process.alive:
                raise MemoryBenchError(
                    f"the worker exited with {self.process.proc.returncode} before it was "
                    f"ready; log {self.log_path}:\n" + "\n".join(self.watch.tail)
                )
            if time.monotonic() > deadline:
                return False
            if log is not None and time.monotonic() - last_said > PROGRESS_EVERY_S:
                last_said = time.monotonic()
                rss = proc_status_kib(self.pid).get("VmRSS", 0)
                left = self.watch.remaining
                log(
                    f"  worker: {time.monotonic() - self.watch.started:,.0f} s, "
                    f"RSS {rss / 1024:,.0f} MiB"
                    + (f", {left[1]:,} changelog records to go" if left else "")
                )
            await asyncio.sleep(0.2)
        return True

    def memory_kib(self) -> dict[str, int]:
        return proc_status_kib(self.pid)

    async def stop(self, timeout_s: float = STOP_GRACE_S) -> int:
        """SIGTERM, then SIGKILL after *timeout_s*; the exit code."""
        return await asyncio.to_thread(self.process.stop, timeout_s)

    def kill(self) -> None:
        self.process.kill()


# -- one measurement ------------------------------------------------------------------


async def measure(
    accounts: int,
    *,
    workdir: Path,
    partitions: int,
    settle_s: float = SETTLE_S,
    recovery_timeout_s: float = RECOVERY_TIMEOUT_S,
    worker_env: Mapping[str, str] | None = None,
    touch_accounts: int = 0,
    log: Log,
) -> dict[str, Any]:
    """One account count on a broker of its own: prefill, recover, read the worker's RSS;
    then, with *touch_accounts*, make the worker write that many accounts and read it again.
    """
    assert 0 <= accounts <= ACCOUNTS_MAX, accounts
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"{accounts:,} accounts: starting a broker in {workdir}")
    broker = await asyncio.to_thread(
        localkafka.up_private, workdir, tokens=dict(TOKENS), log=lambda line: log(f"  {line}")
    )
    settings = Settings(
        bootstrap=broker.bootstrap,
        partitions=partitions,
        tokens=dict(TOKENS),
        state_dir=broker.state_dir,
        app_id="kessai",
        web_port=free_port(),
    )
    worker: Worker | None = None
    try:
        await create_kessai_topics(settings)
        filled = await prefill(settings, (funding(i) for i in range(accounts)), log=log)
        records = sum(filled.records.values())
        log(
            f"  prefill: {accounts:,} accounts, {records:,} changelog records in "
            f"{filled.seconds:,.1f} s"
        )
        on_disk = _changelog_bytes(broker, settings.app_id)
        worker = Worker(
            settings,
            log_path=workdir / "worker.log",
            cwd=workdir / "worker",
            extra_env=worker_env,
        )
        ready = await worker.wait_ready(recovery_timeout_s, log=log)
        if ready:
            await asyncio.sleep(settle_s)
        samples = []
        for _ in range(RSS_SAMPLES):
            samples.append(worker.memory_kib())
            await asyncio.sleep(0.2)
        memory = samples[-1]
        watch = worker.watch
        left = watch.remaining
        touched: dict[str, Any] = {"touched_accounts": 0}
        if ready and touch_accounts and accounts:
            touched = await touch(
                settings, worker, min(touch_accounts, accounts), before=memory, settle_s=settle_s
            )
            log(
                f"  touched {touched['touched_accounts']:,} accounts in {touched['touch_s']} s: "
                f"{touched['touch_bytes_per_account']:,} bytes of RSS each"
            )
        exit_code = await worker.stop()
        result = {
            "accounts": accounts,
            "ready": ready,
            "changelog_records": records,
            "changelog_records_by_topic": filled.records,
            "changelog_bytes_on_disk_at_start": on_disk,
            "prefill_s": round(filled.seconds, 2),
            "rss_kib": memory.get("VmRSS"),
            "rss_anon_kib": memory.get("RssAnon"),
            "peak_rss_kib": memory.get("VmHWM"),
            "rss_kib_samples": [s.get("VmRSS") for s in samples],
            **recovery_figures(
                {name: at - watch.started for name, at in watch.seen.items()},
                records=records,
                remaining=None if left is None else (left[0] - watch.started, left[1]),
            ),
            "recovery_restarts": watch.restarts,
            **touched,
            "worker_exit_code": exit_code,
        }
        log(
            f"  {accounts:,} accounts: ready={ready} RSS {_mib(result['rss_kib'])} MiB, "
            f"peak {_mib(result['peak_rss_kib'])} MiB, recovery {result['recovery_s']} s"
        )
        return result
    finally:
        if worker is not None:
            worker.kill()
        await asyncio.to_thread(localkafka.down, broker)


async def touch(
    settings: Settings,
    worker: Worker,
    accounts: int,
    *,
    before: Mapping[str, int],
    settle_s: float,
    timeout_s: float = TOUCH_TIMEOUT_S,
) -> dict[str, Any]:
    """Deposit 1 JPYC into each of the first *accounts* accounts through the pipeline,
    wait until the ledger applied them all, and read the worker's RSS again.

    Recovery fills the tables with values read from Kafka; a worker that runs also
    holds the values its agents wrote, and those are made differently (for a raw
    table: whatever bytes object the agent built). Each touch also adds one id to
    ``applied``.
    """
    assert accounts > 0, accounts
    started = time.monotonic()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", linger_ms=PRODUCE_LINGER_MS
    )
    await producer.start()
    try:
        for i in range(accounts):
            f = funding(i)
            top_up = MoveCash(
                payment_id=f"touch-{i:08d}",
                account=f.account,
                token=CASH_TOKEN,
                amount=Decimal(1),
                kind="deposit",
            )
            await producer.send(PAYMENTS, encode(top_up), key=f.account.encode())
        await producer.flush()
    finally:
        await producer.stop()
    applied = await _count_committed(settings.bootstrap, LEDGER_EVENTS, accounts, timeout_s)
    if applied < accounts:
        raise MemoryBenchError(
            f"the worker applied {applied:,} of {accounts:,} deposits in {timeout_s:.0f} s; "
            f"log {worker.log_path}"
        )
    took_s = time.monotonic() - started
    await asyncio.sleep(settle_s)
    after = worker.memory_kib()
    return {
        "touched_accounts": accounts,
        "touch_s": round(took_s, 1),
        "rss_after_touch_kib": after.get("VmRSS"),
        "peak_rss_after_touch_kib": after.get("VmHWM"),
        "touch_bytes_per_account": round((after["VmRSS"] - before["VmRSS"]) * 1024 / accounts),
    }


async def _count_committed(bootstrap: str, topic: str, wanted: int, timeout_s: float) -> int:
    """Committed records on *topic* (read from the start), until *wanted* or the timeout."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    deadline = time.monotonic() + timeout_s
    try:
        while seen < wanted and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            seen += sum(len(records) for records in batch.values())
        return seen
    finally:
        await consumer.stop()


def recovery_figures(
    seen_s: Mapping[str, float], *, records: int, remaining: tuple[float, int] | None
) -> dict[str, Any]:
    """Times from the worker's start (s) and the changelog records read per second.

    Recovery = "Restoring state" to "Done reading"; with no changelog to read faust
    skips both lines and recovery is 0. A worker that never got there is rated on
    faust's last progress line (records remaining at some time).
    """
    started, read = seen_s.get("recovery_started"), seen_s.get("recovery_read")
    ready = seen_s.get("ready")
    recovery_s: float | None
    rate: float | None = None
    if started is not None and read is not None:
        recovery_s = read - started
        rate = records / recovery_s if recovery_s > 0 else None
    elif started is None and ready is not None:
        recovery_s = 0.0
    else:
        recovery_s = None
        if started is not None and remaining is not None and remaining[0] > started:
            rate = (records - remaining[1]) / (remaining[0] - started)
    return {
        "start_to_ready_s": None if ready is None else round(ready, 2),
        "recovery_s": None if recovery_s is None else round(recovery_s, 2),
        "recovery_records_per_s": None if rate is None else round(rate),
        "last_remaining": None if remaining is None else remaining[1],
    }


def _changelog_bytes(broker: Settings, app_id: str) -> int:
    """Bytes of the changelogs' log segments on the broker's disk right now.

    The changelogs are compacted: the log cleaner may drop each account's first
    state before or while the worker reads them, so this says how much was there.
    """
    data = broker.state_dir / "kafka" / "data"
    total = 0
    for table in TABLES:
        for segment in data.glob(f"{changelog(app_id, table)}-*/*.log"):
            with contextlib.suppress(OSError):
                total += segment.stat().st_size
    return total


def per_account(results: Sequence[MutableMapping[str, Any]]) -> None:
    """Add the bytes each account costs to each result.

    ``bytes_per_account`` (and ``anon_bytes_per_account``, from RssAnon): against the
    worker with 0 accounts. ``marginal_bytes_per_account``: against the next smaller
    count measured, which leaves out what recovery costs once whatever the count.
    """
    base = next((r for r in results if r["accounts"] == 0), None)
    by_count = sorted(results, key=lambda r: r["accounts"])
    for r in results:
        for name, field_ in (
            ("bytes_per_account", "rss_kib"),
            ("anon_bytes_per_account", "rss_anon_kib"),
        ):
            r[name] = _bytes_each(r, base, field_)
        smaller = [s for s in by_count if s["accounts"] < r["accounts"]]
        r["marginal_bytes_per_account"] = (
            _bytes_each(r, smaller[-1], "rss_kib") if smaller and smaller[-1]["accounts"] else None
        )


def _bytes_each(r: Mapping[str, Any], base: Mapping[str, Any] | None, field_: str) -> int | None:
    if base is None or r["accounts"] <= base["accounts"] or not r[field_] or not base[field_]:
        return None
    grown_kib: int = r[field_] - base[field_]
    more_accounts: int = r["accounts"] - base["accounts"]
    return round(grown_kib * 1024 / more_accounts)


# -- in-process: what the tables themselves cost ---------------------------------------------


#: The accounts' values in the shapes priced by the profile; the one the worker keeps
#: follows from the table's codec (:func:`current_shape`).
SHAPE_DICTS: Final = "JSON dicts (json table)"
SHAPE_BYTES: Final = "JSON bytes (raw table)"
SHAPE_TUPLES: Final = "tuples (seq, ((asset, available, locked), ...))"
#: What a raw table holds for a state the agent has just written: orjson's own bytes.
SHAPE_ORJSON: Final = "JSON bytes as orjson.dumps returns them (a raw table, once written)"


def current_shape(codec: TableCodec) -> str:
    return SHAPE_BYTES if codec.value_serializer == RAW_CODEC else SHAPE_DICTS


def profile_tables(accounts: int, *, partitions: int = 4) -> dict[str, Any]:
    """Bytes the two tables hold for *accounts* funded accounts, part by part (tracemalloc).

    Built the way faust's memory store rebuilds them (``stores/memory.py``): per
    changelog record, ``data[key] = value`` and ``_key_partition[key] = partition``,
    keys and values decoded with each table's codec as the worker declares it. Only
    the final state of each key is kept, as after recovery. The accounts' values are
    also priced in the other shapes. Scaffolding lists are left out of every figure.
    """
    assert 0 < accounts <= ACCOUNTS_MAX, accounts
    codec = table_codecs(partitions)
    a_codec, p_codec = codec[ACCOUNTS_TABLE], codec[APPLIED_TABLE]
    final: dict[tuple[str, bytes], ChangelogRecord] = {}
    for i in range(accounts):
        for r in ledger_writes(funding(i), partitions=partitions):
            final[r.table, r.key] = r  # a key's last write is what recovery keeps
    acct = [r for (t, _), r in final.items() if t == ACCOUNTS_TABLE]
    appl = [r for (t, _), r in final.items() if t == APPLIED_TABLE]
    del final
    gc.collect()
    parts: dict[str, int] = {}
    keep: list[object] = []

    def traced(build: Callable[[], object]) -> tuple[object, int]:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        built = build()
        scaffold = sys.getsizeof(built) if isinstance(built, list) else 0
        keep.append(built)
        return built, tracemalloc.get_traced_memory()[0] - before - scaffold

    def part(name: str, build: Callable[[], object]) -> Any:
        built, parts[name] = traced(build)
        return built

    shape = current_shape(a_codec)
    tracemalloc.start()
    try:
        a_keys = part("accounts: keys (str)", lambda: [a_codec.loads_key(r.key) for r in acct])
        a_vals = part(
            f"accounts: values, {shape}", lambda: [a_codec.loads_value(r.value) for r in acct]
        )
        part("accounts: store dict", lambda: dict(zip(a_keys, a_vals, strict=True)))
        part(
            "accounts: store key->partition dict",
            lambda: {k: r.partition for k, r in zip(a_keys, acct, strict=True)},
        )
        p_keys = part("applied: keys (str)", lambda: [p_codec.loads_key(r.key) for r in appl])
        part(
            "applied: store dict",
            lambda: {k: p_codec.loads_value(r.value) for k, r in zip(p_keys, appl, strict=True)},
        )
        part(
            "applied: store key->partition dict",
            lambda: {k: r.partition for k, r in zip(p_keys, appl, strict=True)},
        )
        tables_total = sum(parts.values())
        dicts: list[Any] = [orjson.loads(r.value) for r in acct]  # outside the count
        shapes = {
            SHAPE_DICTS: traced(lambda: [orjson.loads(r.value) for r in acct])[1],
            SHAPE_BYTES: traced(lambda: [bytes(bytearray(r.value)) for r in acct])[1],
            SHAPE_TUPLES: traced(lambda: [_as_tuple(v) for v in dicts])[1],
            SHAPE_ORJSON: traced(lambda: [orjson.dumps(v) for v in dicts])[1],
        }
    finally:
        tracemalloc.stop()
    keep.clear()
    return {
        "accounts": accounts,
        "codecs": {
            name: {"key": c.key_serializer, "value": c.value_serializer}
            for name, c in codec.items()
        },
        "key_chars": {"account": len(acct[0].key) - 2, "command_id": len(appl[0].key) - 2},
        "value_bytes": {"accounts": len(acct[-1].value), "applied": len(appl[-1].value)},
        "parts_bytes_per_account": {k: round(v / accounts, 1) for k, v in parts.items()},
        "tables_bytes_per_account": round(tables_total / accounts, 1),
        "current_shape": shape,
        "value_shapes_bytes_per_account": {k: round(v / accounts, 1) for k, v in shapes.items()},
    }


def replay_rss(accounts: int, *, partitions: int = 4) -> dict[str, Any]:
    """This process's RSS growth per account while it rebuilds the tables from the
    changelog records, as faust's memory store does, with no Kafka and no faust.

    Every record, superseded states included, partition by partition in offset order:
    what the allocator is left with after a replay, without the worker's fetch
    buffers and events. Run it in a fresh process (``--replay-rss N``): an RSS delta
    means nothing in one that has already grown and shrunk.
    """
    assert 0 < accounts <= ACCOUNTS_MAX, accounts
    by_tp: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
    for i in range(accounts):
        for r in ledger_writes(funding(i), partitions=partitions):
            by_tp.setdefault((r.table, r.partition), []).append((r.key, r.value))
    gc.collect()
    before = proc_status_kib(os.getpid())
    codec = table_codecs(partitions)
    stores: dict[str, tuple[dict[Any, Any], dict[Any, int]]] = {t: ({}, {}) for t in TABLES}
    for (table, partition), items in sorted(by_tp.items()):
        data, key_partition = stores[table]
        loads_key, loads_value = codec[table].loads_key, codec[table].loads_value
        for raw_key, raw_value in items:
            key = loads_key(raw_key)
            data[key] = loads_value(raw_value)
            key_partition[key] = partition
    gc.collect()
    after = proc_status_kib(os.getpid())
    assert len(stores[ACCOUNTS_TABLE][0]) == accounts, len(stores[ACCOUNTS_TABLE][0])
    return {
        "accounts": accounts,
        "rss_bytes_per_account": round((after["VmRSS"] - before["VmRSS"]) * 1024 / accounts),
    }


def replay_rss_in_child(accounts: int, *, partitions: int) -> dict[str, Any]:
    """:func:`replay_rss` in a fresh Python process."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kessai_bench.memory",
            "--replay-rss",
            str(accounts),
            "--partitions",
            str(partitions),
        ],
        capture_output=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return result


def _as_tuple(value: Mapping[str, Any]) -> tuple[int, tuple[tuple[str, int, int], ...]]:
    balances = value["balances"]
    return (value["seq"], tuple((a, int(b[0]), int(b[1])) for a, b in balances.items()))


# -- report -----------------------------------------------------------------------------

NOTES: Final = (
    "RSS is VmRSS (shared libraries included), RssAnon the process's own anonymous "
    "memory; peak RSS is VmHWM, reached during recovery.",
    "Recovery: faust's 'Restoring state' to 'Done reading' lines. Offsets/s: changelog "
    "records written / that time; the log cleaner may have compacted some away before "
    "the worker read them (then fewer records were read: compare 'on disk', the "
    "changelogs' bytes when the worker started, with the smaller counts').",
    "Marginal bytes / account: against the next smaller count, so without what "
    "recovery leaves behind whatever the count (fetch buffers, allocator leftovers).",
    "Replay RSS: a fresh Python process rebuilding the same tables from the same "
    "records (no Kafka, no faust): what the tables cost once the allocator has "
    "been through a recovery, without the worker's own fetch buffers and events.",
)


def _mib(kib: int | None) -> str:
    return "–" if kib is None else f"{kib / 1024:,.1f}"


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown(doc: Mapping[str, Any]) -> str:
    """The results as a short Markdown page."""
    m, run = doc["machine"], doc["run"]
    target = run["target_bytes_per_account"]
    lines = [
        f"# kessai worker memory per funded account ({run['started_utc']})",
        "",
        f"`{run['command']}`",
        "",
        f"Machine: {m['cores']} cores, {m['cpu_model']}, {m['ram_gib']} GiB RAM; Python "
        f"{m['python']}, Kafka {m['kafka']}, faust-streaming {m['faust_streaming']}; load "
        f"average at start {', '.join(map(str, m['load_average_at_start']))}.",
        "",
        f"Each account: one {run['cash']} deposit and one {run['bond']} deposit, written "
        f"straight into the `accounts` and `applied` changelogs ({run['partitions']} "
        "partitions) exactly as the ledger writes them; then `kessai worker` recovers them. "
        "RSS read a few seconds after `Worker ready`; bytes / account = (RSS(N) − RSS(0)) / N."
        + (
            " Worker environment: "
            + ", ".join(f"`{k}={v}`" for k, v in run["worker_env"].items())
            + "."
            if run.get("worker_env")
            else ""
        ),
        "",
        "| accounts | changelog records | on disk MiB | RSS MiB | RssAnon MiB | peak RSS MiB "
        "| bytes / account | marginal bytes / account | start → ready s | recovery s "
        "| offsets/s |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in doc["results"]:
        flag = "" if r["ready"] else " (not ready)"
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{r['accounts']:,}{flag}",
                    f"{r['changelog_records']:,}",
                    _num(r["changelog_bytes_on_disk_at_start"] / 2**20),
                    _mib(r["rss_kib"]),
                    _mib(r["rss_anon_kib"]),
                    _mib(r["peak_rss_kib"]),
                    _num(r["bytes_per_account"]),
                    _num(r.get("marginal_bytes_per_account")),
                    _num(r["start_to_ready_s"], 1),
                    _num(r["recovery_s"], 1),
                    _num(r["recovery_records_per_s"]),
                ]
            )
            + " |"
        )
    touched = [r for r in doc["results"] if r.get("touched_accounts")]
    if touched:
        lines += [
            "",
            "Then the worker wrote accounts itself: 1 JPYC deposited into each of the first K "
            "accounts through the pipeline (each account's value replaced by the one the "
            "agent built, and one more `applied` id):",
            "",
            "| accounts | K touched | seconds | RSS before MiB | RSS after MiB "
            "| bytes / touched account |",
            "|--:|--:|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {r['accounts']:,} | {r['touched_accounts']:,} | {_num(r['touch_s'], 1)} "
            f"| {_mib(r['rss_kib'])} | {_mib(r['rss_after_touch_kib'])} "
            f"| {_num(r['touch_bytes_per_account'])} |"
            for r in touched
        ]
    measured = [r for r in doc["results"] if r["bytes_per_account"]]
    if measured:
        # The largest count: the one least diluted by what recovery costs once.
        biggest = max(measured, key=lambda r: r["accounts"])
        verdict = "under" if biggest["bytes_per_account"] <= target else "over"
        line = (
            f"Target: at most {target:,} bytes per account. After recovery, at "
            f"{biggest['accounts']:,} accounts: {biggest['bytes_per_account']:,}: **{verdict}**."
        )
        if biggest.get("touch_bytes_per_account") is not None:
            line += (
                f" Each account the worker then writes costs "
                f"{biggest['touch_bytes_per_account']:,} bytes more."
            )
        lines += ["", line]
    prof = doc.get("profile")
    if prof:
        lines += [
            "",
            f"In-process (tracemalloc, {prof['accounts']:,} accounts, no Kafka): the two "
            f"tables hold {prof['tables_bytes_per_account']:,.0f} bytes per account "
            f"(account ids of {prof['key_chars']['account']} characters, command ids of "
            f"{prof['key_chars']['command_id']}):",
            "",
            "| part | bytes / account |",
            "|---|--:|",
        ]
        lines += [f"| {k} | {v:,.0f} |" for k, v in prof["parts_bytes_per_account"].items()]
        replay = prof.get("replay")
        if replay:
            lines += [
                "",
                "A fresh Python process replaying the same changelog records into the same "
                f"dicts (no Kafka, no faust) grows by {replay['rss_bytes_per_account']:,} "
                "bytes of RSS per account.",
            ]
        lines += ["", "The accounts' values in each shape (the worker keeps the one marked):", ""]
        lines += ["| shape | bytes / account |", "|---|--:|"]
        lines += [
            f"| {k}{' (the worker)' if k == prof['current_shape'] else ''} | {v:,.0f} |"
            for k, v in prof["value_shapes_bytes_per_account"].items()
        ]
    if doc.get("notes"):
        lines += ["", *[f"- {n}" for n in doc["notes"]]]
    return "\n".join(lines) + "\n"


def write(doc: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "memory.json", out / "memory.md"
    json_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    md_path.write_text(markdown(doc), encoding="utf-8")
    return json_path, md_path


# -- command line --------------------------------------------------------------------------


def parse_accounts(text: str) -> list[int]:
    """``"0,100000,1_000_000"`` -> ``[0, 100000, 1000000]``; 0 (the baseline) required."""
    counts: list[int] = []
    for item in text.split(","):
        item = item.strip().replace("_", "")
        if not item:
            continue
        if not item.isdigit() or int(item) > ACCOUNTS_MAX:
            raise MemoryBenchError(
                f"--accounts: {item!r} is not a count from 0 to {ACCOUNTS_MAX:,}"
            )
        counts.append(int(item))
    if 0 not in counts:
        raise MemoryBenchError(
            "--accounts must include 0: the worker's RSS with no account is the baseline"
        )
    if len(set(counts)) != len(counts):
        raise MemoryBenchError(f"--accounts: {text!r} repeats a count")
    return counts


def _parser() -> argparse.ArgumentParser:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(
        prog="python -m kessai_bench.memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--accounts",
        default="0,100000,1000000",
        help="funded account counts to measure, comma-separated; must include 0, the "
        "baseline (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for memory.json and memory.md (default: bench/results/<UTC time>-memory)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where each count's broker and worker log live (default: a temporary directory)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the workdir (brokers' data, worker logs)"
    )
    parser.add_argument("--partitions", type=int, default=4, help="KESSAI_PARTITIONS (default 4)")
    parser.add_argument(
        "--recovery-timeout-s",
        type=float,
        default=RECOVERY_TIMEOUT_S,
        help="give up on a worker not ready after this long; its RSS and recovery rate "
        "so far are reported (default %(default)g)",
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=SETTLE_S,
        help="wait this long after 'Worker ready' before reading RSS (default %(default)g)",
    )
    parser.add_argument(
        "--profile-accounts",
        type=int,
        default=PROFILE_ACCOUNTS,
        help="accounts in the in-process profile (tracemalloc, and a replay's RSS in a "
        "fresh process); 0 skips it (default %(default)s)",
    )
    parser.add_argument(
        "--touch",
        type=int,
        default=TOUCH_ACCOUNTS,
        metavar="K",
        help="after the RSS reading, deposit 1 JPYC into each of the first K accounts "
        "through the pipeline and read RSS again: what the values the worker writes cost "
        "(0 skips it; default %(default)s)",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the worker (repeatable), e.g. MALLOC_ARENA_MAX=2",
    )
    parser.add_argument(
        "--replay-rss",
        type=int,
        default=None,
        metavar="N",
        help=argparse.SUPPRESS,  # internal: the fresh process of replay_rss_in_child
    )
    return parser


def parse_env(items: Sequence[str]) -> dict[str, str]:
    """``["MALLOC_ARENA_MAX=2"]`` -> ``{"MALLOC_ARENA_MAX": "2"}``."""
    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not name.replace("_", "").isalnum():
            raise MemoryBenchError(f"--worker-env: {item!r} is not NAME=VALUE")
        env[name] = value
    return env


async def run(
    counts: Sequence[int],
    *,
    workdir: Path,
    partitions: int,
    settle_s: float,
    recovery_timeout_s: float,
    worker_env: Mapping[str, str],
    touch_accounts: int = 0,
    log: Log,
) -> list[dict[str, Any]]:
    """Every count in turn (each on a fresh broker), then bytes per account."""
    results = []
    for n in counts:
        results.append(
            await measure(
                n,
                workdir=workdir / f"accounts-{n}",
                partitions=partitions,
                settle_s=settle_s,
                recovery_timeout_s=recovery_timeout_s,
                worker_env=worker_env,
                touch_accounts=touch_accounts,
                log=log,
            )
        )
    per_account(results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    from kessai_bench import report  # the machine; imported late, being reworked

    args = _parser().parse_args(argv)
    if args.replay_rss is not None:
        print(orjson.dumps(replay_rss(args.replay_rss, partitions=args.partitions)).decode())
        return 0

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        counts = parse_accounts(args.accounts)
        worker_env = parse_env(args.worker_env)
    except MemoryBenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    out: Path = args.out or RESULTS / (started.strftime("%Y-%m-%dT%H%M%SZ") + "-memory")
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="kessai-memory-"))
    machine = report.machine(localkafka.KAFKA_VERSION)
    profile = None
    if args.profile_accounts > 0:
        log(f"profiling the tables in-process with {args.profile_accounts:,} accounts")
        profile = profile_tables(args.profile_accounts, partitions=args.partitions)
        profile["replay"] = replay_rss_in_child(args.profile_accounts, partitions=args.partitions)
    try:
        results = asyncio.run(
            run(
                counts,
                workdir=workdir,
                partitions=args.partitions,
                settle_s=args.settle_s,
                recovery_timeout_s=args.recovery_timeout_s,
                worker_env=worker_env,
                touch_accounts=args.touch,
                log=log,
            )
        )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    doc = {
        "run": {
            "command": "python -m kessai_bench.memory "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "started_utc": started.isoformat(timespec="seconds"),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "partitions": args.partitions,
            "cash": f"{CASH_UNITS:,} {CASH_TOKEN}",
            "bond": f"{BOND_FACE:,} face of {BOND_ISIN}",
            "settle_s": args.settle_s,
            "worker_env": worker_env,
            "touch_accounts": args.touch,
            "target_bytes_per_account": TARGET_BYTES_PER_ACCOUNT,
        },
        "machine": machine,
        "results": results,
        "profile": profile,
        "notes": NOTES,
    }
    json_path, md_path = write(doc, out)
    sys.stdout.write(markdown(doc))
    print(f"\nresults: {json_path} and {md_path}")
    if args.keep:
        print(f"brokers' data and worker logs kept in {workdir}")
    return 0 if all(r["ready"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
