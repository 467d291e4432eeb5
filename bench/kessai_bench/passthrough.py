"""The raw passthrough: a plain aiokafka consume -> produce loop that does no processing.

It is the ceiling a Python pipeline on this broker can reach: every record of the
input topic is copied, key, value and timestamp unchanged, to the same partition
number of the output topic. Two modes:

- ``at_least_once``: a plain producer (acks=all, idempotent); every commit interval
  the loop waits for the acks of everything sent, then commits the consumer's
  offsets. A crash may repeat records, never lose one.
- ``transactional``: one transactional producer and a read_committed consumer; every
  commit interval the loop waits for the acks, adds the offsets to the transaction
  (``send_offsets_to_transaction``) and commits it, then begins the next. Outputs
  become visible to read_committed readers at the commit: the same model as kessai's
  batch loops (:mod:`streams.runtime.batches`), which commit when a batch is applied
  rather than on a timer.

Run by the bench runner in a process of its own, so that its CPU time and peak RSS
are its own: ``python -m kessai_bench.passthrough --mode transactional ...``. It
prints ``READY {"cpu_s": ...}`` (the CPU its start-up took) once it is assigned and
positioned, and on SIGTERM (or SIGINT)
commits what it has, stops, and prints one JSON line of :class:`PassStats`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import resource
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

Mode = Literal["at_least_once", "transactional"]
MODES: tuple[Mode, ...] = ("at_least_once", "transactional")
READY_WORD = "READY"
#: Records per getmany call.
FETCH_RECORDS_MAX = 5_000
#: How long one getmany waits for records when there are none.
POLL_TIMEOUT_MS = 20


@dataclass(frozen=True, kw_only=True)
class PassStats:
    """What one passthrough process did."""

    mode: str
    records: int
    #: Offset commits (at_least_once) or committed transactions (transactional).
    commits: int
    #: Seconds from the first record fetched to the commit that covered the last one.
    busy_s: float

    @property
    def rate(self) -> float:
        return self.records / self.busy_s if self.busy_s > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "rate": round(self.rate, 1)}


class _Copier:
    """The loop's state: what was sent and not yet acknowledged, the offsets to commit
    with it, and the counts :class:`PassStats` reports."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        *,
        sink: str,
        group: str,
        transactional: bool,
    ) -> None:
        self.consumer, self.producer = consumer, producer
        self.sink, self.group, self.transactional = sink, group, transactional
        self.records = self.commits = 0
        self.first_fetch: float | None = None
        self.busy_s = 0.0
        self.acks: list[asyncio.Future[object]] = []
        self.offsets: dict[TopicPartition, int] = {}

    async def copy(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Send every record of *batch* to the same partition of the sink, unchanged."""
        for tp, recs in batch.items():
            if self.first_fetch is None:
                self.first_fetch = time.monotonic()
            for r in recs:
                self.acks.append(
                    await self.producer.send(
                        self.sink,
                        r.value,
                        key=r.key,
                        partition=tp.partition,
                        timestamp_ms=r.timestamp,
                    )
                )
            self.offsets[tp] = recs[-1].offset + 1
            self.records += len(recs)

    async def commit(self) -> None:
        """Wait for the acks, then commit the offsets (in the transaction, if any)."""
        if self.acks:
            await asyncio.gather(*self.acks)
            self.acks.clear()
        if not self.offsets:
            return
        if self.transactional:
            await self.producer.send_offsets_to_transaction(dict(self.offsets), self.group)
            await self.producer.commit_transaction()
            await self.producer.begin_transaction()
        else:
            await self.consumer.commit(dict(self.offsets))
        self.offsets.clear()
        self.commits += 1
        if self.first_fetch is not None:
            self.busy_s = time.monotonic() - self.first_fetch


def _clients(mode: Mode, bootstrap: str, group: str) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
    transactional = mode == "transactional"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed" if transactional else "read_uncommitted",
        max_poll_records=FETCH_RECORDS_MAX,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        transactional_id=f"{group}-txn" if transactional else None,
    )
    return consumer, producer


async def run(
    *,
    mode: Mode,
    bootstrap: str,
    source: str,
    sink: str,
    partitions: int,
    group: str,
    commit_interval_s: float,
    stop: asyncio.Event,
    on_ready: Callable[[], None] | None = None,
) -> PassStats:
    """Copy *source* to *sink* until *stop* is set; return what was done."""
    transactional = mode == "transactional"
    consumer, producer = _clients(mode, bootstrap, group)
    await consumer.start()
    await producer.start()
    copier = _Copier(consumer, producer, sink=sink, group=group, transactional=transactional)
    try:
        tps = [TopicPartition(source, p) for p in range(partitions)]
        consumer.assign(tps)  # no group rebalances: one process owns every partition
        for tp in tps:
            await consumer.position(tp)
        if transactional:
            await producer.begin_transaction()
        if on_ready is not None:
            on_ready()
        last_commit = time.monotonic()
        while not stop.is_set():
            await copier.copy(await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS))
            if time.monotonic() - last_commit >= commit_interval_s:
                await copier.commit()
                last_commit = time.monotonic()
        await copier.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    return PassStats(
        mode=mode, records=copier.records, commits=copier.commits, busy_s=copier.busy_s
    )


async def _main(args: argparse.Namespace) -> PassStats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def ready() -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        startup = {"cpu_s": round(usage.ru_utime + usage.ru_stime, 3)}
        sys.stdout.write(f"{READY_WORD} {orjson.dumps(startup).decode()}\n")
        sys.stdout.flush()

    return await run(
        mode=args.mode,
        bootstrap=args.bootstrap,
        source=args.source,
        sink=args.sink,
        partitions=args.partitions,
        group=args.group,
        commit_interval_s=args.commit_interval_ms / 1000,
        stop=stop,
        on_ready=ready,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kessai_bench.passthrough",
        description="Copy SOURCE to SINK with no processing, at-least-once or transactional.",
    )
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--commit-interval-ms", type=float, default=1000.0)
    args = parser.parse_args(argv)
    stats = asyncio.run(_main(args))
    sys.stdout.write(orjson.dumps(stats.to_json()).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
