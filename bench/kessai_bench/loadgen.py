"""The load generator: realistic ``trades`` records onto a bench input topic.

Publishes at a fixed rate (``rate`` records/s, spread evenly over time) or at full
speed (``rate`` 0), for a duration, a count, or whichever comes first. Every record's
Kafka timestamp is its publish time (set explicitly at the ``send``), which is what
the latency of a variant is measured from; the payload is the real pipeline's
(:mod:`kessai_bench.trades`).

Run by the bench runner in a process of its own, so that its CPU is not the
measured process's and its event loop does not delay the latency observer:
``python -m kessai_bench.loadgen --bootstrap B --topic T --rate 0 --seconds 10``
prints one JSON line of :class:`LoadStats` on stdout when done.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from kessai_bench.orders import OrderFactory
from kessai_bench.trades import TradeFactory, fx_reference
from schemas import FX_RATES, TRADES
from streams.security import signing

#: What the generator can publish: ``trades`` (one per record), ``orders`` (pairs).
FACTORIES: dict[str, type[TradeFactory] | type[OrderFactory]] = {
    "trades": TradeFactory,
    "orders": OrderFactory,
}

#: How long the producer lets records gather before a produce request: a venue sending
#: thousands of trades a second batches them too. Without it, at 3,950 records/s the
#: broker spent ~270 µs of CPU per record on one small produce request after another
#: (bench 2026-12-04T085542Z), a third of the machine, which the process under test
#: then lacked. The pipeline's latency counts from the broker's append (its inputs are
#: LogAppendTime), so a venue's own batching is not in it, as it is not kessai's.
LINGER_MS = 5
#: Records handed to the producer before we wait for the acks of the chunk before.
CHUNK_RECORDS = 2_000
#: At a fixed rate, the longest sleep between two checks of the schedule.
TICK_S_MAX = 0.005
#: At full speed, how often (in records) the clock is read.
CLOCK_EVERY_RECORDS = 200


@dataclass(frozen=True, kw_only=True)
class LoadStats:
    """What the generator published."""

    records: int
    value_bytes: int
    #: Wall-clock publish time (epoch ms) of the first and the last record.
    first_publish_ms: int
    last_publish_ms: int
    #: Monotonic seconds from the first send to the last broker ack.
    elapsed_s: float
    #: The rate asked for; 0 = full speed.
    target_rate: float

    @property
    def rate(self) -> float:
        """Records per second actually published (acked)."""
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "rate": round(self.rate, 1)}


def _check_args(
    seconds: float | None,
    count: int | None,
    rate: float,
    kind: str,
    signer: signing.SigningKey | None,
) -> None:
    if seconds is None and count is None:
        raise ValueError("give seconds, count or both")
    if rate < 0:
        raise ValueError(f"rate must be >= 0, got {rate}")
    if kind not in FACTORIES:
        raise ValueError(f"kind must be one of {sorted(FACTORIES)}, got {kind!r}")
    if signer is not None and kind != "trades":
        raise ValueError("only trades are signed by the load generator")


async def _reference(
    producer: AIOKafkaProducer, topic: str, factory: TradeFactory | OrderFactory
) -> None:
    """USDC's reference, observed when this run's trades are stamped: its USDC trades
    are checked against it (docs/fx.md), whenever this process started."""
    if topic == TRADES and isinstance(factory, TradeFactory):
        reference = orjson.dumps(fx_reference(factory.trade_time))
        await producer.send_and_wait(FX_RATES, reference, key=b"USDC")


async def generate(
    bootstrap: str,
    topic: str,
    *,
    rate: float,
    seconds: float | None,
    count: int | None,
    prefix: str,
    seed: int = 7,
    kind: str = "trades",
    signer: signing.SigningKey | None = None,
    kessai_accrued: bool = False,
) -> LoadStats:
    """Publish *kind* records (``trades``, or ``orders`` in crossing pairs) onto *topic*
    until *seconds* have passed or *count* were sent."""
    _check_args(seconds, count, rate, kind, signer)
    if kessai_accrued and kind != "trades":
        raise ValueError("kessai_accrued is for trades")
    factory = (
        TradeFactory(prefix, seed=seed, signer=signer, kessai_accrued=kessai_accrued)
        if signer is not None or kessai_accrued
        else FACTORIES[kind](prefix, seed=seed)
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=LINGER_MS
    )
    await producer.start()
    try:
        await _reference(producer, topic, factory)
        sent = 0
        value_bytes = 0
        first_ms = last_ms = 0
        acks: deque[asyncio.Future[object]] = deque()
        start = time.monotonic()
        limit = count if count is not None else sys.maxsize
        end = start + seconds if seconds is not None else float("inf")
        while sent < limit:
            now = time.monotonic()
            if now >= end:
                break
            # How many records are due by now (full speed: one more chunk's worth).
            due = min(
                limit, sent + CLOCK_EVERY_RECORDS if rate == 0 else int((now - start) * rate) + 1
            )
            while sent < due:
                key, value = factory.record()
                last_ms = int(time.time() * 1000)
                if sent == 0:
                    first_ms = last_ms
                acks.append(await producer.send(topic, value, key=key, timestamp_ms=last_ms))
                sent += 1
                value_bytes += len(value)
                if len(acks) >= 2 * CHUNK_RECORDS:
                    await asyncio.gather(*(acks.popleft() for _ in range(CHUNK_RECORDS)))
            if rate > 0 and sent < limit:
                wait = start + sent / rate - time.monotonic()
                await asyncio.sleep(min(max(wait, 0.0), TICK_S_MAX))
        await asyncio.gather(*acks)
        elapsed = time.monotonic() - start
    finally:
        await producer.stop()
    return LoadStats(
        records=sent,
        value_bytes=value_bytes,
        first_publish_ms=first_ms,
        last_publish_ms=last_ms,
        elapsed_s=elapsed,
        target_rate=rate,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kessai_bench.loadgen",
        description="Publish realistic trades (or crossing order pairs) at a fixed rate or "
        "full speed; print JSON stats.",
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="records/s; 0 = full speed")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--prefix", default="bench", help="trade id prefix")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--kind",
        choices=sorted(FACTORIES),
        default="trades",
        help="trades (default), or orders: crossing sell/buy pairs, one trade each",
    )
    parser.add_argument(
        "--sign-key", type=Path, default=None, help="sign each trade with this Ed25519 key (PEM)"
    )
    parser.add_argument("--signer", default=None, help="the signer id of --sign-key (the venue)")
    parser.add_argument(
        "--deployment", default="kessai-bench", help="the deployment id the records are signed for"
    )
    parser.add_argument(
        "--kessai-accrued",
        action="store_true",
        help="JPYC trades send no accrued interest: the workers compute it (security master)",
    )
    args = parser.parse_args(argv)
    if args.seconds is None and args.count is None:
        parser.error("give --seconds, --count or both")
    if (args.sign_key is None) != (args.signer is None):
        parser.error("--sign-key and --signer come together")
    signer = (
        signing.SigningKey.load(args.signer, args.sign_key, args.deployment)
        if args.sign_key
        else None
    )
    stats = asyncio.run(
        generate(
            args.bootstrap,
            args.topic,
            rate=args.rate,
            seconds=args.seconds,
            count=args.count,
            prefix=args.prefix,
            seed=args.seed,
            kind=args.kind,
            signer=signer,
            kessai_accrued=args.kessai_accrued,
        )
    )
    sys.stdout.write(orjson.dumps(stats.to_json()).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
