"""The matching crash scenario: thousands of orders, SIGKILLed workers, then an audit.

On a broker of its own, two ``kessai worker`` processes match a seeded order flow
(limit, capped market and IOC orders on three bonds in two currencies, cancels of
live and finished orders, repeated ids and bad records) while one of them is
SIGKILLed at random moments and restarted. The engine matches (issue 21): each order
reserves its cash or bonds, each fill settles from the reservations. Accounts are
funded first, far beyond what their orders reserve, so no order is refused for
funds and the books are the pure matcher's.

When every order is processed and every matched trade has a terminal settlement,
the workers stop and the audit replays the committed ``orders`` topic through the
pure matcher (:mod:`streams.matching.matcher`, no reservations), partition by
partition in offset order: a bond's orders are on one partition, so each book sees
them as the engine did. What the workers committed must be exactly that:

- ``order-events``: per bond, the same events in the same order: none missing,
  none twice;
- ``settlements``: every fill once, settled, with the same id, accounts, quantity
  and price, exactly one terminal status each;
- the engine's ``engine-orders`` rows, as its changelog holds them: the same row for
  every order, so a restart resumes the same books;
- the journal: no reservation left once every order ended (locks = open orders'
  reservations + open trades' locks, and no trade is open);
- ``rejections``: one per bad order.

    python -m tests.crash.scenarios.matching_crash --orders 6000 --kills 4

Exits 1 when there are problems.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from schemas import (
    CUSTODY,
    FX_RATES,
    LEDGER_EVENTS,
    ORDER_EVENTS,
    ORDERS,
    PAYMENTS,
    REJECTIONS,
    SETTLEMENTS,
    TRADES,
    SchemaError,
    SubmitOrder,
    check_digit,
    decode,
)
from streams.config import Settings
from streams.devtools import localkafka
from streams.kafka.admin import ensure_public_topics
from streams.kafka.reader import read_committed
from streams.matching.handler import rejected_event, request_of
from streams.matching.matcher import Matcher
from streams.topics import ENGINE_ORDERS, engine_topic
from tests.crash.scenarios.killharness import (
    Supervised,
    Tail,
    WorkerCrashed,
    exit_code,
    holder_of,
    reconcile,
    supervised_workers,
)
from tests.crash.scenarios.settlement_crash import group_lag
from tests.support.matching_models import order_event_model, trade_model

TOKENS = {"JPYC": 0, "USDC": 6}
BONDS = [b + check_digit(b) for b in ("JP110355100", "JP110356100", "JP120144000")]
APP_ID = "kessai-match-crash"
ACCOUNTS = 16
VENUES = ("venue-a", "venue-b")
ORDERS_PER_ROUND = 1_000
#: A new round goes in when fewer orders than this still wait to be processed.
BACKLOG_MIN = 800
PROGRESS_TIMEOUT_S = 180.0
#: Once every order is in, trades still unsettled after this long with no settlement
#: at all are reported, not waited for. As long as the progress timeout: a rebalance
#: after the last kill (recovery replays every changelog) went quiet past 45 s in CI.
SETTLE_STALL_S = PROGRESS_TIMEOUT_S
TERMINAL = ("settled", "failed")
#: What the matcher's group and the settlement engine's group must have
#: committed to the end before the audit.
QUIET = ((f"{APP_ID}-engine", (ORDERS, TRADES, PAYMENTS, CUSTODY, FX_RATES)),)
#: Funding per account: far more than its orders can reserve (units; USDC has 6
#: decimals), so the engine refuses none for funds.
FUNDS = {"JPYC": 10**12, "USDC": 10**18}
#: A market buy's cap: never reached (6 face units at most, ~¥300,000).
CAP = "10000000"
U = 50_000


@dataclass
class Outcome:
    orders: int = 0
    kills: int = 0
    #: Kills while orders were still waiting to be committed.
    kills_mid_flow: int = 0
    trades: int = 0
    events: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    #: ``kessai replay``'s checks, run while the workers still hold their tables.
    replay_checks: int = 0
    replay_compared: int = 0

    def summary(self) -> str:
        return (
            f"orders={self.orders} kills={self.kills} (mid-flow {self.kills_mid_flow}) "
            f"trades={self.trades} "
            f"events={dict(self.events)} rejections={dict(self.rejections)} "
            f"statuses={dict(self.statuses)} duplicates={self.duplicates} "
            f"crashes={len(self.crashes)} replay={self.replay_checks} checks over "
            f"{self.replay_compared} records elapsed_s={self.elapsed_s:.0f}"
        )


class _Committed:
    """Records of *topic* the group has committed, summed over partitions."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.group, self.topic = group, topic
        self.count = 0
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)

    async def start(self) -> None:
        await self._admin.start()

    async def poll(self) -> None:
        try:
            offsets = await self._admin.list_consumer_group_offsets(self.group)
        except KafkaError:  # no coordinator yet: the group is still forming
            return
        self.count = sum(m.offset for tp, m in offsets.items() if tp.topic == self.topic)

    async def stop(self) -> None:
        await self._admin.close()


