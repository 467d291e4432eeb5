"""The settlement engine's pure batch step, alone: µs per trade, no Kafka.

Funds the bench's 1,000 accounts (:func:`kessai_bench.pipeline.funding`), then applies
``--trades`` synthetic trades (:class:`kessai_bench.trades.TradeFactory`) to one
:class:`streams.engine.core.Engine` in batches of ``--batch``, and prints the CPU time
per trade and the records written per trade. What it leaves out: Kafka (fetching,
producing, transactions) and partitioning.

    python -m kessai_bench.engine_step [--trades 100000] [--batch 500] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
from collections import Counter

from kessai_bench.pipeline import funding
from kessai_bench.trades import TradeFactory
from streams.config import DEFAULT_TOKENS
from streams.engine.core import Batch, Engine, Rules


def _run(
    engine: Engine, rules: Rules, records: list[tuple[str, bytes, bytes]], batch: int
) -> Counter[str]:
    written: Counter[str] = Counter()
    now = time.time()
    for start in range(0, len(records), batch):
        b = Batch(engine, rules, now)
        for i, (topic, key, value) in enumerate(records[start : start + batch]):
            b.record(topic, 0, start + i, key, value, now)
        b.expire()
        out = b.finish()
        for topic, _, _ in out.records:
            written[topic] += 1
        for topic, _, _ in out.changelog:
            written[topic] += 1
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the run")
    args = parser.parse_args(argv)
    engine = Engine()
    rules = Rules(tokens=dict(DEFAULT_TOKENS), deadline_s=3600.0)
    _run(engine, rules, funding(), 1000)
    factory = TradeFactory("step")
    records = [("trades", *factory.record()) for _ in range(args.trades)]
    gc.collect()
    profiler = cProfile.Profile() if args.profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    written = _run(engine, rules, records, args.batch)
    if profiler:
        profiler.disable()
    cpu = time.process_time() - started
    settled = len(engine.finished)
    print(
        f"{args.trades} trades, batches of {args.batch}: {settled} finished, "
        f"{cpu / args.trades * 1e6:.1f} µs CPU per trade"
    )
    for topic, n in sorted(written.items()):
        print(f"  {topic:20} {n / args.trades:6.2f} records per trade")
    print(f"  {'total':20} {sum(written.values()) / args.trades:6.2f}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
