"""The matcher's output records built through the schemas' models: the reference the
matcher's own builders (:mod:`streams.matching.handler`, no pydantic) are held to."""

from __future__ import annotations

from datetime import datetime

from schemas import OrderStatusChanged, TradeExecuted
from streams.matching.handler import MATCHING_VENUE
from streams.matching.matcher import MatchedTrade, OrderUpdate


def trade_model(t: MatchedTrade, at: datetime) -> TradeExecuted:
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


def order_event_model(u: OrderUpdate, at: datetime) -> OrderStatusChanged:
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
