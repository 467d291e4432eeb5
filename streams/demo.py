"""The demo behind ``make run``: a worker, a venue's trades settling DvP, and where to look.

It creates the topics, starts a worker in the background with a short settlement
deadline (:data:`DEMO_DEADLINE_S` instead of an hour, so that a failure shows within
the demo), then plays a story through the real pipeline in three acts, with ids and
accounts unique to this run (``alice-<run>``, ``t1-<run>``, ...):

1. Funding. The bridges deposit JPYC and USDC for alice and bob (``payments``) and
   two JGBs for bob (``custody``); alice withdraws part of her JPYC. Four payments the
   worker must refuse without changing a balance: an overdraft, a replayed payment
   id, a token nobody configured, and bytes that are not even JSON. The demo waits
   until the deposits are on the ledger: the worker is up and the accounts funded.
2. Trading. A simulated venue publishes trades on ``trades`` (key trade_id): two
   between funded accounts (one paid in JPYC, one in USDC), one whose buyer carol
   has no cash yet, one whose seller dave has no bonds yet, and one whose seller
   erin will never get her bonds; then five trades that must be rejected: a bad
   ISIN check digit, buyer == seller, an unknown currency, a repeated trade_id, and
   cut-off JSON. The demo waits until the three unfunded trades are ``pending``.
3. Late deposits. Carol's cash and dave's bonds arrive; their trades settle. Erin's
   trade fails with ``insufficient_securities`` at its deadline.

Everything is read back from the worker's committed output (``settlements``,
``rejections``, ``ledger-events``; read_committed, from where they ended when the
demo started), printing a progress line while it waits. It prints each trade's
statuses, the rejections, this run's positions replayed from the journal
(:mod:`streams.positions`), a summary (settled / pending / failed / rejected by
reason) and where the logs, topics and metrics are. With ``--once`` it stops the
worker and exits 0 only if every expected outcome arrived (each trade's statuses,
each rejection's reason, every balance); otherwise it prints what was missing and
exits 1. Without it, the worker keeps running in the foreground until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import BaseModel

from schemas import (
    CUSTODY,
    LEDGER_EVENTS,
    PAYMENTS,
    REJECTIONS,
    SETTLEMENTS,
    TRADES,
    MoveBonds,
    MoveCash,
    TradeExecuted,
    encode,
    key_for,
)
from streams.config import Settings
from streams.positions import JournalError, Position, decode_records, positions_from_events
from streams.positions import render_table as render_positions

#: The worker's settlement deadline during the demo (the default is an hour).
DEMO_DEADLINE_S = 30
#: How long the worker may take to start and apply the opening deposits.
FUNDING_TIMEOUT_S = 150.0
#: How long the unfunded trades may take to go pending.
PENDING_TIMEOUT_S = 90.0
#: How long, past the deadline, the demo waits for the last outcomes.
FINISH_GRACE_S = 90.0
#: Once every trade and rejection is in, how long without a new balance change
#: before the balances count as final even if they differ from the expected ones.
LEDGER_QUIET_S = 10.0
#: Seconds between two progress lines while waiting.
PROGRESS_EVERY_S = 5.0

#: Two JGBs: #355 of the 10-year series, and one more with a check digit made by
#: ``schemas._isin.check_digit``.
BOND_10Y = "JP1103551Q43"
BOND_20Y = "JP1201791Q29"
#: BOND_10Y with a wrong check digit.
BAD_ISIN = "JP1103551Q44"

#: (status, reason) as published on ``settlements``.
Status = tuple[str, str | None]
#: (topic, key, value) of one record to publish.
Raw = tuple[str, bytes, bytes]


@dataclass
class _Story:
    run: str
    accounts: list[str]
    #: Act 1: deposits, a withdrawal, bad payments.
    funding: list[Raw]
    #: Ledger-event causes that show the funding applied (the worker is up).
    funded: set[str]
    #: Act 2: the venue's trades, good and bad.
    trades: list[Raw]
    #: Trades that must be pending before act 3 starts.
    unfunded: list[str]
    #: Act 3: the deposits the pending trades wait for.
    late: list[Raw]
    #: trade id -> its TradeExecuted, for the report.
    trade_records: dict[str, TradeExecuted]
    #: trade id -> every status it must go through, in order.
    statuses: dict[str, list[Status]]
    #: marker (the id in the rejected record) -> reason.
    rejections: dict[str, str]
    #: (account, asset) -> (available, locked) at the end.
    positions: dict[tuple[str, str], tuple[Decimal, Decimal]]


def _record(topic: str, model: BaseModel) -> Raw:
    return topic, key_for(topic, model), encode(model)


def _story(run: str) -> _Story:
    """The records to publish, act by act, and what the pipeline must make of them."""
    alice, bob, carol, dave, erin = (
        f"{n}-{run}" for n in ("alice", "bob", "carol", "dave", "erin")
    )
    now = datetime.now(UTC).replace(microsecond=0)

    def pay(n: int, account: str, token: str, amount: str, kind: str = "deposit") -> Raw:
        return _record(
            PAYMENTS,
            MoveCash.model_validate(
                {
                    "payment_id": f"p{n}-{run}",
                    "account": account,
                    "token": token,
                    "amount": amount,
                    "kind": kind,
                }
            ),
        )

    def bonds(n: int, account: str, isin: str, quantity: int) -> Raw:
        return _record(
            CUSTODY,
            MoveBonds(
                movement_id=f"c{n}-{run}",
                account=account,
                isin=isin,
                quantity=quantity,
                kind="deposit",
            ),
        )

    records: dict[str, TradeExecuted] = {}

    def trade(
        n: int,
        buyer: str,
        seller: str,
        isin: str,
        quantity: int,
        price: str,
        currency: str = "JPYC",
        accrued: str = "0",
    ) -> TradeExecuted:
        return TradeExecuted.model_validate(
            {
                "trade_id": f"t{n}-{run}",
                "venue": "kessai-demo-venue",
                "isin": isin,
                "buyer": buyer,
                "seller": seller,
                "quantity": quantity,
                "price": price,
                "currency": currency,
                "accrued_interest": accrued,
                "trade_time": now.isoformat().replace("+00:00", "Z"),
            }
        )

    def keep(t: TradeExecuted) -> Raw:
        records[t.trade_id] = t
        return _record(TRADES, t)

    def bad_trade(n: int, **changes: str) -> Raw:
        # Built as JSON, not as a model: the model would refuse it, the worker must.
        good = trade(n, alice, bob, BOND_10Y, 100_000, "99.5").model_dump(mode="json")
        return TRADES, f"t{n}-{run}".encode(), orjson.dumps({**good, **changes})

    t1 = trade(1, alice, bob, BOND_10Y, 1_000_000, "99.5", accrued="120")
    funding = [
        pay(1, alice, "JPYC", "5000000"),
        pay(2, alice, "USDC", "2500.125"),
        pay(3, bob, "JPYC", "1000000"),
        bonds(4, bob, BOND_10Y, 10_000_000),
        bonds(5, bob, BOND_20Y, 500_000),
        pay(5, alice, "JPYC", "1200000", "withdrawal"),
        pay(6, bob, "JPYC", "9999999", "withdrawal"),  # overdraft
        pay(3, bob, "JPYC", "1000000"),  # the bridge replays p3
        pay(7, bob, "EURC", "10"),  # a token nobody configured
        # What a buggy bridge might send: cut-off JSON. `kessai publish` would refuse
        # it, so it goes through a bare producer, as it would in real life.
        (PAYMENTS, b"mallory", f'{{"payment_id": "p8-{run}", "amount": 12.5'.encode()),
    ]
    trades = [
        # 1,000,000 face x 99.5 / 100 + 120 accrued = 995,120 JPYC
        keep(t1),
        # 300,000 face x 0.6634 / 100 + 0.024371 = 1,990.224371 USDC
        keep(trade(2, alice, bob, BOND_20Y, 300_000, "0.6634", "USDC", "0.024371")),
        # carol has no cash yet: 497,500 JPYC
        keep(trade(3, carol, bob, BOND_10Y, 500_000, "99.5")),
        # dave has no bonds yet: 199,600 JPYC
        keep(trade(4, alice, dave, BOND_20Y, 200_000, "99.8")),
        # erin never gets her bonds
        keep(trade(5, alice, erin, BOND_10Y, 100_000, "99.5")),
        bad_trade(6, isin=BAD_ISIN),
        bad_trade(7, buyer=bob),  # buyer == seller
        bad_trade(8, currency="EURC"),
        _record(TRADES, t1),  # the venue sends t1 again
        (
            TRADES,
            f"t9-{run}".encode(),
            f'{{"trade_id": "t9-{run}", "venue": "kessai-demo-venue", "quantity": 1e5'.encode(),
        ),
    ]
    late = [pay(9, carol, "JPYC", "500000"), bonds(10, dave, BOND_20Y, 200_000)]
    z = Decimal(0)
    return _Story(
        run=run,
        accounts=[alice, bob, carol, dave, erin],
        funding=funding,
        funded={
            f"payment:p1-{run}",
            f"payment:p2-{run}",
            f"payment:p3-{run}",
            f"custody:c4-{run}",
            f"custody:c5-{run}",
            f"payment:p5-{run}",
        },
        trades=trades,
        unfunded=[f"t3-{run}", f"t4-{run}", f"t5-{run}"],
        late=late,
        trade_records=records,
        statuses={
            f"t1-{run}": [("settled", None)],
            f"t2-{run}": [("settled", None)],
            f"t3-{run}": [("pending", "insufficient_cash"), ("settled", None)],
            f"t4-{run}": [("pending", "insufficient_securities"), ("settled", None)],
            f"t5-{run}": [
                ("pending", "insufficient_securities"),
                ("failed", "insufficient_securities"),
            ],
        },
        rejections={
            f"p6-{run}": "insufficient_funds",
            f"p3-{run}": "duplicate",
            f"p7-{run}": "unknown_token",
            f"p8-{run}": "malformed",
            f"t6-{run}": "invalid_isin",
            f"t7-{run}": "same_account",
            f"t8-{run}": "unknown_token",
            f"t1-{run}": "duplicate",
            f"t9-{run}": "malformed",
        },
        positions={
            # 5,000,000 - 1,200,000 withdrawn - 995,120 (t1) - 199,600 (t4)
            (alice, "JPYC"): (Decimal(2_605_280), z),
            # 2,500.125 - 1,990.224371 (t2)
            (alice, "USDC"): (Decimal("509.900629"), z),
            (alice, BOND_10Y): (Decimal(1_000_000), z),
            (alice, BOND_20Y): (Decimal(500_000), z),
            # 1,000,000 + 995,120 (t1) + 497,500 (t3)
            (bob, "JPYC"): (Decimal(2_492_620), z),
            (bob, "USDC"): (Decimal("1990.224371"), z),
            (bob, BOND_10Y): (Decimal(8_500_000), z),
            (bob, BOND_20Y): (Decimal(200_000), z),
            (carol, "JPYC"): (Decimal(2_500), z),
            (carol, BOND_10Y): (Decimal(500_000), z),
            (dave, "JPYC"): (Decimal(199_600), z),
            (dave, BOND_20Y): (z, z),
        },
    )


@dataclass
class _Seen:
    """This run's committed output, as it arrives."""

    run: str
    statuses: dict[str, list[Status]] = field(default_factory=dict)
    #: trade id -> its cash leg as settlements published it ("995120 JPYC").
    cash: dict[str, str] = field(default_factory=dict)
    rejections: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: This run's ledger-events, in offset order per partition (per account).
    journal: list[ConsumerRecord] = field(default_factory=list)
    causes: set[str] = field(default_factory=set)
    last_ledger_at: float = field(default_factory=time.monotonic)
    _marker: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        # The first id of ours in a rejected record's text: its payment or trade id
        # (accounts are "name-<run>", never a letter, digits and "-<run>").
        self._marker = re.compile(rf'"([pct][0-9]+-{re.escape(self.run)})"')

    def add(self, record: ConsumerRecord) -> None:
        if record.value is None:
            return
        suffix = f"-{self.run}"
        if record.topic == LEDGER_EVENTS:
            key = (record.key or b"").decode("utf-8", "replace")
            if key.endswith(suffix):
                self.journal.append(record)
                self.causes.add(orjson.loads(record.value)["cause"])
                self.last_ledger_at = time.monotonic()
        elif record.topic == SETTLEMENTS:
            value = orjson.loads(record.value)
            if value["trade_id"].endswith(suffix):
                self.statuses.setdefault(value["trade_id"], []).append(
                    (value["status"], value["reason"])
                )
                self.cash[value["trade_id"]] = f"{value['cash_amount']} {value['currency']}"
        elif record.topic == REJECTIONS:
            value = orjson.loads(record.value)
            # The rejected record may not even parse: find our id in its text.
            found = self._marker.search(value.get("value", ""))
            if found is not None:
                self.rejections[found[1]] = value

    def positions(self) -> dict[tuple[str, str], Position]:
        return positions_from_events(decode_records(self.journal))


