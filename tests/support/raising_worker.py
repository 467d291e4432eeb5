"""A worker whose one agent raises on the record ``boom``: the fail-stop test's.

Run as ``python -m tests.support.raising_worker worker`` from the checkout's root, with
``RAISE_PREFIX`` (topic and app prefix, fresh per test) and ``KESSAI_BOOTSTRAP``;
``RAISE_STOCK=1`` keeps faust's own agent-error handling (the supervisor restarts the
agent and goes on), to show the test fails without kessai's fail-stop.

``{prefix}in`` (one partition) --echo--> ``{prefix}out``, exactly-once.
"""

from __future__ import annotations

import os
from typing import Any

import faust

from streams.runtime.eos import KessaiApp

PREFIX = os.environ["RAISE_PREFIX"]

if os.environ.get("RAISE_STOCK") == "1":
    # faust's App's own handler, instead of KessaiApp's fail-stop.
    KessaiApp._on_agent_error = faust.App._on_agent_error  # type: ignore[method-assign]

app = KessaiApp(
    f"{PREFIX}app",
    broker=f"kafka://{os.environ.get('KESSAI_BOOTSTRAP', '127.0.0.1:9092')}",
    processing_guarantee="exactly_once",
    store="memory://",
    broker_commit_interval=0.2,
    topic_partitions=1,
    topic_replication_factor=1,
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(f"{PREFIX}in", key_type=bytes, value_type=bytes, value_serializer="raw")
out = app.topic(f"{PREFIX}out", key_type=bytes, value_type=bytes, value_serializer="raw")


@app.agent(source, concurrency=1)
async def echo(stream: faust.StreamT[Any]) -> None:
    async for value in stream:
        await out.send(value=b"half:" + value)  # sent before the bug: must not commit
        if value == b"boom":
            raise RuntimeError("a bug in a handler")
        await out.send(value=value)


if __name__ == "__main__":
    app.main()