class _Flow:
    """A seeded order flow. Every record is keyed by its ISIN, as venues must."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.accounts = [f"trader-{i:02d}" for i in range(ACCOUNTS)]
        self.sent: list[dict[str, Any]] = []
        self.bad = 0
        self._n = 0

    def funding(self) -> list[tuple[str, bytes, dict[str, Any]]]:
        """The deposits, after USDC's reference rate: an order in USDC is priced in yen
        and its fills converted at it (docs/fx.md)."""
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        reference = {"currency": "USDC", "rate": "150.25", "source": "crash-fixing", "at": now}
        out: list[tuple[str, bytes, dict[str, Any]]] = [(FX_RATES, b"USDC", reference)]
        for account in self.accounts:
            for token in TOKENS:
                out.append(
                    (
                        PAYMENTS,
                        account.encode(),
                        {
                            "payment_id": f"fund-{account}-{token}",
                            "account": account,
                            "token": token,
                            "amount": str(FUNDS[token] // 10 ** TOKENS[token]),
                            "kind": "deposit",
                        },
                    )
                )
            for isin in BONDS:
                out.append(
                    (
                        CUSTODY,
                        account.encode(),
                        {
                            "movement_id": f"fund-{account}-{isin}",
                            "account": account,
                            "isin": isin,
                            "quantity": 10**9,
                            "kind": "deposit",
                        },
                    )
                )
        return out

    def order(self) -> dict[str, Any]:
        rng = self.rng
        self._n += 1
        market = rng.random() < 0.05
        order = {
            "order_id": f"o{self._n:07d}",
            "venue": rng.choice(VENUES),
            "account": rng.choice(self.accounts),
            "isin": rng.choice(BONDS),
            "side": rng.choice(("buy", "sell")),
            "quantity": U * rng.randint(1, 6),
            "price": None if market else f"{99 + rng.randrange(9) * 0.25:.2f}",
            "currency": "JPYC" if rng.random() < 0.8 else "USDC",
            "time_in_force": "IOC" if rng.random() < 0.15 else "GTC",
        }
        if market and order["side"] == "buy":
            order["max_notional"] = CAP
        return order

    def round(self, n: int) -> list[tuple[str, bytes, dict[str, Any]]]:
        rng = self.rng
        out: list[dict[str, Any]] = []
        for _ in range(n):
            roll = rng.random()
            if roll < 0.15 and self.sent:
                target = rng.choice(self.sent)
                out.append({**target, "action": "cancel"})
            elif roll < 0.16 and self.sent:
                out.append(dict(rng.choice(self.sent)))  # the venue sends an order twice
            elif roll < 0.17:
                bad = self.order()
                kind = rng.choice(("invalid_quantity", "unknown_token", "invalid_isin"))
                if kind == "invalid_quantity":
                    bad["quantity"] = 12_345
                elif kind == "unknown_token":
                    bad["currency"] = "XYZC"
                else:
                    bad["isin"] = bad["isin"][:-1] + str((int(bad["isin"][-1]) + 1) % 10)
                self.bad += 1
                out.append(bad)
            else:
                order = self.order()
                self.sent.append(order)
                out.append(order)
        return [(ORDERS, o["isin"].encode(), o) for o in out]


async def run_scenario(
    bootstrap: str,
    *,
    orders: int = 6_000,
    kills: int = 4,
    workdir: Path,
    seed: int = 7,
    guarantee: str = "exactly_once",
    log: Any = print,
) -> Outcome:
    """Play the order flow against two supervised workers, killing them, then audit.

    *guarantee* ``at_least_once`` shows that the audit can fail: a SIGKILL then
    repeats what the killed worker had sent but not committed."""
    started = time.monotonic()
    rng = random.Random(seed)
    flow = _Flow(rng)
    outcome = Outcome()
    settings = Settings(bootstrap=bootstrap, tokens=TOKENS, app_id=APP_ID)
    await ensure_public_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    # Orders processed: the group's committed offsets on `orders` (this producer is not
    # transactional, so every offset is a record).
    processed = _Committed(bootstrap, f"{APP_ID}-engine", ORDERS)
    terminal = Tail(
        settings,
        SETTLEMENTS,
        lambda v: str(v["trade_id"]) if v["status"] in TERMINAL else None,
    )
    await processed.start()
    await terminal.start()
    replayed: Expected | None = None
    workdir.mkdir(parents=True, exist_ok=True)
    workers = supervised_workers(_worker_env(bootstrap, guarantee), workdir, outcome.crashes)
    run = _Run(settings, flow, orders, workdir, producer, processed, terminal, workers)
    try:
        await run.start()
        await _kill_workers(run, rng, kills, outcome, log)
        while run.sent < orders:
            await run.idle(1.0)
        give_up = time.monotonic() + PROGRESS_TIMEOUT_S
        await run.wait_for_no_lag(give_up)
        # Every order still resting is cancelled: then no reservation may be left.
        run.sent += await _cancel_open_orders(run)
        await run.wait_for_no_lag(time.monotonic() + PROGRESS_TIMEOUT_S)
        log(f"all {run.sent} orders processed; waiting for the trades to settle")
        replayed = await expected_outputs(settings)
        await run.wait_for_settlements(replayed)
        await run.wait_for_no_lag(give_up + SETTLE_STALL_S)
        await asyncio.sleep(3.0)  # room for a duplicate to show up
        # kessai replay, while both workers still serve their live tables.
        await reconcile(settings, workers, outcome, log)
    except WorkerCrashed as err:
        outcome.problems.append(str(err))
    finally:
        for w in workers:
            await w.stop()
        await processed.stop()
        await terminal.stop()
        await producer.stop()
    outcome.orders = run.sent
    if not outcome.problems and replayed is not None:
        # Every order was committed before the replay: it is the audit's expectation.
        await audit(settings, flow, outcome, replayed)
    outcome.elapsed_s = time.monotonic() - started
    return outcome


def _worker_env(bootstrap: str, guarantee: str) -> dict[str, str]:
    return {
        **os.environ,
        "KESSAI_BOOTSTRAP": bootstrap,
        "KESSAI_APP_ID": APP_ID,
        "KESSAI_TOKENS": ",".join(f"{k}:{v}" for k, v in TOKENS.items()),
        "KESSAI_PROCESSING_GUARANTEE": guarantee,
        # The one reference rate of the funding holds through the run (fills are
        # priced at it, whatever their time: the default 60 s would end a long run).
        "KESSAI_FX_MAX_AGE_S": "86400",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class _Run:
    """A run in progress: the venue's producer, the workers, and what watches them."""

    settings: Settings
    flow: _Flow
    #: Orders to send in all.
    orders: int
    workdir: Path
    producer: AIOKafkaProducer
    processed: _Committed
    terminal: Tail
    workers: list[Supervised]
    #: Orders sent so far.
    sent: int = 0
    #: (orders processed, when that count last grew).
    last_growth: tuple[int, float] = (0, 0.0)
    #: While set, :meth:`idle` sends no round: the kills send their own.
    feed_held: bool = False

    async def publish(self, records: list[tuple[str, bytes, dict[str, Any]]]) -> None:
        for topic, key, value in records:
            await self.producer.send(topic, orjson.dumps(value), key=key)
        await self.producer.flush()

    async def start(self) -> None:
        """Fund the accounts, start the workers, and once the funding is applied send
        the first round. An order reserves at entry (issue 21): one the engine took
        before its account's deposit (Kafka orders nothing across topics, and a fetch
        may bring `orders` before `payments`) would be refused, where the pure matcher
        the audit replays has no funds to refuse it for."""
        funding = self.flow.funding()
        await self.publish(funding)
        for w in self.workers:
            w.start()
        await self._wait_funded(sum(1 for topic, _, _ in funding if topic != FX_RATES))
        first = self.flow.round(min(ORDERS_PER_ROUND, self.orders))
        await self.publish(first)
        self.sent = len(first)
        self.last_growth = (self.processed.count, time.monotonic())

    async def _wait_funded(self, moves: int) -> None:
        """Until every deposit is in the journal (one record each)."""
        give_up = time.monotonic() + PROGRESS_TIMEOUT_S
        while len(await read_committed(self.settings, LEDGER_EVENTS)) < moves:
            if time.monotonic() > give_up:
                raise WorkerCrashed(
                    f"the funding never reached the journal; logs in {self.workdir}"
                )
            for w in self.workers:
                w.restart_if_crashed()
            await asyncio.sleep(0.5)

    async def idle(self, seconds: float) -> None:
        """Wait ``seconds``, restarting crashed workers and sending a round whenever
        the backlog runs low; raise :class:`WorkerCrashed` when nothing is processed
        for ``PROGRESS_TIMEOUT_S``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            now = time.monotonic()
            for w in self.workers:
                w.restart_if_crashed()
            await self.processed.poll()
            low = self.sent - self.processed.count < BACKLOG_MIN
            if low and not self.feed_held:
                await self.send_round()
            if self.processed.count != self.last_growth[0] or self.processed.count >= self.sent:
                self.last_growth = (self.processed.count, now)
            elif now - self.last_growth[1] > PROGRESS_TIMEOUT_S:
                raise WorkerCrashed(
                    f"no order committed in {PROGRESS_TIMEOUT_S:.0f} s; logs in {self.workdir}"
                )
            await asyncio.sleep(0.2)

    async def send_round(self) -> int:
        """Send the next round of the flow, if any is left; how many orders."""
        if self.sent >= self.orders:
            return 0
        batch = self.flow.round(min(ORDERS_PER_ROUND, self.orders - self.sent))
        await self.publish(batch)
        self.sent += len(batch)
        return len(batch)

    async def wait_for_no_lag(self, give_up: float) -> None:
        """Idle until both groups have committed every record of :data:`QUIET`."""
        for group, topics in QUIET:
            while (lag := await group_lag(self.settings, group, topics)) > 0:
                if time.monotonic() > give_up:
                    raise WorkerCrashed(
                        f"group {group} still lags {lag} records; logs in {self.workdir}"
                    )
                await self.idle(1.0)

    async def wait_for_settlements(self, replayed: Expected) -> None:
        """Idle until every replayed trade that was committed has a terminal status."""
        # A matched trade settles in the batch of its fill (T+0, both legs locked from
        # the reservations): every one the replayed matcher made.
        to_settle = set(replayed.trades)
        settled = (len(self.terminal.ids), time.monotonic())
        while not to_settle <= self.terminal.ids:
            if len(self.terminal.ids) != settled[0]:
                settled = (len(self.terminal.ids), time.monotonic())
            elif time.monotonic() - settled[1] > SETTLE_STALL_S:
                missing = sorted(to_settle - self.terminal.ids)
                raise WorkerCrashed(
                    f"{len(missing)} matched trades never settled (none for "
                    f"{SETTLE_STALL_S:.0f} s); last statuses: "
                    f"{await _last_statuses(self.settings, missing[:5])}; logs in {self.workdir}"
                )
            await self.idle(1.0)


async def _last_statuses(settings: Settings, trade_ids: list[str]) -> dict[str, str]:
    """Each trade's last committed status and reason, or "none": what a stall report
    needs to tell a lost command from a trade left waiting."""
    last = dict.fromkeys(trade_ids, "none")
    for r in await read_committed(settings, SETTLEMENTS):
        value = orjson.loads(r.value)
        if value["trade_id"] in last:
            last[value["trade_id"]] = f"{value['status']} ({value.get('reason')})"
    return last


async def _kill_workers(
    run: _Run, rng: random.Random, kills: int, outcome: Outcome, log: Any
) -> None:
    """SIGKILL a worker ``kills`` times, each restarted after a random pause. Each kill
    lands just after a fresh round goes out, while it is being matched (the matcher
    takes a round of 1,000 orders in a few hundred milliseconds): the feed waits for
    the kills. The matcher is the engine's (issue 21): its worker is the holder."""
    run.feed_held = True
    try:
        for _ in range(kills):
            while run.processed.count < run.sent:
                await run.idle(0.2)
            await run.send_round()
            await asyncio.sleep(rng.uniform(0.0, 0.15))
            alive = [w for w in run.workers if w.alive] or run.workers
            holder = await asyncio.to_thread(holder_of, alive, "engine")
            # Mostly the engine's worker (a takeover), sometimes the standby.
            victim = holder if holder is not None and rng.random() < 0.75 else rng.choice(alive)
            await run.processed.poll()
            victim.kill()
            outcome.kills += 1
            # A kill counts as mid-flow when orders were still waiting to be committed.
            outcome.kills_mid_flow += run.processed.count < run.sent
            log(
                f"kill {outcome.kills}/{kills} ({victim.name}"
                f"{', the engine' if victim is holder else ''}): {run.processed.count} of "
                f"{run.sent} orders committed"
            )
            await run.idle(rng.choice([0.0, 3.0, 10.0]))
            victim.start()
    finally:
        run.feed_held = False


