"""The engine in the faust worker: its task, its metrics and its HTTP queries.

The engine is not a faust agent (docs/adr/0031): it reads and writes with aiokafka
directly, one transaction per batch, and it runs on one worker at a time. faust hosts
it: :func:`register` adds it to the app as a task, reports each committed batch to
the worker's :class:`~streams.runtime.metrics.Metrics` and the dashboard, and serves
``/positions`` and ``/trades`` from its memory (:mod:`streams.engine.views`).

Fail-stop: an error anywhere in the engine, or the loss of its inputs to another
worker, ends the process at once (:func:`streams.runtime.batches.run_or_stop`).
"""

from __future__ import annotations

import logging
import time

import faust

from streams.config import Settings
from streams.engine import views
from streams.engine.archive import ArchiveIndex
from streams.engine.core import Outputs
from streams.engine.service import EngineService
from streams.runtime.batches import run_or_stop
from streams.runtime.metrics import Metrics, StateSums, live_state_sums
from streams.security import signing

logger = logging.getLogger(__name__)

__all__ = ["register", "report", "state_sums"]


def register(app: faust.App, settings: Settings, metrics: Metrics) -> EngineService:
    """Add the engine to ``app``; the service, for the metrics' collectors."""
    signers, signing_key = signing.for_worker(settings)

    def on_batch(out: Outputs, now_s: float) -> None:
        report(metrics, out, time.time())

    service = EngineService(settings, on_batch=on_batch, signers=signers, signing_key=signing_key)
    # Under a window, finished trades leave memory for the archive: index it here.
    archive = ArchiveIndex(settings) if settings.trade_window_s is not None else None
    views.register(app, service, settings.tokens, archive)

    run_or_stop(app, "engine", service.run)
    if archive is not None:
        run_or_stop(app, "archive", archive.run)
    return service


def state_sums(service: EngineService) -> StateSums | None:
    """The balances, inflow and open trades the engine holds (None: not running here).

    Balances, locks and inflow are the service's running sums of what is committed
    (:mod:`streams.runtime.livesums`); open trades are counted at each scrape (few: a
    funded trade never stays open past its batch)."""
    if not service.leading or not service.sums.ready:
        return None
    engine = service.engine
    out = live_state_sums(service.sums)
    oldest: float | None = None
    for saga in list(engine.open.values()):
        waiting = "queued" in (saga.bonds, saga.cash)
        # A fail (past its cut-off, recycling) is counted as such: it may stay for days.
        stage = "failing" if saga.fail_days else saga.stage
        key = (stage, (saga.pending_reason or "") if waiting or saga.fail_days else "")
        out.open_trades[key] = out.open_trades.get(key, 0) + 1
        if saga.fail_days or saga.stage == "waiting":
            continue  # not late: failing (its own alert) or waiting for its date
        started = max(saga.trade.arrived_s, saga.trade.starts_at_s)
        if saga.trade.arrived_s > 0 and (oldest is None or started < oldest):
            oldest = started
    out.oldest_arrived_s = oldest
    return out


def report(metrics: Metrics, out: Outputs, now_s: float) -> None:
    """Count one committed batch: what the agents counted one record at a time."""
    metrics.trade_received(out.received)
    for event in out.order_events:
        metrics.order_event(event)
    metrics.fills(out.fills)
    for topic, reason in out.rejected:
        metrics.rejected(topic, reason)
    metrics.ledger_events(out.ledger_events)
    for run_id, holders, yen in out.paid:
        metrics.coupon_run(run_id, holders, yen)
        logger.info("engine: paid %s to %d holders: %d JPYC", run_id, holders, yen)
    for run_id, needed, available in out.unfunded:
        logger.warning("engine: %s is due and unfunded: the paying agent has %d of the %d "
                       "JPYC units it needs; nothing is paid until it has all", run_id,
                       available, needed)  # fmt: skip
    metrics.unfunded_runs(len(out.unfunded))
    for trade_id, date, yen in out.claims_unpaid:
        logger.warning("engine: market claim of %s for the coupon of %s (%d JPYC) not paid: "
                       "the seller lacks the cash", trade_id, date, yen)  # fmt: skip
    for isin, minted, attested in out.reserve_breaches:
        logger.warning("engine: %s: %d face minted, more than the %d the custodian attests "
                       "it holds at the CSD", isin, minted, attested)  # fmt: skip
    metrics.reserve_breaches(len(out.reserve_breaches))
    for reason, currency, units in out.penalties:
        metrics.penalty(reason, currency, units)
    for status in out.statuses:
        metrics.settlement(status.status, status.reason)
        metrics.recent_settlements.append(status.record)
        if status.status == "settled":
            metrics.settled(status.trade.trade_time_s, status.trade.arrived_s, now_s)
