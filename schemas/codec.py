"""Bytes <-> models: the one place where kessai reads or writes a record's value.

Agents call :func:`decode` on every record they consume and :func:`encode` /
:func:`key_for` on every record they produce. Bad input is expected, so :func:`decode`
never lets anything but :class:`SchemaError` escape; its ``reason`` is a short code
that goes straight into a :class:`~schemas.models.RecordRejected`
(:func:`rejection_for` builds one) and its ``detail`` names the field for people.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Final, Literal, overload

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from schemas.models import (
    CANCELLATIONS,
    CLOCK,
    CUSTODY,
    DETAIL_CHARS_MAX,
    FX_RATES,
    INSTRUMENTS,
    KEY_BYTES_MAX,
    LEDGER_EVENTS,
    ORDER_EVENTS,
    ORDERS,
    PAYMENTS,
    PENALTIES,
    REJECTED_KEY_CHARS_MAX,
    REJECTIONS,
    RESERVES,
    SETTLEMENTS,
    TOPIC_MODELS,
    TRADES,
    VALUE_BYTES_MAX,
    BalanceChanged,
    MoveBonds,
    MoveCash,
    OrderStatusChanged,
    RecordRejected,
    SettlementStatusChanged,
    SubmitOrder,
    TradeExecuted,
    is_identifier,
)

#: How much of an offending input value an error detail quotes.
_QUOTED_CHARS_MAX: Final = 40

#: The ``reason`` of a rejection, one per kind of fix its producer has to make; the
#: ``detail`` says which field and what came instead. The ledger adds its own codes
#: (``unknown_token``, ``duplicate``, ``insufficient_funds``) for records that decode.
Reason = Literal[
    "malformed",  # no value; not UTF-8, JSON or an object; key or value over its limit
    "schema",  # a field missing, mistyped or unknown; a schema_version we do not know
    "invalid_isin",  # an ISIN with a bad shape or check digit
    "invalid_quantity",  # not a positive JSON integer, or not a multiple of FACE_JPY_MIN
    "invalid_price",  # a price or accrued interest that is not a decimal string in range
    "invalid_amount",  # any other money: not a decimal string in range, or inconsistent
    "same_account",  # buyer == seller
    "bad_signature",  # a signature that is not 86 base64url characters, or without signer
    "not_a_jgb",  # an instrument whose ISIN is not a Japanese government bond's
    "invalid_instrument",  # an instrument's dates or coupons that contradict each other
    "invalid_fx_rate",  # fx_rate, fx_source and fx_time not together; an fx_rate out of range
    "unknown_topic",  # no model for this topic: a caller's mistake, never a rejection
]

#: The Kafka key of each topic's records: the field that must keep them in order.
_KEY_FIELDS: Final[dict[str, str]] = {
    PAYMENTS: "account",
    CUSTODY: "account",
    TRADES: "trade_id",
    ORDERS: "isin",
    INSTRUMENTS: "isin",
    CLOCK: "to",
    RESERVES: "isin",
    CANCELLATIONS: "trade_id",
    FX_RATES: "currency",
    SETTLEMENTS: "trade_id",
    REJECTIONS: "key",
    LEDGER_EVENTS: "account",
    ORDER_EVENTS: "isin",
    PENALTIES: "trade_id",
}
assert _KEY_FIELDS.keys() == TOPIC_MODELS.keys(), "every topic needs a key"
#: The field of an input record that is its own id: a rejection's ``ref``.
_ID_FIELDS: Final[dict[str, str]] = {
    PAYMENTS: "payment_id",
    CUSTODY: "movement_id",
    TRADES: "trade_id",
    ORDERS: "order_id",
    INSTRUMENTS: "isin",
    RESERVES: "attestation_id",
    CANCELLATIONS: "trade_id",
    FX_RATES: "currency",
}

#: Where a rejected record is and what identifies it, without its bytes:
#: ``(topic, partition, offset, key as text, value's SHA-256, value's size, ref)``; a
#: plain tuple, so that it travels inside a ledger command as it is.
Source = tuple[str, int, int, str | None, str | None, int, str | None]


class SchemaError(Exception):
    """A record that does not fit its topic's schema. Expected input, never a crash."""

    def __init__(self, reason: Reason, detail: str) -> None:
        # Both as args, so that the error pickles (and crosses process pools) intact.
        super().__init__(reason, detail)
        self.reason: Reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@overload
