"""How long settlement stops when the engine's worker dies: SIGKILL to the first
settlement under the standby, with ``--accounts`` funded accounts.

On a broker of its own: the engine's changelogs are prefilled with ``--accounts``
funded accounts (:mod:`kessai_bench.memory`'s prefill: the rows the engine's own
batches write), two workers start (one runs the engine, the other stands by, tailing
its changelogs), a trade settles (the warm-up), then the engine's worker is SIGKILLed
and a trade between two of the funded accounts is published at once. The figure is
the time from the kill to that trade's ``settled`` record, visible to a read_committed
reader: the group noticing the dead member (its session timeout, 6 s), the standby's
``InitProducerId`` and catch-up, and the trade's batch. The standby's own account of
its takeover (rows caught up, seconds) is taken from its log.

With ``--finished N``, ``engine-trades`` also holds N settled trades inside the
window (ADR 0033): the rebuild the issue asks to bound. Then the run also reports
the first worker's cold rebuild (its engine's "restored" line: every row read
before it leads), how long the standby took to catch up, and each worker's RSS.
The kill waits until the standby says it caught up.

    python -m kessai_bench.takeover [--accounts 100000] [--finished 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaProducer

from kessai_bench import RESULTS
from kessai_bench.memory.prefill import prefill
from kessai_bench.memory.records import BOND_ISIN, CASH_TOKEN, finished_rows, funding
from kessai_bench.memory.worker import proc_status_kib
from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.processes import WorkerProcess
from streams.kafka.reader import Tail

APP_ID: Final = "kessai-takeover-bench"
#: How long a step may take before the run gives up.
STEP_TIMEOUT_S: Final = 900.0
#: How long the standby tails before the kill (it must have caught up to be "hot").
STANDBY_WARM_S: Final = 5.0
_TAKEOVER: Final = re.compile(
    r"engine: restored (\d+) rows in ([0-9.]+) s \((\d+) of them in ([0-9.]+) s"
)
_HOT: Final = re.compile(r"engine: standby caught up: (\d+) rows read in ([0-9.]+) s")
#: The finished trades' times span this much of the window, ending now.
FINISHED_SPAN_S: Final = 6 * 86_400.0


def trade(n: int, accounts: int) -> tuple[bytes, bytes]:
    """Trade ``t-<n>``: 100,000 face of the prefill's bond, from one funded account to
    another, at par."""
    buyer, seller = funding(n % accounts).account, funding((n + 1) % accounts).account
    value: dict[str, Any] = {
        "trade_id": f"t-{n}", "venue": "bench", "isin": BOND_ISIN, "buyer": buyer,
        "seller": seller, "quantity": 100_000, "price": "100", "currency": CASH_TOKEN,
        "trade_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    return f"t-{n}".encode(), orjson.dumps(value)


async def _settled(settings: Settings, trade_id: str, tail: Tail) -> float:
    """Wait until ``trade_id`` is settled; when (``time.monotonic()``)."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        for r in await tail.batch(timeout_ms=50):
            value = orjson.loads(r.value)
            if value["trade_id"] == trade_id and value["status"] == "settled":
                return time.monotonic()
    raise TimeoutError(f"{trade_id} not settled after {STEP_TIMEOUT_S:.0f} s")


async def _leader(workers: list[WorkerProcess]) -> WorkerProcess:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        for w in workers:
            body = await asyncio.to_thread(w.health)
            if body is not None and body.get("engine") == "leading":
                return w
        await asyncio.sleep(0.2)
    raise TimeoutError("no worker runs the engine")


