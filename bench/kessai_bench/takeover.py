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

    python -m kessai_bench.takeover [--accounts 100000] [--out DIR]
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
from kessai_bench.memory.records import BOND_ISIN, CASH_TOKEN, funding
from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.processes import WorkerProcess
from streams.kafka.reader import Tail

APP_ID: Final = "kessai-takeover-bench"
#: How long a step may take before the run gives up.
STEP_TIMEOUT_S: Final = 300.0
#: How long the standby tails before the kill (it must have caught up to be "hot").
STANDBY_WARM_S: Final = 5.0
_TAKEOVER: Final = re.compile(
    r"engine: restored (\d+) rows in [0-9.]+ s \((\d+) of them in ([0-9.]+) s"
)


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


async def measure(settings: Settings, accounts: int, workdir: Path) -> dict[str, Any]:
    """One takeover on ``settings``' broker (see the module doc)."""
    await prefill(settings, (funding(i) for i in range(accounts)))
    env = {"KESSAI_BOOTSTRAP": settings.bootstrap, "KESSAI_APP_ID": APP_ID}
    workers = [WorkerProcess(workdir / f"w{i}.log", env=env) for i in range(2)]
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        async with Tail(settings, ["settlements"], from_end=True) as tail:
            leader = await _leader(workers)
            await producer.send_and_wait("trades", trade(0, accounts)[1], key=b"t-0")
            await _settled(settings, "t-0", tail)
            await asyncio.sleep(STANDBY_WARM_S)
            standby = next(w for w in workers if w is not leader)
            killed_at = time.monotonic()
            os.kill(leader.pid, signal.SIGKILL)
            key, value = trade(1, accounts)
            await producer.send_and_wait("trades", value, key=key)
            settled_at = await _settled(settings, "t-1", tail)
        said = _TAKEOVER.findall(standby.log_path.read_text(errors="replace"))
        rows, caught_up, caught_up_s = said[-1] if said else ("0", "0", "0")
        return {
            "accounts": accounts,
            "takeover_s": round(settled_at - killed_at, 3),
            "standby_rows": int(rows),
            "caught_up_rows": int(caught_up),
            "caught_up_s": float(caught_up_s),
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
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kessai-takeover-"))
    broker = localkafka.up_private(workdir, log=lambda line: None)
    try:
        settings = dataclasses.replace(broker, app_id=APP_ID)
        result = asyncio.run(measure(settings, args.accounts, workdir))
    finally:
        localkafka.down(broker)
    stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    out = args.out / f"{stamp}-takeover"
    out.mkdir(parents=True, exist_ok=True)
    (out / "takeover.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(
        f"{result['accounts']:,} funded accounts: the first settlement "
        f"{result['takeover_s']:.2f} s after the SIGKILL of the engine's worker; the "
        f"standby had {result['standby_rows']:,} rows, {result['caught_up_rows']:,} of them "
        f"caught up in {result['caught_up_s']:.2f} s after the takeover (results: {out})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
