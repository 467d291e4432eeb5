"""Playing the story: publishing each act's records and waiting, with a progress line
now and then and a timeout per act, until the worker's committed output shows what
the act must produce.

The output is read from where the topics ended when the demo started (so earlier
runs are never read) into a :class:`~streams.devtools.demo.seen.Seen`. Act 4 first
cancels what earlier runs left resting on the book, and ends by reading the book.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiokafka import AIOKafkaProducer

from schemas import (
    LEDGER_EVENTS,
    ORDER_EVENTS,
    ORDERS,
    REJECTIONS,
    SETTLEMENTS,
    TRADES,
    SubmitOrder,
)
from streams.audit.books import read_books
from streams.audit.positions import JournalError
from streams.config import Settings
from streams.devtools.demo.seen import Seen, balances
from streams.devtools.demo.story import (
    BOND_10Y,
    DEMO_DEADLINE_S,
    VENUES,
    Balances,
    Raw,
    Story,
    to_raw,
)
from streams.devtools.processes import WorkerProcess
from streams.kafka.reader import Tail

#: How long the worker may take to start and apply the opening deposits.
FUNDING_TIMEOUT_S = 150.0
#: How long the unfunded trades may take to go pending.
PENDING_TIMEOUT_S = 90.0
#: How long, past the deadline, the demo waits for the last outcomes.
FINISH_GRACE_S = 90.0
#: How long act 4's orders may take to be matched and their trades to settle.
MATCHING_TIMEOUT_S = 90.0
#: Once every trade and rejection is in, how long without a new balance change
#: before the balances count as final even if they differ from the expected ones.
LEDGER_QUIET_S = 10.0
#: Seconds between two progress lines while waiting.
PROGRESS_EVERY_S = 5.0


class _Tail:
    """Reads settlements, rejections, ledger-events, order-events and trades
    (read_committed) from where they ended when the demo started, so that earlier
    runs are never read."""

    def __init__(self, settings: Settings, seen: Seen, worker: WorkerProcess) -> None:
        self.seen = seen
        self.worker = worker
        # From the last stable offset: everything this run's worker commits comes after.
        self.tail = Tail(
            settings, (SETTLEMENTS, REJECTIONS, LEDGER_EVENTS, ORDER_EVENTS, TRADES), from_end=True
        )

    async def start(self) -> None:
        await self.tail.start()

    async def stop(self) -> None:
        await self.tail.stop()

    async def until(
        self, done: Callable[[], bool], timeout_s: float, progress: Callable[[], str]
    ) -> bool:
        """Read until ``done()``; False if ``timeout_s`` passed or the worker exited."""
        started = time.monotonic()
        next_line = started + PROGRESS_EVERY_S
        while not done():
            now = time.monotonic()
            if not self.worker.alive:
                return False
            if now - started > timeout_s:
                print(f"   gave up waiting after {timeout_s:.0f} s: {progress()}", flush=True)
                return False
            if now >= next_line:
                print(f"   {progress()} ({now - started:.0f} s)", flush=True)
                next_line = now + PROGRESS_EVERY_S
            for record in await self.tail.batch():
                self.seen.add(record)
        return True


async def _publish(producer: AIOKafkaProducer, records: list[Raw], seen: Seen) -> None:
    for topic, key, value in records:
        seen.sent(value)
        # One at a time, in order: a replayed id must arrive after the original.
        await producer.send_and_wait(topic, value, key=key)


async def play_story(story: Story, settings: Settings, worker: WorkerProcess) -> Seen:
    """Play the story's four acts against *worker*; what it committed meanwhile."""
    seen = Seen(story.run)
    tail = _Tail(settings, seen, worker)
    await tail.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        await _acts(story, settings, producer, tail)
        return seen
    finally:
        await producer.stop()
        await tail.stop()


async def _acts(story: Story, settings: Settings, producer: AIOKafkaProducer, tail: _Tail) -> None:
    if not await _fund(story, producer, tail):
        return  # no worker, or it died: the report says what is missing
    await _trade(story, producer, tail)
    if not await _deliver_late(story, producer, tail):
        # Its trades would settle among act 3's: the balances would tell nothing.
        print("4. matching: not played, act 3 did not finish", flush=True)
        return
    await _match(story, settings, producer, tail)


async def _fund(story: Story, producer: AIOKafkaProducer, tail: _Tail) -> bool:
    """Act 1; False if the deposits never reached the ledger."""
    seen = tail.seen
    print(
        f"1. funding: {len(story.funding)} records on fx-rates, payments and custody "
        "(USDC's reference rate, deposits, a withdrawal, 4 bad payments) ...",
        flush=True,
    )
    await _publish(producer, story.funding, tail.seen)
    return await tail.until(
        lambda: story.funded <= seen.causes,
        FUNDING_TIMEOUT_S,
        lambda: (
            f"waiting for the worker: {len(story.funded & seen.causes)} of "
            f"{len(story.funded)} deposits and withdrawals on the ledger ..."
        ),
    )


