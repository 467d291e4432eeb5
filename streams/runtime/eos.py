"""Exactly-once that holds: kessai's patch over faust-streaming 0.15.3's transactions.

faust's ``processing_guarantee="exactly_once"`` opens one transactional producer per
source partition, but then (see docs/exactly-once.md and docs/faust-eos.md):

1. sends join the transaction of their *destination* partition, so a re-keyed output
   commits with someone else's input offsets;
2. sends to topics the worker does not consume leave the transaction altogether;
3. table changelog writes sit in a buffer that is not flushed before the commit;
4. begin/commit/abort errors are logged and swallowed;
5. a send issued while event N+1 is half processed joins the transaction that commits
   offsets only up to N, so a crash replays N+1 and duplicates that send.

This module closes all five with one mechanism, the *outbox*. While an agent handles
an event read from source partition P at offset o, every record it produces -- topic
sends and table changelog writes alike -- is held in P's outbox, tagged with o.
Nothing is sent then. When faust's commit timer decides that P may commit up to
offset c, :meth:`ExactlyOnceTransactionManager.commit` takes the records tagged
below c, sends them through P's own transactional producer (to whatever partition
they belong), waits until the broker has them all, adds P's offsets to the same
transaction and commits it. Any error there crashes the worker: a transaction is
never only logged. A send with no event to belong to raises :class:`EscapedSendError`.

Kafka Streams' exactly-once "alpha" model, in other words, with the commit always at
an event boundary. The cost: outputs leave at commit time, not at once -- which is
when a read_committed reader would have seen them anyway.

Only :class:`KessaiApp` is public; the rest is wiring faust needs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from aiokafka import TopicPartition
from faust.streams import current_event
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import TransactionManager
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, AgentT
from faust.types.enums import ProcessingGuarantee
from mode import Service

from streams.errors import KessaiError
from streams.runtime import restore

logger = logging.getLogger(__name__)

#: The exit status of a worker stopped by an agent's unexpected exception (EX_SOFTWARE).
FAIL_STOP_EXIT = 70

#: The transactional id whose commit is draining its outbox in this task, if any.
_draining: ContextVar[str | None] = ContextVar("kessai_eos_draining", default=None)

#: Longest a commit may spend in one stage (deliver, add offsets, commit, begin).
COMMIT_STAGE_TIMEOUT_S = 30.0

#: Records held in all outboxes together before a send forces an early commit.
OUTBOX_RECORDS_MAX = 50_000


class EosError(KessaiError, RuntimeError):
    """Base of the errors this module raises."""


class EscapedSendError(EosError):
    """A send under exactly-once with no source event to commit it with."""


class TransactionFailedError(EosError):
    """A transaction could not begin or commit; the worker must restart."""


@dataclass(slots=True)
class _Held:
    """One produced record waiting in an outbox for its source offset to commit."""

    offset: int
    #: A faust FutureMessage (table changelog path) ...
    future_message: Any = None
    #: ... or the raw arguments of a topic send, and the future its caller holds.
    raw: tuple[str, bytes | None, bytes | None, int | None, float | None, Any] | None = None
    result: asyncio.Future[Any] | None = None


@dataclass
class Outbox:
    """Records produced per source partition, in the order they were produced.

    Pure bookkeeping, no I/O: :meth:`take_below` hands out the prefix that belongs
    to offsets about to commit; the rest waits for a later commit.
    """

    _by_tp: dict[TP, deque[_Held]] = field(default_factory=lambda: defaultdict(deque))
    size: int = 0

    def hold(self, tp: TP, held: _Held) -> None:
        queue = self._by_tp[tp]
        # Offsets of one partition are handled in order; an older offset after a
        # newer one would mean two tasks process one partition at once.
        assert not queue or queue[-1].offset <= held.offset, (tp, queue[-1].offset, held.offset)
        queue.append(held)
        self.size += 1

    def take_below(self, tp: TP, offset: int) -> list[_Held]:
        queue = self._by_tp.get(tp)
        taken: list[_Held] = []
        while queue and queue[0].offset < offset:
            taken.append(queue.popleft())
        self.size -= len(taken)
        return taken

    def partitions(self) -> list[TP]:
        """The source partitions with records held."""
        return list(self._by_tp)

    def drop(self, tps: Iterable[TP]) -> int:
        """Forget records of revoked partitions: their new owner will redo them."""
        dropped = 0
        for tp in tps:
            queue = self._by_tp.pop(tp, None)
            if queue:
                dropped += len(queue)
                for held in queue:
                    if held.result is not None and not held.result.done():
                        held.result.cancel()
        self.size -= dropped
        return dropped


#: Upper bounds of the commit-duration buckets, in seconds.
COMMIT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class CommitTimes:
    """A histogram of commit durations, read by the worker's metrics at scrape time."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(COMMIT_BUCKETS_S) + 1))
    total_s: float = 0.0

    def observe(self, seconds: float) -> None:
        i = next((k for k, le in enumerate(COMMIT_BUCKETS_S) if seconds <= le), -1)
        self.counts[i] += 1
        self.total_s += seconds

    def plus(self, other: CommitTimes) -> CommitTimes:
        """Both histograms in one (the faust agents' commits and the engine's)."""
        counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        return CommitTimes(counts, self.total_s + other.total_s)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count at or below)`` per bucket, ``+Inf`` last, as Prometheus wants."""
        out, running = [], 0
        for le, n in zip((*map(str, COMMIT_BUCKETS_S), "+Inf"), self.counts, strict=True):
            running += n
            out.append((le, running))
        return out


class ExactlyOnceTransactionManager(TransactionManager):
    """faust's TransactionManager, with sends held per source partition."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outbox = Outbox()
        self._early_commit: asyncio.Task[Any] | None = None
        self.commits_total = 0
        #: Transactions left open at a revocation: never committed, their held records
        #: dropped; the partition's next owner fences them (they abort).
        self.aborts_total = 0
        #: Seconds each transaction's commit took (deliver, add offsets, commit).
        self.commit_seconds = CommitTimes()

    @property
    def _driver(self) -> faust_aiokafka.Producer:
        # The aiokafka driver's producer: it owns the transactional producers.
        return cast(faust_aiokafka.Producer, self.producer)

    # -- producing -------------------------------------------------------------------

    def _source(self, what: str) -> tuple[TP, int]:
        event = current_event()
        if event is None:
            raise EscapedSendError(
                f"{what} outside of a stream event under exactly-once: it would commit with "
                "no input offset. Model timers as records on a topic (docs/exactly-once.md)."
            )
        message = event.message
        return message.tp, message.offset

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[Any]:
        draining = _draining.get()
        if draining is not None:
            # Called back by faust's publish_message while we drain at commit time.
            return await self._driver.send(
                topic,
                key,
                value,
                partition,
                timestamp,
                headers,
                transactional_id=draining,
            )
        tp, offset = self._source(f"send to {topic!r}")
        result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._hold(
            tp, _Held(offset, raw=(topic, key, value, partition, timestamp, headers), result=result)
        )
        return result

    def send_soon(self, fut: Any) -> None:
        tp, offset = self._source("table changelog write")
        self._hold(tp, _Held(offset, future_message=fut))

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> Any:
        raise EscapedSendError(
            "send_and_wait under exactly-once would wait for a commit that waits for this "
            "event: use send() and let the commit deliver it"
        )

    def _hold(self, tp: TP, held: _Held) -> None:
        self.outbox.hold(tp, held)
        if self.outbox.size > OUTBOX_RECORDS_MAX and self._early_commit is None:
            # Bound memory: commit what is complete now instead of at the next tick.
            self._early_commit = asyncio.get_running_loop().create_task(self.consumer.commit())
            self._early_commit.add_done_callback(self._early_commit_done)

    def _early_commit_done(self, task: asyncio.Task[Any]) -> None:
        self._early_commit = None

    # -- committing ------------------------------------------------------------------

    def _tid(self, tp: TP) -> str:
        group = self.app.assignor.group_for_topic(tp.topic)
        return f"{self.app.conf.id}-{group}-{tp.partition}"

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        by_tid: dict[str, dict[TP, int]] = defaultdict(dict)
        for tp, offset in offsets.items():
            by_tid[self._tid(tp)][tp] = offset
        try:
            if getattr(self.app, "parallel_commits", False):
                # Each source partition has its own producer and transaction: nothing
                # orders them, and the slowest sets the commit's duration, not the sum.
                await asyncio.gather(
                    *(
                        self._commit_one(tid, tp_offsets, start_new_transaction)
                        for tid, tp_offsets in sorted(by_tid.items())
                    )
                )
            else:
                for tid, tp_offsets in sorted(by_tid.items()):
                    await self._commit_one(tid, tp_offsets, start_new_transaction)
        except BaseException as exc:
            logger.critical("exactly-once commit failed, crashing the worker: %r", exc)
            await self.app.crash(exc)
            raise
        return True

    async def _commit_one(
        self, tid: str, offsets: Mapping[TP, int], start_new_transaction: bool
    ) -> None:
        producer = self._driver._transaction_producers.get(tid)
        if producer is None:
            raise TransactionFailedError(f"no transactional producer for {tid}")
        started = time.monotonic()
        held: list[_Held] = []
        for tp, offset in offsets.items():
            held.extend(self.outbox.take_below(tp, offset))
        delivered: list[asyncio.Future[Any]] = []
        # A context variable, not an attribute: an agent sending while this commit
        # awaits must still have its record held, not slipped into this transaction.
        token = _draining.set(tid)
        try:
            for item in held:
                if item.future_message is not None:
                    fm = item.future_message
                    await fm.message.channel.publish_message(fm)
                    delivered.append(fm)
                else:
                    assert item.raw is not None and item.result is not None
                    sent = cast(
                        "asyncio.Future[Any]",
                        await self._driver.send(*item.raw, transactional_id=tid),
                    )
                    _chain(sent, item.result)
                    delivered.append(sent)
        finally:
            _draining.reset(token)
        # Flush: every record must be on the broker before the offsets join the
        # transaction (hole 3). gather raises the first delivery error.
        if delivered:
            await _within(asyncio.gather(*delivered), tid, f"delivering {len(delivered)} records")
        async with self._driver._trn_locks[tid]:
            await _within(
                producer.send_offsets_to_transaction(dict(offsets), self.app.conf.id),
                tid,
                "adding offsets",
            )
            await _within(producer.commit_transaction(), tid, "committing")
            self.commits_total += 1
            self.commit_seconds.observe(time.monotonic() - started)
            if start_new_transaction:
                await _within(producer.begin_transaction(), tid, "beginning")

    # -- rebalancing -----------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        open_tids = {self._tid(tp) for tp in revoked} & set(self._driver._transaction_producers)
        self.aborts_total += len(open_tids)
        dropped = self.outbox.drop(revoked)
        if dropped:
            logger.info(
                "dropped %d uncommitted records of %d revoked partitions", dropped, len(revoked)
            )

    async def _start_transactions(self, tids: Iterable[str]) -> None:
        # faust's begin_transaction logs and swallows every error (hole 4): do it here.
        producer = self._driver
        for tid in tids:
            if tid in producer._transaction_producers:
                continue
            txp = producer._new_producer(transactional_id=tid)
            try:
                await txp.start()  # InitProducerId: fences a zombie and aborts its txn
                await txp.begin_transaction()
            except BaseException as exc:
                await txp.stop()
                raise TransactionFailedError(f"cannot start transactions for {tid}") from exc
            producer._transaction_producers[tid] = txp
            producer._trn_locks[tid] = asyncio.Lock()


