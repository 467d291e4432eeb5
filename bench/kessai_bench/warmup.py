"""A fresh broker warmed up before it is measured.

Each pipeline measurement runs on a broker of its own, started for it. A fresh JVM
compiles its hot paths while the first load runs: in a 1,000 trades/s measurement on a
just-started broker, its JIT compiler threads took 5.98 of the broker's 10.78 CPU
seconds over 10 s (``/proc/<pid>/task/*/stat``, 2026-12-04), a core taken from the
engine on a 2-core machine, and the latency measured was the JIT's as much as
kessai's. A broker in service is warm. So, before the measurement, the same request
kinds the pipeline makes (idempotent produce, transactional produce, offsets in a
transaction, commit markers, read_committed fetch) are run through the broker for a
while: a producer publishing at full speed into a topic of its own and the raw
transactional passthrough (:mod:`kessai_bench.passthrough`) copying it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from aiokafka import AIOKafkaProducer

from kessai_bench import passthrough
from streams.config import Settings
from streams.kafka.admin import create_topics
from streams.topics import TopicSpec

__all__ = ["WARMUP_S", "warm"]

#: How long a fresh broker is warmed up before a measurement (``--broker-warmup-s``).
WARMUP_S: Final = 20.0
PREFIX: Final = "kessai-bench-warmup-"
#: Records per publish burst, and the value of each (a trade's size).
BURST: Final = 500
VALUE: Final = b"x" * 250


async def warm(bootstrap: str, partitions: int, seconds: float = WARMUP_S) -> int:
    """Load the broker at ``bootstrap`` for ``seconds``; records copied."""
    if seconds <= 0:
        return 0
    settings = Settings(bootstrap=bootstrap, partitions=partitions)
    source, sink = f"{PREFIX}in", f"{PREFIX}out"
    await create_topics(
        settings, [TopicSpec(name=t, partitions=partitions) for t in (source, sink)]
    )
    stop = asyncio.Event()
    copying = asyncio.ensure_future(
        passthrough.run(
            mode="transactional",
            bootstrap=bootstrap,
            source=source,
            sink=sink,
            partitions=partitions,
            group=f"{PREFIX}group",
            commit_interval_s=0.05,
            stop=stop,
        )
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        until = time.monotonic() + seconds
        n = 0
        while time.monotonic() < until and not copying.done():
            for _ in range(BURST):
                await producer.send(source, VALUE, key=b"%d" % n)
                n += 1
            await producer.flush()
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await producer.stop()
        stats = await copying
    # The topics stay: deleting them would load the broker during the measurement, and
    # the broker is thrown away after it.
    return stats.records
