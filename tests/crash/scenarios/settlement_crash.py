"""The settlement crash scenario: thousands of trades, SIGKILLed workers, then an audit.

It starts a broker of its own (a fresh cluster, so every topic holds this run only),
runs ``kessai worker`` processes in one consumer group, and feeds a simulated
market in rounds: deposits, trades between funded and unfunded accounts competing
for the same cash and bonds, late top-ups, withdrawals (some too large), repeated
ids and bad records. Meanwhile it SIGKILLs a random worker at random moments and
restarts it, with two workers in the group most of the time. When every trade has
a terminal status (or, in the recycle mode, is failing) it stops the workers and
audits what was committed (read_committed):

- exactly one terminal ``settlements`` record per trade, and no record twice; in the
  recycle mode a trade may instead end the run ``failing`` (open, recycling);
- ``ledger-events`` is a consistent journal (gap-free seq, balance = previous + delta);
- every deposit and accepted withdrawal counted once, every repeat rejected;
- conservation per asset: sum of available + locked = deposits - withdrawals;
- each account's balance = its deposits - withdrawals + its settled trades;
- nothing locked or queued but what the failing trades hold or wait for, and the
  ``accounts`` table (as its changelog holds it) equal to the positions rebuilt from
  ``ledger-events``;
- recycle mode: every failing trade has its fail day's penalty.

**The recycle mode** (``recycle=True``, the default mode of a worker since issue 21):
the cut-off is set to the next whole minute in Japan at least a minute away
(``KESSAI_CUTOFF``), so it falls inside the run: a trade still short then is
``failing`` with a penalty, goes on recycling, and settles if a late top-up comes.

Under the secure profile (``profile=``, tests/support/profiles.py) the same market
runs on a SASL/SCRAM + TLS broker with ACLs: the venue's trades are signed and written
as venue-a, deposits as the bridge, the workers check every signature, everything is
read back as ops, and the audit also checks that every ``settlements`` record carries
the venue's signed trade, which verifies against the registry.

    python -m tests.crash.scenarios.settlement_crash --trades 20000 --kills 6 [--secure]
    python -m tests.crash.scenarios.settlement_crash --cluster [--replication 1]

``--cluster``: on three brokers, losing a broker three times between the worker kills
(:mod:`tests.crash.scenarios.broker_chaos`), each loss's recovery measured.

Exits 1 when there are problems.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import random
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from schemas import (
    CUSTODY,
    FX_RATES,
    INSTRUMENTS,
    LEDGER_EVENTS,
    PAYMENTS,
    PENALTIES,
    REJECTIONS,
    SETTLEMENTS,
    TRADES,
    BalanceChanged,
    check_digit,
)
from streams.audit.evidence import check_settlement
from streams.audit.positions import (
    JournalError,
    Position,
    decode_records,
    positions_from_events,
)
from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.localkafka import cluster as localcluster
from streams.kafka.admin import admin_client, ensure_public_topics
from streams.kafka.auth import client_kwargs
from streams.kafka.reader import committed_consumer, partitions_of, read_committed
from streams.ledger.domain import AccountState
from streams.money import from_units
from streams.security import signing
from tests.crash.scenarios.broker_chaos import BrokerChaos, Recovery, start_cluster
from tests.crash.scenarios.killharness import (
    Supervised,
    Tail,
    WorkerCrashed,
    exit_code,
    holder_of,
    reconcile,
    supervised_workers,
)
from tests.support.profiles import WRITER, Profile, plain, start_secure_cluster

TOKENS = {"JPYC": 0, "USDC": 6}
#: The reference rate of USDC (yen per USD) the opening publishes on ``fx-rates``; a
#: USDC trade carries a rate within the band of it (docs/fx.md).
USDC_JPY = "150.25"
#: How old a trade's FX rate and the reference may be (``KESSAI_FX_MAX_AGE_S``): a day,
#: so that the one reference of the opening holds through the run, kills and backlogs
#: included (trades are stamped when they are fed; a backlog read a minute after a
#: newer reference would be refused under the default 60 s).
FX_MAX_AGE_S = 86_400
BONDS = [b + check_digit(b) for b in ("JP110355100", "JP110356100", "JP120144000")]


def _instrument(isin: str) -> dict[str, Any]:
    """The security master's entry for one of :data:`BONDS` (issue 20): the workers run
    with it required, so a trade's checks, dates and accrued are kessai's."""
    return {"isin": isin, "kind": "fixed", "series": f"crash test {isin}",
            "coupon_rate": "0.1", "coupon_dates": ["03-20", "09-20"],
            "issue_date": "2015-03-20", "maturity_date": "2045-03-20",
            "face_unit": 50_000, "price_tick": "0.01"}  # fmt: skip


APP_ID = "kessai-crash"
ACCOUNTS = 60
#: Accounts that get no opening deposit: their trades wait for late top-ups or fail.
UNFUNDED = 10
TRADES_PER_ROUND = 300
#: Rounds go in at most this often: the engine settles a round in a fraction of a second,
#: so the feed, not the engine, paces the run, and the kills land while trades flow.
ROUND_INTERVAL_S = 1.0
#: A new round goes in when fewer trades than this are still without a terminal status.
BACKLOG_MIN = 1_500
DEADLINE_S = 60.0
PROGRESS_TIMEOUT_S = 180.0
TERMINAL = ("settled", "failed", "cancelled")
#: Where a trade may end the run in the recycle mode: still open, recycling.
FAILING = "failing"


@dataclass
class Outcome:
    trades: int = 0
    kills: int = 0
    #: Kills of the worker that ran the engine (each one a takeover by the other).
    engine_kills: int = 0
    #: Seconds with two workers in the group (both processes alive).
    two_workers_s: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    conservation_error: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    #: ``kessai replay``'s checks, run while the workers still hold their tables.
    replay_checks: int = 0
    replay_compared: int = 0
    #: Secure profile: ``settlements`` records whose ``signed_trade`` verifies.
    signed_settlements: int = 0
    #: Broker failures (``chaos=``), each with what it cost (:class:`Recovery`).
    recoveries: list[Recovery] = field(default_factory=list)
    #: Recycle mode: penalty records committed.
    penalties: int = 0

    def summary(self) -> str:
        return (
            f"trades={self.trades} kills={self.kills} engine_kills={self.engine_kills} "
            f"two_workers_s={self.two_workers_s:.0f} "
            f"statuses={dict(self.statuses)} rejections={dict(self.rejections)} "
            f"duplicates={self.duplicates} conservation_error={self.conservation_error} "
            f"crashes={len(self.crashes)} replay={self.replay_checks} checks over "
            f"{self.replay_compared} records signed_settlements={self.signed_settlements} "
            f"penalties={self.penalties} "
            f"elapsed_s={self.elapsed_s:.0f}"
            + "".join(f"\n  broker {r.render()}" for r in self.recoveries)
        )


@dataclass
class _Fed:
    """What the venue and the bridges published, by id: the audit's expectations."""

    trades: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: payment or movement id -> (account, asset, signed amount as Decimal)
    moves: dict[str, tuple[str, str, Decimal]] = field(default_factory=dict)
    repeated_trades: int = 0
    repeated_moves: int = 0
    #: reason code -> records fed that must be rejected with it
    bad: Counter[str] = field(default_factory=Counter)