@dataclass
class Expected:
    #: Per ISIN, the order events in the order they must appear.
    events: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    #: trade id -> the trade's JSON.
    trades: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: dict[str, bytes] = field(default_factory=dict)
    rejections: int = 0


async def expected_outputs(settings: Settings) -> Expected:
    """Replay the committed ``orders`` through the pure matcher, as the agent ran it."""
    from schemas import encode

    out = Expected()
    matcher = Matcher(out.rows, tokens=TOKENS)
    # read_committed returns partition by partition, each in offset order: a bond's
    # orders are all on one partition, so each book sees them as the agent did.
    for record in await read_committed(settings, ORDERS):
        at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        try:
            decoded = decode(ORDERS, record.value)
        except SchemaError as err:
            out.rejections += 1
            event = rejected_event(record.value, err.reason, at)
            if event is not None:
                out.events[event["isin"]].append(event)
            continue
        assert isinstance(decoded, SubmitOrder)
        handled = matcher.handle(request_of(decoded))
        out.rejections += handled.rejected is not None
        for t in handled.trades:
            # Through the models: an oracle apart from the matcher's own builders.
            out.trades[t.trade_id] = orjson.loads(encode(trade_model(t, at)))
        for u in handled.updates:
            out.events[u.isin].append(orjson.loads(encode(order_event_model(u, at))))
    return out


