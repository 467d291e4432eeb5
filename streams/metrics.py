"""The worker's Prometheus metrics: what the pipeline did, counted where it happens.

One :class:`Metrics` per app, with a registry of its own (never prometheus_client's
global one: two apps in one process, as in the tests, must not share counts). The
agents call its methods as they send; ``GET /metrics`` on the worker's web port
serves the registry in Prometheus' text format (``streams/app.py`` wires it).

Names follow Prometheus' conventions: a ``kessai_`` prefix, base units, ``_total`` on
counters (prometheus_client adds it). Label values come from kessai's own code paths
(topic names, reason codes, statuses), never from input; :data:`LABEL_SETS_MAX` bounds
them anyway, and ``.labels()`` children are cached, not looked up per event.

:class:`WorkerCollector` adds what is read from the worker itself at scrape time
(nothing per event): consumer lag per input partition, rows per table, whether it is
recovering, event-loop lag, rebalances and committed transactions.

Still to come for issue 5: latency histograms, balances and locks per asset, and the
conservation gauge (notes/2026-11-26-operations-plan.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

__all__ = [
    "CONTENT_TYPE",
    "LABEL_SETS_MAX",
    "Metrics",
    "WorkerCollector",
    "consumer_lags",
    "health",
]

#: The exposition's content type.
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
#: Label sets one metric may have; past it, new ones are counted under "other".
LABEL_SETS_MAX: Final = 200
_OTHER: Final = "other"


class Metrics:
    """The business counters of one worker."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
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
        self._fills = Counter(
            "kessai_fills",
            "Trades made by the matcher (one per fill).",
            registry=r,
        )
        self._children: dict[tuple[str, ...], Any] = {}
        self._label_sets: dict[str, int] = {}

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

    def trade_received(self) -> None:
        self._trades_received.inc()

    def settlement(self, status: str, reason: str | None) -> None:
        self._child(self._settlements, "settlements", status, reason or "").inc()

    def rejected(self, topic: str, reason: str) -> None:
        self._child(self._rejections, "rejections", topic, reason).inc()

    def ledger_events(self, n: int) -> None:
        if n:
            self._ledger_events.inc(n)

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


def health(app: Any, lag_max: int) -> tuple[int, dict[str, Any]]:
    """``GET /health``'s status and body: 503 while recovering or while an input
    partition lags more than ``lag_max`` records (a supervisor or load balancer should
    wait), else 200."""
    if getattr(app, "in_recovery", False):
        return 503, {"status": "recovering"}
    lags = consumer_lags(app)
    behind = {f"{t}[{p}]": n for (t, p), n in sorted(lags.items()) if n > lag_max}
    if behind:
        return 503, {"status": "lagging", "lag_max": lag_max, "behind": behind}
    return 200, {
        "status": "ok",
        "lag_records_max": max(lags.values(), default=0),
        "partitions": len(lags),
    }


class WorkerCollector(Collector):
    """The worker's technical gauges, read from faust at each scrape."""

    def __init__(self, app: Any) -> None:
        self.app = app
        #: Set by the worker's loop-lag task: how late its last wake-up was.
        self.event_loop_lag_s = 0.0

    def collect(self) -> Iterator[Any]:
        app = self.app
        try:
            lags = consumer_lags(app)
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
        yield rows
        yield GaugeMetricFamily(
            "kessai_recovering",
            "1 while the worker rebuilds its tables from their changelogs.",
            value=1 if getattr(app, "in_recovery", False) else 0,
        )
        yield GaugeMetricFamily(
            "kessai_event_loop_lag_seconds",
            "How late the worker's event loop last woke a timer.",
            value=self.event_loop_lag_s,
        )
        yield CounterMetricFamily(
            "kessai_rebalances",
            "Consumer-group rebalances this worker took part in.",
            value=getattr(app.tables, "rebalances_total", 0),
        )
        transactions = getattr(getattr(app.consumer, "transactions", None), "commits_total", 0)
        yield CounterMetricFamily(
            "kessai_transactions_committed",
            "Kafka transactions committed (a failed commit stops the worker, so none abort).",
            value=transactions,
        )