class _Tail:
    """Reads settlements, rejections and ledger-events (read_committed) from where
    they ended when the demo started, so that earlier runs are never read."""

    def __init__(self, settings: Settings, seen: _Seen, worker: subprocess.Popen[bytes]) -> None:
        self.settings = settings
        self.seen = seen
        self.worker = worker
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer._client.force_metadata_update()
        tps = [
            TopicPartition(topic, p)
            for topic in (SETTLEMENTS, REJECTIONS, LEDGER_EVENTS)
            for p in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]
        self.consumer.assign(tps)
        # Under read_committed this is the last stable offset: everything this run's
        # worker commits comes after it.
        for tp, offset in (await self.consumer.end_offsets(tps)).items():
            self.consumer.seek(tp, offset)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def until(
        self, done: Callable[[], bool], timeout_s: float, progress: Callable[[], str]
    ) -> bool:
        """Read until ``done()``; False if ``timeout_s`` passed or the worker exited."""
        started = time.monotonic()
        next_line = started + PROGRESS_EVERY_S
        while not done():
            now = time.monotonic()
            if self.worker.poll() is not None:
                return False
            if now - started > timeout_s:
                print(f"   gave up waiting after {timeout_s:.0f} s: {progress()}", flush=True)
                return False
            if now >= next_line:
                print(f"   {progress()} ({now - started:.0f} s)", flush=True)
                next_line = now + PROGRESS_EVERY_S
            batch = await self.consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                for record in records:
                    self.seen.add(record)
        return True


