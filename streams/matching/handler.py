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
from datetime import UTC, date, datetime
from typing import Any, Final

import orjson
from pydantic import ValidationError

from schemas import (
    ORDERS,
    TRADES,
    VALUE_BYTES_MAX,
    OrderStatusChanged,
    SchemaError,
    SubmitOrder,
    check_key,
    decode,
)
from streams.bonds.terms import trade_dates
from streams.matching.book import Funding
from streams.matching.matcher import (
    MatchedTrade,
    Matcher,
    OrderRequest,
    OrderUpdate,
    Reserve,
    rejected_update,
)
from streams.security import signing
from streams.security.quota import Quota

#: The ``venue`` of every trade the matcher makes.
MATCHING_VENUE = "kessai"
#: The ``schema_version`` of the records the matcher writes.
SCHEMA_VERSION: Final = 1


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
        settlement_date=None
        if order.settlement_date is None
        else order.settlement_date.isoformat(),
        max_notional=order.max_notional,
    )


def trade_object(t: MatchedTrade, at: str) -> dict[str, Any]:
    """The ``trades`` record of a fill, made at *at* (the taking order's record time,
    :func:`~streams.security.signing.utc_text`): what ``encode(TradeExecuted(...))`` writes,
    built without the model (``tests/unit/matching/test_wire.py``). The matcher made
    and checked every value; validating them again cost half its time per order."""
    out = {
        "schema_version": SCHEMA_VERSION,
        "trade_id": t.trade_id,
        "venue": MATCHING_VENUE,
        "isin": t.isin,
        "buyer": t.buyer,
        "seller": t.seller,
        "quantity": t.quantity,
        "price": format(t.price, "f"),
        "currency": t.currency,
        # No accrued_interest: the settlement engine computes it (issue 20).
        "trade_time": at,
    }
    if t.settlement_date is not None:
        out["settlement_date"] = t.settlement_date
    return out


def signed_trade(obj: dict[str, Any], key: signing.SigningKey) -> dict[str, Any]:
    """A trade object signed by the worker's key, its members in the model's order."""
    signed = signing.sign(TRADES, obj, key)
    head = {"schema_version": SCHEMA_VERSION, "signer": signed["signer"]}
    head["signature"] = signed["signature"]
    return head | {k: v for k, v in obj.items() if k != "schema_version"}


def order_event_object(u: OrderUpdate, at: str) -> dict[str, Any]:
    """The ``order-events`` record of one step of an order: what
    ``encode(OrderStatusChanged(...))`` writes, built without the model."""
    return {
        "schema_version": SCHEMA_VERSION,
        "order_id": u.order_id,
        "venue": u.venue,
        "isin": u.isin,
        "currency": u.currency,
        "account": u.account,
        "side": u.side,
        "event": u.kind,
        "filled_quantity": u.filled,
        "remaining_quantity": u.remaining,
        "price": None if u.price is None else format(u.price, "f"),
        "trade_id": u.trade_id,
        "reason": u.reason,
        "at": at,
    }


def rejected_event(raw: bytes | None, reason: str, at: datetime) -> dict[str, Any] | None:
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
        # Through the model: the record did not decode, so nothing in it is checked.
        event = OrderStatusChanged.model_validate(
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
    out: dict[str, Any] = event.model_dump(mode="json")
    return out


@dataclass
class RecordOutputs:
    """The records one ``orders`` record causes, as the JSON objects sent (key: the
    trade's ``trade_id``, the event's ``isin``); ``rejection``: (reason, detail)."""

    trades: list[dict[str, Any]] = field(default_factory=list)
    order_events: list[dict[str, Any]] = field(default_factory=list)
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
    verified: Any = None,
    reserve: Reserve | None = None,
    funding: Funding | None = None,
    closes: bool = True,
) -> RecordOutputs:
    """Everything the agent sends for one record (``matcher``: the current books, lazily).
    With ``signers`` the venue's signature on the order is checked before the books see
    it; with ``signing_key`` the trades made are signed (the worker's key; a replay,
    which has no private key, compares them without their signatures). With ``quota``,
    an order past its venue's rate on ``partition`` is ``rate_limited`` (its id stays
    free for a retry). ``verified``: the signature checked ahead; ``reserve``,
    ``funding``: the engine's reservations (:meth:`Matcher.handle`)."""
    out = RecordOutputs()
    at = record_time(timestamp_s)  # its own time: a replay makes the same trades
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
        refused = _signature_refused(signers, key, value, at, verified)
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
    limited = _held_back(decoded, quota, partition, at, closes)
    if limited is not None:
        # Its venue is who it says (checked above), so it hears why; the id stays free
        # (a rate-limited order, or one dated outside its trade date's window).
        out.rejection = limited
        update = rejected_update(request, limited[0])
        out.order_events = [order_event_object(update, signing.utc_text(at))]
        return out
    handled = matcher().handle(request, reserve=reserve, funding=funding)
    at_text = signing.utc_text(at)
    out.trades = [trade_object(t, at_text) for t in handled.trades]
    if signing_key is not None:
        out.trades = [signed_trade(t, signing_key) for t in out.trades]
    out.order_events = [order_event_object(u, at_text) for u in handled.updates]
    if handled.rejected is not None:
        [update] = handled.updates
        detail = f"order {update.order_id} of {update.venue}: {handled.rejected}"
        out.rejection = (handled.rejected, detail)
    return out


def _held_back(
    order: SubmitOrder, quota: Quota | None, partition: int, at: datetime, closes: bool
) -> tuple[str, str] | None:
    """Why an order is refused before the books see it, its id left free: a ``close``
    where records may not close (the engine closes a matured bond's books itself, ADR
    0035), past its venue's rate, or dated outside its trade date's window. A
    ``close`` is never rate-limited: it must not wait."""
    if order.action == "close" and not closes:
        return "not_authorized", "a bond's books are closed by kessai at its maturity"
    if quota is not None and order.action != "close":
        limited = quota.admit(order.venue, partition, at.timestamp())
        if limited is not None:
            return limited
    if order.action == "new" and (order.trade_date or order.settlement_date) is not None:
        return _misdated(order.trade_date, order.settlement_date, at)
    return None


def _misdated(
    trade_date: date | None, settlement_date: date | None, at: datetime
) -> tuple[str, str] | None:
    """Why a new order's dates are wrong: a trade date not the record's date in Japan,
    a settlement date before it or too far after it. The engine checks the rest
    (business days under the configured lag, maturity) as for any trade."""
    dates = trade_dates(at.timestamp(), trade_date, settlement_date, lag=0, maturity=None)
    return dates if isinstance(dates, tuple) else None


def _signature_refused(
    signers: signing.Registry | None, key: bytes, value: bytes, at: datetime, verified: Any
) -> tuple[str, str] | None:
    if signers is None:
        return None
    refused = verified if verified is not None else signing.verify(signers, ORDERS, key, value, at)
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
