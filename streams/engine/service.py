"""The settlement engine at work: read a batch, apply it, commit it in one transaction.

One loop per worker (a task of the faust app, :mod:`streams.runtime.app`). Its
consumer joins ``{app_id}-engine``; the group gives every input partition to one
worker (:mod:`streams.runtime.leader`) and the others stand by. The worker given them:

1. starts a transactional producer with the fixed id ``{app_id}-engine``. Kafka's
   ``InitProducerId`` fences any earlier holder (a paused one cannot commit again) and
   ends its open transaction, so what follows sees only committed batches;
2. restores the :class:`~streams.engine.core.Engine` from its changelogs, read
   committed to their ends (:mod:`streams.engine.restore`), and seeks the inputs to the
   group's committed offsets;
3. loops: fetch what arrived (``getmany``, read_committed), apply it as one
   :class:`~streams.engine.core.Batch`, and write the batch's outputs, its changelog
   rows, its manifest (:mod:`streams.engine.manifest`) and its input offsets in one
   Kafka transaction. The next batch starts when the commit is done: batches grow
   under load and shrink when it is quiet, with no timer in the way. A batch is capped
   by count (``getmany``'s ``max_records``) and by processing time.

A worker that loses the partitions, and any error at all, ends the process
(:func:`streams.runtime.batches.run_or_stop`): a restart is a standby that restores from
what was committed, as after a SIGKILL.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from schemas import (
    CANCELLATIONS,
    CLOCK,
    CUSTODY,
    FX_RATES,
    INSTRUMENTS,
    LEDGER_EVENTS,
    ORDERS,
    PAYMENTS,
    RESERVES,
    TRADES,
)
from streams import topics
from streams.config import Settings
from streams.engine import actions, restore
from streams.engine.core import Batch, Engine, Outputs, Rules
from streams.engine.manifest import Manifest, Segment
from streams.engine.signatures import Checker
from streams.runtime import batches
from streams.runtime.batches import (
    REBALANCE_POLL_S,
    Leadership,
    Outbox,
    Progress,
    Stats,
    holder_consumer,
    partition_of,
    transactional_producer,
)
from streams.runtime.livesums import LiveSums
from streams.runtime.prefetch import Prefetch
from streams.security import signing
from streams.settlement.fails import FailRules

logger = logging.getLogger(__name__)

__all__ = ["INPUTS", "EngineService"]

#: What the engine reads.
INPUTS: Final = (
    TRADES, PAYMENTS, CUSTODY, INSTRUMENTS, RESERVES, CANCELLATIONS, ORDERS, FX_RATES
)  # fmt: skip
#: Records applied in one batch at most, and its processing time at most: a cap by time
#: keeps a batch's commit close behind its first record under a backlog.
BATCH_RECORDS_MAX: Final = 4_000
BATCH_SECONDS_MAX: Final = 0.05
#: Records taken from the fetcher ahead of the batches at most (streams/runtime/prefetch.py).
PREFETCH_RECORDS_MAX: Final = 2 * BATCH_RECORDS_MAX
#: How long a fetch waits for records when nothing is due.
IDLE_WAIT_MS: Final = 100


class EngineService:
    """The engine loop of one worker (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_batch: Callable[[Outputs, float], None] | None = None,
        signers: signing.LiveRegistry | None = None,
        signing_key: signing.SigningKey | None = None,
    ) -> None:
        self.settings = settings
        #: The worker's key: it signs the ``close`` of a matured bond's books on
        #: ``orders``, which the matcher checks like any order (None: unsigned).
        self.signing_key = signing_key
        self.rules = rules_of(settings)
        self.on_batch = on_batch
        self.signers = signers
        #: Checks signatures ahead of each batch, off the event loop's thread.
        self.checker = (
            Checker(settings.signature_threads)
            if signers is not None and settings.signature_threads > 0
            else None
        )
        self.engine = Engine(windowed=self.rules.window_s is not None)
        self.stats = Stats()
        self.progress = Progress()
        #: "standby", "restoring" or "leading".
        self.state = "standby"
        #: Restores done.
        self.restores = 0
        #: Balances, locks and inflow as committed: what ``/metrics`` reports.
        self.sums = LiveSums()
        self.consumer: AIOKafkaConsumer | None = None
        self.group = f"{settings.app_id}-engine"
        #: at_least_once: the same batches, their outputs flushed and then the offsets
        #: committed, no transaction (the bench's comparison).
        self.exactly_once = settings.processing_guarantee == "exactly_once"
        self._partitions: dict[tuple[str, bytes], int] = {}
        #: Each input partition's committed offset, as this engine committed it.
        self._positions: dict[TopicPartition, int] = {}
        #: The group's offsets differ from the engine's log (reset by hand, expired):
        #: the next batch commits every partition's, even an idle one's.
        self._offsets_stale = False
        self._seq = 0
        #: A simulated market's clock (``KESSAI_CLOCK=ticks``): where the last batch
        #: left it (0: the wall clock's).
        self._market_s = 0.0

    def now(self) -> float:
        """The engine's clock: the wall clock, or a simulated market's when later."""
        wall = time.time()
        return max(wall, self._market_s) if self.rules.ticks else wall

    @property
    def leading(self) -> bool:
        return self.state == "leading"

    def topic(self, name: str) -> str:
        return topics.engine_topic(self.settings.app_id, name)

    async def run(self) -> None:
        """Stand by, tailing the engine's changelogs, until the group gives this worker
        the inputs; then lead. Returns only when leadership is lost (the caller ends the
        process)."""
        leadership = Leadership()
        consumer = self.consumer = self._consumer()
        self.engine = Engine(windowed=self.rules.window_s is not None)
        tail = restore.ChangelogTail(self.settings, self.engine)
        await consumer.start()
        logger.info("engine: reading the engine's state from its changelogs, standing by "
                    "until the group gives this worker the inputs")  # fmt: skip
        await tail.start()
        try:
            inputs = [*INPUTS, CLOCK] if self.rules.ticks else list(INPUTS)
            consumer.subscribe(inputs, listener=leadership)
            hot = False
            while not leadership.assigned:
                # A hot standby: the holder's rows as they commit, so that a takeover
                # only reads what came after.
                if not await tail.poll(IDLE_WAIT_MS) and not hot and await tail.at_end():
                    hot = True
                    logger.info("engine: standby caught up: %d rows read in %.2f s",
                                tail.rows, time.monotonic() - tail.started_at)  # fmt: skip
                await consumer.getmany(timeout_ms=0)  # stays a live member of the group
            logger.info("engine: this worker holds the inputs; taking over (%d rows read "
                        "as a standby)", tail.rows)  # fmt: skip
            await self._lead(consumer, leadership, tail, set(leadership.assigned))
        finally:
            await tail.stop()
            await consumer.stop()

    def _consumer(self) -> AIOKafkaConsumer:
        client_id = f"{self.settings.app_id}-engine"
        return holder_consumer(self.settings, self.group, client_id=client_id,
                               fetch_wait_ms=IDLE_WAIT_MS)  # fmt: skip

    def _producer(self) -> AIOKafkaProducer:
        s = self.settings
        tid = transactional_id(s) if self.exactly_once else None
        return transactional_producer(s, client_id=f"{s.app_id}-engine", transactional_id=tid)

    async def _lead(
        self,
        consumer: AIOKafkaConsumer,
        leadership: Leadership,
        tail: restore.ChangelogTail,
        taken: set[TopicPartition],
    ) -> None:
        """Restore, seek the ``taken`` inputs to where the engine stopped, and run the
        batches. A rebalance may come during the restore (another worker joining): the
        seek waits for its assignment, and if it is no longer ``taken``, another worker
        holds the inputs and this one stops."""
        self.state = "restoring"
        sums: asyncio.Task[None] | None = None
        producer = self._producer()
        await producer.start()  # InitProducerId: the previous holder is fenced now
        try:
            started = time.monotonic()
            caught_up = await tail.catch_up()
            await tail.stop()
            last = await restore.last_manifest(self.settings)
            self._seq = last.seq if last is not None else 0
            self._market_s = 0.0 if last is None else last.end_s or last.now_s
            generation = await leadership.seek_when_settled(
                taken, lambda: self._seek(consumer, taken, last)
            )
            if generation is None:
                logger.warning("engine: the inputs were given to another worker")
                return
            logger.info(
                "engine: restored %d rows in %.2f s (%d of them in %.2f s after the "
                "takeover; %d accounts, %d open trades, batch %d)", tail.rows,
                time.monotonic() - tail.started_at, caught_up, time.monotonic() - started,
                len(self.engine.accounts), len(self.engine.open), self._seq,
            )  # fmt: skip
            self.restores += 1
            _freeze_heap()
            sums = asyncio.create_task(
                self.sums.rebuild_soon(self.engine.accounts, self.engine.inflow)
            )
            self.state = "leading"
            self.progress = Progress()
            await self._master_first(consumer, producer, taken)
            await self._loop(consumer, producer, leadership, taken, generation)
        finally:
            self.state = "standby"
            if sums is not None:
                sums.cancel()
            await producer.stop()

    async def _seek(
        self, consumer: AIOKafkaConsumer, tps: set[TopicPartition], last: Manifest | None
    ) -> None:
        """Each input partition to where the engine's log says it stopped; to the group's
        committed offset (or the partition's start) only where the log says nothing.

        The log commits with the state; the group's offsets can be reset by hand or
        expire. Resumed from them, a rate-limited trade (whose id stays free) could be
        taken the second time round (docs/security.md, H1)."""
        starts = await consumer.beginning_offsets(list(tps))
        logged = last.positions if last is not None else {}
        self._positions = {}
        self._offsets_stale = False
        for tp in tps:
            committed = await consumer.committed(tp)
            position = logged.get((tp.topic, tp.partition))
            if position is None:
                position = committed if committed is not None else starts[tp]
            elif position != (committed if committed is not None else starts[tp]):
                self._offsets_stale = True
                logger.warning(
                    "engine: %s[%d]: the group's committed offset is %s, the engine's log "
                    "says %d: resuming at %d", tp.topic, tp.partition, committed, position,
                    position,
                )  # fmt: skip
            self._positions[tp] = position
            consumer.seek(tp, position)

    async def _master_first(
        self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, held: set[TopicPartition]
    ) -> None:
        """Apply the reference data's backlog (the security master, the FX rates), to
        its end, before any other input.

        Kafka orders nothing across topics: after a stop, a bond published an hour ago
        and the trades in it since wait together, and a fetch may hand over the trades
        first (a long ``instruments`` backlog needs several fetches; on a cluster its
        leader may answer later). Read first, the bond is known to every trade in it."""
        master = {tp for tp in held if tp.topic in (INSTRUMENTS, FX_RATES)}
        ends = await consumer.end_offsets(list(master)) if master else {}
        behind = {tp for tp in master if self._positions[tp] < ends[tp]}
        if not behind:
            return
        consumer.pause(*(held - master))
        fetched: list[tuple[TopicPartition, list[ConsumerRecord]]] = []
        stalled_at = time.monotonic() + restore.STALL_TIMEOUT_S
        try:
            while [tp for tp in behind if await consumer.position(tp) < ends[tp]]:
                got = await consumer.getmany(*behind, timeout_ms=IDLE_WAIT_MS)
                fetched.extend((tp, records) for tp, records in got.items() if records)
                if got:
                    stalled_at = time.monotonic() + restore.STALL_TIMEOUT_S
                elif time.monotonic() > stalled_at:
                    raise restore.RestoreError("the reference data could not be read to its end")
        finally:
            consumer.resume(*(held - master))
        logger.info("engine: %d reference data records read before any other input",
                    sum(len(records) for _, records in fetched))  # fmt: skip
        while fetched:
            fetched = await self._batch(producer, fetched, self.now())
        for tp in behind:  # the batches' positions, whatever a record left in the fetcher
            consumer.seek(tp, self._positions[tp])

    async def _loop(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        leadership: Leadership,
        held: set[TopicPartition],
        generation: int,
    ) -> None:
        """The batches over ``held``, as assigned at ``generation``, until another worker
        is given them."""
        prefetch = Prefetch(consumer, max_records=PREFETCH_RECORDS_MAX)
        prefetch.start()
        try:
            await self._batches(consumer, producer, leadership, prefetch, held, generation)
        finally:
            await prefetch.stop()

    async def _batches(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        leadership: Leadership,
        prefetch: Prefetch,
        held: set[TopicPartition],
        generation: int,
    ) -> None:
        leftover: list[tuple[TopicPartition, list[ConsumerRecord]]] = []
        while True:
            if not leftover:
                fetched = await prefetch.take(self._wait_ms())
                leftover = sorted(fetched, key=_moves_first)
            while not leadership.assigned and leadership.generation == generation:
                await asyncio.sleep(REBALANCE_POLL_S)  # revoked: wait for the assignment
            async with leadership.lock:
                if leadership.generation != generation:
                    if leadership.assigned != held:
                        logger.warning("engine: the inputs were given to another worker")
                        return
                    # Kept: go on from where the last batch committed, dropping what
                    # was fetched meanwhile (it comes again).
                    generation, leftover = leadership.generation, []

                    def back() -> None:
                        for tp in held:
                            consumer.seek(tp, self._positions[tp])

                    await prefetch.seek(back)
                    continue
                if not leadership.assigned:
                    continue  # revoked while this waited for the lock
                now = self.now()
                if not leftover and not self._due(now) and not self._offsets_stale:
                    continue
                if leftover and actions.holders_due(self.engine, self.rules, now):
                    await self._batch(producer, [], now)  # the holders before any input
                leftover = await self._batch(producer, leftover, now)

    def lags(self) -> dict[tuple[str, int], int]:
        """Records waiting per input partition (empty unless leading)."""
        return batches.lags(self.consumer, self._positions) if self.leading else {}

    def _next_s(self) -> float:
        """When the next deadline, settlement date or coupon falls due (inf: none)."""
        engine = self.engine
        heads = [h[0][0] for h in (engine.deadlines, engine.starts) if h]
        return min([*heads, engine.next_action_s()], default=math.inf)

    def _wait_ms(self) -> int:
        next_s = self._next_s()
        if next_s == math.inf:
            return IDLE_WAIT_MS
        return max(0, min(IDLE_WAIT_MS, int((next_s - self.now()) * 1000) + 1))

    def _due(self, now: float) -> bool:
        """A deadline, a settlement date or a coupon is due, or an id is to leave the
        window: a batch, inputs or not."""
        window = self.rules.window_s
        if self._next_s() <= now:
            return True
        leaving = self.engine.leaving
        return window is not None and bool(leaving) and leaving[0][0] < now - window

    async def _batch(
        self,
        producer: AIOKafkaProducer,
        fetched: list[tuple[TopicPartition, list[ConsumerRecord]]],
        now: float,
    ) -> list[tuple[TopicPartition, list[ConsumerRecord]]]:
        """Apply records (as many as the time cap allows) and commit them; what is left."""
        manifest = Manifest(seq=self._seq + 1, now_s=now, rules=self.rules.to_json())
        registry = signing.current(self.signers)
        verified = None
        if registry is not None and self.checker is not None:
            verified = await self.checker.check(registry, fetched)
        batch = Batch(self.engine, self.rules, now, signers=registry, verified=verified)
        deadline = time.monotonic() + BATCH_SECONDS_MAX
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        leftover = []
        for i, (tp, records) in enumerate(fetched):
            if time.monotonic() > deadline and manifest.segments:
                leftover = fetched[i:]
                break
            for r in records:
                batch.record(tp.topic, tp.partition, r.offset, r.key, r.value, r.timestamp / 1000)
            end = records[-1].offset + 1
            manifest.segments.append(Segment(tp.topic, tp.partition, records[0].offset, end))
            offsets[tp] = OffsetAndMetadata(end, "")
        batch.expire()
        out = batch.finish()
        if self._offsets_stale:  # bring the group's offsets back to the log's
            for tp, position in self._positions.items():
                offsets.setdefault(tp, OffsetAndMetadata(position, ""))
            self._offsets_stale = False
        positions = {**self._positions, **{tp: o.offset for tp, o in offsets.items()}}
        manifest.positions = {(tp.topic, tp.partition): o for tp, o in positions.items()}
        if self.rules.ticks:
            manifest.end_s = batch.now_s
            manifest.wall_s = time.time()
            self._market_s = batch.now_s
        await self._commit(producer, out, manifest, offsets)
        self.sums.add(out.balances, out.locks_delta, self.engine.inflow)
        if self.checker is not None:
            self.checker.applied(fetched[: len(fetched) - len(leftover)])
        self._seq = manifest.seq
        self._positions = positions
        self.stats.batches += 1
        applied = sum(s.end - s.start for s in manifest.segments)
        self.stats.records += applied
        settled = sum(s.status == "settled" for s in out.statuses)
        line = self.progress.add(applied, len(out.rejected), settled)
        if line is not None:
            waiting = self.lags()  # partitions not fetched yet have no end known
            logger.info("engine: %s; %d records waiting in %d of %d partitions", line,
                        sum(waiting.values()), len(waiting), len(positions))  # fmt: skip
        if self.on_batch is not None:
            self.on_batch(out, now)
        return leftover

    async def _commit(
        self,
        producer: AIOKafkaProducer,
        out: Outputs,
        manifest: Manifest,
        offsets: dict[TopicPartition, OffsetAndMetadata],
    ) -> None:
        started = time.monotonic()
        if self.exactly_once:
            await producer.begin_transaction()
        outbox = Outbox(producer)
        n = self.settings.partitions
        # Stamped with the batch's clock, not the append's: a batch begun before a
        # coupon's record time is in `kessai positions --as-of` it, however long its
        # commit took. Under a simulated clock (ticks) they keep the append's: the broker
        # would hold simulated times, days off the real ones, and delete by them.
        stamp = None if self.rules.ticks else int(manifest.now_s * 1000)
        for topic, key, value in out.records:
            await outbox.add(topic, self._partition(topic, key, n), key, value, stamp)
        for name, row_key, row in out.changelog:
            await outbox.add(self.topic(name), 0, row_key, row)
        for row_key, row in out.archive:
            await outbox.add(self.topic(topics.ENGINE_ARCHIVE), 0, row_key, row)
        await outbox.add(self.topic(topics.ENGINE_LOG), 0, None, manifest.to_bytes())
        await outbox.flush()
        if self.exactly_once:
            if offsets:
                await producer.send_offsets_to_transaction(offsets, self.group)
            await producer.commit_transaction()
        elif offsets and self.consumer is not None:
            await self.consumer.commit(offsets)
        self.stats.commits.observe(time.monotonic() - started)

    def _partition(self, topic: str, key: bytes | None, n: int) -> int:
        if key is None:
            return 0
        if topic == LEDGER_EVENTS:  # accounts repeat: remember them
            cached = self._partitions.get((topic, key))
            if cached is None:
                cached = self._partitions[(topic, key)] = partition_of(key, n)
            return cached
        return partition_of(key, n)


