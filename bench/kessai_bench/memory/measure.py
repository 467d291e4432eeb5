"""One measurement per account count, each on a broker of its own: prefill, let a
worker's engine restore, read its RSS; optionally make it write accounts itself and
read again. Then what each account costs, from the counts side by side."""

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
from kessai_bench.memory.prefill import PRODUCE_LINGER_MS, Prefill, prefill
from kessai_bench.memory.records import ACCOUNTS_MAX, CASH_TOKEN, CHANGELOGS, TOKENS, funding
from kessai_bench.memory.worker import RECOVERY_TIMEOUT_S, Watch, Worker
from schemas import LEDGER_EVENTS, PAYMENTS, MoveCash, encode
from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.processes import free_port
from streams.topics import engine_topic

#: Left to a restored worker before its RSS is read (start-up garbage, first commits).
SETTLE_S: Final = 5.0
RSS_SAMPLES: Final = 5
#: Accounts the worker is made to write after its restore (``--touch``), and how long
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
    """One account count on a broker of its own: prefill, restore, read the worker's RSS;
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
        touched: dict[str, Any] = {"touched_accounts": 0}
        if ready and touch_accounts and accounts:
            touched = await _touch(
                settings, worker, min(touch_accounts, accounts), samples, settle_s, log
            )
        exit_code = await worker.stop()
        result = {
            "accounts": accounts,
            "ready": ready,
            **_after_restore(filled, on_disk, samples, worker.watch),
            **touched,
            "worker_exit_code": exit_code,
        }
        log(
            f"  {accounts:,} accounts: ready={ready} RSS {mib(result['rss_kib'])} MiB, "
            f"peak {mib(result['peak_rss_kib'])} MiB, restored {result['restore_rows']} rows "
            f"in {result['restore_s']} s"
        )
        return result
    finally:
        if worker is not None:
            worker.kill()
        await asyncio.to_thread(localkafka.down, broker)


async def _prefill(settings: Settings, accounts: int, log: Log) -> Prefill:
    """kessai's topics, then the engine's changelogs of *accounts* funded accounts."""
    filled = await prefill(settings, (funding(i) for i in range(accounts)), log=log)
    log(
        f"  prefill: {accounts:,} accounts, {sum(filled.records.values()):,} changelog "
        f"rows in {filled.seconds:,.1f} s"
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


def _after_restore(
    filled: Prefill,
    on_disk: int,
    samples: Sequence[Mapping[str, int]],
    watch: Watch,
) -> dict[str, Any]:
    """The figures of one count up to the RSS read after the restore, in report order."""
    memory = samples[-1]
    return {
        "changelog_records": sum(filled.records.values()),
        "changelog_records_by_topic": filled.records,
        "changelog_bytes_on_disk_at_start": on_disk,
        "prefill_s": round(filled.seconds, 2),
        "rss_kib": memory.get("VmRSS"),
        "rss_anon_kib": memory.get("RssAnon"),
        "peak_rss_kib": memory.get("VmHWM"),
        "rss_kib_samples": [s.get("VmRSS") for s in samples],
        **restore_figures(
            {name: at - watch.started for name, at in watch.seen.items()}, watch.restored
        ),
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
    wait until the engine applied them all (their ``ledger-events``: the prefill wrote
    none), and read the worker's RSS again.

    A restore fills the engine with rows read from Kafka; a worker that runs also holds
    the rows its batches built (``AccountState.to_bytes``), and those are made
    differently. Each touch also adds one id to ``applied``.
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


def restore_figures(
    seen_s: Mapping[str, float], restored: tuple[int, float] | None
) -> dict[str, Any]:
    """Times from the worker's start (s), and the engine's restore as its log line
    reported it (*restored*: rows, seconds; None if it never restored)."""

    def since_start(name: str) -> float | None:
        at = seen_s.get(name)
        return None if at is None else round(at, 2)

    rows, seconds = restored if restored is not None else (None, None)
    rate = None if not rows or not seconds else round(rows / seconds)  # none: no rate
    return {
        "start_to_ready_s": since_start("ready"),
        "start_to_takeover_s": since_start("takeover"),
        "start_to_leading_s": since_start("leading"),
        "restore_rows": rows,
        "restore_s": seconds,
        "restore_rows_per_s": rate,
    }


def _changelog_bytes(broker: Settings, app_id: str) -> int:
    """Bytes of the engine's changelogs' log segments on the broker's disk right now.

    The changelogs are compacted: the log cleaner may drop superseded rows (the
    ``inflow`` totals of earlier batches) before or while the worker reads them, so
    this says how much was there.
    """
    data = broker.state_dir / "kafka" / "data"
    total = 0
    for name in CHANGELOGS:
        for segment in data.glob(f"{engine_topic(app_id, name)}-*/*.log"):
            with contextlib.suppress(OSError):
                total += segment.stat().st_size
    return total


def per_account(results: Sequence[MutableMapping[str, Any]]) -> None:
    """Add the bytes each account costs to each result.

    ``bytes_per_account`` (and ``anon_bytes_per_account``, from RssAnon): against the
    worker with 0 accounts. ``marginal_bytes_per_account``: against the next smaller
    count measured, which leaves out what a restore costs once whatever the count.
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
