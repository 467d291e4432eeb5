"""The matching agent: ``orders`` in; ``trades``, ``order-events`` and ``rejections`` out.

One agent, ``matching``, reads ``orders`` (key ISIN, so one partition holds every
order of a bond) and owns the ``orders`` table: one row per order
(:mod:`streams.matching.matcher`). It decodes each record, hands it to the
:class:`~streams.matching.matcher.Matcher` and sends what comes back:

- each fill as a ``TradeExecuted`` record on ``trades`` (key trade_id, venue ``kessai``, the
  time of the order that made it), which the settlement intake takes like any
  venue's trade;
- each step of each order's life as an ``OrderStatusChanged`` on ``order-events``
  (key ISIN);
- a bad order to ``rejections`` and, when it names its order, as ``rejected`` on
  ``order-events`` too.

It reads one topic and is the only writer of its table, at ``concurrency=1``
(docs/exactly-once.md, hole 9). The sorted books live in the matcher's memory,
rebuilt from the table after every rebalance (the table itself is emptied and
recovered then: hole 10).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from faust.types import StreamT

from schemas import ORDER_EVENTS, ORDERS, REJECTIONS, TRADES, source_of
from streams.config import Settings
from streams.matching import handler as records
from streams.matching.matcher import Matcher
from streams.runtime.agentkit import raw_topic, rejection
from streams.runtime.metrics import Metrics
from streams.security import signing
from streams.security.quota import Limit, Quota
from streams.topics import ORDER_RATES_TABLE, ORDERS_TABLE

logger = logging.getLogger(__name__)


@dataclass
class _Books:
    """The matcher of this worker's current assignment."""

    matcher: Matcher | None = None
    generation: int | None = None


def register(app: faust.App, settings: Settings, metrics: Metrics) -> dict[str, Any]:
    n = settings.partitions
    orders = raw_topic(app, ORDERS, partitions=n)
    trades = raw_topic(app, TRADES, partitions=n)
    order_events = raw_topic(app, ORDER_EVENTS, partitions=n)
    rejections = raw_topic(app, REJECTIONS, partitions=n)
    # JSON bytes per row, no default: a missing order is a KeyError, not a new row.
    table = app.Table(ORDERS_TABLE, partitions=n, key_type=str, value_type=bytes)
    books = _Books()
    signers, signing_key = signing.for_worker(settings)
    rates = app.Table(ORDER_RATES_TABLE, partitions=n, key_type=str, value_type=bytes)
    quota = Quota(rates, Limit(settings.venue_rate_per_s, settings.venue_burst))

    def matcher() -> Matcher:
        # Tables are emptied and recovered at every rebalance (KessaiTableManager):
        # the books in memory are rebuilt from the recovered rows on first use after.
        generation = app.consumer_generation_id
        if books.matcher is None or books.generation != generation:
            books.matcher = Matcher(table, tokens=settings.tokens)
            books.generation = generation
            count = len(books.matcher.books())
            logger.info("matching: %d books rebuilt from %d order rows", count, len(table))
        return books.matcher

    @app.agent(orders, concurrency=1)
    async def matching(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            key, value = msg.key, event.value
            out = records.handle_record(
                matcher,
                key,
                value,
                msg.timestamp,
                signers=signing.current(signers),
                signing_key=signing_key,
                quota=quota,
                partition=msg.partition,
            )
            for t in out.trades:
                await trades.send(key=t["trade_id"].encode(), value=orjson.dumps(t))
            for e in out.order_events:
                await order_events.send(key=e["isin"].encode(), value=orjson.dumps(e))
                metrics.order_event(e["event"])
            metrics.fills(len(out.trades))
            if out.rejection is not None:
                source = source_of(ORDERS, msg.partition, msg.offset, key, value)
                out_key, out_value = rejection(source, *out.rejection)
                await rejections.send(key=out_key, value=out_value)
                metrics.rejected(ORDERS, out.rejection[0])

    return {"matching": matching, "orders": table}