def _freeze_heap() -> None:
    """Leave what exists now out of the garbage collector's full scans (``gc.freeze``).

    CPython's full collections walk every tracked object: in a worker that has
    restored the engine, with faust's and aiokafka's objects, each took 64 ms at the
    median and up to 97 ms (14 in a 20 s bench run, `docs/performance.md`, "The
    collector"), and the event loop stood still meanwhile: the batches, the fetches
    and the commits waited. What exists after the restore lives as long as the
    worker, so it is collected once and frozen: the full scans then see only what
    came after (1.4 ms at the median). A worker runs one engine: it ends when it loses
    the inputs, so what is frozen is never left behind by a second restore."""
    gc.collect()
    gc.freeze()
    logger.info("engine: %d objects left out of the garbage collector's full scans "
                "(gc.freeze)", gc.get_freeze_count())  # fmt: skip


def _moves_first(fetched: tuple[TopicPartition, list[ConsumerRecord]]) -> tuple[int, str, int]:
    """The security master, then deposits and withdrawals, then orders and trades, then
    a simulated clock's ticks, within a batch: a bond or deposit published before an
    order or a trade is applied before it whenever both arrive together (then by topic
    and partition: an order the manifest records)."""
    tp = fetched[0]
    return (_RANK.get(tp.topic, 1), tp.topic, tp.partition)


