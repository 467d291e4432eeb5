"""Rebuild memory tables from their changelogs with a consumer of our own (hole 13).

faust 0.15.3 restores a table by resuming its changelog partitions on the worker's
main consumer and feeding the records through a flow-controlled queue to
``Recovery._slurp_changelogs``. That path keeps the highest offset it has applied
per partition, accepts only records above it, and starts the next recovery from it.
A changelog record fetched before a rebalance and handed over after it (the queue,
a delivery in flight, a recovery cut short by the next rebalance) therefore sets
that offset to somewhere in the middle of the log: the next recovery seeks there and
never applies the rows before it. Seen in CI's crash test with two workers: a
``seen-trades`` partition came back with most of its ids missing, and the venue's
repeats of those trades were forwarded and settled again (``kessai replay`` found
it). The same path also declares a partition complete once the consumer's position
has passed the high watermark, whether or not the records in between were applied
(``detect_aborted_tx``), so a dropped record goes unnoticed.

kessai's tables are ``memory://`` and emptied at every rebalance
(:class:`streams.runtime.eos.KessaiTableManager`), so recovery is always "read each active
changelog partition from its start to its last stable offset". :func:`restore`
does exactly that, with a fresh read_committed consumer that is assigned only
those partitions, so no record from another generation can reach it, and it stops
only when its position has reached the end offset it read before starting. faust's
recovery is then told there is nothing left to read (:class:`streams.runtime.eos.KessaiRecovery`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth, server_list
from faust.types import TP

from streams.errors import KessaiError

logger = logging.getLogger(__name__)

#: Longest a restore may go without its position moving before it gives up (the
#: worker then crashes and its supervisor restarts it).
STALL_TIMEOUT_S = 60.0


class RestoreError(KessaiError, RuntimeError):
    """A changelog could not be read to its end."""


@dataclass
class Restored:
    """What :func:`restore` read: records applied per changelog partition."""

    records: dict[TP, int]
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.records.values())


def consumer_for(app: Any) -> AIOKafkaConsumer:
    """A read_committed consumer with no group, connected as the worker's own is."""
    conf = app.conf
    return AIOKafkaConsumer(
        bootstrap_servers=server_list(conf.broker, 9092),
        client_id=f"{conf.broker_client_id}-restore",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        # An offset out of range (retention deleted the start under us) must fail the
        # restore, not jump to the end and call a partial table whole.
        auto_offset_reset="none",
        max_partition_fetch_bytes=conf.consumer_max_fetch_size,
        request_timeout_ms=int(conf.broker_request_timeout * 1000.0),
        **credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context),
    )


async def restore(
    app: Any,
    tables: Mapping[TP, Any],
    *,
    still_current: Callable[[], bool] = lambda: True,
) -> Restored:
    """Apply every committed record of each changelog partition in ``tables`` (its
    table) from the partition's start to its end offset, in offset order.

    ``still_current`` is asked before each batch is applied; when it says no (a newer
    rebalance has begun), the restore stops applying and returns what it did: the
    next recovery starts again from empty tables.
    """
    started = time.monotonic()
    counts: dict[TP, int] = {tp: 0 for tp in tables}
    if not tables:
        return Restored(counts, 0.0)
    by_kafka_tp = {TopicPartition(tp.topic, tp.partition): tp for tp in tables}
    consumer = consumer_for(app)
    try:
        await consumer.start()
        kafka_tps = list(by_kafka_tp)
        consumer.assign(kafka_tps)
        # The last stable offset: the worker's producers have fenced every earlier
        # owner of these partitions (faust starts them before recovery), so nothing
        # below it is still open, and nothing new lands until our agents run.
        ends: dict[TopicPartition, int] = await consumer.end_offsets(kafka_tps)
        starts: dict[TopicPartition, int] = await consumer.beginning_offsets(kafka_tps)
        for ktp in kafka_tps:
            consumer.seek(ktp, starts[ktp])
        pending = {tp for tp in kafka_tps if starts[tp] < ends[tp]}
        moved_at = time.monotonic()
        last_positions: dict[TopicPartition, int] = {}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500, max_records=10_000)
            if not still_current():
                logger.info("restore stopped: a new rebalance began")
                break
            for ktp, records in batches.items():
                tp = by_kafka_tp[ktp]
                table = tables[tp]
                topic = table.changelog_topic
                events = [
                    await topic.decode(app.consumer._to_message(tp, r), propagate=True)
                    for r in records
                    if r.offset < ends[ktp]
                ]
                table.apply_changelog_batch(events)
                counts[tp] += len(events)
            positions = {tp: await consumer.position(tp) for tp in pending}
            if positions != last_positions:  # records, or markers and aborted batches
                moved_at = time.monotonic()
            last_positions = positions
            pending = {tp for tp, at in positions.items() if at < ends[tp]}
            if pending and time.monotonic() - moved_at > STALL_TIMEOUT_S:
                where = {f"{tp.topic}[{tp.partition}]": ends[tp] for tp in pending}
                raise RestoreError(f"changelogs stopped moving before their ends: {where}")
    finally:
        await consumer.stop()
    done = Restored(counts, time.monotonic() - started)
    logger.info(
        "restored %d changelog records of %d partitions in %.2fs",
        done.total,
        len(tables),
        done.seconds,
    )
    return done


async def restore_in(app: Any, recovery: Any, generation_id: int) -> Restored:
    """:func:`restore` of the active changelog partitions ``recovery`` was given."""
    tables = {tp: recovery.tp_to_table[tp] for tp in recovery.active_tps}
    return await restore(
        app, tables, still_current=lambda: app.consumer_generation_id == generation_id
    )