async def _publish(producer: AIOKafkaProducer, records: list[Raw]) -> None:
    for topic, key, value in records:
        # One at a time, in order: a replayed id must arrive after the original.
        await producer.send_and_wait(topic, value, key=key)


async def _play(story: _Story, settings: Settings, worker: subprocess.Popen[bytes]) -> _Seen:
    seen = _Seen(story.run)
    tail = _Tail(settings, seen, worker)
    await tail.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        print(
            f"1. funding: {len(story.funding)} records on payments and custody "
            "(deposits, a withdrawal, 4 bad payments) ...",
            flush=True,
        )
        await _publish(producer, story.funding)
        funded = await tail.until(
            lambda: story.funded <= seen.causes,
            FUNDING_TIMEOUT_S,
            lambda: (
                f"waiting for the worker: {len(story.funded & seen.causes)} of "
                f"{len(story.funded)} deposits and withdrawals on the ledger ..."
            ),
        )
        if not funded:
            return seen  # no worker, or it died: the report says what is missing

        good = len(story.trade_records)
        print(
            f"2. the venue publishes {len(story.trades)} trades on trades "
            f"({good} to settle, {len(story.trades) - good} to be rejected) ...",
            flush=True,
        )
        await _publish(producer, story.trades)

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
        run = story.run
        print(
            f"3. late deposits: carol's JPYC (t3-{run}), dave's bonds (t4-{run}); "
            f"erin's bonds never come: t5-{run} fails at its deadline ...",
            flush=True,
        )
        await _publish(producer, story.late)

        def trades_left() -> int:
            return sum(
                1
                for t in story.statuses
                if not seen.statuses.get(t) or seen.statuses[t][-1][0] == "pending"
            )

        def rejections_in() -> int:
            return len(story.rejections.keys() & seen.rejections.keys())

        def finished() -> bool:
            if trades_left() or not story.rejections.keys() <= seen.rejections.keys():
                return False
            if time.monotonic() - seen.last_ledger_at > LEDGER_QUIET_S:
                return True  # the balances will not change any more
            try:
                return _balances(seen.positions()) == story.positions
            except JournalError:
                return False

        await tail.until(
            finished,
            DEMO_DEADLINE_S + FINISH_GRACE_S,
            lambda: (
                f"waiting for {trades_left()} of {len(story.statuses)} trades to "
                f"settle or fail ({rejections_in()} of {len(story.rejections)} rejections "
                f"in; t5 fails {DEMO_DEADLINE_S} s after it arrived) ..."
            ),
        )
        return seen
    finally:
        await producer.stop()
        await tail.stop()


