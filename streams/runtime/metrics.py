"""The worker's Prometheus metrics: what the pipeline did, counted where it happens.

One :class:`Metrics` per app, with a registry of its own (never prometheus_client's
global one: two apps in one process, as in the tests, must not share counts). The
agents call its methods as they send; ``GET /metrics`` on the worker's web port
serves the registry in Prometheus' text format (``streams/runtime/app.py`` wires it).

Names follow Prometheus' conventions: a ``kessai_`` prefix, base units, ``_total`` on
counters (prometheus_client adds it). Label values come from kessai's own code paths
(topic names, reason codes, statuses), never from input; :data:`LABEL_SETS_MAX` bounds
them anyway, and ``.labels()`` children are cached, not looked up per event.

:class:`WorkerCollector` adds what is read from the worker itself at scrape time
(nothing per event): consumer lag per input partition, rows per table, whether it is
recovering, event-loop lag, rebalances and committed transactions.

:class:`StateCollector` reads the settlement engine's running sums of what it has
committed, moved after each commit (:mod:`streams.runtime.livesums`; a scrape is
O(assets)): balances and locked value per asset, open locks, net external inflow, the
conservation error (balances minus inflow, exact in smallest units: 0 at every
scrape), and open trades by stage and pending reason.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from streams.runtime.batches import CommitTimes
from streams.runtime.livesums import LiveSums

logger = logging.getLogger(__name__)

__all__ = [
    "CONTENT_TYPE",
    "LABEL_SETS_MAX",
    "Metrics",
    "StateCollector",
    "WorkerCollector",
    "consumer_lags",
    "health",
]

#: The exposition's content type.
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
#: Settlement latency buckets, in seconds: from a fast local settle to the deadline.
LATENCY_BUCKETS_S: Final = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
#: Settlement status records the dashboard lists (``/api/settlements/recent``).
RECENT_SETTLEMENTS_MAX: Final = 50
#: Label sets one metric may have; past it, new ones are counted under "other".
LABEL_SETS_MAX: Final = 200
_OTHER: Final = "other"


class Metrics:
    """The business counters of one worker."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # process_start_time_seconds (a restart loop's alert), memory and CPU.
        ProcessCollector(registry=r)
        self._trades_received = Counter(
            "kessai_trades_received",
            "Trades accepted by the trade intake and handed to settlement.",
            registry=r,
        )
        self._settlements = Counter(
            "kessai_settlements",
            "Settlement status records published, by status and reason.",
            ["status", "reason"],
            registry=r,
        )
        self._rejections = Counter(
            "kessai_rejections",
            "Records rejected, by the topic they came from and the reason code.",
            ["topic", "reason"],
            registry=r,
        )
        self._ledger_events = Counter(
            "kessai_ledger_events",
            "Balance changes written to the ledger journal.",
            registry=r,
        )
        self._order_events = Counter(
            "kessai_order_events",
            "Order status changes published, by event.",
            ["event"],
            registry=r,
        )
        self._bond_metrics(r)
        self._fills = Counter(
            "kessai_fills",
            "Trades made by kessai's matcher in the engine (one per fill).",
            registry=r,
        )
        latency = Histogram(
            "kessai_settlement_latency_seconds",
            "Seconds from a trade to its settled status: since the venue's trade_time, or "
            "since the record arrived on the trades topic.",
            ["since"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self._since_trade_time = latency.labels("trade_time")
        self._since_arrival = latency.labels("arrival")
        self._children: dict[tuple[str, ...], Any] = {}
        self._label_sets: dict[str, int] = {}
        #: The last status records published (JSON-ready), oldest first.
        self.recent_settlements: deque[dict[str, Any]] = deque(maxlen=RECENT_SETTLEMENTS_MAX)

    def _bond_metrics(self, r: CollectorRegistry) -> None:
        """Coupons, redemptions and reserves (docs/bonds.md)."""
        self._coupon_payments = Counter(
            "kessai_coupon_payments",
            "Holders paid by coupon and redemption runs, by kind (coupon, redemption).",
            ["kind"],
            registry=r,
        )
        self._coupon_yen = Counter(
            "kessai_coupon_paid_yen",
            "Yen paid by coupon and redemption runs, by kind (face included at redemption).",
            ["kind"],
            registry=r,
        )
        self._unfunded = Gauge(
            "kessai_coupon_runs_unfunded",
            "Coupon and redemption runs due that the paying agent cannot pay yet (alert on > 0).",
            registry=r,
        )
        self._penalties = Counter(
            "kessai_fail_penalties",
            "Fail penalties written (one per liable party per fail day), by the failed "
            "leg's reason and currency (docs/fails.md).",
            ["reason", "currency"],
            registry=r,
        )
        self._penalty_units = Counter(
            "kessai_fail_penalty_units",
            "Sum of the fail penalties written, in the currency's smallest units.",
            ["currency"],
            registry=r,
        )
        self._breaches = Gauge(
            "kessai_reserve_breaches",
            "Bonds whose minted face exceeds the custodian's last attested holding at the "
            "CSD (alert on > 0).",
            registry=r,
        )

    def _child(self, metric: Counter, name: str, *labels: str) -> Any:
        key = (name, *labels)
        child = self._children.get(key)
        if child is None:
            overflow = tuple(_OTHER for _ in labels)
            if self._label_sets.get(name, 0) >= LABEL_SETS_MAX and labels != overflow:
                return self._child(metric, name, *overflow)
            child = self._children[key] = metric.labels(*labels)
            self._label_sets[name] = self._label_sets.get(name, 0) + 1
        return child

    # -- what the agents report ----------------------------------------------------------

    def trade_received(self, n: int = 1) -> None:
        if n:
            self._trades_received.inc(n)

    def settlement(self, status: str, reason: str | None) -> None:
        self._child(self._settlements, "settlements", status, reason or "").inc()

    def settled(self, trade_time_s: float, arrived_s: float, now_s: float) -> None:
        """A trade settled at ``now_s``: its latencies (a time of 0 is unknown: a
        trade forwarded before the saga carried its times)."""
        if trade_time_s > 0:
            self._since_trade_time.observe(max(0.0, now_s - trade_time_s))
        if arrived_s > 0:
            self._since_arrival.observe(max(0.0, now_s - arrived_s))

    def rejected(self, topic: str, reason: str) -> None:
        self._child(self._rejections, "rejections", topic, reason).inc()

    def ledger_events(self, n: int) -> None:
        if n:
            self._ledger_events.inc(n)

    def coupon_run(self, run_id: str, holders: int, yen: int) -> None:
        """A coupon or redemption run was paid (``run_id``: ``coupon:...``)."""
        kind = "redemption" if run_id.startswith("redemption:") else "coupon"
        self._coupon_payments.labels(kind).inc(holders)
        self._coupon_yen.labels(kind).inc(yen)

    def penalty(self, reason: str, currency: str, units: int) -> None:
        """One fail day's penalty of one liable party (few label sets: two reasons)."""
        self._penalties.labels(reason, currency).inc()
        self._penalty_units.labels(currency).inc(units)

    def unfunded_runs(self, n: int) -> None:
        self._unfunded.set(n)

    def reserve_breaches(self, n: int) -> None:
        self._breaches.set(n)

    def order_event(self, event: str) -> None:
        self._child(self._order_events, "order_events", event).inc()

    def fills(self, n: int) -> None:
        if n:
            self._fills.inc(n)

    # -- serving ---------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


def consumer_lags(app: Any) -> dict[tuple[str, int], int]:
    """Records waiting per input partition this worker owns: last stable offset minus
    the committed offset (changelogs aside). Partitions whose offsets the consumer has
    not learned yet are left out. Read from the consumer's caches: no request."""
    consumer = app.consumer
    changelogs = app.tables.changelog_topics
    committed = getattr(consumer, "_committed_offset", {})
    out: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        if tp.topic in changelogs:
            continue
        end = consumer.highwater(tp)
        if end is None:
            continue
        done = committed.get(tp) or 0
        out[(tp.topic, tp.partition)] = max(0, int(end) - int(done))
    return out


def health(app: Any, lag_max: int, engine: Any = None) -> tuple[int, dict[str, Any]]:
    """``GET /health``'s status and body: 503 until the worker first joined its group and
    recovered its tables (``starting``), while it recovers after a rebalance or its
    engine restores (``recovering``) or while an input partition lags more than
    ``lag_max`` records (``lagging``): a supervisor or load balancer should wait. Else
    200 (``ok``), with the engine's state (``leading`` or ``standby``) when it has one
    (``engine``: the worker's :class:`streams.engine.service.EngineService`)."""
    loops = {"engine": engine} if engine is not None else {}
    said = {name: loop.state for name, loop in loops.items()}
    if not app.tables.recovery.completed.is_set():
        return 503, {"status": "starting", **said}
    if getattr(app, "in_recovery", False) or "restoring" in said.values():
        return 503, {"status": "recovering", **said}
    lags = consumer_lags(app)
    for loop in loops.values():
        lags.update(loop.lags())
    behind = {f"{t}[{p}]": n for (t, p), n in sorted(lags.items()) if n > lag_max}
    if behind:
        return 503, {"status": "lagging", "lag_max": lag_max, "behind": behind, **said}
    body: dict[str, Any] = {
        "status": "ok",
        "lag_records_max": max(lags.values(), default=0),
        "partitions": len(lags),
    }
    return 200, {**body, **said}


class WorkerCollector(Collector):
    """The worker's technical gauges, read from faust at each scrape."""

    def __init__(self, app: Any, engine: Any = None) -> None:
        """``engine``: the worker's :class:`streams.engine.service.EngineService`."""
        self.app = app
        self.engine = engine
        #: Set by the worker's loop-lag task: how late its last wake-up was.
        self.event_loop_lag_s = 0.0

    def collect(self) -> Iterator[Any]:
        app = self.app
        yield from self._partitions_and_tables(app)
        yield from self._transactions()
        if self.engine is not None and self.engine.leading:
            yield from reference_gauges(self.engine.engine, self.engine.rules.onchain)

    def _partitions_and_tables(self, app: Any) -> Iterator[Any]:
        engine = self.engine
        try:
            lags = consumer_lags(app)
            if engine is not None:
                lags.update(engine.lags())
        except Exception:  # a scrape must still answer; the log says what failed
            logger.exception("metrics: consumer lag unavailable")
            lags = {}
        lag = GaugeMetricFamily(
            "kessai_consumer_lag_records",
            "Records waiting on an input partition this worker owns.",
            labels=["topic", "partition"],
        )
        for (topic, partition), n in sorted(lags.items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        rows = GaugeMetricFamily(
            "kessai_table_rows", "Rows in each table this worker holds.", labels=["table"]
        )
        for name, table in sorted(app.tables.items()):
            rows.add_metric([name], len(table))
        leading = engine is not None and engine.leading
        if leading:
            for name, n in engine.engine.sizes().items():
                rows.add_metric([name], n)
        yield rows
        total = int(app.conf.topic_partitions)
        yield GaugeMetricFamily(
            "kessai_ledger_partitions_owned",
            "Account partitions whose state this worker holds: all of them on the worker "
            "that runs the settlement engine, none on a standby.",
            value=total if leading else 0,
        )
        yield GaugeMetricFamily(
            "kessai_ledger_partitions",
            "Account partitions in all: the worker holding them all holds every account, "
            "and its conservation error alone must be 0.",
            value=total,
        )
        restoring = getattr(engine, "state", "") == "restoring"
        yield GaugeMetricFamily(
            "kessai_recovering",
            "1 while the worker rebuilds its tables or its engine's state from changelogs.",
            value=1 if getattr(app, "in_recovery", False) or restoring else 0,
        )
        yield GaugeMetricFamily(
            "kessai_event_loop_lag_seconds",
            "How late the worker's event loop last woke a timer.",
            value=self.event_loop_lag_s,
        )
        yield CounterMetricFamily(
            "kessai_rebalances",
            "Rebalances of the worker's faust group this worker took part in.",
            value=app.rebalancing_count,
        )

    def _transactions(self) -> Iterator[Any]:
        loops = [self.engine] if self.engine is not None else []
        times, committed = CommitTimes(), 0
        for loop in loops:
            times = times.plus(loop.stats.commits)
            committed += loop.stats.batches
        yield HistogramMetricFamily(
            "kessai_commit_duration_seconds",
            "Seconds each exactly-once commit took (the settlement engine's): deliver "
            "the records, add the offsets, commit the transaction.",
            buckets=times.cumulative(),
            sum_value=times.total_s,
        )
        yield CounterMetricFamily(
            "kessai_transactions_committed",
            "Kafka transactions committed (a failed commit stops the worker, so none abort).",
            value=committed,
        )


@dataclass
class StateSums:
    """Sums over one worker's tables, exact in smallest units."""

    available: dict[str, int] = field(default_factory=dict)
    locked: dict[str, int] = field(default_factory=dict)
    inflow: dict[str, int] = field(default_factory=dict)
    open_locks: int = 0
    #: (stage, pending reason or "") -> open trades.
    open_trades: dict[tuple[str, str], int] = field(default_factory=dict)
    #: When the oldest open trade arrived (epoch seconds; None: none open, or unknown).
    oldest_arrived_s: float | None = None

    def conservation_error(self, asset: str) -> int:
        """Balances minus net inflow, in units (0 on one worker that holds everything)."""
        held = self.available.get(asset, 0) + self.locked.get(asset, 0)
        return held - self.inflow.get(asset, 0)

    @property
    def assets(self) -> list[str]:
        return sorted(self.available.keys() | self.locked.keys() | self.inflow.keys())


def reference_gauges(engine: Any, onchain: dict[str, int] | None) -> Iterator[Any]:
    """The engine's reference data ops watch: each token's FX reference (its rate,
    and when it was observed: USDC trades are refused once it is older than
    ``KESSAI_FX_MAX_AGE_S``, docs/fx.md), and the bridge's dust below one ledger unit
    (docs/tokens.md)."""
    rate = GaugeMetricFamily(
        "kessai_fx_reference_rate",
        "The fx-rates reference the engine holds: yen per one token.",
        labels=["currency"],
    )
    at = GaugeMetricFamily(
        "kessai_fx_reference_timestamp_seconds",
        "When the fx-rates reference the engine holds was observed (its `at`), epoch s.",
        labels=["currency"],
    )
    for currency, reference in sorted(engine.fx_rates.items()):
        rate.add_metric([currency], float(reference.rate))
        at.add_metric([currency], reference.at.timestamp())
    yield rate
    yield at
    dust = GaugeMetricFamily(
        "kessai_bridge_dust_tokens",
        "Deposits' remainder below one ledger unit the engine keeps for the bridge, in "
        "tokens (each whole unit goes to the account bridge-dust:{token}).",
        labels=["token"],
    )
    for token, units in sorted(engine.dust.items()):
        dust.add_metric([token], units / 10 ** (onchain or {}).get(token, 0))
    yield dust


def state_sums(accounts: Any, inflow: Any) -> StateSums:
    """Sum every account (any mapping of account rows) and the ``inflow`` rows (asset ->
    units, one row per source): what the running sums must always equal."""
    total: dict[str, int] = {}
    for row in list(inflow.values()):
        for asset, units in (row or {}).items():
            total[asset] = total.get(asset, 0) + int(units)
    live = LiveSums()
    live.rebuild(accounts, total)
    return live_state_sums(live)


def live_state_sums(live: LiveSums) -> StateSums:
    """:class:`StateSums` from the running sums (balances, locks and inflow)."""
    return StateSums(
        available=dict(live.available),
        locked=dict(live.locked),
        inflow=dict(live.inflow),
        open_locks=live.open_locks,
    )


class StateCollector(Collector):
    """Balances, locks, inflow, conservation and open trades, from ``sums`` (the
    settlement engine's running sums, :func:`streams.engine.agent.state_sums`): a scrape
    is O(assets + open trades). Nothing while ``sums`` has none (a standby, a restore)."""

    def __init__(self, sums: Callable[[], StateSums | None], tokens: dict[str, int]) -> None:
        self.source = sums
        self.tokens = tokens

    def sums(self) -> StateSums | None:
        return self.source()

    def _tokens(self, asset: str, units: int) -> float:
        return float(units) / float(10 ** self.tokens.get(asset, 0))

    def collect(self) -> Iterator[Any]:
        try:
            sums = self.sums()
        except Exception:  # a scrape must still answer; the log says what failed
            logger.exception("metrics: table sums unavailable")
            return
        if sums is None:
            # A standby, or an engine restoring: half-restored sums would page the
            # conservation alert. Say nothing until they are whole.
            return
        balance = GaugeMetricFamily(
            "kessai_balance_tokens",
            "Balances this worker holds, by asset (tokens; bonds in face value) and kind.",
            labels=["asset", "kind"],
        )
        inflow = GaugeMetricFamily(
            "kessai_inflow_tokens",
            "Deposits minus withdrawals applied on this worker's partitions, by asset.",
            labels=["asset"],
        )
        error = GaugeMetricFamily(
            "kessai_conservation_error_units",
            "Balances minus net inflow, by asset, in the asset's smallest units (exact "
            "integers below 2**53), both as committed: it must be 0 at every scrape.",
            labels=["asset"],
        )
        for asset in sums.assets:
            balance.add_metric(
                [asset, "available"], self._tokens(asset, sums.available.get(asset, 0))
            )
            balance.add_metric([asset, "locked"], self._tokens(asset, sums.locked.get(asset, 0)))
            inflow.add_metric([asset], self._tokens(asset, sums.inflow.get(asset, 0)))
            error.add_metric([asset], float(sums.conservation_error(asset)))
        yield balance
        yield inflow
        yield error
        yield GaugeMetricFamily(
            "kessai_open_locks", "Locks held on this worker's accounts.", value=sums.open_locks
        )
        open_trades = GaugeMetricFamily(
            "kessai_trades_open",
            "Trades settling on this worker, by saga stage (failing: past its cut-off, "
            "recycling) and pending reason.",
            labels=["stage", "reason"],
        )
        for (stage, reason), n in sorted(sums.open_trades.items()):
            open_trades.add_metric([stage, reason], n)
        yield open_trades
        oldest = sums.oldest_arrived_s
        yield GaugeMetricFamily(
            "kessai_oldest_open_trade_age_seconds",
            "Seconds since the oldest trade still settling on this worker arrived, or its "
            "settlement date began if later; failing trades aside (0: none).",
            value=max(0.0, time.time() - oldest) if oldest is not None else 0.0,
        )
