"""The kill test's worker: re-keys a stream onto other partitions and keeps running totals.

Run as ``python tests/integration/eos_worker.py worker``; configured by environment:

- ``EOS_PREFIX``: topic-name prefix, fresh per test run;
- ``EOS_PATCHED``: ``1`` (default) runs on :class:`streams.eos.KessaiApp`, ``0`` on stock
  ``faust.App`` -- the same agents, to show the test fails without the patch;
- ``KESSAI_BOOTSTRAP``, ``EOS_PARTITIONS``, ``EOS_COMMIT_INTERVAL_S``.

Flow (every arrow a re-key onto another partition, every box exactly-once):
``{prefix}in`` (key: event id) --rekey--> ``{prefix}by-account`` (key: account) and
``{prefix}audit`` (not consumed here, faust hole 2) ; ``{prefix}by-account`` --totals-->
table ``totals`` (changelog) and ``{prefix}totals-out`` (key: account, running total).
"""

from __future__ import annotations

import os
import sys

import faust

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from streams.eos import KessaiApp

PREFIX = os.environ["EOS_PREFIX"]
PARTITIONS = int(os.environ.get("EOS_PARTITIONS", "4"))
PATCHED = os.environ.get("EOS_PATCHED", "1") == "1"

App = KessaiApp if PATCHED else faust.App
app = App(
    f"{PREFIX}app",
    broker=f"kafka://{os.environ.get('KESSAI_BOOTSTRAP', '127.0.0.1:9092')}",
    processing_guarantee="exactly_once",
    store="memory://",
    broker_commit_interval=float(os.environ.get("EOS_COMMIT_INTERVAL_S", "0.5")),
    topic_partitions=PARTITIONS,
    topic_replication_factor=1,
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    # A SIGKILLed member stays in the group until its session times out, and the
    # restarted worker's join waits for that: keep it short (broker minimum: 6 s).
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
)

source = app.topic(f"{PREFIX}in", key_type=bytes, value_serializer="json", partitions=PARTITIONS)
by_account = app.topic(
    f"{PREFIX}by-account", key_type=bytes, value_serializer="json", partitions=PARTITIONS
)
audit = app.topic(f"{PREFIX}audit", key_type=bytes, value_serializer="json", partitions=PARTITIONS)
totals_out = app.topic(
    f"{PREFIX}totals-out", key_type=bytes, value_serializer="json", partitions=PARTITIONS
)
totals = app.Table("totals", default=int, partitions=PARTITIONS, key_type=str, value_type=int)


@app.agent(source, concurrency=1)
async def rekey(stream: faust.Stream) -> None:
    async for event in stream:
        await by_account.send(key=event["account"].encode(), value=event)
        await audit.send(key=event["id"].encode(), value=event)


@app.agent(by_account, concurrency=1)
async def running_totals(stream: faust.Stream) -> None:
    async for event in stream:
        account = event["account"]
        total = totals[account] + event["amount"]
        totals[account] = total
        await totals_out.send(
            key=account.encode(),
            value={
                "id": event["id"],
                "account": account,
                "amount": event["amount"],
                "total": total,
            },
        )


if __name__ == "__main__":
    app.main()