def _balances(
    positions: dict[tuple[str, str], Position],
) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    return {k: (p.available, p.locked) for k, p in positions.items()}


def _show(statuses: list[Status]) -> str:
    return " -> ".join(s if r is None else f"{s} ({r})" for s, r in statuses) or "(none)"


def _report(story: _Story, seen: _Seen) -> list[str]:
    problems: list[str] = []
    print("\nTrades (committed settlements):")
    print(
        f"  {'trade':<10} {'buyer':<13} {'seller':<12} {'face':>9}  {'isin':<12} "
        f"{'cash':>17}  statuses"
    )
    for trade_id, want in story.statuses.items():
        t = story.trade_records[trade_id]
        got = seen.statuses.get(trade_id, [])
        print(
            f"  {trade_id:<10} {t.buyer:<13} {t.seller:<12} {t.quantity:>9}  {t.isin:<12} "
            f"{seen.cash.get(trade_id, '-'):>17}  {_show(got)}"
        )
        if got != want:
            problems.append(f"trade {trade_id}: statuses {_show(got)}, want {_show(want)}")

    print("\nRejections (nothing changed):")
    for marker, reason in story.rejections.items():
        rejected = seen.rejections.get(marker)
        if rejected is None:
            problems.append(f"no rejection for {marker} (want {reason})")
            continue
        print(
            f"  {marker:<10} {rejected['source_topic']:<9} {rejected['reason']:<19} "
            f"{rejected['detail']}"
        )
        if rejected["reason"] != reason:
            problems.append(f"{marker}: rejected as {rejected['reason']}, want {reason}")

    print("\nPositions (this run's accounts, replayed from committed ledger-events):")
    try:
        positions = seen.positions()
    except JournalError as err:
        problems.append(str(err))
        positions = {}
    print("  " + render_positions(positions.values()).rstrip("\n").replace("\n", "\n  "))
    got_balances = _balances(positions)
    for key in sorted(story.positions.keys() | got_balances.keys()):
        if got_balances.get(key) != story.positions.get(key):
            problems.append(
                f"position {key[0]} {key[1]}: {_pair(got_balances.get(key))} "
                f"(available, locked), want {_pair(story.positions.get(key))}"
            )

    last = [s[-1] for s in (seen.statuses.get(t, []) for t in story.statuses) if s]
    counts = Counter(status for status, _ in last)
    failed = Counter(reason or "?" for status, reason in last if status == "failed")
    rejected = Counter(r["reason"] for r in seen.rejections.values())
    trades_rejected = sum(1 for r in seen.rejections.values() if r["source_topic"] == TRADES)
    after_pending = sum(
        1
        for t in story.statuses
        if [s for s, _ in seen.statuses.get(t, [])][-2:] == ["pending", "settled"]
    )
    print(f"\nSummary (run {story.run}, settlement deadline {DEMO_DEADLINE_S} s):")
    print(
        f"  trades     {len(story.trades)} published by the venue: {len(last)} accepted, "
        f"{trades_rejected} rejected"
    )
    print(f"  settled    {counts['settled']} ({after_pending} of them pending first)")
    print(f"  pending    {counts['pending']}")
    print(f"  failed     {counts['failed']}{_by_reason(failed)}")
    print(f"  rejected   {sum(rejected.values())} records{_by_reason(rejected)}")
    return problems


