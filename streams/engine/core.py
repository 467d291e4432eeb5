"""The settlement engine's state machine: one writer for every account and trade. Pure.

One :class:`Engine` holds every account's balances, locks and queues, every open DvP
saga, the ids already used (trades, payments, custody movements) and the deadlines.
A :class:`Batch` applies input records to it in order and collects everything they
cause: ``ledger-events``, ``settlements``, ``rejections`` and one changelog row per
key the batch touched. The service (:mod:`streams.engine.service`) commits a batch's
outputs and input offsets in one Kafka transaction; ``kessai replay`` runs the same
batches again and compares.

The rules are the pure functions the property tests cover, unchanged: the trade
intake's checks (:mod:`streams.settlement.intake`), the ledger intake's
(:mod:`streams.ledger.intake`), the saga (:mod:`streams.settlement.saga`), the
account step (:func:`streams.ledger.handler.account_step`) and the journal's chain
(:mod:`streams.ledger.journal`). What the agents sent each other over
``kessai-ledger-commands`` and ``kessai-settlement-inbox`` goes through one
in-memory FIFO instead: a funded trade locks, posts and settles inside the
processing of its own record.

Time: ``now_s`` is the batch's clock, the engine's only one. It stamps ``at`` on
every record the batch writes and decides the deadlines due at the batch's end.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

import orjson
from pydantic import BaseModel

from schemas import (
    CANCELLATIONS,
    CLOCK,
    CUSTODY,
    FACE_JPY_MIN,
    FX_RATES,
    INSTRUMENTS,
    LEDGER_EVENTS,
    ORDERS,
    PAYMENTS,
    PENALTIES,
    REJECTIONS,
    RESERVES,
    SETTLEMENTS,
    TRADES,
    AdvanceClock,
    CancelTrade,
    FxRate,
    Instrument,
    SchemaError,
    Source,
    check_key,
    decode,
    source_of,
)
from schemas.codec import encode, rejection_for
from streams import topics
from streams.bonds import terms as bond_terms
from streams.bonds.master import instrument_record
from streams.engine import actions, orders, wire
from streams.ledger import domain, journal
from streams.ledger import intake as move_rules
from streams.ledger.handler import account_step
from streams.ledger.messages import LedgerCommand, Move, Reply
from streams.matching.book import MATCHED_TRADE_ID
from streams.matching.matcher import Matcher, Rows
from streams.security import signing
from streams.security.quota import Limit, Quota
from streams.settlement import intake as trade_rules
from streams.settlement import saga as dvp
from streams.settlement.fails import FailRules, PenaltyRules, penalties
from streams.settlement.fx import FxRules
from streams.settlement.handler import outcome_json, trade_step
from streams.settlement.messages import Trade
from streams.settlement.partial import next_part

__all__ = ["Batch", "Engine", "Outputs", "Rules", "StatusOut"]

#: The changelog row of a trade id used up without a saga (rejected after its checks),
#: as written before the window (ADR 0033): no trade time, so never leaves.
USED: Final = b"{}"
#: How a token's reference rate is keyed in ``engine-instruments`` (an ISIN never is).
FX_ROW: Final = "fx:"
#: How a token's dust below one ledger unit is keyed in ``engine-inflow``.
DUST_ROW: Final = "dust:"
#: The account that holds the bridge's dust of a token in whole ledger units:
#: ``bridge-dust:JPYC`` (docs/tokens.md).
DUST_ACCOUNT: Final = "bridge-dust:"
_USED_START: Final = b'{"used":'
_TRADE_TIME: Final = b'"trade_time_s":'


def used_row(trade_time_s: float) -> bytes:
    """The row of a trade id used up without a saga, with the trade's time (the window)."""
    return orjson.dumps({"used": trade_time_s})


def is_used(row: bytes) -> bool:
    """A used-up id's row (no outcome to show)."""
    return row == USED or row.startswith(_USED_START)


def trade_time_of(row: bytes) -> float:
    """The trade time of a finished or used-up row (inf: an old used row, kept)."""
    if row.startswith(_USED_START):
        return float(orjson.loads(row)["used"])
    at = row.rfind(_TRADE_TIME)
    if at < 0:
        return math.inf
    start = at + len(_TRADE_TIME)
    end = row.find(b",", start)
    return float(row[start : end if end >= 0 else None])


