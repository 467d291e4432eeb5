"""The matching agent: ``orders`` in; ``trades``, ``order-events`` and ``rejections`` out.

One agent, ``matching``, reads ``orders`` (key ISIN, so one partition holds every
order of a bond) and owns the ``orders`` table: one row per order
(:mod:`streams.matching.core`). It decodes each record, hands it to the
:class:`~streams.matching.core.Matcher` and sends what comes back:

- each fill as a ``TradeExecuted`` on ``trades`` (key trade_id, venue ``kessai``, the
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
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.types import StreamT
from pydantic import ValidationError

from schemas import (
    ORDER_EVENTS,
    ORDERS,
    REJECTIONS,
    TRADES,
    OrderStatusChanged,
    SchemaError,
    SubmitOrder,
    TradeExecuted,
    decode,
    encode,
)
from streams.config import Settings
from streams.ledger.agent import raw_topic, rejection
from streams.matching.core import Handled, MatchedTrade, Matcher, OrderRequest, OrderUpdate

logger = logging.getLogger(__name__)

#: The ``venue`` of every trade the matcher makes.
MATCHING_VENUE = "kessai"
#: The table of order rows.
ORDERS_TABLE = "orders"


def request_of(order: SubmitOrder) -> OrderRequest:
    return OrderRequest(
        isin=order.isin,
        currency=order.currency,
        venue=order.venue,
        order_id=order.order_id,
        account=order.account,
        action=order.action,
        side=order.side,
        quantity=order.quantity,
        price=order.price,
        time_in_force=order.time_in_force,
    )


def trade_record(t: MatchedTrade, at: datetime) -> TradeExecuted:
    """The ``trades`` record of a fill, made at *at* (the taking order's record time)."""
    return TradeExecuted(
        trade_id=t.trade_id,
        venue=MATCHING_VENUE,
        isin=t.isin,
        buyer=t.buyer,
        seller=t.seller,
        quantity=t.quantity,
        price=t.price,
        currency=t.currency,
        trade_time=at,
    )


def order_event(u: OrderUpdate, at: datetime) -> OrderStatusChanged:
    return OrderStatusChanged(
        order_id=u.order_id,
        venue=u.venue,
        isin=u.isin,
        currency=u.currency,
        account=u.account,
        side=u.side,
        event=u.kind,
        filled_quantity=u.filled,
        remaining_quantity=u.remaining,
        price=u.price,
        trade_id=u.trade_id,
        reason=u.reason,
        at=at,
    )


def rejected_event(raw: bytes, reason: str, at: datetime) -> OrderStatusChanged | None:
    """The ``rejected`` order event of a record that did not decode, if it names its
    order validly (``order_id``, ``venue``, ``isin``, ``currency``); else None, and only
    ``rejections`` hears of it (an order event with a bad ISIN would be bad itself)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        return OrderStatusChanged.model_validate(
            {
                "order_id": data.get("order_id"),
                "venue": data.get("venue"),
                "isin": data.get("isin"),
                "currency": data.get("currency"),
                "event": "rejected",
                "reason": reason,
                "at": at,
            }
        )
    except ValidationError:
        return None


@dataclass
class _Books:
    """The matcher of this worker's current assignment."""

    matcher: Matcher | None = None
    generation: int | None = None


def register(app: faust.App, settings: Settings) -> dict[str, Any]:
    n = settings.partitions
    orders = raw_topic(app, ORDERS, partitions=n)
    trades = raw_topic(app, TRADES, partitions=n)
    order_events = raw_topic(app, ORDER_EVENTS, partitions=n)
    rejections = raw_topic(app, REJECTIONS, partitions=n)
    # JSON bytes per row, no default: a missing order is a KeyError, not a new row.
    table = app.Table(ORDERS_TABLE, partitions=n, key_type=str, value_type=bytes)
    books = _Books()

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

    async def emit(handled: Handled, at: datetime, key: bytes | None, value: bytes) -> None:
        for t in handled.trades:
            await trades.send(key=t.trade_id.encode(), value=encode(trade_record(t, at)))
        for u in handled.updates:
            await order_events.send(key=u.isin.encode(), value=encode(order_event(u, at)))
        if handled.rejected is not None:
            [update] = handled.updates
            detail = f"order {update.order_id} of {update.venue}: {handled.rejected}"
            await rejections.send(
                key=key, value=rejection(ORDERS, key, value, handled.rejected, detail)
            )

    @app.agent(orders, concurrency=1)
    async def matching(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            key, value = msg.key, event.value
            # The record's own time: a replay makes the same trades, at the same time.
            at = record_time(msg.timestamp)
            try:
                if at is None:
                    raise SchemaError(
                        "malformed", f"record timestamp {msg.timestamp!r} is not a time"
                    )
                decoded = decode(ORDERS, value)
                if key != decoded.isin.encode():
                    # Every order of a bond must reach the one partition that holds its
                    # book: keyed by anything else, it would start a second book.
                    raise SchemaError(
                        "wrong_key",  # type: ignore[arg-type]
                        f"an order is keyed by its isin {decoded.isin!r}, not {key!r}",
                    )
            except SchemaError as err:
                await rejections.send(
                    key=key, value=rejection(ORDERS, key, value, err.reason, err.detail)
                )
                record = rejected_event(value, err.reason, at or _now())
                if record is not None:
                    await order_events.send(key=record.isin.encode(), value=encode(record))
                continue
            assert isinstance(decoded, SubmitOrder)
            handled = matcher().handle(request_of(decoded))
            await emit(handled, at, key, value)

    return {"matching": matching, "orders": table}


def _now() -> datetime:
    return datetime.now(UTC)


def record_time(timestamp_s: float | None) -> datetime | None:
    """A record's Kafka timestamp (faust: seconds) as a time; None when it is none
    (missing, 0, or past what a datetime holds: any producer can set one)."""
    if not timestamp_s:
        return None
    try:
        return datetime.fromtimestamp(timestamp_s, UTC)
    except (ValueError, OverflowError, OSError):
        return None