class _Market:
    """A seeded venue and custody bridge; every record it makes is also noted in ``fed``."""

    def __init__(self, rng: random.Random, venue: str = "sim", trade_id_prefix: str = "") -> None:
        self.rng = rng
        self.venue = venue
        #: Before every trade id: a signing venue's ids start with its own (signing.py).
        self.trade_id_prefix = trade_id_prefix
        self.fed = _Fed()
        self.accounts = [f"acct-{i:02d}" for i in range(ACCOUNTS)]
        self.unfunded = set(self.accounts[:UNFUNDED])
        self._n = 0

    def _id(self, kind: str) -> str:
        self._n += 1
        return f"{kind}{self._n:07d}"

    def deposit_cash(self, account: str, token: str, amount: Decimal) -> tuple[str, dict[str, Any]]:
        pid = self._id("p")
        self.fed.moves[pid] = (account, token, amount)
        return PAYMENTS, {
            "payment_id": pid,
            "account": account,
            "token": token,
            "amount": str(amount),
            "kind": "deposit",
        }

    def withdraw_cash(
        self, account: str, token: str, amount: Decimal
    ) -> tuple[str, dict[str, Any]]:
        pid = self._id("w")
        self.fed.moves[pid] = (account, token, -amount)
        return PAYMENTS, {
            "payment_id": pid,
            "account": account,
            "token": token,
            "amount": str(amount),
            "kind": "withdrawal",
        }

    def deposit_bonds(self, account: str, isin: str, face: int) -> tuple[str, dict[str, Any]]:
        mid = self._id("m")
        self.fed.moves[mid] = (account, isin, Decimal(face))
        return CUSTODY, {
            "movement_id": mid,
            "account": account,
            "isin": isin,
            "quantity": face,
            "kind": "deposit",
        }

    def opening(self) -> list[tuple[str, dict[str, Any]]]:
        out = [("instruments", _instrument(isin)) for isin in BONDS]
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        out.append((FX_RATES, {"currency": "USDC", "rate": USDC_JPY, "source": "crash-fixing",
                               "at": now}))  # fmt: skip
        for account in self.accounts:
            if account in self.unfunded:
                continue
            out.append(
                self.deposit_cash(account, "JPYC", Decimal(self.rng.randrange(2, 12) * 10**6))
            )
            out.append(
                self.deposit_cash(account, "USDC", Decimal(self.rng.randrange(2, 12) * 10**6))
            )
            for isin in BONDS:
                out.append(self.deposit_bonds(account, isin, self.rng.randrange(4, 40) * 250_000))
        return out

    def trade(self) -> tuple[str, dict[str, Any]]:
        rng = self.rng
        buyer, seller = rng.sample(self.accounts, 2)
        tid = self.trade_id_prefix + self._id("t")
        currency = "JPYC" if rng.random() < 0.8 else "USDC"
        value = {
            "trade_id": tid,
            "venue": self.venue,
            "isin": rng.choice(BONDS),
            "buyer": buyer,
            "seller": seller,
            "quantity": 50_000 * rng.randrange(1, 21),
            "price": f"{rng.randrange(9_800, 10_200) / 100:.2f}",
            "currency": currency,
            # Now: a trade's deadline counts from its trade_time (docs/security.md, M1).
            "trade_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        if currency == "USDC":  # priced in yen, converted at its rate (docs/fx.md)
            value["fx_rate"] = rng.choice(["150.25", "150.6", "149.9"])  # within 0.5 %
            value["fx_source"] = "crash-venue"
            value["fx_time"] = value["trade_time"]
        self.fed.trades[tid] = value
        return "trades", value

    def round(self, trades: int) -> list[tuple[str, dict[str, Any]]]:
        """A round of activity: mostly trades, with top-ups, withdrawals, repeats and junk."""
        rng = self.rng
        out: list[tuple[str, dict[str, Any]]] = []
        for _ in range(trades):
            out.append(self.trade())
            roll = rng.random()
            if roll < 0.04:  # a late top-up, often to an account that had nothing
                account = rng.choice(sorted(self.unfunded) if rng.random() < 0.5 else self.accounts)
                out.append(self.deposit_cash(account, "JPYC", Decimal(rng.randrange(1, 4) * 10**6)))
            elif roll < 0.07:
                account = rng.choice(self.accounts)
                out.append(
                    self.deposit_bonds(account, rng.choice(BONDS), rng.randrange(1, 8) * 250_000)
                )
            elif roll < 0.075:
                account = rng.choice(self.accounts)
                out.append(self.deposit_cash(account, "USDC", Decimal(rng.randrange(1, 4) * 10**6)))
            elif roll < 0.080:  # small withdrawals mostly fit; huge ones never do
                account = rng.choice(self.accounts)
                amount = Decimal(50_000) if rng.random() < 0.7 else Decimal(10**12)
                out.append(self.withdraw_cash(account, "JPYC", amount))
            elif roll < 0.085:  # the venue sends a trade twice
                tid = rng.choice(list(self.fed.trades))
                out.append(("trades", self.fed.trades[tid]))
                self.fed.repeated_trades += 1
            elif roll < 0.088:  # the bridge sends a deposit twice
                topic, value = self.deposit_cash(rng.choice(self.accounts), "JPYC", Decimal(1000))
                out += [(topic, value), (topic, value)]
                self.fed.repeated_moves += 1
            elif roll < 0.090:
                out.append(self._bad())
        return out

    def _bad(self) -> tuple[str, dict[str, Any]]:
        _, value = self.trade()
        del self.fed.trades[value["trade_id"]]
        kind = self.rng.choice(
            ["invalid_isin", "same_account", "unknown_token", "invalid_quantity",
             "stale_fx_rate", "fx_rate_out_of_band"]
        )  # fmt: skip
        bad = dict(value)
        if kind == "invalid_isin":
            bad["isin"] = bad["isin"][:-1] + str((int(bad["isin"][-1]) + 1) % 10)
        elif kind == "same_account":
            bad["seller"] = bad["buyer"]
        elif kind == "unknown_token":
            bad["currency"] = "XYZC"
        elif kind in ("stale_fx_rate", "fx_rate_out_of_band"):
            stale = kind == "stale_fx_rate"
            fx_at = datetime.now(UTC) - timedelta(seconds=2 * FX_MAX_AGE_S if stale else 0)
            fx_time = fx_at.isoformat().replace("+00:00", "Z")
            bad.update(currency="USDC", fx_rate="150.25" if stale else "160",
                       fx_source="crash-venue", fx_time=fx_time)  # fmt: skip
        else:
            bad["quantity"] = 12_345
        self.fed.bad[kind] += 1
        return "trades", bad


def _key(topic: str, value: dict[str, Any]) -> bytes:
    field = {"trades": "trade_id", "instruments": "isin", FX_RATES: "currency"}.get(
        topic, "account"
    )
    return str(value[field]).encode()


#: Topics whose every record the engine must have committed before the audit.
QUIET_TOPICS = ("payments", "custody", "trades", "instruments", FX_RATES)
#: The engine's consumer group (streams/engine/service.py).
ENGINE_GROUP = f"{APP_ID}-engine"


async def group_lag(settings: Settings, group: str, topics: tuple[str, ...]) -> int:
    """Committed records of ``topics`` that ``group`` has not committed past.

    Counted by reading from the group's offsets to the end: a plain end - committed
    would count the transaction markers, which take offsets too. ``settings``: whom
    to connect as (one who may describe the group and read the topics).
    """
    async with admin_client(settings) as admin:
        committed = await admin.list_consumer_group_offsets(group)
    consumer = committed_consumer(settings, "kessai-crash-lag")
    await consumer.start()
    try:
        tps = [tp for t in topics for tp in await partitions_of(consumer, t)]
        assert tps, f"no partitions of {topics}"
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        pending = []
        for tp in tps:
            start = committed[tp].offset if tp in committed else 0
            if start < ends[tp]:
                consumer.seek(tp, max(0, start))
                pending.append(tp)
        lag = 0
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batch.items():
                lag += sum(1 for r in records if r.offset < ends[tp])
            pending = [tp for tp in pending if await consumer.position(tp) < ends[tp]]
        return lag
    finally:
        await consumer.stop()


def start_broker(workdir: Path, log: Any = print) -> Settings:
    """A fresh single-node cluster under ``workdir`` (:func:`localkafka.up_private`)."""
    return localkafka.up_private(workdir, tokens=TOKENS, log=log)


async def run_scenario(
    bootstrap: str,
    *,
    trades: int = 20_000,
    kills: int = 6,
    workdir: Path,
    seed: int = 11,
    log: Any = print,
    profile: Profile | None = None,
    chaos: BrokerChaos | None = None,
    replication: int | None = None,
    recycle: bool = False,
) -> Outcome:
    """Play the market against two supervised workers, killing them, then audit.
    ``profile``: who connects as whom, and who signs what (None: the plain profile,
    no credentials and nothing signed). Secure: topics are made as the admin, the
    workers run as the worker principal, each input is signed and written by its
    principal (``_profiles.WRITER``), and everything is read back as ops.
    ``chaos``: brokers of a cluster lost between the worker kills (issue 19).
    ``replication``: every topic's (``KESSAI_REPLICATION_FACTOR``; None: the cluster's).
    ``recycle``: the recycle mode, its cut-off inside the run (module doc); else atomic."""
    say = log
    started = time.monotonic()
    rng = random.Random(seed)
    profile = profile or dataclasses.replace(plain(bootstrap), venue="sim")
    assert profile.bootstrap == bootstrap, (profile.bootstrap, bootstrap)
    market = _Market(
        rng,
        venue=profile.venue,
        trade_id_prefix=profile.venue + signing.TRADE_ID_SEPARATOR if profile.secure else "",
    )
    outcome = Outcome()
    settings, reader = _settings_of(profile, "admin"), _settings_of(profile, "ops")
    settings = dataclasses.replace(settings, replication_factor=replication)
    await ensure_public_topics(settings)
    crashed = False
    venue = _Venue(profile)
    await venue.start()
    done = (*TERMINAL, FAILING) if recycle else TERMINAL  # failing: recycling, open
    terminal = Tail(reader, SETTLEMENTS, lambda v: v["trade_id"] if v["status"] in done else None)
    await terminal.start()
    workdir.mkdir(parents=True, exist_ok=True)
    workers = supervised_workers(_env(profile, replication, recycle, say), workdir, outcome.crashes)
    run = _Run(market, trades, workdir, venue, terminal, workers, outcome)
    try:
        await run.start(_settings_of(profile, "worker"))
        await _kill(run, rng, kills, say, chaos)
        await _wait_until_quiet(run, _settings_of(profile, "worker"), say)
        # Give a duplicate the time of a few commits to show up.
        await asyncio.sleep(5.0)
        # kessai replay, while both workers still serve their live tables.
        await reconcile(
            dataclasses.replace(reader, settlement_deadline_s=DEADLINE_S), workers, outcome, say
        )
    except WorkerCrashed as err:
        crashed = True
        outcome.problems.append(str(err))
    finally:
        for w in workers:
            await w.stop()
        await terminal.stop()
        await venue.stop()
    outcome.trades = len(market.fed.trades)
    if chaos is not None:
        outcome.recoveries, outcome.problems = chaos.recoveries, outcome.problems + chaos.problems
    if not crashed:  # the audit also runs after a replay difference: it says more
        await audit(reader, market.fed, outcome, registry=_registry(profile, reader))
    outcome.elapsed_s = time.monotonic() - started
    return outcome


def _env(profile: Profile, replication: int | None, recycle: bool, say: Any) -> dict[str, str]:
    env = _worker_env(profile, replication, cutoff=_cutoff_soon() if recycle else None)
    say(f"fail mode: {env['KESSAI_FAIL_MODE']}, cut-off {env.get('KESSAI_CUTOFF', '-')} JST")
    return env


def _cutoff_soon() -> str:
    """The next whole minute in Japan at least a minute from now, ``HH:MM`` (24:00 at
    most: a run begun in the day's last minutes has its cut-off at midnight)."""
    jst = datetime.now(UTC) + timedelta(hours=9, seconds=60)
    minutes = min(jst.hour * 60 + jst.minute + 1, 24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def assert_survived(outcome: Outcome, *, trades: int, kills: int, recycle: bool = False) -> None:
    """The crash tests' verdict on a run: no problem found, and every path exercised."""
    print(outcome.summary())
    assert outcome.problems == [], outcome.summary() + "\n" + "\n".join(outcome.problems)
    assert outcome.trades >= trades
    assert outcome.kills == kills
    assert outcome.two_workers_s > 0
    # The engine's worker was killed and the other took over, at least once.
    assert outcome.engine_kills >= 1, outcome.summary()
    # kessai replay re-ran every batch of the engine's log and the matcher, compared
    # every output and changelog, the live accounts included, and agreed.
    assert outcome.replay_checks == 19 and outcome.replay_compared > trades
    assert outcome.duplicates == 0
    assert set(outcome.conservation_error.values()) <= {"0", "0.000000"}
    # The market exercised every path: settled, failed (atomic) or failing (recycle)
    # for each reason, pending first.
    kinds = ("failing (open)/insufficient_cash", "failing (open)/insufficient_securities")
    if not recycle:
        kinds = ("failed/insufficient_cash", "failed/insufficient_securities")
    for status in ("settled", *kinds):
        assert outcome.statuses[status] > 0, outcome.statuses
    if recycle:
        assert not any(s.startswith("failed") for s in outcome.statuses), outcome.statuses
        assert outcome.penalties > 0
    assert outcome.statuses["pending (on the way)"] > 0, outcome.statuses
    for reason in ("duplicate", "insufficient_funds"):
        assert outcome.rejections[reason] > 0, outcome.rejections


def _settings_of(profile: Profile, principal: str) -> Settings:
    """``principal``'s settings in ``profile``, with this scenario's tokens and app id."""
    return dataclasses.replace(profile.settings_of(principal), tokens=TOKENS, app_id=APP_ID)


def _registry(profile: Profile, reader: Settings) -> signing.Registry | None:
    """The signers' registry the audit checks settlements against (secure), else None."""
    if not profile.secure:
        return None
    return signing.registry_for(reader)


def _worker_env(
    profile: Profile, replication: int | None = None, *, cutoff: str | None = None
) -> dict[str, str]:
    return {
        **os.environ,
        **profile.worker_env,
        "KESSAI_APP_ID": APP_ID,
        "KESSAI_TOKENS": ",".join(f"{k}:{v}" for k, v in TOKENS.items()),
        "KESSAI_SETTLEMENT_DEADLINE_S": str(DEADLINE_S),
        "KESSAI_FAIL_MODE": "atomic" if cutoff is None else "recycle",
        **({"KESSAI_CUTOFF": cutoff} if cutoff is not None else {}),
        "KESSAI_SECURITY_MASTER": "required",
        "KESSAI_FX_MAX_AGE_S": str(FX_MAX_AGE_S),
        "PYTHONUNBUFFERED": "1",
        **({"KESSAI_REPLICATION_FACTOR": str(replication)} if replication else {}),
    }


class _Venue:
    """Writes the market's records: each signed by its topic's signer and sent by the
    principal that writes the topic (secure), or all by the admin, unsigned (plain)."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        # One producer per principal that writes an input (plain: one for everything).
        self.writers = {
            t: WRITER[t] if profile.secure else "admin"
            for t in (TRADES, PAYMENTS, CUSTODY, INSTRUMENTS, FX_RATES)
        }
        self.producers = {
            principal: AIOKafkaProducer(
                bootstrap_servers=profile.bootstrap,
                acks="all",
                # A broker lost mid-send is retried: never twice into the log.
                enable_idempotence=True,
                linger_ms=5,
                **client_kwargs(_settings_of(profile, principal)),
            )
            for principal in set(self.writers.values())
        }

    async def start(self) -> None:
        for producer in self.producers.values():
            await producer.start()

    async def publish(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        """Send ``records`` and wait until each is acknowledged; a record the brokers
        did not take raises (the audit would count it as fed)."""
        delivered = []
        for topic, value in records:
            signed = self.profile.sign(topic, value)
            delivered.append(
                await self.producers[self.writers[topic]].send(
                    topic, orjson.dumps(signed), key=_key(topic, value)
                )
            )
        await asyncio.gather(*delivered)

    async def stop(self) -> None:
        for producer in self.producers.values():
            await producer.stop()


@dataclass
class _Run:
    """A run in progress: the market, the workers, and what watches them."""

    market: _Market
    #: Trades to feed in all.
    trades: int
    workdir: Path
    venue: _Venue
    terminal: Tail
    workers: list[Supervised]
    outcome: Outcome
    #: Trades fed so far, and when the next round may go in.
    fed_trades: int = 0
    next_round_at: float = 0.0
    #: When :meth:`idle` last counted the time with two workers alive.
    last_tick: float = 0.0
    #: (trades terminal, when that count last grew).
    last_growth: tuple[int, float] = (0, 0.0)

    async def start(self, worker: Settings) -> None:
        """Publish the bonds, fund the market and feed the first round, then start the
        workers: a backlog in which Kafka orders nothing across partitions, and the
        engine reads the security master to its end before any other input as it takes
        over, so no deposit or trade meets a bond it has not read (docs/bonds.md)."""
        await self.venue.publish(self.market.opening())
        await self.venue.publish(self.market.round(min(TRADES_PER_ROUND, self.trades)))
        self.fed_trades = min(TRADES_PER_ROUND, self.trades)
        for w in self.workers:
            w.start()
        self.last_tick = time.monotonic()
        self.last_growth = (len(self.terminal.ids), time.monotonic())

    async def idle(self, seconds: float) -> None:
        """Wait ``seconds``, feeding rounds and restarting crashed workers."""
        terminal, fed = self.terminal.ids, self.market.fed
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            now = time.monotonic()
            if all(w.alive for w in self.workers):
                self.outcome.two_workers_s += now - self.last_tick
            self.last_tick = now
            for w in self.workers:
                w.restart_if_crashed()
            due = now >= self.next_round_at
            if (
                due
                and self.fed_trades < self.trades
                and self.fed_trades - len(terminal) < BACKLOG_MIN
            ):
                self.next_round_at = now + ROUND_INTERVAL_S
                n = min(TRADES_PER_ROUND, self.trades - self.fed_trades)
                await self.venue.publish(self.market.round(n))
                self.fed_trades += n
            if len(terminal) != self.last_growth[0]:
                self.last_growth = (len(terminal), now)
            elif now - self.last_growth[1] > PROGRESS_TIMEOUT_S and len(terminal) < len(fed.trades):
                raise WorkerCrashed(
                    f"no trade finished in {PROGRESS_TIMEOUT_S:.0f} s "
                    f"({len(terminal)} of {len(fed.trades)}); logs in {self.workdir}"
                )
            await asyncio.sleep(0.1)


async def _kill(
    run: _Run, rng: random.Random, kills: int, say: Any, chaos: BrokerChaos | None
) -> None:
    """SIGKILL a random worker ``kills`` times at random points of the run, each
    restarted after a random pause; and lose ``chaos``'s brokers at its points."""
    # Kill points spread over the whole run, as counts of trades fed.
    kill_at = rng.sample(range(run.trades // 20, run.trades * 9 // 10), kills)
    points = [(at, -1) for at in kill_at]
    if chaos is not None:
        points += [(at, i) for i, at in enumerate(chaos.points(run.trades))]
    for at, broker in sorted(points):
        while run.fed_trades < at:
            await run.idle(0.5)
        await run.idle(rng.uniform(0.0, 3.0))
        if broker >= 0 and chaos is not None:
            await chaos.step(broker, run, rng, say)
        else:
            await _kill_a_worker(run, rng, kills, say)


async def _kill_a_worker(run: _Run, rng: random.Random, kills: int, say: Any) -> None:
    """SIGKILL one worker, mostly the engine's, and start it again after a pause."""
    terminal, outcome = run.terminal.ids, run.outcome
    alive = [w for w in run.workers if w.alive] or run.workers
    holder = await asyncio.to_thread(holder_of, alive)
    # Mostly the engine's worker (a takeover), sometimes the standby.
    victim = holder if holder is not None and rng.random() < 0.75 else rng.choice(alive)
    victim.kill()
    outcome.kills += 1
    outcome.engine_kills += victim is holder
    say(
        f"kill {outcome.kills}/{kills} ({victim.name}"
        f"{', the engine' if victim is holder else ''}): "
        f"{len(terminal)}/{len(run.market.fed.trades)} trades terminal"
    )
    # Sometimes the other worker runs alone for a while, sometimes not at all.
    await run.idle(rng.choice([0.0, 0.0, 5.0, 15.0]))
    victim.start()


async def _wait_until_quiet(run: _Run, worker: Settings, say: Any) -> None:
    """Idle until every trade is fed and terminal, and the group (described as
    ``worker``) has committed every record of :data:`QUIET_TOPICS`."""
    terminal, fed = run.terminal.ids, run.market.fed
    while run.fed_trades < run.trades or len(terminal) < len(fed.trades):
        await run.idle(1.0)
    say(f"all {len(fed.trades)} trades terminal; waiting for the ledger to catch up")
    # A terminal status leaves with its voids and credits, not after them: wait
    # until the group has committed every command (and input) there is.
    give_up = time.monotonic() + PROGRESS_TIMEOUT_S
    # As the worker: the group's owner (ops may read topics, not describe groups).
    while (lag := await group_lag(worker, ENGINE_GROUP, QUIET_TOPICS)) > 0:
        if time.monotonic() > give_up:
            raise WorkerCrashed(f"the group still lags {lag} records behind; logs in {run.workdir}")
        await run.idle(1.0)


async def audit(
    settings: Settings,
    fed: _Fed,
    outcome: Outcome,
    *,
    registry: signing.Registry | None = None,
) -> None:
    """The checks in the module's docstring, over everything committed, read as
    ``settings``; with ``registry``, also that every ``settlements`` record carries
    its trade as the venue signed it, and that the signature verifies."""

    async def read(topic: str) -> list[Any]:
        return await read_committed(settings, topic)

    # 1. settlements: one terminal record per trade (or failing, open), no record twice.
    records = [orjson.loads(r.value) for r in await read(SETTLEMENTS)]
    terminal, failing = _audit_settlements(records, fed, outcome)
    if failing or outcome.penalties:
        _audit_penalties([orjson.loads(r.value) for r in await read(PENALTIES)], failing, outcome)
    if registry is not None:
        _audit_signatures(records, registry, (settings or Settings()).tokens, outcome)
    # 2. rejections: every repeat and every bad record, once, with its reason.
    rejected = [orjson.loads(r.value) for r in await read(REJECTIONS)]
    refused = _audit_rejections(rejected, fed, outcome)
    # 3. the journal: consistent, every move once, conservation, balances explained.
    events = list(decode_records(await read(LEDGER_EVENTS)))
    try:
        positions = positions_from_events(events)
    except JournalError as err:
        outcome.problems.append(f"ledger-events: {err}")
        return
    _audit_journal(events, positions, fed, terminal, refused, outcome, _held(failing))
    # 4. the live table, as its changelog holds it, equals the rebuilt positions.
    _audit_table(await read(f"{APP_ID}-engine-accounts"), positions, outcome, failing)


#: Per trade id, its terminal ``settlements`` records (values).
_Terminal = dict[str, list[dict[str, Any]]]
#: Per trade id open at the end (recycle mode), its last record: ``failing``.
_Failing = dict[str, dict[str, Any]]


def _audit_settlements(
    records: list[dict[str, Any]], fed: _Fed, outcome: Outcome
) -> tuple[_Terminal, _Failing]:
    """One terminal record per trade fed (or its last one ``failing``: open), none for
    another, no record twice; counts the statuses into ``outcome``. Returns the
    terminal records by trade, and the failing trades' last records."""
    problems = outcome.problems
    seen = Counter((v["trade_id"], v["status"], v["reason"]) for v in records)
    outcome.duplicates = sum(c - 1 for c in seen.values() if c > 1)
    if outcome.duplicates:
        problems.append(f"settlements: {outcome.duplicates} records committed more than once")
    terminal: _Terminal = defaultdict(list)
    for v in records:
        if v["status"] in TERMINAL:
            terminal[v["trade_id"]].append(v)
    last = {v["trade_id"]: v for v in records}  # a trade's records are in order
    failing = {t: v for t, v in last.items() if t not in terminal and v["status"] == FAILING}
    for v in failing.values():
        outcome.statuses[f"failing (open)/{v['reason']}"] += 1
    unknown = terminal.keys() - fed.trades.keys()
    missing = fed.trades.keys() - terminal.keys() - failing.keys()
    several = [t for t, vs in terminal.items() if len(vs) > 1]
    for what, ids in (("unknown trades", unknown), ("no terminal status", missing)):
        if ids:
            problems.append(f"settlements: {len(ids)} {what}, e.g. {sorted(ids)[:3]}")
    if several:
        problems.append(f"settlements: {len(several)} trades with several terminal statuses")
    for vs in terminal.values():
        outcome.statuses[
            f"{vs[0]['status']}" + (f"/{vs[0]['reason']}" if vs[0]["reason"] else "")
        ] += 1
    outcome.statuses["pending (on the way)"] = sum(1 for v in records if v["status"] == "pending")
    return terminal, failing


def _audit_penalties(penalties: list[dict[str, Any]], failing: _Failing, outcome: Outcome) -> None:
    """Each trade still failing has its fail day's penalty; no trade has one it should
    not (only trades that failed a day: failing now, or settled after)."""
    outcome.penalties = len(penalties)
    charged = {p["trade_id"] for p in penalties}
    if missing := failing.keys() - charged:
        outcome.problems.append(f"penalties: none for {len(missing)} failing trades, "
                                f"e.g. {sorted(missing)[:3]}")  # fmt: skip


def _held(failing: _Failing) -> dict[tuple[str, str], Decimal]:
    """What the failing trades hold locked: a seller's bonds while the cash leg waits
    (reason ``insufficient_cash``); a trade short of bonds holds nothing."""
    out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for v in failing.values():
        if v["reason"] == "insufficient_cash":
            out[v["seller"], v["isin"]] += v["quantity"]
    return out


def _open_legs(failing: _Failing) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """account -> the lock ids the failing trades hold, and those they wait for."""
    locks: dict[str, set[str]] = defaultdict(set)
    waiting: dict[str, set[str]] = defaultdict(set)
    for tid, v in failing.items():
        if v["reason"] == "insufficient_cash":
            locks[v["seller"]].add(f"{tid}/bonds")
            waiting[v["buyer"]].add(f"{tid}/cash")
        else:  # the bonds leg waits (and the cash was only probed)
            waiting[v["seller"]].add(f"{tid}/bonds")
    return locks, waiting


def _audit_signatures(
    records: list[dict[str, Any]],
    registry: signing.Registry,
    tokens: dict[str, int],
    outcome: Outcome,
) -> None:
    # What `kessai verify-settlements` checks: each settlement traces back to the
    # venue's signed trade, its members and its cash.
    unverified = [v["trade_id"] for v in records if check_settlement(v, registry, tokens)]
    outcome.signed_settlements = len(records) - len(unverified)
    if unverified:
        outcome.problems.append(
            f"settlements: {len(unverified)} records without a verified signed_trade, "
            f"e.g. {unverified[:3]}"
        )


def _audit_rejections(rejected: list[dict[str, Any]], fed: _Fed, outcome: Outcome) -> set[str]:
    """Every repeat and every bad record rejected once, with its reason; counts the
    reasons into ``outcome``. Returns the ids of the payments refused for want of funds."""
    problems = outcome.problems
    outcome.rejections = Counter(v["reason"] for v in rejected)
    dup_trades = sum(
        1 for v in rejected if v["reason"] == "duplicate" and v["source_topic"] == "trades"
    )
    dup_moves = sum(
        1 for v in rejected if v["reason"] == "duplicate" and v["source_topic"] == PAYMENTS
    )
    if dup_trades != fed.repeated_trades:
        problems.append(f"rejections: {dup_trades} duplicate trades, fed {fed.repeated_trades}")
    if dup_moves != fed.repeated_moves:
        problems.append(f"rejections: {dup_moves} duplicate payments, fed {fed.repeated_moves}")
    for reason, n in fed.bad.items():
        got = sum(1 for v in rejected if v["reason"] == reason and v["source_topic"] == "trades")
        if got != n:
            problems.append(f"rejections: {got} {reason}, fed {n}")
    return {v["ref"] for v in rejected if v["reason"] == "insufficient_funds"}


def _audit_journal(
    events: list[BalanceChanged],
    positions: dict[tuple[str, str], Position],
    fed: _Fed,
    terminal: _Terminal,
    refused: set[str],
    outcome: Outcome,
    held_open: dict[tuple[str, str], Decimal],
) -> None:
    """Every move applied once (none refused), each balance = its deposits -
    withdrawals + settled trades, nothing locked but what the failing trades hold
    (``held_open``), conservation per asset, no negative balance; the error per asset
    into ``outcome``."""
    problems = outcome.problems
    expected, inflow = _expected_balances(events, fed, terminal, refused, problems)
    held: dict[str, Decimal] = defaultdict(Decimal)
    for (account, asset), p in positions.items():
        held[asset] += p.available + p.locked
        if p.locked != held_open.get((account, asset), 0):
            problems.append(f"{account} {asset}: {p.locked} still locked, "
                            f"{held_open.get((account, asset), 0)} by failing trades")  # fmt: skip
        if p.available + p.locked != expected[account, asset]:
            problems.append(
                f"{account} {asset}: holds {p.available + p.locked}, "
                f"deposits - withdrawals + settled trades = {expected[account, asset]}"
            )
    for asset in sorted(inflow.keys() | held.keys()):
        error = held[asset] - inflow[asset]
        outcome.conservation_error[asset] = str(error)
        if error:
            problems.append(f"conservation {asset}: held {held[asset]} != in - out {inflow[asset]}")
    if any(e.available < 0 or e.locked < 0 for e in events):
        problems.append("ledger-events: a negative balance")


def _expected_balances(
    events: list[BalanceChanged],
    fed: _Fed,
    terminal: _Terminal,
    refused: set[str],
    problems: list[str],
) -> tuple[dict[tuple[str, str], Decimal], dict[str, Decimal]]:
    """What each (account, asset) must hold, from the moves fed and the settled trades,
    and the net inflow per asset; a move refused but applied, or applied other than
    once, is a problem."""
    causes = Counter(e.cause for e in events)
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    inflow: dict[str, Decimal] = defaultdict(Decimal)
    for mid, (account, asset, amount) in fed.moves.items():
        cause = f"{'custody' if mid.startswith('m') else 'payment'}:{mid}"
        if mid in refused:
            if causes[cause]:
                problems.append(f"{mid}: refused and also applied")
            continue
        if causes[cause] != 1:
            problems.append(f"{mid}: applied {causes[cause]} times")
        expected[account, asset] += amount
        inflow[asset] += amount
    for vs in terminal.values():
        v = vs[0]
        if v["status"] != "settled":
            continue
        cash = Decimal(v["cash_amount"])
        expected[v["buyer"], v["currency"]] -= cash
        expected[v["seller"], v["currency"]] += cash
        expected[v["buyer"], v["isin"]] += v["quantity"]
        expected[v["seller"], v["isin"]] -= v["quantity"]
    return expected, inflow


def _audit_table(
    changelog: list[Any],
    positions: dict[tuple[str, str], Position],
    outcome: Outcome,
    failing: _Failing,
) -> None:
    """The engine's accounts, as their changelog holds them: no lock or queued request
    left but the failing trades', and every balance equal to the positions rebuilt
    from the journal."""
    problems = outcome.problems
    table: dict[str, dict[str, Any] | None] = {}
    for r in changelog:
        table[r.key.decode()] = orjson.loads(r.value) if r.value is not None else None
    from_table: dict[tuple[str, str], Decimal] = {}
    locks, waiting = _open_legs(failing)
    for account, raw in table.items():
        state = AccountState.from_json(raw)
        queued = {w[0] for w in state.waiting}
        if set(state.locks) != locks.get(account, set()) or queued != waiting.get(account, set()):
            problems.append(
                f"table {account}: {len(state.locks)} locks, {len(queued)} queued; the "
                f"failing trades: {len(locks.get(account, ()))} and "
                f"{len(waiting.get(account, ()))}"
            )
        for asset, (available, locked) in state.balances.items():
            decimals = TOKENS.get(asset, 0)
            from_table[account, asset] = from_units(available + locked, decimals)
    from_journal = {k: p.available + p.locked for k, p in positions.items()}
    if from_table != from_journal:
        diff = sorted(set(from_table.items()) ^ set(from_journal.items()))[:4]
        problems.append(f"accounts table != ledger-events positions, e.g. {diff}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary dir")
    parser.add_argument("--keep", action="store_true", help="leave the broker and logs behind")
    parser.add_argument("--secure", action="store_true", help="under the secure profile")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="on three brokers, losing brokers too (the broker-failure test)",
    )
    parser.add_argument(
        "--replication", type=int, default=None, help="every topic's (default: the cluster's)"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kessai-crash-"))
    if args.cluster:
        return _main_on_a_cluster(args, workdir)
    profile = None
    if args.secure:
        cluster = start_secure_cluster(workdir / "secure")
        settings, profile = cluster.admin, cluster.profile()
    else:
        settings = start_broker(workdir)
    print(f"broker {settings.bootstrap}, logs in {workdir}")
    outcome = None
    try:
        outcome = asyncio.run(
            run_scenario(
                settings.bootstrap,
                trades=args.trades,
                kills=args.kills,
                workdir=workdir,
                seed=args.seed,
                profile=profile,
            )
        )
    finally:
        if args.keep and (outcome is None or outcome.problems):
            print(f"--keep: the broker stays up at {settings.bootstrap} for a look")
        else:
            localkafka.down(settings)
        if not args.keep:
            shutil.rmtree(settings.state_dir, ignore_errors=True)
    return exit_code(outcome.summary(), outcome.crashes, outcome.problems)


def _main_on_a_cluster(args: argparse.Namespace, workdir: Path) -> int:
    cluster = start_cluster(workdir)
    print(f"cluster {cluster.bootstrap}, logs in {workdir}")
    try:
        outcome = asyncio.run(
            run_scenario(
                cluster.bootstrap,
                trades=args.trades,
                kills=args.kills,
                workdir=workdir / "run",
                seed=args.seed,
                chaos=BrokerChaos(cluster, APP_ID),
                replication=args.replication,
            )
        )
    finally:
        if not args.keep:
            localcluster.down(cluster)
    return exit_code(outcome.summary(), outcome.crashes, outcome.problems)


if __name__ == "__main__":
    raise SystemExit(main())