@dataclass(frozen=True)
class Rules:
    """The settings that change what a record does. The manifest records them with
    every batch, so a replay needs nothing re-supplied."""

    tokens: Mapping[str, int]
    deadline_s: float
    #: Per-venue rate limit on ``trades`` (None: unlimited).
    trade_limit: Limit | None = None
    #: The window (ADR 0033): a finished or used-up trade id leaves the engine's memory
    #: once its trade time is this much older than the batch's clock (its row goes to
    #: the archive), and a trade that old is refused (``stale_trade``). None: kept.
    window_s: float | None = None
    #: Issue 20: a trade's settlement date is its trade date plus this many Japanese
    #: business days unless it says, and it waits for it (None: no dates, as in the
    #: batches written before they existed, which a replay must repeat).
    settlement_lag: int | None = None
    #: Trades and custody movements of bonds not in the security master are refused
    #: (``unknown_isin``); False: any ISIN, as before the master existed.
    instruments_required: bool = False
    #: A simulated market (``KESSAI_CLOCK=ticks``: tests, the demo): the clock moves on
    #: ``clock`` records too, and a trade's arrival is the clock's time, not the
    #: broker's (signatures and rate limits keep the broker's). False: ``clock``
    #: records are refused.
    ticks: bool = False
    #: The account that pays coupons and redemptions in JPYC (streams/engine/actions.py);
    #: None: none are paid (the batches written before they were).
    paying_agent: str | None = None
    #: Issue 21: the recycle mode's cut-offs and fail days (streams/settlement/fails.py);
    #: None: the atomic mode, a trade still locking at its deadline fails (as every
    #: batch written before the mode existed).
    fails: FailRules | None = None
    #: A trade stamped more than this ahead of its arrival is refused,
    #: ``invalid_trade_time`` (None: taken, counted from its arrival, as before).
    ahead_s: float | None = None
    #: Issue 21: any-fit recycling, a lock that fits is granted whoever waits
    #: (streams/ledger/domain.py); False: strict FIFO per asset, as before.
    any_fit: bool = False
    #: Issue 21: a bond's redemption first starts the trades whose settlement date began
    #: before its record time (a matched trade holding both legs settles, and its buyer
    #: is redeemed); False: they fail ``instrument_matured``, as before.
    starts_before_redemption: bool = False
    #: Issue 21: a trade paid in a token other than JPYC is priced in yen and converted
    #: once at its FX rate, checked against ``fx-rates`` (streams/settlement/fx.py);
    #: None: priced in its token, as before (an old batch's replay).
    fx: FxRules | None = None
    #: Issue 21, bridge precision: each token's decimals on-chain; a deposit may be as
    #: fine, the rest below the ledger's unit is the bridge's dust (:meth:`Batch.move`).
    #: None: a deposit finer than the ledger's unit is refused, as before.
    onchain: Mapping[str, int] | None = None

    def decimals_of(self, asset: str) -> int:
        return self.tokens.get(asset, 0)  # bonds count whole yen of face value

    def to_json(self) -> dict[str, Any]:
        limit = self.trade_limit
        return {
            "tokens": dict(self.tokens),
            "deadline_s": self.deadline_s,
            "trade_limit": None if limit is None else [limit.per_s, limit.burst],
            "window_s": self.window_s,
            "settlement_lag": self.settlement_lag,
            "instruments_required": self.instruments_required,
            "ticks": self.ticks,
            "paying_agent": self.paying_agent,
            "fails": None if self.fails is None else self.fails.to_json(),
            "ahead_s": self.ahead_s,
            "any_fit": self.any_fit,
            "starts_before_redemption": self.starts_before_redemption,
            "fx": None if self.fx is None else self.fx.to_json(),
            "onchain": None if self.onchain is None else dict(self.onchain),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Rules:
        limit = raw.get("trade_limit")
        return cls(
            tokens=dict(raw["tokens"]),
            deadline_s=float(raw["deadline_s"]),
            trade_limit=None if limit is None else Limit(int(limit[0]), int(limit[1])),
            window_s=None if raw.get("window_s") is None else float(raw["window_s"]),
            settlement_lag=None
            if raw.get("settlement_lag") is None
            else int(raw["settlement_lag"]),
            instruments_required=bool(raw.get("instruments_required", False)),
            ticks=bool(raw.get("ticks", False)),
            paying_agent=raw.get("paying_agent"),
            fails=FailRules.from_json(raw.get("fails")),
            ahead_s=None if raw.get("ahead_s") is None else float(raw["ahead_s"]),
            any_fit=bool(raw.get("any_fit", False)),
            starts_before_redemption=bool(raw.get("starts_before_redemption", False)),
            fx=FxRules.from_json(raw.get("fx")),
            onchain=None if raw.get("onchain") is None else dict(raw["onchain"]),
        )

    def master(self, instruments: Mapping[str, Instrument]) -> trade_rules.Master | None:
        """The trade intake's JGB rules (None: no dates)."""
        if self.settlement_lag is None:
            return None
        return trade_rules.Master(
            self.settlement_lag, instruments if self.instruments_required else None
        )


@dataclass(frozen=True, slots=True)
class StatusOut:
    """A ``settlements`` record the batch wrote, for the metrics and the dashboard."""

    trade: Trade
    status: str
    reason: str | None
    record: dict[str, Any]

    @property
    def trade_id(self) -> str:
        return self.trade.trade_id


@dataclass
class Outputs:
    """Everything one batch writes, in order."""

    #: (topic, key, value) of the public outputs, in the order they were caused.
    records: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    #: (changelog topic, key, value or None: delete), one per touched key.
    changelog: list[tuple[str, bytes, bytes | None]] = field(default_factory=list)
    statuses: list[StatusOut] = field(default_factory=list)
    #: (input topic, reason) of each rejection.
    rejected: list[tuple[str, str]] = field(default_factory=list)
    #: Trades accepted (started a saga).
    received: int = 0
    ledger_events: int = 0
    #: asset -> [change in available, change in locked] (units), and the change in
    #: open locks: the metrics' running sums.
    balances: dict[str, list[int]] = field(default_factory=dict)
    locks_delta: int = 0
    #: (trade id, row) of the finished trades that left the window: the archive's records.
    archive: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: (run id, holders, yen) of each coupon or redemption run paid.
    paid: list[tuple[str, int, int]] = field(default_factory=list)
    #: (trade id, coupon date, yen) of each market claim paid, seller to buyer.
    claims: list[tuple[str, str, int]] = field(default_factory=list)
    #: (trade id, coupon date, yen) of each market claim the seller could not pay.
    claims_unpaid: list[tuple[str, str, int]] = field(default_factory=list)
    #: (isin, face minted, face attested) of each bond whose supply exceeds its reserve.
    reserve_breaches: list[tuple[str, int, int]] = field(default_factory=list)
    #: (run id, units needed, units the paying agent has) of each run it cannot pay yet.
    unfunded: list[tuple[str, int, int]] = field(default_factory=list)
    #: (reason, currency, units) of each fail day's penalty (streams/settlement/fails.py).
    penalties: list[tuple[str, str, int]] = field(default_factory=list)
    #: The kind of each order event written (accepted, filled, rejected, ...), and
    #: the fills made (streams/engine/orders.py).
    order_events: list[str] = field(default_factory=list)
    fills: int = 0

    def moved(self, asset: str, delta_available: int, delta_locked: int) -> None:
        pair = self.balances.get(asset)
        if pair is None:
            self.balances[asset] = [delta_available, delta_locked]
        else:
            pair[0] += delta_available
            pair[1] += delta_locked


class Engine:
    """Every account and trade, as committed. Changed only by a :class:`Batch`."""

    def __init__(self, *, windowed: bool = True) -> None:
        """``windowed``: finished ids leave after a window (:attr:`Rules.window_s`), so a
        restore puts each one in :attr:`leaving`; without a window nothing leaves."""
        self.windowed = windowed
        #: account -> its state's JSON bytes (:meth:`domain.AccountState.to_bytes`).
        self.accounts: dict[str, bytes] = {}
        #: Open sagas, by trade id.
        self.open: dict[str, dvp.Saga] = {}
        #: Finished or used-up trade ids -> their row (:data:`USED`, or an outcome).
        self.finished: dict[str, bytes] = {}
        #: (trade time, trade id) of each finished or used-up id: the window's order
        #: of leaving (a heap; filled only under a window).
        self.leaving: list[tuple[float, str]] = []
        #: Payment and custody command ids already applied or used up.
        self.applied: set[str] = set()
        #: asset -> deposits minus withdrawals applied, in units (conservation).
        self.inflow: dict[str, int] = {}
        #: token -> the bridge's dust below one ledger unit, in on-chain units (kept in
        #: ``engine-inflow`` under ``dust:{token}``; :meth:`Batch.move`).
        self.dust: dict[str, int] = {}
        #: Rate-limit buckets (:mod:`streams.security.quota`).
        self.rates: dict[str, bytes] = {}
        #: (deadline or next cut-off, trade id) of open sagas (:attr:`dvp.Saga.due`);
        #: stale entries are skipped when popped.
        self.deadlines: list[tuple[float, str]] = []
        #: The last batch's clock (0: none since this engine started).
        self.clock_s = 0.0
        #: (start of the settlement date, trade id) of sagas waiting for it.
        self.starts: list[tuple[float, str]] = []
        #: The security master: ISIN -> its instrument, as last published.
        self.instruments: dict[str, Instrument] = {}
        #: Token -> its reference rate in yen, as ``fx-rates`` last gave it (kept in
        #: ``engine-instruments`` under ``fx:{token}``: reference data, as the master).
        self.fx_rates: dict[str, FxRate] = {}
        #: Each paying bond's next coupon or redemption, and the runs not yet paid
        #: (streams/engine/actions.py).
        self.schedule: dict[str, actions.Event] = {}
        self.runs: dict[str, actions.Run] = {}
        #: ISIN -> the face the custodian last attested it holds at the CSD.
        self.reserves: dict[str, int] = {}
        #: The books' rows (one per order: streams/matching/matcher.py) and the venues'
        #: buckets on ``orders`` (issue 21: the engine matches, streams/engine/orders.py).
        self.orders = Rows()
        self.order_rates: dict[str, bytes] = {}
        self._matcher: Matcher | None = None
        #: The trade intake's dated terms, reused for trades of the same terms (pure:
        #: a restored engine, without it, computes the same).
        self.dated_memo: trade_rules.DatedMemo = {}

    def matcher(self, tokens: Mapping[str, int]) -> Matcher:
        """The books over :attr:`orders`, built the first time they are needed (again
        when the tokens change: a replay's batches may carry other rules)."""
        if self._matcher is None or self._matcher.tokens != dict(tokens):
            self._matcher = Matcher(self.orders, tokens=tokens)
        return self._matcher

    def sizes(self) -> dict[str, int]:
        """Rows held, by kind (the ``kessai_table_rows`` gauge)."""
        return {
            "engine-accounts": len(self.accounts),
            "engine-open-trades": len(self.open),
            "engine-finished-trades": len(self.finished),
            "engine-applied": len(self.applied),
            "engine-instruments": len(self.instruments) + len(self.fx_rates),
            "engine-actions": len(self.schedule) + len(self.runs),
            "engine-orders": len(self.orders),
        }

    def next_action_s(self) -> float:
        """When the next coupon or redemption is recorded or a run paid (inf: none). A
        run that was due at the last batch and not paid (unfunded) waits for an input,
        the paying agent's deposit: it does not make a batch of its own."""
        times = [e.record_s for e in self.schedule.values()]
        times.extend(r.event.pay_s for r in self.runs.values())
        return min((t for t in times if t > self.clock_s), default=math.inf)

    def seen(self, trade_id: str) -> bool:
        return trade_id in self.open or trade_id in self.finished

    def restore_row(self, table: str, key: str, value: bytes | None) -> None:
        """Apply one changelog row read back at a restore."""
        if table == topics.ENGINE_ACCOUNTS:
            _set(self.accounts, key, value)
        elif table == topics.ENGINE_TRADES:
            self.open.pop(key, None)
            self.finished.pop(key, None)
            if value is not None and value.startswith(wire.SAGA_ROW_START):
                self.open[key] = wire.saga_from_row(orjson.loads(value)["saga"])
            elif value is not None:
                self.finished[key] = value  # kept as its bytes: parsed only when asked
                if self.windowed:
                    # Pushed as read, not heapified at the end: rows come in about the
                    # order of their trade times (each push is then O(1)), and a heap
                    # of 10,000,000 built in one go stalled the event loop for 7 s,
                    # past the group's session timeout (ADR 0033). Entries of ids read
                    # again or deleted later are skipped when they come out.
                    heapq.heappush(self.leaving, (trade_time_of(value), key))
        elif table == topics.ENGINE_APPLIED:
            self.applied.add(key)
        elif table == topics.ENGINE_INFLOW:
            if key.startswith(DUST_ROW):
                self.dust[key.removeprefix(DUST_ROW)] = int(value) if value is not None else 0
            else:
                self.inflow[key] = int(orjson.loads(value)) if value is not None else 0
        elif table == topics.ENGINE_RATES:
            _set(self.rates, key, value)
        elif table == topics.ENGINE_ACTIONS:
            actions.restore_row(self, key, value)
        elif table == topics.ENGINE_ORDERS:
            if value is not None:
                self.orders.rows[key] = value
            self._matcher = None
        elif table == topics.ENGINE_ORDER_RATES:
            _set(self.order_rates, key, value)
        elif table == topics.ENGINE_INSTRUMENTS and key.startswith(FX_ROW):
            if value is not None:
                rate = decode(FX_RATES, value)
                assert isinstance(rate, FxRate)
                self.fx_rates[rate.currency] = rate
        elif table == topics.ENGINE_INSTRUMENTS:
            if value is None:
                self.instruments.pop(key, None)
            else:
                instrument = decode(INSTRUMENTS, value)
                assert isinstance(instrument, Instrument)
                self.instruments[key] = instrument

    def restored(self) -> None:
        """Rebuild what is derived from the rows: the deadline heap (open trades only;
        the window's heap is filled as the rows are read)."""
        self.deadlines = [(s.due, tid) for tid, s in self.open.items()]
        heapq.heapify(self.deadlines)
        self.starts = [
            (s.trade.starts_at_s, tid) for tid, s in self.open.items() if s.stage == "waiting"
        ]
        heapq.heapify(self.starts)


def _set(table: dict[str, bytes], key: str, value: bytes | None) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


class Batch:
    """One batch of input records applied to an :class:`Engine`, at ``now_s``."""

    def __init__(
        self,
        engine: Engine,
        rules: Rules,
        now_s: float,
        *,
        signers: signing.Registry | None = None,
        verified: Mapping[tuple[str, int, int], Any] | None = None,
        fast: bool = True,
    ) -> None:
        """``fast=False`` takes every trade down the saga's path (the tests compare);
        ``verified``: signature checks done ahead, by the records' places
        (:mod:`streams.engine.signatures`)."""
        self.engine = engine
        self.fast = fast
        self.rules = rules
        self.now_s = now_s
        self.at = datetime.fromtimestamp(now_s, UTC)
        self.at_text = wire.utc_text(self.at)
        self.signers = signers
        self.verified = verified or {}
        self.out = Outputs()
        #: Accounts this batch touched, decoded once and written back at the end.
        self._accounts: dict[str, domain.AccountState] = {}
        self._trades: set[str] = set()
        #: Finished ids that left the window in this batch: a tombstone each.
        self._left: list[str] = []
        #: Trades whose saga opened in this batch: their deadlines join the heap at its end.
        self._opened: list[str] = []
        self._applied: list[str] = []
        self._inflow: set[str] = set()
        #: Tokens whose dust changed in this batch.
        self._dust: set[str] = set()
        self._rates = _Tracked(engine.rates)
        self._quota = None if rules.trade_limit is None else Quota(self._rates, rules.trade_limit)
        self._order_rates = _Tracked(engine.order_rates)
        #: Orders take the same per-venue limit as trades, in buckets of their own.
        self.order_quota = (
            None if rules.trade_limit is None else Quota(self._order_rates, rules.trade_limit)
        )
        self._queue: deque[LedgerCommand | Reply] = deque()
        self._instruments: dict[str, bytes] = {}
        #: Keys of ``engine-actions`` this batch changed.
        self.actions_touched: set[str] = set()
        self.master = rules.master(engine.instruments)
        self.recycle = rules.fails is not None

    # -- inputs ---------------------------------------------------------------------

    def record(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_s: float,
    ) -> None:
        """Apply one input record (``trades``, ``payments``, ``custody`` or ``instruments``)."""
        if topic == TRADES:
            self._trade(partition, offset, key, value, timestamp_s)
        elif topic == ORDERS:
            orders.order_record(self, partition, offset, key, value, timestamp_s)
        elif topic == INSTRUMENTS:
            self._instrument(partition, offset, key, value, timestamp_s)
        elif topic == CLOCK:
            self._tick(partition, offset, key, value)
        elif topic == CANCELLATIONS:
            refused = self._cancel(key, value, timestamp_s, (partition, offset))
            if refused is not None:
                source = source_of(CANCELLATIONS, partition, offset, key, value)
                self._reject(source, CANCELLATIONS, *refused)
        elif topic == FX_RATES:
            refused = self._fx_rate(key, value, timestamp_s, (partition, offset))
            if refused is not None:
                self._reject(source_of(FX_RATES, partition, offset, key, value), FX_RATES, *refused)
        elif topic == RESERVES:
            refused = actions.attested(self, key, value, timestamp_s, (partition, offset))
            if refused is not None:
                source = source_of(RESERVES, partition, offset, key, value)
                self._reject(source, RESERVES, *refused)
        else:
            assert topic in (PAYMENTS, CUSTODY), topic
            move = move_rules.intake_record(
                topic,
                key,
                value,
                dict(self.rules.tokens),
                self.signers,
                where=(partition, offset),
                arrived_s=timestamp_s,
                verified=self.verified.get((topic, partition, offset)),
                onchain=self.rules.onchain,
            )
            if not isinstance(move, tuple) and topic == CUSTODY and self.rules.instruments_required:
                move = self._holding(move)
            if isinstance(move, tuple):
                self._reject(source_of(topic, partition, offset, key, value), topic, *move)
                return
            if move.units == 0:  # all below the ledger's unit: the bridge's dust only
                self._dust_only(move)
                return
            self.move(move)

    def _holding(self, move: Move) -> Move | tuple[str, str]:
        """``move``, or why the security master does not let its bonds be held: a
        custody movement of an unknown bond, or an odd lot, could never be sold."""
        instrument = self.engine.instruments.get(move.asset)
        refused = bond_terms.check_holding(instrument, move.asset, move.units)
        if refused is None and instrument is not None and instrument.status == "matured":
            refused = "instrument_matured", f"{move.asset} matured: none can be held"
        if refused is None:
            return move
        assert move.command_id is not None
        self._use(move.command_id)  # used up like an applied one (H3)
        return refused

    def _tick(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        """A simulated market's clock moves to the record's ``to``: what falls due up
        to then (settlement dates, deadlines) happens, stamped with the new time."""
        refused: tuple[str, str] | None = None
        try:
            tick = decode(CLOCK, value)
        except SchemaError as err:
            refused = err.reason, err.detail
        else:
            assert isinstance(tick, AdvanceClock)
            to = tick.to.timestamp()
            if not self.rules.ticks:
                refused = "clock_not_simulated", "this engine runs on the wall clock"
            elif to <= self.now_s:
                refused = "clock_backwards", f"{wire.utc_text(tick.to)} is not after {self.at_text}"
        if refused is not None:
            self._reject(source_of(CLOCK, partition, offset, key, value), CLOCK, *refused)
            return
        self.now_s = to
        self.at = datetime.fromtimestamp(to, UTC)
        self.at_text = wire.utc_text(self.at)
        self.expire()

    def _instrument(
        self, partition: int, offset: int, key: bytes | None, value: bytes | None, at_s: float
    ) -> None:
        instrument = instrument_record(
            key,
            value,
            self.engine.instruments,
            signers=self.signers,
            arrived_s=at_s,
            verified=self.verified.get((INSTRUMENTS, partition, offset)),
        )
        if isinstance(instrument, tuple):
            source = source_of(INSTRUMENTS, partition, offset, key, value)
            self._reject(source, INSTRUMENTS, *instrument)
            return
        self.instrument_changed(instrument)
        actions.on_instrument(self, instrument)

    def _fx_rate(
        self, key: bytes | None, value: bytes | None, at_s: float, where: tuple[int, int]
    ) -> tuple[str, str] | None:
        """A token's reference rate in yen (streams/settlement/fx.py); or why it is
        refused, changing nothing."""
        record = self.signed_record(FX_RATES, "currency", key, value, at_s, where)
        if isinstance(record, tuple):
            return record
        assert isinstance(record, FxRate)
        if record.currency not in self.rules.tokens or record.currency == bond_terms.YEN_TOKEN:
            others = sorted(set(self.rules.tokens) - {bond_terms.YEN_TOKEN})
            return "unknown_token", f"{record.currency!r} is not a token priced in yen ({others})"
        ahead_s = None if self.rules.ticks else self.rules.ahead_s
        if ahead_s is not None and record.at.timestamp() > at_s + ahead_s:
            # Kept, it would refuse every later reference (older than it) and every
            # trade in the token until its time came.
            return (
                "invalid_fx_time",
                f"{record.currency} at {wire.utc_text(record.at)} is more than {ahead_s:g} s "
                f"ahead of its arrival {wire.utc_text(datetime.fromtimestamp(at_s, UTC))}",
            )
        kept = self.engine.fx_rates.get(record.currency)
        if kept is not None and record.at <= kept.at:
            return (
                "stale_fx_rate",
                f"{record.currency} at {wire.utc_text(record.at)} is not after the reference "
                f"kept, at {wire.utc_text(kept.at)}",
            )
        self.engine.fx_rates[record.currency] = record
        self._instruments[FX_ROW + record.currency] = encode(record)
        return None

    def instrument_changed(self, instrument: Instrument) -> None:
        """The security master's entry for ``instrument``'s ISIN is now ``instrument``."""
        self.engine.instruments[instrument.isin] = instrument
        self._instruments[instrument.isin] = encode(instrument)

    def _trade(
        self,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        arrived_s: float,
    ) -> None:
        checked = trade_rules.check_record(
            key,
            value,
            signers=self.signers,
            arrived_s=arrived_s,
            verified=self.verified.get((TRADES, partition, offset)),
        )
        rejected: tuple[str, str] | None = None
        trade: Trade | tuple[str, str] | None = None
        if not isinstance(checked, trade_rules.Checked):
            rejected = checked
        elif self._quota is not None and (
            limited := self._quota.admit(checked.trade.venue, partition, arrived_s)
        ):
            rejected = limited
        elif MATCHED_TRADE_ID.fullmatch(checked.trade.trade_id):
            # Its fill's id is computable from two orders' names: taken first, it
            # would cost a resting order its place (its id stays free, as it is no
            # venue's to use).
            rejected = "not_authorized", "trade ids m- and 32 hex digits are kessai's fills'"
        elif self.engine.seen(tid := checked.trade.trade_id):
            rejected = "duplicate", f"trade {tid} was seen before"
        elif (
            stale := self._stale(trade_time_s := checked.trade.trade_time.timestamp())
        ) is not None:
            rejected = stale
        else:
            trade = trade_rules.to_trade(
                checked.trade,
                self.now_s if self.rules.ticks else arrived_s,
                tokens=dict(self.rules.tokens),
                deadline_s=self.rules.deadline_s,
                signed=checked.signed,
                master=self.master,
                cutoff_s=None if self.rules.fails is None else self.rules.fails.cutoff_s,
                # A simulated market publishes a day's trades before its clock gets
                # there: stamped ahead of it by design.
                ahead_s=None if self.rules.ticks else self.rules.ahead_s,
                memo=self.engine.dated_memo,
                fx_rules=self.rules.fx,
                references=self.engine.fx_rates,
                token_limit=self.rules.onchain is not None,
            )
            if isinstance(trade, tuple):
                rejected = trade
                # Used up even so (docs/security.md, H3): a retry carries a new id.
                self._finished(tid, used_row(trade_time_s), trade_time_s)
        if rejected is not None:
            self._reject(source_of(TRADES, partition, offset, key, value), TRADES, *rejected)
            return
        assert isinstance(trade, Trade)
        self.start(trade)

    def signed_record(
        self,
        topic: str,
        key_field: str,
        key: bytes | None,
        value: bytes | None,
        at_s: float,
        where: tuple[int, int],
    ) -> BaseModel | tuple[str, str]:
        """The decoded record of ``topic`` keyed by its ``key_field``, its signature
        checked when signatures are (ahead, or now at its broker time ``at_s``); or why
        it is refused."""
        try:
            check_key(key)
            record = decode(topic, value)
        except SchemaError as err:
            return err.reason, err.detail
        assert value is not None
        field = str(getattr(record, key_field))
        if key != field.encode():
            return "wrong_key", f"a {topic} record is keyed by its {key_field}, not {key!r}"
        if self.signers is not None:
            verified = self.verified.get((topic, *where))
            if verified is None:
                at = signing.broker_time(at_s)
                verified = signing.verify(self.signers, topic, key, value, at)
            if isinstance(verified, tuple):
                return verified
        return record

    def _cancel(
        self, key: bytes | None, value: bytes | None, at_s: float, where: tuple[int, int]
    ) -> tuple[str, str] | None:
        """A venue's cancellation of its trade (bilateral: docs/fails.md); or why it is
        refused, changing nothing."""
        record = self.signed_record(CANCELLATIONS, "trade_id", key, value, at_s, where)
        if isinstance(record, tuple):
            return record
        assert isinstance(record, CancelTrade)
        saga = self.engine.open.get(record.trade_id)
        if saga is None:
            done = "finished" if record.trade_id in self.engine.finished else "unknown"
            return "trade_not_open", f"trade {record.trade_id} is {done}: nothing to cancel"
        if saga.trade.venue != record.venue:
            return (
                "not_authorized",
                f"trade {record.trade_id} is venue {saga.trade.venue!r}'s, not {record.venue!r}'s",
            )
        self._saga_step(record.trade_id, saga, dvp.on_cancel(saga))
        self._run()
        return None

    def _stale(self, trade_time_s: float) -> tuple[str, str] | None:
        """Why a trade this old is refused: its id may have left the window, so a repeat
        could no longer be told (ADR 0033). None: within the window."""
        window = self.rules.window_s
        if window is None or trade_time_s >= self.now_s - window:
            return None
        return (
            "stale_trade",
            f"trade_time {wire.utc_text(datetime.fromtimestamp(trade_time_s, UTC))} is more "
            f"than the window ({window:g} s) before the engine's clock {self.at_text}",
        )

    def move(self, move: Move) -> None:
        """Apply a checked deposit or withdrawal (and whatever it lets settle)."""
        self._queue.append(move)
        self._run()

    # -- bridge precision: the dust below a ledger unit ----------------------------------

    def _dust_only(self, move: Move) -> None:
        """A deposit of less than one ledger unit: nothing to credit; its id is used
        and its amount is the bridge's dust (or it is a ``duplicate``)."""
        assert move.command_id is not None and move.source is not None
        if move.command_id in self.engine.applied:
            detail = f"{move.command_id} was applied before"
            self._reject(move.source, move.source[0], "duplicate", detail)
            return
        self._use(move.command_id)
        self._add_dust(move)

    def _add_dust(self, move: Move) -> None:
        """Keep a deposit's remainder below one ledger unit (bridge precision,
        docs/tokens.md): the token's dust grows; each whole ledger unit it makes is
        credited to ``bridge-dust:{token}``, so the ledger's total of the token and the
        dust left always make what the bridge holds on-chain."""
        token = move.asset
        assert self.rules.onchain is not None, move
        scale = 10 ** (self.rules.onchain[token] - self.rules.decimals_of(token))
        whole, rest = divmod(self.engine.dust.get(token, 0) + move.dust, scale)
        self.engine.dust[token] = rest
        self._dust.add(token)
        if whole:
            cause = f"dust:{move.command_id}"
            self._queue.append(Move(cause, DUST_ACCOUNT + token, token, whole, "deposit"))

    def start(self, trade: Trade) -> None:
        """Settle an accepted trade, or start its saga."""
        self.out.received += 1
        if trade.starts_at_s > self.now_s:
            self._saga_step(trade.trade_id, None, dvp.wait(trade, recycle=self.recycle))
            return
        if not (self.fast and self._settle_now(trade)):
            self._saga(trade.trade_id, None, trade)
        self._run()

    # -- the fast path: a trade both parties can settle at once ------------------------

    def _settle_now(self, t: Trade) -> bool:
        """Settle ``t`` now if nothing can make the saga's path differ: the seller holds
        the bonds and the buyer the cash, available, neither has a request waiting (so
        no grant follows a credit) and neither is at its lock limit. The postings,
        records and rows are exactly those of the saga's path (start, lock bonds, lock
        cash, post both with their credits: ``tests/unit/engine/test_fast_path.py``
        checks it against :meth:`_saga` over random states), without the messages in
        between. False: nothing was done; the saga's path takes it."""
        seller, buyer = self._peek(t.seller), self._peek(t.buyer)
        if seller.waiting or buyer.waiting or t.seller == t.buyer:
            return False
        if len(seller.locks) >= domain.LOCKS_OPEN_MAX or len(buyer.locks) >= domain.LOCKS_OPEN_MAX:
            return False
        q, c = t.quantity, t.cash_units
        bonds, cash = seller.balances.get(t.isin), buyer.balances.get(t.currency)
        if bonds is None or bonds[0] < q or cash is None or cash[0] < c:
            return False
        # Touched from here on: their rows are written at the batch's end.
        self._accounts[t.seller], self._accounts[t.buyer] = seller, buyer
        bonds_lock, cash_lock = f"{t.trade_id}/bonds", f"{t.trade_id}/cash"
        decimals = self.rules.decimals_of(t.currency)
        post = self._post
        post(seller, t.seller, t.isin, -q, q, bonds_lock, 0)
        post(buyer, t.buyer, t.currency, -c, c, cash_lock, decimals)
        post(seller, t.seller, t.isin, 0, -q, bonds_lock, 0)
        post(seller, t.seller, t.currency, c, 0, f"credit:{cash_lock}", decimals)
        post(buyer, t.buyer, t.currency, 0, -c, cash_lock, decimals)
        post(buyer, t.buyer, t.isin, q, 0, f"credit:{bonds_lock}", 0)
        settled = dvp.Saga(t, stage="settled", bonds="posted", cash="posted")
        self._finished(t.trade_id, orjson.dumps(outcome_json(settled)), t.trade_time_s)
        self._status(t, "settled", None)
        return True

    def post_matched(self, t: Trade) -> bool:
        """Settle a matched trade whose legs are locked already (streams/engine/orders.py)
        now, if nothing can make the saga's path differ: neither account has a request
        waiting (no grant follows a credit). The records and rows are those of
        :func:`dvp.matched`'s path (post both, with their credits:
        ``tests/unit/engine/test_orders.py`` compares them); False: nothing was done."""
        seller, buyer = self._account(t.seller), self._account(t.buyer)
        if seller.waiting or buyer.waiting:
            return False
        q, c = t.quantity, t.cash_units
        bonds_lock, cash_lock = f"{t.trade_id}/bonds", f"{t.trade_id}/cash"
        assert seller.locks[bonds_lock][1] == q and buyer.locks[cash_lock][1] == c, t
        del seller.locks[bonds_lock], buyer.locks[cash_lock]
        self.out.locks_delta -= 2
        decimals = self.rules.decimals_of(t.currency)
        post = self._post
        post(seller, t.seller, t.isin, 0, -q, bonds_lock, 0)
        post(seller, t.seller, t.currency, c, 0, f"credit:{cash_lock}", decimals)
        post(buyer, t.buyer, t.currency, 0, -c, cash_lock, decimals)
        post(buyer, t.buyer, t.isin, q, 0, f"credit:{bonds_lock}", 0)
        settled = dvp.Saga(t, stage="settled", bonds="posted", cash="posted", recycle=self.recycle)
        self._finished(t.trade_id, orjson.dumps(outcome_json(settled)), t.trade_time_s)
        self._status(t, "settled", None)
        return True

    def _post(
        self,
        state: domain.AccountState,
        account: str,
        asset: str,
        delta_available: int,
        delta_locked: int,
        cause: str,
        decimals: int,
    ) -> None:
        """One balance change of the fast path, journaled onto the account's chain."""
        available, locked = state.balances.get(asset, (0, 0))
        available += delta_available
        locked += delta_locked
        state.balances[asset] = [available, locked]
        state.seq += 1
        record = journal.entry(
            account, asset, delta_available, delta_locked, available, locked, cause,
            state.seq, decimals, state.hash or journal.GENESIS_HASH,
        )  # fmt: skip
        state.hash = record["hash"]
        self.out.records.append((LEDGER_EVENTS, account.encode(), orjson.dumps(record)))
        self.out.ledger_events += 1
        self.out.moved(asset, delta_available, delta_locked)

    def _status(
        self, trade: Trade, status: str, reason: str | None, part: dvp.Part | None = None
    ) -> None:
        record = wire.settlement(trade, status, reason, self.rules.tokens, self.at_text, part)
        self.out.records.append((SETTLEMENTS, trade.trade_id.encode(), orjson.dumps(record)))
        self.out.statuses.append(StatusOut(trade, status, reason, record))
        if status in ("settled", "partially_settled") and self.rules.paying_agent is not None:
            actions.claim(self, trade, part)

    def expire(self) -> None:
        """Record and pay the coupons due at the batch's time, start the trades whose
        settlement date began, fail those whose deadline is due; then let the finished
        ids older than the window leave. Coupons first: a trade settling on a coupon
        date settles after its record time (the seller is the holder of record, and the
        buyer paid no accrued)."""
        actions.due(self)
        now = self.now_s
        self.start_due(now)
        heap = self.engine.deadlines
        while heap and heap[0][0] <= now:
            _, trade_id = heapq.heappop(heap)
            saga = self.engine.open.get(trade_id)
            if saga is None:
                continue
            if self.rules.fails is None:
                self._saga_step(trade_id, saga, dvp.on_deadline(saga, now))
            else:
                self._cutoff(trade_id, saga, self.rules.fails)
        self._run()
        if self.rules.window_s is not None:
            self._leave(now - self.rules.window_s)

    def start_due(self, until_s: float, *, before: bool = False) -> None:
        """Start the trades whose settlement date began by ``until_s`` (``before``:
        strictly before it)."""
        heap = self.engine.starts
        while heap and (heap[0][0] < until_s if before else heap[0][0] <= until_s):
            _, trade_id = heapq.heappop(heap)
            saga = self.engine.open.get(trade_id)
            if saga is not None:
                self._saga_step(trade_id, saga, dvp.on_settlement_date(saga))
                self._run()

    def _cutoff(self, trade_id: str, saga: dvp.Saga, rules: FailRules) -> None:
        """A cut-off of ``saga`` (recycle mode): a fail day, or its cancellation. The
        buyer's cash is probed while the bonds leg waits (both legs named); the next
        cut-off joins the heap (a later one of a long-stopped engine is due at once:
        each day it missed is counted)."""
        # What is queued goes first: the part below is weighed on settled balances.
        self._run()
        current = self.engine.open.get(trade_id)
        if current is None or self.now_s < current.due:
            return
        after_part = self._partial(current)
        if after_part is None:
            return
        saga = after_part
        t = saga.trade
        cash_short = False
        if saga.stage == "bonds":
            held = self._peek(t.buyer).balances.get(t.currency)
            cash_short = held is None or held[0] < saga.cash_left
        outcome = dvp.on_cutoff(
            saga,
            self.now_s,
            cash_short=cash_short,
            max_days=rules.max_days,
            next_s=rules.cutoff(t, saga.fail_days + 1),
        )
        self._saga_step(trade_id, saga, outcome)
        after = outcome[0]
        if not after.terminal and after is not saga:
            heapq.heappush(self.engine.deadlines, (after.due, trade_id))
            if rules.penalties is not None:
                self._penalties(after, rules, rules.penalties)

    def _partial(self, saga: dvp.Saga) -> dvp.Saga | None:
        """At a cut-off, settle the part of a trade that allows it which the seller can
        deliver now: the largest whole number of face units it holds, if the buyer has
        that part's cash (streams/settlement/partial.py). The saga after it (None: the
        trade ended meanwhile)."""
        t = saga.trade
        if not (t.partial and self.rules.any_fit and saga.stage == "bonds"):
            return saga
        seller, buyer = self._peek(t.seller), self._peek(t.buyer)
        if saga.bonds != "queued" or any(
            len(a.locks) + len(a.waiting) >= domain.LOCKS_OPEN_MAX for a in (seller, buyer)
        ):
            return saga
        instrument = self.engine.instruments.get(t.isin)
        unit = FACE_JPY_MIN if instrument is None else instrument.face_unit
        face = seller.balances.get(t.isin, [0, 0])[0] // unit * unit
        if not 0 < face < saga.quantity_left:
            return saga
        part = next_part(
            saga,
            face,
            accrued_units=self._accrued(t, face),
            decimals=self.rules.decimals_of(t.currency),
        )
        if part is None or buyer.balances.get(t.currency, [0, 0])[0] < part.cash_units:
            return saga
        self._saga_step(t.trade_id, saga, dvp.on_partial(saga, part))
        self._run()
        # What the part paid may settle the rest at once (a cascade of grants).
        return self.engine.open.get(t.trade_id)

    def _accrued(self, t: Trade, face: int) -> int | None:
        """kessai's accrued on ``face`` of ``t``'s bond, in units, as its intake computed
        the whole trade's (None: the trade took the venue's)."""
        if not (self.rules.instruments_required and t.settlement_date):
            return None
        instrument = self.engine.instruments.get(t.isin)
        settles = date.fromisoformat(t.settlement_date)
        if t.fx_rate:  # converted: its terms are in whole yen
            computed = bond_terms.trade_accrued(instrument, bond_terms.YEN_TOKEN, face, settles)
            return None if computed is None else computed.jpy
        computed = bond_terms.trade_accrued(instrument, t.currency, face, settles)
        return None if computed is None else computed.jpy * 10 ** self.rules.decimals_of(t.currency)

    def _penalties(self, saga: dvp.Saga, rules: FailRules, policy: PenaltyRules) -> None:
        """The penalties of the fail day ``saga`` has just begun failing."""
        t, n = saga.trade, saga.fail_days
        assert saga.pending_reason is not None, saga
        day = rules.day(t, n - 1)
        for p in penalties(t, saga.pending_reason, policy, saga.cash_left):
            record = wire.penalty(
                t, p, day=day, fail_day=n, policy=policy.policy, base_units=saga.cash_left,
                tokens=self.rules.tokens, at=self.at_text,
            )  # fmt: skip
            self.out.records.append((PENALTIES, t.trade_id.encode(), orjson.dumps(record)))
            self.out.penalties.append((p.reason, t.currency, p.units))

    def _finished(self, trade_id: str, row: bytes, trade_time_s: float) -> None:
        """``trade_id`` is done (an outcome, or used up): its row, and its place in the window."""
        self.engine.finished[trade_id] = row
        self._trades.add(trade_id)
        if self.rules.window_s is not None:
            heapq.heappush(self.engine.leaving, (trade_time_s, trade_id))

    def _leave(self, horizon_s: float) -> None:
        """Archive and forget each finished id whose trade time is before ``horizon_s``."""
        engine, leaving = self.engine, self.engine.leaving
        while leaving and leaving[0][0] < horizon_s:
            _, trade_id = heapq.heappop(leaving)
            row = engine.finished.pop(trade_id, None)
            if row is None:
                continue
            self._trades.discard(trade_id)
            self._left.append(trade_id)
            key = trade_id.encode()
            self.out.archive.append((key, row))

    # -- the in-memory routing ---------------------------------------------------------

    def _run(self) -> None:
        """Deliver queued commands and replies, oldest first, until none is left."""
        queue = self._queue
        while queue:
            message = queue.popleft()
            if isinstance(message, Reply):
                saga = self.engine.open.get(message.trade_id)
                if saga is not None:  # else the trade finished: nothing to do
                    self._saga(message.trade_id, saga, message)
            else:
                self._command(message)

    def _saga(self, trade_id: str, saga: dvp.Saga | None, message: Trade | Reply) -> None:
        fx = trade_step(saga, message, recycle=self.recycle)
        self._saga_step(trade_id, saga, (fx.saga, fx.commands, fx.statuses))

    def _saga_step(self, trade_id: str, before: dvp.Saga | None, outcome: dvp.Outcome) -> None:
        saga, commands, statuses = outcome
        engine = self.engine
        if saga is not before:
            self._trades.add(trade_id)
            if saga.terminal:
                engine.open.pop(trade_id, None)
                self._finished(trade_id, orjson.dumps(outcome_json(saga)), saga.trade.trade_time_s)
            else:
                if before is None:
                    self._opened.append(trade_id)
                engine.open[trade_id] = saga
        self._queue.extend(commands)
        for status in statuses:
            self._status(saga.trade, status.status, status.reason, status.part)

    def _account(self, account: str) -> domain.AccountState:
        state = self._accounts.get(account)
        if state is None:
            state = domain.AccountState.from_bytes(self.engine.accounts.get(account))
            self._accounts[account] = state
        return state

    # The corporate actions' view of the batch (streams/engine/actions.py).
    def saga_step(self, trade_id: str, before: dvp.Saga | None, outcome: dvp.Outcome) -> None:
        self._saga_step(trade_id, before, outcome)

    def run(self) -> None:
        self._run()

    def use(self, command_id: str) -> None:
        """``command_id`` is used up (a repeat of it is a duplicate)."""
        self._use(command_id)

    def command(self, command: LedgerCommand) -> None:
        """Apply one ledger command now (its replies wait in the queue)."""
        self._command(command)

    # The order desk's view of the batch (streams/engine/orders.py).
    def matcher(self) -> Matcher:
        return self.engine.matcher(self.rules.tokens)

    def reject(self, source: Source, topic: str, reason: str, detail: str) -> None:
        self._reject(source, topic, reason, detail)

    def peek(self, account: str) -> domain.AccountState:
        return self._peek(account)

    def touched_accounts(self) -> Mapping[str, domain.AccountState]:
        return self._accounts

    def _peek(self, account: str) -> domain.AccountState:
        """``account``'s state without marking it touched."""
        state = self._accounts.get(account)
        if state is None:
            state = domain.AccountState.from_bytes(self.engine.accounts.get(account))
        return state

    def _command(self, command: LedgerCommand) -> None:
        account = command.account
        before = self._account(account)
        command_id = command.command_id if isinstance(command, Move) else None
        applied = command_id is not None and command_id in self.engine.applied
        fx = account_step(
            before, account, command, already_applied=applied, any_fit=self.rules.any_fit
        )
        if fx.rejection is not None:
            if isinstance(command, Move):
                if command_id is not None and fx.rejection.reason != "duplicate":
                    self._use(command_id)  # used up like an applied one (H3)
                if command.source is not None:
                    topic = command.source[0]
                    self._reject(command.source, topic, fx.rejection.reason, fx.rejection.detail)
            self._queue.extend(fx.replies)
            return
        records = journal.chain(before, fx.state, fx.postings, self.rules.decimals_of)
        self._accounts[account] = fx.state
        out = self.out
        for record in records:
            out.records.append((LEDGER_EVENTS, account.encode(), orjson.dumps(record)))
        out.ledger_events += len(records)
        for p in fx.postings:
            out.moved(p.asset, p.delta_available, p.delta_locked)
        out.locks_delta += len(fx.state.locks) - len(before.locks)
        for applied_id in fx.applied:
            self._use(applied_id)
        if isinstance(command, Move) and records:
            delta = command.units if command.kind == "deposit" else -command.units
            inflow = self.engine.inflow
            inflow[command.asset] = inflow.get(command.asset, 0) + delta
            self._inflow.add(command.asset)
            if command.dust:
                self._add_dust(command)
        self._queue.extend(fx.replies)

    def _use(self, command_id: str) -> None:
        self.engine.applied.add(command_id)
        self._applied.append(command_id)

    def _reject(self, source: Source, topic: str, reason: str, detail: str) -> None:
        record = rejection_for(source, SchemaError(reason, detail), at=self.at)  # type: ignore[arg-type]
        key = source[3]
        self.out.records.append((REJECTIONS, None if key is None else key.encode(), encode(record)))
        self.out.rejected.append((topic, reason))

    # -- the end of the batch ------------------------------------------------------------

    def finish(self) -> Outputs:
        """Write back the touched state and add one changelog row per touched key."""
        engine, rows = self.engine, self.out.changelog
        engine.clock_s = self.now_s
        self.out.reserve_breaches = actions.breaches(engine)
        for trade_id in self._opened:
            saga = engine.open.get(trade_id)
            if saga is not None:
                heapq.heappush(engine.deadlines, (saga.due, trade_id))
                if saga.stage == "waiting":
                    heapq.heappush(engine.starts, (saga.trade.starts_at_s, trade_id))
        for account, state in self._accounts.items():
            raw = state.to_bytes()
            engine.accounts[account] = raw
            rows.append((topics.ENGINE_ACCOUNTS, account.encode(), raw))
        for trade_id in self._trades:
            saga = engine.open.get(trade_id)
            value = wire.saga_row(saga) if saga is not None else engine.finished[trade_id]
            rows.append((topics.ENGINE_TRADES, trade_id.encode(), value))
        rows.extend((topics.ENGINE_TRADES, trade_id.encode(), None) for trade_id in self._left)
        rows.extend((topics.ENGINE_APPLIED, i.encode(), b"1") for i in self._applied)
        for asset in self._inflow:
            rows.append((topics.ENGINE_INFLOW, asset.encode(), b"%d" % engine.inflow[asset]))
        for token in self._dust:
            key = (DUST_ROW + token).encode()
            rows.append((topics.ENGINE_INFLOW, key, b"%d" % engine.dust[token]))
        rows.extend((topics.ENGINE_RATES, k.encode(), engine.rates[k]) for k in self._rates.touched)
        rows.extend(
            (topics.ENGINE_INSTRUMENTS, k.encode(), v) for k, v in self._instruments.items()
        )
        rows.extend(
            (topics.ENGINE_ACTIONS, k.encode(), row)
            for k, row in actions.rows(engine, self.actions_touched)
        )
        rows.extend(
            (topics.ENGINE_ORDERS, k.encode(), v) for k, v in engine.orders.take_written().items()
        )
        rows.extend(
            (topics.ENGINE_ORDER_RATES, k.encode(), engine.order_rates[k])
            for k in self._order_rates.touched
        )
        return self.out


class _Tracked(MutableMapping[str, bytes]):
    """A dict that remembers which keys were written (the quota's rows)."""

    def __init__(self, base: dict[str, bytes]) -> None:
        self.base = base
        self.touched: set[str] = set()

    def __getitem__(self, key: str) -> bytes:
        return self.base[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        self.base[key] = value
        self.touched.add(key)

    def __delitem__(self, key: str) -> None:
        del self.base[key]
        self.touched.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.base)

    def __len__(self) -> int:
        return len(self.base)