async def audit(settings: Settings, flow: _Flow, outcome: Outcome, expected: Expected) -> None:
    problems = outcome.problems

    actual_events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in await read_committed(settings, ORDER_EVENTS):
        value = orjson.loads(r.value)
        actual_events[value["isin"]].append(value)
        outcome.events[value["event"]] += 1
    for isin in sorted(set(expected.events) | set(actual_events)):
        want, got = expected.events.get(isin, []), actual_events.get(isin, [])
        if want != got:
            first = next(
                (i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b),
                min(len(want), len(got)),
            )
            problems.append(
                f"order-events of {isin}: {len(got)} committed, {len(want)} expected; first "
                f"difference at #{first}: got {got[first : first + 1]}, "
                f"expected {want[first : first + 1]}"
            )

    # The fills: each a settlement of the trade the replayed matcher made, once.
    terminal: Counter[str] = Counter()
    got_trades: dict[str, dict[str, Any]] = {}
    for r in await read_committed(settings, SETTLEMENTS):
        value = orjson.loads(r.value)
        if value["status"] in TERMINAL:
            terminal[value["trade_id"]] += 1
            outcome.statuses[value["status"]] += 1
            got_trades[value["trade_id"]] = {k: value[k] for k in _TRADE_FIELDS}
    outcome.trades = len(got_trades)
    outcome.duplicates = sum(c - 1 for c in terminal.values())
    if outcome.duplicates:
        problems.append(f"{outcome.duplicates} matched trades settled more than once")
    want_trades = {tid: {k: t[k] for k in _TRADE_FIELDS} for tid, t in expected.trades.items()}
    if got_trades != want_trades:
        missing = sorted(set(want_trades) - set(got_trades))[:3]
        extra = sorted(set(got_trades) - set(want_trades))[:3]
        changed = [k for k in want_trades if k in got_trades and got_trades[k] != want_trades[k]]
        problems.append(
            f"matched trades: {len(got_trades)} settled, {len(want_trades)} expected; "
            f"missing {missing}, unexpected {extra}, different {changed[:3]}"
        )
    if set(outcome.statuses) - {"settled"}:
        problems.append(f"a matched trade did not settle: {dict(outcome.statuses)}")

    rows = await _engine_rows(settings)
    if rows != expected.rows:
        diff = sorted(set(rows.items()) ^ set(expected.rows.items()))[:3]
        problems.append(f"engine-orders rows != the replayed matcher's rows, e.g. {diff}")
    await _no_reservation_left(settings, problems)

    rejections = [orjson.loads(r.value) for r in await read_committed(settings, REJECTIONS)]
    from_orders = [r for r in rejections if r["source_topic"] == ORDERS]
    outcome.rejections.update(r["reason"] for r in from_orders)
    short = {k: n for k, n in outcome.rejections.items() if k.startswith("insufficient")}
    if short:
        problems.append(f"orders refused for funds, though funded far beyond them: {short}")
    if len(from_orders) != expected.rejections:
        problems.append(
            f"rejections of orders: {len(from_orders)} committed, {expected.rejections} expected"
        )
    if expected.rejections < flow.bad:
        problems.append(f"only {expected.rejections} rejections for {flow.bad} bad orders")


