"""The matcher in the faust worker: ``orders`` in; ``trades``, ``order-events`` and
``rejections`` out.

The matcher is not a faust agent any more (docs/adr/0032): it runs on the settlement
engine's batch runtime (:mod:`streams.matching.service`), one worker at a time, a whole
batch of orders in one Kafka transaction. faust hosts it: :func:`register` adds it to
the app as a task and counts what it does in the worker's
:class:`~streams.runtime.metrics.Metrics`. For each order it sends:

- each fill as a ``TradeExecuted`` record on ``trades`` (key trade_id, venue
  ``kessai``, the time of the order that made it), which the engine takes like any
  venue's trade;
- each step of each order's life as an ``OrderStatusChanged`` on ``order-events``
  (key ISIN);
- a bad order to ``rejections`` and, when it names its order, as ``rejected`` on
  ``order-events`` too.

Fail-stop: an error anywhere in the loop, or the loss of ``orders`` to another worker,
ends the process (:func:`streams.runtime.batches.run_or_stop`).
"""

from __future__ import annotations

import faust

from schemas import ORDERS
from streams.config import Settings
from streams.matching.handler import RecordOutputs
from streams.matching.service import MatcherService
from streams.runtime.batches import run_or_stop
from streams.runtime.metrics import Metrics
from streams.security import signing

__all__ = ["register"]


def register(app: faust.App, settings: Settings, metrics: Metrics) -> MatcherService:
    """Add the matcher to ``app``; the service, for the metrics' collectors."""
    signers, signing_key = signing.for_worker(settings)

    def on_record(out: RecordOutputs) -> None:
        for e in out.order_events:
            metrics.order_event(e["event"])
        metrics.fills(len(out.trades))
        if out.rejection is not None:
            metrics.rejected(ORDERS, out.rejection[0])

    service = MatcherService(
        settings, on_record=on_record, signers=signers, signing_key=signing_key
    )
    run_or_stop(app, "matcher", service.run)
    return service
