"""The matcher at work: read a batch of orders, match it, commit it in one transaction.

One loop per worker, like the settlement engine's (:mod:`streams.engine.service`,
docs/adr/0031), on the same runtime (:mod:`streams.runtime.batches`). Its consumer
joins ``{app_id}-matcher``; the group gives every ``orders`` partition to one worker
(:mod:`streams.runtime.leader`) and the others stand by. The worker given them:

1. starts a transactional producer with the fixed id ``{app_id}-matcher``: Kafka's
   ``InitProducerId`` fences any earlier holder and ends its open transaction;
2. reads the matcher's tables back from their changelogs (``{app_id}-orders-changelog``:
   one row per order, :mod:`streams.matching.matcher`; ``{app_id}-order-rates-changelog``:
   each venue's token bucket), committed rows only, to their ends, and seeks
   ``orders`` to the group's committed offsets;
3. loops: fetch what arrived (read_committed), hand each record, in partition and
   offset order, to :func:`streams.matching.handler.handle_record` (the pure rules
   ``kessai replay`` runs too), and write the trades, order events, rejections, the
   rows the batch changed and the input offsets in one Kafka transaction. The next
   batch starts when the commit is done.

The trades go to ``trades``, where the engine takes them as any venue's: one committed
hop beyond the matcher's own. A worker that loses the partitions, and any error at all,
ends the process (fail-stop, as the engine's loop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from schemas import ORDER_EVENTS, ORDERS, REJECTIONS, TRADES, source_of
from streams.config import Settings
from streams.kafka.reader import cuts_for, read_batches
from streams.matching.handler import RecordOutputs, handle_record
from streams.matching.matcher import Matcher, Rows
from streams.runtime import batches
from streams.runtime.batches import (
    REBALANCE_POLL_S,
    Leadership,
    Outbox,
    Stats,
    holder_consumer,
    partition_of,
    rejection,
    transactional_producer,
)
from streams.security import signing
from streams.security.quota import Limit, Quota
from streams.topics import ORDER_RATES_TABLE, ORDERS_TABLE, changelog

logger = logging.getLogger(__name__)

__all__ = ["MatcherService", "Rows"]

#: Orders matched in one batch at most.
BATCH_RECORDS_MAX: Final = 4_000
#: How long a fetch waits for orders.
IDLE_WAIT_MS: Final = 100


def changelog_partition(key: bytes, partitions: int) -> int:
    """The partition of a matcher table's row: its key's, as Kafka's default
    partitioner would put it (one key, one partition, so compaction and a restore
    always keep its last value)."""
    return partition_of(key, partitions)


class MatcherService:
    """The matching loop of one worker (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_record: Callable[[RecordOutputs], None] | None = None,
        signers: signing.LiveRegistry | None = None,
        signing_key: signing.SigningKey | None = None,
    ) -> None:
        self.settings = settings
        self.on_record = on_record
        self.signers = signers
        self.signing_key = signing_key
        self.group = f"{settings.app_id}-matcher"
        self.orders = Rows()
        self.rates = Rows()
        self.stats = Stats()
        #: "standby", "restoring" or "leading".
        self.state = "standby"
        self.consumer: AIOKafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {}

    @property
    def leading(self) -> bool:
        return self.state == "leading"

    async def run(self) -> None:
        """Stand by until the group gives this worker ``orders``; then lead. Returns
        only when leadership is lost (the caller ends the process)."""
        leadership = Leadership()
        consumer = self.consumer = self._consumer()
        await consumer.start()
        try:
            consumer.subscribe([ORDERS], listener=leadership)
            while not leadership.assigned:
                await consumer.getmany(timeout_ms=IDLE_WAIT_MS)  # a live member of the group
            logger.info("matcher: this worker holds the orders; taking over")
            await self._lead(consumer, leadership, set(leadership.assigned))
        finally:
            await consumer.stop()

    def _consumer(self) -> AIOKafkaConsumer:
        return holder_consumer(self.settings, self.group, client_id=self.group,
                               fetch_wait_ms=IDLE_WAIT_MS)  # fmt: skip

    def _producer(self) -> AIOKafkaProducer:
        return transactional_producer(
            self.settings, client_id=self.group, transactional_id=self.group
        )

    async def _lead(
        self, consumer: AIOKafkaConsumer, leadership: Leadership, taken: set[TopicPartition]
    ) -> None:
        self.state = "restoring"
        producer = self._producer()
        await producer.start()  # InitProducerId: the previous holder is fenced now
        try:
            started = time.monotonic()
            self.orders, self.rates = Rows(), Rows()
            rows = await self._restore(self.orders, ORDERS_TABLE)
            rows += await self._restore(self.rates, ORDER_RATES_TABLE)
            generation = await leadership.seek_when_settled(
                taken, lambda: self._seek(consumer, taken)
            )
            if generation is None:
                logger.warning("matcher: the orders were given to another worker")
                return
            matcher = Matcher(self.orders, tokens=self.settings.tokens)
            logger.info("matcher: restored %d rows in %.2f s (%d books)", rows,
                        time.monotonic() - started, len(matcher.books()))  # fmt: skip
            self.state = "leading"
            await self._loop(consumer, producer, leadership, matcher, taken, generation)
        finally:
            self.state = "standby"
            await producer.stop()

    async def _restore(self, table: Rows, name: str) -> int:
        """``table``'s committed rows, read from its changelog's start to its end."""
        topic = changelog(self.settings.app_id, name)
        client_id = f"{self.group}-restore"
        count = 0
        cuts = await cuts_for(self.settings, topic, client_id=client_id)
        async for _, records in read_batches(self.settings, topic, cuts, client_id=client_id):
            for r in records:
                key = orjson.loads(r.key)
                if r.value is None:
                    table.rows.pop(key, None)
                else:
                    table.rows[key] = r.value
            count += len(records)
        return count

    async def _seek(self, consumer: AIOKafkaConsumer, tps: set[TopicPartition]) -> None:
        """Each partition to the group's committed offset (committed with the rows)."""
        starts = await consumer.beginning_offsets(list(tps))
        self._positions = {}
        for tp in tps:
            committed = await consumer.committed(tp)
            position = committed if committed is not None else starts[tp]
            self._positions[tp] = position
            consumer.seek(tp, position)

    async def _loop(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        leadership: Leadership,
        matcher: Matcher,
        held: set[TopicPartition],
        generation: int,
    ) -> None:
        while True:
            fetched = await consumer.getmany(timeout_ms=IDLE_WAIT_MS, max_records=BATCH_RECORDS_MAX)
            while not leadership.assigned and leadership.generation == generation:
                await asyncio.sleep(REBALANCE_POLL_S)  # revoked: wait for the assignment
            async with leadership.lock:
                if leadership.generation != generation:
                    if leadership.assigned != held:
                        logger.warning("matcher: the orders were given to another worker")
                        return
                    # Kept: go on from where the last batch committed (what was fetched
                    # meanwhile comes again).
                    generation = leadership.generation
                    for tp in held:
                        consumer.seek(tp, self._positions[tp])
                    continue
                batch = sorted(((tp, rs) for tp, rs in fetched.items() if rs),
                               key=lambda f: f[0].partition)  # fmt: skip
                if batch and leadership.assigned:
                    await self._batch(producer, batch, matcher)

    async def _batch(
        self,
        producer: AIOKafkaProducer,
        fetched: list[tuple[TopicPartition, list[ConsumerRecord]]],
        matcher: Matcher,
    ) -> None:
        """Match the records and commit what they caused, in one transaction."""
        s = self.settings
        quota = Quota(self.rates, Limit(s.venue_rate_per_s, s.venue_burst))
        signers = signing.current(self.signers)
        outbox = Outbox(producer)
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        started = time.monotonic()
        await producer.begin_transaction()
        for tp, records in fetched:
            for r in records:
                out = handle_record(lambda: matcher, r.key, r.value, r.timestamp / 1000,
                                    signers=signers, signing_key=self.signing_key, quota=quota,
                                    partition=tp.partition)  # fmt: skip
                await self._send(outbox, tp.partition, r, out)
            offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "")
        for name, table in ((ORDERS_TABLE, self.orders), (ORDER_RATES_TABLE, self.rates)):
            topic = changelog(s.app_id, name)
            for key, value in table.take_written().items():
                raw = orjson.dumps(key)
                await outbox.add(topic, changelog_partition(raw, s.partitions), raw, value)
        await outbox.flush()
        await producer.send_offsets_to_transaction(offsets, self.group)
        await producer.commit_transaction()
        self.stats.commits.observe(time.monotonic() - started)
        self._positions.update({tp: o.offset for tp, o in offsets.items()})
        self.stats.batches += 1
        self.stats.records += sum(len(rs) for _, rs in fetched)

    async def _send(
        self, outbox: Outbox, partition: int, r: ConsumerRecord, out: RecordOutputs
    ) -> None:
        n = self.settings.partitions
        for t in out.trades:
            key = t["trade_id"].encode()
            await outbox.add(TRADES, partition_of(key, n), key, orjson.dumps(t))
        for e in out.order_events:
            key = e["isin"].encode()
            await outbox.add(ORDER_EVENTS, partition_of(key, n), key, orjson.dumps(e))
        if out.rejection is not None:
            source = source_of(ORDERS, partition, r.offset, r.key, r.value)
            key, value = rejection(source, *out.rejection)
            await outbox.add(REJECTIONS, 0 if key is None else partition_of(key, n), key, value)
        if self.on_record is not None:
            self.on_record(out)

    def lags(self) -> dict[tuple[str, int], int]:
        """Orders waiting per partition (empty unless leading)."""
        return batches.lags(self.consumer, self._positions) if self.leading else {}
