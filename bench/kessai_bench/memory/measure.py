"""One measurement per account count, each on a broker of its own: prefill, let a
worker recover, read its RSS; optionally make it write accounts itself and read again.
Then what each account costs, from the counts side by side."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, MutableMapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from kessai_bench.memory.common import Log, MemoryBenchError, mib
from kessai_bench.memory.prefill import (
    PRODUCE_LINGER_MS,
    Prefill,
    create_kessai_topics,
    prefill,
)
from kessai_bench.memory.records import (
    ACCOUNTS_MAX,
    CASH_TOKEN,
    TABLES,
    TOKENS,
    funding,
)
from kessai_bench.memory.worker import RECOVERY_TIMEOUT_S, Watch, Worker
from schemas import LEDGER_EVENTS, PAYMENTS, MoveCash, encode
from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.processes import free_port
from streams.topics import changelog

#: Left to a ready worker before its RSS is read (start-up garbage, first commits).
SETTLE_S: Final = 5.0
RSS_SAMPLES: Final = 5
#: Accounts the worker is made to write after recovery (``--touch``), and how long
#: it gets to apply their deposits.
TOUCH_ACCOUNTS: Final = 20_000
TOUCH_TIMEOUT_S: Final = 600.0


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
        filled = await _prefill(settings, accounts, log)
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
        samples = await _rss_samples(worker)
        # faust's last progress line as recovery left it, before the touch's traffic.
        left = worker.watch.remaining
        touched: dict[str, Any] = {"touched_accounts": 0}
        if ready and touch_accounts and accounts:
            touched = await _touch(
                settings, worker, min(touch_accounts, accounts), samples, settle_s, log
            )
        exit_code = await worker.stop()
        result = {
            "accounts": accounts,
            "ready": ready,
            **_after_recovery(filled, on_disk, samples, worker.watch, left),
            **touched,
            "worker_exit_code": exit_code,
        }
        log(
            f"  {accounts:,} accounts: ready={ready} RSS {mib(result['rss_kib'])} MiB, "
            f"peak {mib(result['peak_rss_kib'])} MiB, recovery {result['recovery_s']} s"
        )
        return result
    finally:
        if worker is not None:
            worker.kill()
        await asyncio.to_thread(localkafka.down, broker)


async def _prefill(settings: Settings, accounts: int, log: Log) -> Prefill:
    """kessai's topics, then the changelogs of *accounts* funded accounts."""
    await create_kessai_topics(settings)
    filled = await prefill(settings, (funding(i) for i in range(accounts)), log=log)
    log(
        f"  prefill: {accounts:,} accounts, {sum(filled.records.values()):,} changelog "
        f"records in {filled.seconds:,.1f} s"
    )
    return filled


async def _rss_samples(worker: Worker) -> list[dict[str, int]]:
    """:data:`RSS_SAMPLES` readings of the worker's memory, 0.2 s apart; the last counts."""
    samples = []
    for _ in range(RSS_SAMPLES):
        samples.append(worker.memory_kib())
        await asyncio.sleep(0.2)
    return samples


async def _touch(
    settings: Settings,
    worker: Worker,
    accounts: int,
    samples: Sequence[Mapping[str, int]],
    settle_s: float,
    log: Log,
) -> dict[str, Any]:
    touched = await touch(settings, worker, accounts, before=samples[-1], settle_s=settle_s)
    log(
        f"  touched {touched['touched_accounts']:,} accounts in {touched['touch_s']} s: "
        f"{touched['touch_bytes_per_account']:,} bytes of RSS each"
    )
    return touched


def _after_recovery(
    filled: Prefill,
    on_disk: int,
    samples: Sequence[Mapping[str, int]],
    watch: Watch,
    left: tuple[float, int] | None,
) -> dict[str, Any]:
    """The figures of one count up to the RSS read after recovery, in report order;
    *left*: faust's last "records remaining" as recovery left it."""
    records = sum(filled.records.values())
    memory = samples[-1]
    return {
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
    }


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