#: A simulated market's ticks come last: what was published before a tick in the same
#: batch happens before it (Kafka orders nothing across topics; a simulation that
#: needs a record after a tick waits for the tick's batch before sending it).
_RANK: Final = {INSTRUMENTS: 0, FX_RATES: 0, ORDERS: 2, TRADES: 2, CLOCK: 3}


def transactional_id(settings: Settings) -> str:
    """One per app: a new holder's producer fences the old one. With fencing off (the
    zombie test only), one per process."""
    if settings.engine_fencing:
        return f"{settings.app_id}-engine"
    return f"{settings.app_id}-engine-unfenced-{os.getpid()}"


def rules_of(settings: Settings) -> Rules:
    """The engine's rules from the worker's settings."""
    from streams.security.quota import Limit

    return Rules(
        tokens=dict(settings.tokens),
        deadline_s=settings.settlement_deadline_s,
        trade_limit=Limit(settings.venue_rate_per_s, settings.venue_burst),
        window_s=settings.trade_window_s,
        settlement_lag=settings.settlement_lag,
        instruments_required=settings.security_master == "required",
        ticks=settings.clock == "ticks",
        paying_agent=settings.paying_agent,
        fails=None
        if settings.fail_mode == "atomic"
        else FailRules(
            settings.cutoff_s,
            settings.max_fail_days,
            business_days=settings.settlement_lag > 0,
            penalties=settings.penalties,
        ),
        ahead_s=settings.trade_ahead_s,
        any_fit=True,
        starts_before_redemption=True,
        fx=settings.fx,
        onchain=dict(settings.onchain),
    )
