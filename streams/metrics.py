"""The worker's Prometheus metrics: what the pipeline did, counted where it happens.

One :class:`Metrics` per app, with a registry of its own (never prometheus_client's
global one: two apps in one process, as in the tests, must not share counts). The
agents call its methods as they send; ``GET /metrics`` on the worker's web port
serves the registry in Prometheus' text format (``streams/app.py`` wires it).

Names follow Prometheus' conventions: a ``kessai_`` prefix, base units, ``_total`` on
counters (prometheus_client adds it). Label values come from kessai's own code paths
(topic names, reason codes, statuses), never from input; :data:`LABEL_SETS_MAX` bounds
them anyway, and ``.labels()`` children are cached, not looked up per event.

This is the first part of issue 5 (operations): business counters. Latency
histograms, balances and locks per asset, and the technical metrics (lag,
transactions, rebalances, table sizes, event-loop lag) are still to come; see
notes/2026-11-26-operations-plan.md.
"""

from __future__ import annotations

from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

__all__ = ["CONTENT_TYPE", "LABEL_SETS_MAX", "Metrics"]

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
