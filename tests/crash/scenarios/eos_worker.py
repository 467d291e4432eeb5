"""The kill test's worker: re-keys a stream onto other partitions and keeps running totals.

Run as ``python -m tests.crash.scenarios.eos_worker worker`` from the checkout's root;
configured by environment:

- ``EOS_PREFIX``: topic-name prefix, fresh per test run;
- ``EOS_PATCHED``: ``1`` (default) runs on :class:`streams.runtime.eos.KessaiApp`, ``0`` on stock
  ``faust.App`` -- the same agents, to show the test fails without the patch;
- ``EOS_STALE_CHANGELOG``: ``1`` hands faust's changelog queue, after each rebalance, the
  last committed record of each assigned ``totals`` changelog partition: what a record
  fetched before the rebalance and delivered after it looks like (hole 13);
- ``EOS_OWN_RESTORE``: ``0`` restores tables through faust's changelog queue instead of
  :mod:`streams.runtime.restore`, to show the test above fails without it;
- ``KESSAI_BOOTSTRAP``, ``EOS_PARTITIONS``, ``EOS_COMMIT_INTERVAL_S``.

Flow (every arrow a re-key onto another partition, every box exactly-once):
``{prefix}in`` (key: event id) --rekey--> ``{prefix}by-account`` (key: account) and
``{prefix}audit`` (not consumed here, faust hole 2) ; ``{prefix}by-account`` --totals-->
table ``totals`` (changelog) and ``{prefix}totals-out`` (key: account, running total).
"""

from __future__ import annotations

import os
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.runtime.eos import KessaiApp, KessaiRecovery, KessaiTableManager

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
async def rekey(stream: faust.StreamT[Any]) -> None:
    async for event in stream:
        await by_account.send(key=event["account"].encode(), value=event)
        await audit.send(key=event["id"].encode(), value=event)


@app.agent(by_account, concurrency=1)
async def running_totals(stream: faust.StreamT[Any]) -> None:
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


async def _last_committed(bootstrap: str, tp: Any) -> Any:
    """The last committed record of ``tp``, or None."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        ktp = TopicPartition(tp.topic, tp.partition)
        consumer.assign([ktp])
        end = (await consumer.end_offsets([ktp]))[ktp]
        consumer.seek(ktp, max(0, end - 100))
        last = None
        while await consumer.position(ktp) < end:
            for record in (await consumer.getmany(ktp, timeout_ms=500)).get(ktp, []):
                last = record
        return last
    finally:
        await consumer.stop()


def _hand_over_stale_changelog_records() -> None:
    on_rebalance = KessaiTableManager.on_rebalance

    async def then_a_stale_record(
        self: Any, assigned: Any, revoked: Any, newly: Any, generation_id: int = 0
    ) -> None:
        await on_rebalance(self, assigned, revoked, newly, generation_id)
        topic = totals.changelog_topic
        for tp in sorted(assigned):
            if tp.topic != topic.get_topic_name():
                continue
            record = await _last_committed(os.environ.get("KESSAI_BOOTSTRAP", "127.0.0.1:9092"), tp)
            if record is not None:
                event = await topic.decode(cast(Any, app.consumer)._to_message(tp, record))
                await self.changelog_queue.put(event)

    KessaiTableManager.on_rebalance = then_a_stale_record  # type: ignore[method-assign,assignment]


if os.environ.get("EOS_STALE_CHANGELOG") == "1":
    _hand_over_stale_changelog_records()
if os.environ.get("EOS_OWN_RESTORE") == "0":
    KessaiRecovery.own_restore = False


if __name__ == "__main__":
    app.main()