async def _trade(story: Story, producer: AIOKafkaProducer, tail: _Tail) -> None:
    """Act 2: the venue's trades; waits until the unfunded ones are pending."""
    seen = tail.seen
    good = len(story.trade_records)
    print(
        f"2. the venue publishes {len(story.trades)} trades on trades "
        f"({good} to settle, {len(story.trades) - good} to be rejected) ...",
        flush=True,
    )
    await _publish(producer, story.trades, tail.seen)

    def pending() -> list[str]:
        return [t for t in story.unfunded if t in seen.statuses]

    await tail.until(
        lambda: len(pending()) == len(story.unfunded),
        PENDING_TIMEOUT_S,
        lambda: (
            f"waiting for {len(story.unfunded) - len(pending())} of "
            f"{len(story.unfunded)} unfunded trades to go pending ..."
        ),
    )


async def _deliver_late(story: Story, producer: AIOKafkaProducer, tail: _Tail) -> bool:
    """Act 3: the late deposits; False if its trades, rejections and balances did
    not all arrive."""
    seen = tail.seen
    run = story.run
    print(
        f"3. late deposits: carol's JPYC (t3-{run}), dave's bonds (t4-{run}); "
        f"erin's bonds never come: t5-{run} fails at its deadline ...",
        flush=True,
    )
    await _publish(producer, story.late, tail.seen)

    def trades_left() -> int:
        return sum(
            1
            for t in story.statuses
            if not seen.statuses.get(t) or seen.statuses[t][-1][0] == "pending"
        )

    # The bad order's rejection comes in act 4.
    rejections = story.rejections.keys() - story.order_steps.keys()

    def rejections_in() -> int:
        return len(rejections & seen.rejections.keys())

    def finished() -> bool:
        if trades_left() or not rejections <= seen.rejections.keys():
            return False
        return _ledger_done(seen, story.positions_act3)

    return await tail.until(
        finished,
        DEMO_DEADLINE_S + FINISH_GRACE_S,
        lambda: (
            f"waiting for {trades_left()} of {len(story.statuses)} trades to "
            f"settle or fail ({rejections_in()} of {len(rejections)} rejections "
            f"in; t5 fails {DEMO_DEADLINE_S} s after it arrived) ..."
        ),
    )


async def _match(story: Story, settings: Settings, producer: AIOKafkaProducer, tail: _Tail) -> None:
    """Act 4: the venues' orders, matched into trades that settle."""
    seen = tail.seen
    print(
        f"4. matching: {' and '.join(VENUES)} publish {len(story.orders)} records on orders "
        f"for {BOND_10Y} in JPYC (asks and bids, a limit buy across two levels, a market "
        "sell, an IOC, a self-match, a cancel, a bad order) ...",
        flush=True,
    )
    cancels = await _clear_book(settings)
    # Cancels first: the orders of a bond are matched in the order they arrive.
    await _publish(producer, cancels + story.orders, tail.seen)
    # The quiet time of the balances counts from now, not from act 3's last change.
    seen.last_ledger_at = time.monotonic()

    def orders_left() -> int:
        return sum(
            1
            for order_id, order in story.order_steps.items()
            if len(seen.orders.get(order_id, [])) < len(order.steps)
        )

    def trades_left() -> int:
        made = seen.fill_ids()
        unsettled = sum(1 for t in made if t not in seen.matched or not seen.settled_or_failed(t))
        return max(len(story.matches) - len(made), 0) + unsettled

    def finished() -> bool:
        if orders_left() or trades_left():
            return False
        if not story.rejections.keys() <= seen.rejections.keys():
            return False
        return _ledger_done(seen, story.positions)

    await tail.until(
        finished,
        MATCHING_TIMEOUT_S,
        lambda: (
            f"waiting for the events of {orders_left()} of {len(story.order_steps)} orders "
            f"and {trades_left()} of {len(story.matches)} matched trades to settle ..."
        ),
    )
    try:
        seen.books = await read_books(settings, BOND_10Y)
    except TimeoutError as err:
        seen.books_error = str(err)


async def _clear_book(settings: Settings) -> list[Raw]:
    """Cancels of the orders earlier runs of the demo left resting on BOND_10Y's JPYC
    book: the book lives as long as the broker, and price-time priority would fill
    those before this run's."""
    try:
        books = await read_books(settings, BOND_10Y)
    except TimeoutError as err:
        print(f"   could not read the book of {BOND_10Y}, left as it is: {err}", flush=True)
        return []
    book = books.get("JPYC")
    resting = list(book.orders()) if book is not None else []
    cancels = [
        to_raw(
            ORDERS,
            SubmitOrder.model_validate(
                {
                    "order_id": o.order_id,
                    "venue": o.venue,
                    "account": o.account,
                    "isin": BOND_10Y,
                    "currency": "JPYC",
                    "action": "cancel",
                }
            ),
        )
        for o in resting
        if o.venue in VENUES
    ]
    if cancels:
        print(
            f"   first they cancel {len(cancels)} order(s) that earlier demo runs left "
            f"resting on that book",
            flush=True,
        )
    if len(cancels) < len(resting):
        print(
            f"   note: {len(resting) - len(cancels)} order(s) of other venues rest on that "
            "book; this run's orders may trade with them, and then the demo fails",
            flush=True,
        )
    return cancels


def _ledger_done(seen: Seen, want: Balances) -> bool:
    """The balances are *want*, or have not changed for LEDGER_QUIET_S."""
    if time.monotonic() - seen.last_ledger_at > LEDGER_QUIET_S:
        return True  # the balances will not change any more
    try:
        return balances(seen.positions()) == want
    except JournalError:
        return False