def decode(topic: Literal["payments"], raw: bytes | None) -> MoveCash: ...
@overload
def decode(topic: Literal["custody"], raw: bytes | None) -> MoveBonds: ...
@overload
def decode(topic: Literal["trades"], raw: bytes | None) -> TradeExecuted: ...
@overload
def decode(topic: Literal["orders"], raw: bytes | None) -> SubmitOrder: ...
@overload
def decode(topic: Literal["settlements"], raw: bytes | None) -> SettlementStatusChanged: ...
@overload
def decode(topic: Literal["rejections"], raw: bytes | None) -> RecordRejected: ...
@overload
def decode(topic: Literal["ledger-events"], raw: bytes | None) -> BalanceChanged: ...
@overload
def decode(topic: Literal["order-events"], raw: bytes | None) -> OrderStatusChanged: ...
@overload
def decode(topic: str, raw: bytes | None) -> BaseModel: ...
def decode(topic: str, raw: bytes | None) -> BaseModel:
    """The model for one record value of *topic*. Raises :class:`SchemaError` only."""
    model = TOPIC_MODELS.get(topic)
    if model is None:
        raise SchemaError("unknown_topic", f"no schema for topic {topic[:80]!r}")
    if raw is None:
        # A tombstone: faust hands its value over as None.
        raise SchemaError("malformed", "no value (a tombstone)")
    if len(raw) > VALUE_BYTES_MAX:
        raise SchemaError("malformed", f"{len(raw)} bytes, more than {VALUE_BYTES_MAX}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson folds bad UTF-8 into its JSON error; only on this rare path do we pay
        # for a second look to tell the two apart.
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as utf8_exc:
            raise SchemaError("malformed", _clip(str(utf8_exc))) from None
        raise SchemaError("malformed", _clip(str(exc))) from None
    if not isinstance(obj, dict):
        raise SchemaError("malformed", f"want a JSON object, got {_describe(obj)}")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise _schema_error(exc) from None


def encode(model: BaseModel) -> bytes:
    """Compact UTF-8 JSON, decimals as strings, times as ISO-8601 with ``Z``."""
    # mode="json" runs the models' own serializers (Decimal -> "12.5"); orjson then only
    # ever sees str, int, bool and None.
    return orjson.dumps(model.model_dump(mode="json"))


def key_for(topic: str, model: BaseModel) -> bytes:
    """The Kafka key for *model* on *topic*, UTF-8. A rejection of a keyless record gets b""."""
    expected = TOPIC_MODELS.get(topic)
    if expected is None:
        raise SchemaError("unknown_topic", f"no schema for topic {topic[:80]!r}")
    if not isinstance(model, expected):
        # A programming error, not bad input: the producer picked the wrong topic.
        raise TypeError(f"topic {topic!r} carries {expected.__name__}, not {type(model).__name__}")
    field = _KEY_FIELDS[topic]
    key = getattr(model, field)
    if key is not None and not isinstance(key, str):  # a clock's time: its wire form
        key = model.model_dump(mode="json", include={field})[field]
    return b"" if key is None else str(key).encode("utf-8")


def check_key(key: bytes | None) -> None:
    """Raise ``malformed`` for an input key longer than any id (KEY_BYTES_MAX bytes)."""
    if key is not None and len(key) > KEY_BYTES_MAX:
        raise SchemaError("malformed", f"key of {len(key)} bytes, more than {KEY_BYTES_MAX}")


def source_of(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    raw: bytes | None,
    *,
    decoded: BaseModel | None = None,
) -> Source:
    """The :data:`Source` of an input record: bounded whatever its size. ``decoded``:
    the record's model, when the caller has it (its id is then read, not parsed again)."""
    field = _ID_FIELDS.get(topic)
    if decoded is not None and field is not None:
        ref: str | None = getattr(decoded, field)
    else:
        ref = _ref(topic, raw)
    return (
        topic,
        partition,
        offset,
        None if key is None else _as_text(key, REJECTED_KEY_CHARS_MAX),
        None if raw is None else hashlib.sha256(raw).hexdigest(),
        0 if raw is None else len(raw),
        ref,
    )


def rejection_for(source: Source, error: SchemaError, *, at: datetime) -> RecordRejected:
    """The rejection record of the input at ``source``, refused with ``error``.

    A key that is not UTF-8 is kept as ``\\xNN`` escapes rather than dropped, so that
    the rejection still shows what arrived. Whatever the input's size, the record is at
    most a few KiB (tests/unit/schemas/test_rejection_bounds.py).
    """
    topic, partition, offset, key, sha256, size, ref = source
    return RecordRejected(
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        reason=error.reason,
        detail=_clip(error.detail),
        key=key,
        ref=ref,
        value_sha256=sha256,
        value_bytes=size,
        at=at,
    )


def _ref(topic: str, raw: bytes | None) -> str | None:
    """The record's own id, where it is a JSON object with a valid one."""
    field = _ID_FIELDS.get(topic)
    if field is None or raw is None or len(raw) > VALUE_BYTES_MAX:
        return None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    ref = obj.get(field) if isinstance(obj, dict) else None
    return ref if isinstance(ref, str) and is_identifier(ref) else None


def _as_text(data: bytes, chars_max: int) -> str:
    # A character takes at most 4 bytes, so this slice holds chars_max characters
    # without decoding a value of any size in full.
    return data[: chars_max * 4].decode("utf-8", "backslashreplace")[:chars_max]


def _schema_error(exc: ValidationError) -> SchemaError:
    # The first error decides the reason: errors come in field order, and one precise
    # reason is more use to an operator than a list.
    errors = exc.errors(include_url=False)
    first = errors[0]
    detail = _detail(first)
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return SchemaError(_reason(first), _clip(detail))


#: Error types raised in schemas.models -> reason. Anything not listed (pydantic's own
#: missing, extra_forbidden, literal_error ..., and the models' shape checks such as
#: identifier or utc_datetime) is "schema".
_REASON_BY_ERROR_TYPE: Final[dict[str, Reason]] = {
    "invalid_isin": "invalid_isin",
    "quantity": "invalid_quantity",
    "buyer_is_seller": "same_account",
    "signature": "bad_signature",
    # A ledger event's amounts that contradict each other.
    "empty_change": "invalid_amount",
    "negative_balance": "invalid_amount",
    "fractional_face": "invalid_amount",
    "not_a_jgb": "not_a_jgb",
    "instrument_dates": "invalid_instrument",
    "instrument_coupon": "invalid_instrument",
    "invalid_fx_rate": "invalid_fx_rate",
}
#: Decimal fields whose errors are "invalid_price"; every other decimal field holds an
#: amount of money ("invalid_amount"). Accrued interest counts with the price, as the
#: settlement issue's list of codes has it: both come from the venue's trade.
_PRICE_FIELDS: Final = frozenset({"price", "accrued_interest"})


def _reason(error: ErrorDetails) -> Reason:
    kind = error["type"]
    if kind == "decimal_str":
        # Every model is flat, so the first part of loc is the field's name.
        field = error["loc"][0]
        if field == "fx_rate":
            return "invalid_fx_rate"
        return "invalid_price" if field in _PRICE_FIELDS else "invalid_amount"
    return _REASON_BY_ERROR_TYPE.get(kind, "schema")


def _detail(error: ErrorDetails) -> str:
    field = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "missing":
        return f"{field}: required"
    if kind == "extra_forbidden":
        return f"{field}: unknown field"
    if not field:
        # A model-level rule (buyer == seller ...): its message names the fields.
        return error["msg"]
    return f"{field}: {error['msg']}, got {_describe(error['input'])}"


def _describe(value: Any) -> str:
    """A JSON value as an operator would want to see it in a one-line detail."""
    if isinstance(value, bool):  # before int: bool is an int
        return f"{'true' if value else 'false'} (a JSON boolean)"
    if isinstance(value, int | float):
        return f"{_clip(repr(value), _QUOTED_CHARS_MAX)} (a JSON number)"
    if value is None:
        return "null"
    if isinstance(value, str):
        return _clip(orjson.dumps(value).decode(), _QUOTED_CHARS_MAX)
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    return _clip(repr(value), _QUOTED_CHARS_MAX)


def _clip(text: str, limit: int = DETAIL_CHARS_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