async def _within(aw: Awaitable[Any], tid: str, stage: str) -> Any:
    # A commit that hangs keeps its transaction open, and read_committed readers of
    # every partition it wrote stall behind it: better to crash and be restarted.
    try:
        return await asyncio.wait_for(aw, COMMIT_STAGE_TIMEOUT_S)
    except TimeoutError as exc:
        raise TransactionFailedError(
            f"commit {tid}: {stage} took over {COMMIT_STAGE_TIMEOUT_S:.0f}s"
        ) from exc


def _chain(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    def copy(done: asyncio.Future[Any]) -> None:
        if target.done():
            return
        if done.cancelled():
            target.cancel()
        elif (exc := done.exception()) is not None:
            target.set_exception(exc)
        else:
            target.set_result(done.result())

    source.add_done_callback(copy)


class KessaiProducer(faust_aiokafka.Producer):
    """Routes buffered (``send_soon``) writes into the outbox under exactly-once."""

    def send_soon(self, fut: Any) -> None:
        if self.app.in_transaction:
            self.app.consumer.transactions.send_soon(fut)
        else:
            super().send_soon(fut)


class DroppedMessagesError(EosError):
    """faust fetched messages and lost them before any agent processed them."""


def dropped_offsets(
    delivered_unacked: Iterable[int], acked: Iterable[int], committed: int | None
) -> list[int]:
    """Offsets delivered but never acked although a later one was: dropped by faust.

    Holds for one agent per topic at ``concurrency=1``, which acks a partition's
    messages in offset order. Offsets below ``committed`` are settled already.
    """
    acked = list(acked)
    if not acked:
        return []
    highest_acked = max(acked)
    return sorted(
        o for o in delivered_unacked if o < highest_acked and (committed is None or o >= committed)
    )


def commit_offset(acked: Iterable[int]) -> int | None:
    """Where a partition's commit goes: one past its highest acked offset.

    faust 0.15.3 instead looks for a run of consecutive acked offsets, patched over
    with "gaps" it notes between fetched records. Under read_committed every
    transaction marker takes an offset that is never fetched, and an input written
    by many transactional producers has markers every few records; faust's gap
    bookkeeping clips the gaps it notes against the committed offset and misses
    markers at the edges, so its commit crawled forward about one transaction per
    commit while the agents ran thousands of records ahead (seen: committed offset
    ~1,000 with 6,000 processed; every output waits in the outbox for that commit,
    so the pipeline ran at ~40 records/s). The rule here needs no gap bookkeeping:
    with one agent per topic at ``concurrency=1`` a partition is acked in offset
    order, and :func:`dropped_offsets` crashes the worker if a fetched offset below
    the highest acked one was never acked. Every offset below it is then either
    processed or was never a record (a marker, an aborted record).
    """
    acked = list(acked)
    return max(acked) + 1 if acked else None


async def seek_to_committed_or_reset(
    consumer: Any, *, is_changelog: Callable[[str], bool], reset: str
) -> dict[TP, int | None]:
    """Seek every assigned stream partition to its committed offset, or, with none, by
    *reset* (``auto_offset_reset``); returns the committed offsets (None: none).

    aiokafka's ``seek_to_committed`` only seeks ``if offset and offset > 0``: a
    partition whose group never committed (or committed 0) keeps its position, and a
    first start can have moved it to the end already. faust hands newly assigned
    partitions to the fetcher before recovery pauses them; the records fetched in that
    window wait in the stream queues until the flow-control resume clears them
    (hole 12 in docs/exactly-once.md). Every stream partition is sought here, so those
    records are fetched again. Changelog partitions keep aiokafka's rule: nothing ever
    commits them, and recovery has read them already.
    """
    committed: dict[TP, int | None] = {}
    to_reset: list[Any] = []
    for tp in sorted(consumer.assignment()):
        offset = await consumer.committed(tp)
        committed[tp] = offset
        if is_changelog(tp.topic):
            if offset and offset > 0:
                consumer.seek(tp, offset)
        elif offset is not None and offset >= 0:
            consumer.seek(tp, offset)
        else:
            to_reset.append(tp)
    if to_reset:
        if reset == "earliest":
            await consumer.seek_to_beginning(*to_reset)
        elif reset == "latest":
            await consumer.seek_to_end(*to_reset)
        else:
            raise EosError(
                f"no committed offset for {sorted(to_reset)} and auto_offset_reset={reset!r}"
            )
    return committed


def position_known(thread: Any, tp: TP) -> bool:
    """Whether the aiokafka consumer of faust's consumer ``thread`` has a position for
    ``tp`` (False too when it is not assigned there, or not started)."""
    consumer = getattr(thread, "_consumer", None)
    if consumer is None:
        return False
    assignment = consumer._fetcher._subscriptions.subscription
    if assignment is None:
        return False
    state = assignment.assignment.state_value(TopicPartition(tp.topic, tp.partition))
    return state is not None and bool(state.has_valid_position)


class KessaiConsumer(faust_aiokafka.Consumer):
    """Notices messages that faust delivered but dropped unprocessed (faust#596).

    faust clears its stream queues when flow control resumes, and a race around
    recovery can clear messages it already handed over. Those offsets are never
    acked: the partition's commit offset then sticks below them for ever, or, when
    exactly one is missing, faust's gap heuristic commits straight past it and the
    message is lost (faust#606/#707). Both break a settlement pipeline.

    So every message handed to the conductor is remembered until its partition
    commits past it. With one agent per topic at ``concurrency=1`` a partition's
    messages are acked in offset order, so a delivered offset below the highest
    acked one that is not in faust's acked list was dropped. The worker then
    crashes, loudly: its state is exactly-once, so a restart resumes from the
    committed offsets and redoes the lost messages. Run workers under a supervisor.

    The same ordering gives the commit offset: one past the highest acked offset
    (:func:`commit_offset`, hole 11 in docs/exactly-once.md).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Offsets handed to the conductor and not yet committed past.
        self._delivered_unacked: dict[TP, set[int]] = defaultdict(set)
        deliver = self.callback

        acks_enabled_for = self.app.topics.acks_enabled_for

        async def remember_then_deliver(message: Any) -> None:
            # Changelog records are never acked: leave them out.
            if acks_enabled_for(message.topic):
                self._delivered_unacked[message.tp].add(message.offset)
            await deliver(message)

        self.callback = remember_then_deliver

    def verify_event_path(self, now: float, tp: TP) -> None:
        """faust's livelock check, skipped for a partition whose position aiokafka does
        not know yet (assigned, not yet seeked). The check reads
        ``TopicPartitionState.position``, which aiokafka 0.14 asserts is set: right
        after a rebalance the AssertionError crashed the worker (seen in the crash test,
        2026-12-04)."""
        if not position_known(self._thread, tp):
            return None
        return super().verify_event_path(now, tp)

    async def perform_seek(self) -> None:
        # Reading starts again from the committed offsets: whatever was delivered,
        # acked or held before will be delivered, acked and produced again. Acks of
        # the previous generation must not survive the seek (hole 14): faust forgets a
        # revoked partition's acks, but the events still in flight then finish and ack
        # again, and those late acks would carry the next commit past offsets the new
        # generation has not processed yet.
        self._delivered_unacked.clear()
        self._acked.clear()
        self._acked_index.clear()
        self._gap.clear()
        transactions = getattr(self, "transactions", None)
        outbox = getattr(transactions, "outbox", None)
        if outbox is not None:
            dropped = outbox.drop(list(outbox.partitions()))
            if dropped:
                logger.info("dropped %d held records from before the seek", dropped)
        await super().perform_seek()

    async def seek_to_committed(self) -> Mapping[TP, int]:
        thread = self._thread
        app = self.app
        reset = app.conf.consumer_auto_offset_reset

        def is_changelog(topic: str) -> bool:
            return topic in app.tables.changelog_topics

        async def seek() -> dict[TP, int | None]:
            return await seek_to_committed_or_reset(
                thread._ensure_consumer(), is_changelog=is_changelog, reset=reset
            )

        # faust's perform_seek reads None as "no committed offset", as aiokafka returns it.
        return cast(Mapping[TP, int], await thread.call_thread(seek))

    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked.get(tp)
        # Acked offsets are read from faust's own list: its compiled stream acks
        # without calling Consumer.ack, so an ack() override would miss them.
        delivered = self._delivered_unacked.get(tp, set())
        dropped = dropped_offsets(
            delivered - set(acked or ()), acked or [], self._committed_offset.get(tp)
        )
        if dropped:
            raise DroppedMessagesError(
                f"{tp.topic}[{tp.partition}]: offsets {dropped[:5]} were delivered and never "
                f"processed, while {max(acked or [0])} was (faust#596); restarting from the "
                "committed offsets"
            )
        new_offset = commit_offset(acked or [])
        if new_offset is not None:
            # faust's bookkeeping, emptied the way its own _new_offset empties it.
            acked_list = self._acked[tp]
            self._acked_index[tp].difference_update(acked_list)
            acked_list.clear()
            self._gap.pop(tp, None)
            delivered = self._delivered_unacked[tp]
            delivered.difference_update([o for o in delivered if o < new_offset])
        return new_offset

    async def highwaters(self, *partitions: TP) -> Any:
        """End offsets asked of the broker, never aiokafka's cache.

        Under transactions faust 0.15.3 answers with aiokafka's cached
        ``last_stable_offset``, which is None until a fetch for that partition has
        returned. Recovery reads None as an empty changelog and skips it: a restarted
        worker then starts from empty tables (seen: a whole ledger lost after a
        SIGTERM restart). ``end_offsets`` sends ListOffsets with the consumer's
        read_committed isolation, so the broker answers with the last stable offset.
        """
        thread = self._thread

        async def end_offsets(tps: list[TP]) -> Any:
            return await thread._ensure_consumer().end_offsets(tps)

        return await thread.call_thread(end_offsets, list(partitions))

    async def force_commit(self, *args: Any, **kwargs: Any) -> bool:
        try:
            return bool(await super().force_commit(*args, **kwargs))
        except DroppedMessagesError as exc:
            logger.critical("%s", exc)
            await self.app.crash(exc)
            raise


class KessaiRecovery(Recovery):
    """faust's Recovery with the stream partitions resumed only after the seek.

    faust 0.15.3 resumes the stream partitions, then awaits ``perform_seek()``, then
    resumes flow control, which clears the stream queues. Flow control is already
    active from changelog recovery, so records fetched during the seek reach the
    agents: they are processed, then fetched and processed again after the seek
    (duplicates), or they wait in a queue that the resume then clears (dropped,
    faust#596). Seen in the kill test as both. Here the seek comes first, while
    the stream partitions are still paused, and nothing awaits between resuming
    them and resuming flow.

    And the tables are restored by :func:`streams.runtime.restore.restore`, a consumer of
    our own reading each active changelog from its start to its end, instead of
    faust's changelog queue, whose stale records could make recovery start in the
    middle of a log (hole 13 in docs/exactly-once.md).
    """

    #: Restore with :func:`streams.runtime.restore.restore` (hole 13). False runs faust's
    #: changelog path, for the test that shows it loses rows.
    own_restore: bool = True
    #: Changelog records that reached faust's queue and were dropped (hole 13).
    stale_changelog_records: int = 0
    #: Times the tables were whole again after a rebalance, before any record was
    #: processed: what rebuilds the metrics' running sums (streams/runtime/livesums.py).
    tables_whole: int = 0

    async def _build_offsets(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        await super()._build_offsets(consumer, tps, destination, title)
        if self.own_restore and destination is self.active_offsets:
            # faust reads nothing itself: on_recovery_completed restores every
            # active changelog with a consumer of its own.
            for tp in tps:
                destination[tp] = self.active_highwaters[tp]

    @Service.task
    async def _slurp_changelogs(self) -> None:
        if not self.own_restore:
            await cast(Any, Recovery.__dict__["_slurp_changelogs"]).fun(self)
            return
        # With no standbys and no active changelog partition ever resumed, whatever
        # reaches faust's changelog queue was fetched before a rebalance: drop it, so
        # that it can neither move recovery's offsets nor land in a table.
        queue = self.tables.changelog_queue
        while not self.should_stop:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=1.0)
            except TimeoutError:
                continue
            self.stale_changelog_records += 1
            self.log.info("dropped a stale changelog record: %s", event.message.tp)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        if self.own_restore:
            self._set_recovery_started()
            await restore.restore_in(self.app, self, generation_id)
            if self.app.consumer_generation_id != generation_id:
                self.log.warning("Recovery rebalancing again")
                return
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callback_coros = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if callback_coros:
            await asyncio.wait(callback_coros)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        if self.app.consumer_generation_id != generation_id:
            # A rebalance began during the seek: its own recovery resumes the streams
            # once its tables are whole. Resuming now would let agents run on tables
            # that rebalance has just emptied (seen: the matcher rebuilt its books
            # from an empty orders table, then failed on a cancel).
            self.log.warning("Recovery rebalancing again")
            return
        # No await from here until flow resumes: no record can reach a queue that
        # the resume would clear.
        self.tables_whole += 1
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        self.completed.set()
        self.app.flow_control.resume()
        consumer.resume_flow()
        await cast(Any, self.app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _resume_streams(self, generation_id: int = 0) -> None:
        # The same race when no table needs recovery: seek, then resume.
        app = self.app
        consumer = app.consumer
        await app.on_rebalance_complete.send()
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        self.tables_whole += 1
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        self.completed.set()
        app.flow_control.resume()
        consumer.resume_flow()
        await cast(Any, app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


class KessaiTableManager(TableManager):
    """faust's TableManager, recovering with :class:`KessaiRecovery`, and from scratch.

    aiokafka rebalances eagerly: every partition is revoked, the outbox drops every
    uncommitted record (:meth:`ExactlyOnceTransactionManager.on_partitions_revoked`)
    and the streams restart from the committed offsets. faust keeps the memory
    tables as they were, though, with the writes of the very events that will now be
    processed again: applied twice. Seen in the crash test with two workers: a saga
    already moved to "posting" by a dropped event saw its cash grant again, took it
    for a repeat and voided it, and the trade hung for ever. So at each rebalance the
    tables are emptied and recovery replays their changelogs from the beginning
    (read_committed: exactly the committed state). Hole 10 in docs/exactly-once.md.
    """

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = KessaiRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery

    #: Rebalances this worker took part in (``kessai_rebalances_total``).
    rebalances_total = 0

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        self.rebalances_total += 1
        forget_uncommitted_state(self.values(), self.recovery)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)


def forget_uncommitted_state(tables: Iterable[Any], recovery: Any) -> None:
    """Empty every memory table and make recovery read every changelog from its start."""
    for table in tables:
        store = table.data
        store.data.clear()
        store._key_partition.clear()
    recovery.active_offsets.clear()
    recovery.standby_offsets.clear()


class KessaiTransport(faust_aiokafka.Transport):
    Consumer = KessaiConsumer
    Producer = KessaiProducer
    TransactionManager = ExactlyOnceTransactionManager


class KessaiApp(faust.App):
    """A faust App whose exactly-once guarantee holds (see the module docstring).

    With ``processing_guarantee="exactly_once"``, tables must be ``memory://``: they
    rebuild from changelogs read with read_committed, which the outbox keeps in step
    with the committed offsets (RocksDB's persisted offsets are looked up under the
    wrong key in faust 0.15.3, robinhood/faust#599).
    """

    #: Commit the source partitions' transactions concurrently (KESSAI_PARALLEL_COMMITS).
    parallel_commits: bool = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("TableManager", KessaiTableManager)
        super().__init__(*args, **kwargs)
        guarantee: Any = self.conf.processing_guarantee  # typed as the enum class
        if guarantee == ProcessingGuarantee.EXACTLY_ONCE:
            if self.conf.producer_threaded:
                raise EosError("producer_threaded=True bypasses transactions entirely")
            if not str(self.conf.store).startswith("memory:"):
                raise EosError("exactly-once tables must use store='memory://'")

    async def _on_agent_error(self, agent: AgentT[Any], exc: BaseException) -> None:
        """Fail-stop: log the exception and end the process at once.

        Every input record must end as an output or a rejection, so an exception
        escaping an agent is a bug. faust's default supervisor restarts the agent on
        the same stream, and the abandoned record is acked as processed with half its
        outputs (docs/security.md, H4). Ending the process commits nothing more: the
        open transaction is aborted when the restarted worker's producer fences it,
        and the restart resumes before the record, as after a SIGKILL (which the
        crash tests prove safe). The supervisor (systemd, Kubernetes) restarts it; a
        loop pages (KessaiWorkerRestarting).
        """
        logger.critical(
            "agent %s raised on a record; stopping the worker without committing it "
            "(fail-stop, exit %d): %r",
            agent.name,
            FAIL_STOP_EXIT,
            exc,
            exc_info=exc,
        )
        logging.shutdown()
        sys.stderr.flush()
        os._exit(FAIL_STOP_EXIT)

    def _new_transport(self) -> Any:
        return KessaiTransport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Any:
        return KessaiTransport(self.conf.broker_producer, self)
