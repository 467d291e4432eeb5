"""What the matching agent makes of one ``orders`` record. Pure: no faust, no Kafka.

:func:`handle_record` is the agent's whole logic for one record: decode it, check its
key and time, hand it to the :class:`~streams.matching.matcher.Matcher`, and build the
records to send. The agent (:mod:`streams.matching.agent`) sends them;
``kessai replay`` (:mod:`streams.audit.replay`) runs the same function over the
committed ``orders`` and compares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from pydantic import ValidationError

from schemas import (
    ORDERS,
    TRADES,
    VALUE_BYTES_MAX,
    OrderStatusChanged,
    SchemaError,
    SubmitOrder,
    TradeExecuted,
    check_key,
    decode,
)
from streams.matching.matcher import (
    MatchedTrade,
    Matcher,
    OrderRequest,
    OrderUpdate,
    rejected_update,
)
from streams.security import signing
from streams.security.quota import Quota

#: The ``venue`` of every trade the matcher makes.
MATCHING_VENUE = "kessai"


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


def rejected_event(raw: bytes | None, reason: str, at: datetime) -> OrderStatusChanged | None:
    """The ``rejected`` order event of a record that did not decode, if it names its
    order validly (``order_id``, ``venue``, ``isin``, ``currency``); else None, and only
    ``rejections`` hears of it (an order event with a bad ISIN would be bad itself)."""
    if raw is None or len(raw) > VALUE_BYTES_MAX:
        return None
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
class RecordOutputs:
    """The records one ``orders`` record causes; ``rejection``: (reason, detail)."""

    trades: list[TradeExecuted] = field(default_factory=list)
    order_events: list[OrderStatusChanged] = field(default_factory=list)
    rejection: tuple[str, str] | None = None


def handle_record(
    matcher: Callable[[], Matcher],
    key: bytes | None,
    value: bytes | None,
    timestamp_s: float | None,
    *,
    signers: signing.Registry | None = None,
    signing_key: signing.SigningKey | None = None,
    quota: Quota | None = None,
    partition: int = 0,
) -> RecordOutputs:
    """Everything the agent sends for one record (``matcher``: the current books, lazily).

    With ``signers`` the venue's signature on the order is checked before the books see
    it; with ``signing_key`` the trades made are signed (the worker's key; a replay,
    which has no private key, compares them without their signatures). With ``quota``,
    an order past its venue's rate on ``partition`` is ``rate_limited`` (its id stays
    free for a retry).
    """
    out = RecordOutputs()
    # The record's own time: a replay makes the same trades, at the same time.
    at = record_time(timestamp_s)
    try:
        if at is None:
            raise SchemaError("malformed", f"record timestamp {timestamp_s!r} is not a time")
        check_key(key)
        decoded = decode(ORDERS, value)
        if key != decoded.isin.encode():
            # Every order of a bond must reach the one partition that holds its
            # book: keyed by anything else, it would start a second book.
            raise SchemaError(
                "wrong_key",  # type: ignore[arg-type]
                f"an order is keyed by its isin {decoded.isin!r}, not {key!r}",
            )
        assert value is not None  # decode refuses a tombstone
        refused = _signature_refused(signers, key, value, at)
    except SchemaError as err:
        out.rejection = (err.reason, err.detail)
        record = rejected_event(value, err.reason, at or _now())
        if record is not None:
            out.order_events.append(record)
        return out
    if refused is not None:
        # Only `rejections` hears of it: an order event would speak for an order of
        # the venue the record claims, which it cannot prove it is.
        out.rejection = refused
        return out
    assert isinstance(decoded, SubmitOrder)
    request = request_of(decoded)
    limited = quota.admit(decoded.venue, partition, at.timestamp()) if quota else None
    if limited is not None:
        # Its venue is who it says (checked above), so it hears why; the id stays free.
        out.rejection = limited
        out.order_events = [order_event(rejected_update(request, limited[0]), at)]
        return out
    handled = matcher().handle(request)
    out.trades = [trade_record(t, at) for t in handled.trades]
    if signing_key is not None:
        out.trades = [signing.sign_model(TRADES, t, signing_key) for t in out.trades]
    out.order_events = [order_event(u, at) for u in handled.updates]
    if handled.rejected is not None:
        [update] = handled.updates
        detail = f"order {update.order_id} of {update.venue}: {handled.rejected}"
        out.rejection = (handled.rejected, detail)
    return out


def _signature_refused(
    signers: signing.Registry | None, key: bytes, value: bytes, at: datetime
) -> tuple[str, str] | None:
    if signers is None:
        return None
    refused = signing.verify(signers, ORDERS, key, value, at)
    return refused if isinstance(refused, tuple) else None


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