def _by_reason(counts: Mapping[str, int]) -> str:
    """`` (a 2, b 1)``, or nothing."""
    if not counts:
        return ""
    return " (" + ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) + ")"


def _pair(balance: tuple[Decimal, Decimal] | None) -> str:
    return "nothing" if balance is None else f"{balance[0]}, {balance[1]}"


def main(settings: Settings, *, once: bool = False) -> int:
    from streams import localkafka
    from streams.topics import ensure_topics

    localkafka.up(settings)
    created = asyncio.run(ensure_topics(settings))
    if created:
        print(f"created topics: {', '.join(created)}")
    log_dir = settings.state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    worker_log = log_dir / "worker.log"
    run = uuid.uuid4().hex[:6]
    story = _story(run)
    print(
        f"starting a worker with KESSAI_SETTLEMENT_DEADLINE_S={DEMO_DEADLINE_S} (the default "
        f"is {Settings().settlement_deadline_s:.0f} s), so that a trade fails within the "
        f"demo; log: {worker_log}"
    )
    print(f"run {run}: accounts {', '.join(story.accounts)}", flush=True)
    with worker_log.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "KESSAI_SETTLEMENT_DEADLINE_S": str(DEMO_DEADLINE_S),
            },
        )
    try:
        seen = asyncio.run(_play(story, settings, worker))
        if worker.poll() is not None:
            print(f"the worker exited with {worker.returncode}: see {worker_log}")
            return 1
        problems = _report(story, seen)
        _where_to_look(settings, worker_log)
        if problems:
            print("\nDEMO FAILED, missing or wrong:\n  " + "\n  ".join(problems))
            return 1
        print(
            "\ndemo OK: every trade settled or failed as expected, every bad record was "
            "refused with its reason, and every balance is as expected."
        )
        if once:
            return 0
        print(
            f"the worker keeps running (settlement deadline {DEMO_DEADLINE_S} s); Ctrl-C stops it."
        )
        worker.wait()
        return worker.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()


def _where_to_look(settings: Settings, worker_log: Path) -> None:
    print("\nWhere to look:")
    print(f"  worker log        {worker_log}")
    print(f"  broker            {settings.bootstrap}  (kessai kafka status)")
    print(f"  worker web        http://127.0.0.1:{settings.web_port}/")
    print(
        "  journal           kessai topics list; settlements, ledger-events, rejections "
        "(read_committed)"
    )
    print("  publish your own  kessai publish payments examples/payments.jsonl")