async def _hot(standby: WorkerProcess) -> tuple[int, float]:
    """Wait until ``standby`` says it caught up with the changelogs: (rows, seconds)."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        said = _HOT.findall(standby.log_path.read_text(errors="replace"))
        if said:
            return int(said[-1][0]), float(said[-1][1])
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the standby did not catch up in {STEP_TIMEOUT_S:.0f} s")


def _rss_mib(pid: int) -> float:
    return round(proc_status_kib(pid, ("VmRSS",)).get("VmRSS", 0) / 1024, 1)


async def measure(
    settings: Settings, accounts: int, workdir: Path, *, finished: int = 0
) -> dict[str, Any]:
    """One takeover on ``settings``' broker (see the module doc)."""
    filled = await prefill(
        settings,
        (funding(i) for i in range(accounts)),
        finished=finished_rows(finished, newest_s=time.time(), span_s=FINISHED_SPAN_S),
        log=print,
    )
    print(f"prefill: {accounts:,} accounts, {filled.finished:,} finished trades, "
          f"{sum(filled.records.values()):,} rows in {filled.seconds:.1f} s")  # fmt: skip
    # Its ISINs are not in a security master (issue 20).
    env = {
        "KESSAI_BOOTSTRAP": settings.bootstrap,
        "KESSAI_APP_ID": APP_ID,
        "KESSAI_SECURITY_MASTER": "off",
    }
    started = time.monotonic()
    workers = [WorkerProcess(workdir / f"w{i}.log", env=env) for i in range(2)]
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        async with Tail(settings, ["settlements"], from_end=True) as tail:
            leader = await _leader(workers)
            leading_s = time.monotonic() - started
            await producer.send_and_wait("trades", trade(0, accounts)[1], key=b"t-0")
            await _settled(settings, "t-0", tail)
            standby = next(w for w in workers if w is not leader)
            hot_rows, hot_s = await _hot(standby)
            await asyncio.sleep(STANDBY_WARM_S)
            if not all(w.alive for w in workers) or await _leader(workers) is not leader:
                raise RuntimeError(
                    f"the engine moved to the other worker before the kill (see {workdir})"
                )
            rss = {"leader_mib": _rss_mib(leader.pid), "standby_mib": _rss_mib(standby.pid)}
            killed_at = time.monotonic()
            os.kill(leader.pid, signal.SIGKILL)
            key, value = trade(1, accounts)
            await producer.send_and_wait("trades", value, key=key)
            settled_at = await _settled(settings, "t-1", tail)
        said = _TAKEOVER.findall(standby.log_path.read_text(errors="replace"))
        rows, _, caught_up, caught_up_s = said[-1] if said else ("0", "0", "0", "0")
        cold = _TAKEOVER.findall(leader.log_path.read_text(errors="replace"))
        cold_rows, cold_s, _, _ = cold[0] if cold else ("0", "0", "0", "0")
        return {
            "accounts": accounts,
            "finished_trades": filled.finished,
            "takeover_s": round(settled_at - killed_at, 3),
            "standby_rows": int(rows),
            "caught_up_rows": int(caught_up),
            "caught_up_s": float(caught_up_s),
            "cold_restore_rows": int(cold_rows),
            "cold_restore_s": float(cold_s),
            "start_to_leading_s": round(leading_s, 2),
            "standby_hot_rows": hot_rows,
            "standby_hot_s": hot_s,
            **rss,
        }
    finally:
        await producer.stop()
        for w in workers:
            if w.alive:
                w.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kessai_bench.takeover", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--accounts", type=int, default=100_000, help="funded accounts")
    parser.add_argument(
        "--finished", type=int, default=0,
        help="settled trades inside the window in engine-trades (default 0)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kessai-takeover-"))
    broker = localkafka.up_private(workdir, log=lambda line: None)
    try:
        settings = dataclasses.replace(broker, app_id=APP_ID)
        result = asyncio.run(measure(settings, args.accounts, workdir, finished=args.finished))
    finally:
        localkafka.down(broker)
    stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    out = args.out / f"{stamp}-takeover"
    out.mkdir(parents=True, exist_ok=True)
    (out / "takeover.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(
        f"cold rebuild: {result['cold_restore_rows']:,} rows in {result['cold_restore_s']:.2f} s "
        f"(start to leading {result['start_to_leading_s']:.2f} s); the standby caught up "
        f"{result['standby_hot_rows']:,} rows in {result['standby_hot_s']:.2f} s; RSS "
        f"{result['leader_mib']:,.0f} MiB (engine), {result['standby_mib']:,.0f} MiB (standby)"
    )
    print(
        f"{result['accounts']:,} funded accounts, {result['finished_trades']:,} finished "
        f"trades: the first settlement "
        f"{result['takeover_s']:.2f} s after the SIGKILL of the engine's worker; the "
        f"standby had {result['standby_rows']:,} rows, {result['caught_up_rows']:,} of them "
        f"caught up in {result['caught_up_s']:.2f} s after the takeover (results: {out})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