#: What a settlement says of its trade that the replayed matcher's trade says too.
_TRADE_FIELDS = ("trade_id", "isin", "buyer", "seller", "quantity", "price", "currency")


async def _cancel_open_orders(run: _Run) -> int:
    """A cancel of every order resting in the engine's books, published; how many."""
    cancels = []
    for key, raw in (await _engine_rows(run.settings)).items():
        isin, venue, order_id = orjson.loads(key)
        row = orjson.loads(raw)
        if row["r"] > 0:
            cancel = {"order_id": order_id, "venue": venue, "account": row["a"],
                      "isin": isin, "currency": row["c"], "action": "cancel"}  # fmt: skip
            cancels.append((ORDERS, isin.encode(), cancel))
    await run.publish(cancels)
    return len(cancels)


async def _no_reservation_left(settings: Settings, problems: list[str]) -> None:
    """Every account's last journal record per asset: nothing locked, once every order
    ended and every trade settled (a reservation left behind would hold cash for
    nobody; one short would have let a fill go unpaid)."""
    last: dict[tuple[str, str], str] = {}
    for r in await read_committed(settings, LEDGER_EVENTS):
        value = orjson.loads(r.value)
        last[value["account"], value["asset"]] = value["locked"]
    held = {k: v for k, v in last.items() if Decimal(v) != 0}  # "0.000000" in USDC
    if held:
        problems.append(f"locked balances with every order ended: {sorted(held.items())[:3]}")
    if not last:
        problems.append("no journal at all")


async def _engine_rows(settings: Settings) -> dict[str, bytes]:
    rows: dict[str, bytes] = {}
    for r in await read_committed(settings, engine_topic(APP_ID, ENGINE_ORDERS)):
        rows[r.key.decode()] = r.value
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=6_000)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--guarantee",
        choices=("exactly_once", "at_least_once"),
        default="exactly_once",
        help="at_least_once: see the audit fail",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary dir")
    parser.add_argument("--keep", action="store_true", help="leave the broker and logs behind")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kessai-match-crash-"))
    settings = localkafka.up_private(workdir, tokens=TOKENS)
    print(f"broker {settings.bootstrap}, logs in {workdir}")
    try:
        outcome = asyncio.run(
            run_scenario(
                settings.bootstrap,
                orders=args.orders,
                kills=args.kills,
                workdir=workdir,
                seed=args.seed,
                guarantee=args.guarantee,
            )
        )
    finally:
        localkafka.down(settings)
        if not args.keep:
            shutil.rmtree(workdir / "state", ignore_errors=True)
    return exit_code(outcome.summary(), outcome.crashes, outcome.problems)


if __name__ == "__main__":
    raise SystemExit(main())
