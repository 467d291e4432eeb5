"""Topic models and codec (schemas.models, schemas.codec, schemas.gen): pure, no broker."""

from __future__ import annotations

import hashlib
import json
import pickle
import string
import subprocess
import sys
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any, Literal, get_args

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from schemas import (
    CANCELLATIONS,
    CLOCK,
    CLOSING_VENUE,
    CUSTODY,
    FACE_JPY_MIN,
    FX_RATES,
    INSTRUMENTS,
    LEDGER_EVENTS,
    ORDER_EVENTS,
    ORDERS,
    PAYMENTS,
    PENALTIES,
    REJECTIONS,
    RESERVES,
    SETTLEMENTS,
    TOPIC_MODELS,
    TRADES,
    VALUE_BYTES_MAX,
    AdvanceClock,
    BalanceChanged,
    CancelTrade,
    FailPenalty,
    FxRate,
    Instrument,
    MoveBonds,
    MoveCash,
    OrderStatusChanged,
    Reason,
    RecordRejected,
    ReserveAttested,
    SchemaError,
    SettlementStatusChanged,
    SubmitOrder,
    TradeExecuted,
    decode,
    encode,
    gen,
    key_for,
    rejection_for,
    source_of,
)
from schemas._isin import check_digit
from schemas.models import DECIMAL_CHARS_MAX, OrderAction, OrderEventKind, SettlementStatus
from tests.support.paths import REPO as ROOT

JGB = "JP3633400001"
#: A JGB's ISIN (the security master takes only these).
JGB_10Y = "JP1103771Q62"
AT = "2026-01-02T03:04:05Z"

# One valid record per topic, as a producer would write it.
SAMPLES: dict[str, dict[str, Any]] = {
    PAYMENTS: {
        "payment_id": "pay-1",
        "account": "acct-a",
        "token": "JPYC",
        "amount": "1000000",
        "kind": "deposit",
    },
    CUSTODY: {
        "movement_id": "mov-1",
        "account": "acct-b",
        "isin": JGB,
        "quantity": 100_000,
        "kind": "deposit",
    },
    TRADES: {
        "trade_id": "t-1",
        "venue": "venue-x",
        "isin": JGB,
        "buyer": "acct-a",
        "seller": "acct-b",
        "quantity": 100_000,
        "price": "99.875",
        "currency": "JPYC",
        "trade_time": AT,
    },
    ORDERS: {
        "order_id": "o-1",
        "venue": "venue-x",
        "account": "acct-a",
        "isin": JGB,
        "side": "buy",
        "quantity": 50_000,
        "price": "100.01",
        "currency": "USDC",
    },
    SETTLEMENTS: {
        "trade_id": "t-1",
        "status": "settled",
        "reason": None,
        "isin": JGB,
        "buyer": "acct-a",
        "seller": "acct-b",
        "quantity": 100_000,
        "cash_amount": "99875",
        "currency": "JPYC",
        "at": AT,
    },
    REJECTIONS: {
        "source_topic": "trades",
        "reason": "invalid_isin",
        "detail": "isin: bad check digit",
        "source_partition": 2,
        "source_offset": 17,
        "key": "t-9",
        "ref": "t-9",
        "value_sha256": "ab" * 32,
        "value_bytes": 24,
        "at": AT,
    },
    LEDGER_EVENTS: {
        "account": "acct-a",
        "asset": "JPYC",
        "delta_available": "-99875",
        "delta_locked": "99875",
        "available": "900125",
        "locked": "99875",
        "cause": "t-1",
        "seq": 2,
        "schema_version": 2,
        "prev_hash": "5" * 64,
        "hash": "a" * 64,
    },
    CLOCK: {"to": AT},
    RESERVES: {"attestation_id": "att-1", "isin": JGB_10Y, "face": 100_000_000, "as_of": AT},
    INSTRUMENTS: {
        "isin": JGB_10Y,
        "kind": "fixed",
        "series": "10-year JGB #377",
        "coupon_rate": "0.9",
        "coupon_dates": ["03-20", "09-20"],
        "issue_date": "2025-04-01",
        "maturity_date": "2035-03-20",
        "face_unit": 50_000,
        "price_tick": "0.001",
    },
    ORDER_EVENTS: {
        "order_id": "o-1",
        "venue": "venue-x",
        "isin": JGB,
        "currency": "USDC",
        "account": "acct-a",
        "side": "buy",
        "event": "filled",
        "filled_quantity": 50_000,
        "remaining_quantity": 0,
        "price": "100.01",
        "trade_id": "m-0123456789abcdef0123456789abcdef",
        "reason": None,
        "at": AT,
    },
    CANCELLATIONS: {"trade_id": "t-1", "venue": "venue-x"},
    FX_RATES: {"currency": "USDC", "rate": "151.234", "source": "wmr-london-4pm", "at": AT},
    PENALTIES: {
        "penalty_id": "t-1:2025-11-05:seller",
        "trade_id": "t-1",
        "day": "2025-11-05",
        "fail_day": 1,
        "side": "seller",
        "liable": "acct-b",
        "counterparty": "acct-a",
        "reason": "insufficient_securities",
        "policy": "csdr",
        "base": "98878424",
        "rate": "0.00001",
        "per": "day",
        "amount": "988",
        "currency": "JPYC",
        "isin": JGB,
        "at": AT,
    },
}

EXPECTED_KEYS = {
    PAYMENTS: b"acct-a",
    CUSTODY: b"acct-b",
    TRADES: b"t-1",
    ORDERS: JGB.encode(),
    SETTLEMENTS: b"t-1",
    REJECTIONS: b"t-9",
    LEDGER_EVENTS: b"acct-a",
    ORDER_EVENTS: JGB.encode(),
    INSTRUMENTS: JGB_10Y.encode(),
    CLOCK: AT.encode(),
    RESERVES: JGB_10Y.encode(),
    PENALTIES: b"t-1",
    CANCELLATIONS: b"t-1",
    FX_RATES: b"USDC",
}


def raw(topic: str, **changes: Any) -> bytes:
    """The sample for *topic* with *changes*; a change to ``...`` removes the field."""
    record = {**SAMPLES[topic], **changes}
    return orjson.dumps({k: v for k, v in record.items() if v is not ...})


def reject(topic: str, **changes: Any) -> SchemaError:
    with pytest.raises(SchemaError) as caught:
        decode(topic, raw(topic, **changes))
    return caught.value


# --- Strategies ---------------------------------------------------------------------

# Alphabets are spelt out rather than drawn with st.from_regex() or a bare st.text():
# those make Hypothesis build its Unicode tables on first use, which on a fresh
# checkout trips the too_slow health check.
UPPER = string.ascii_uppercase
LOWER_DIGITS = string.ascii_lowercase + string.digits
ids = st.text(string.ascii_letters + string.digits + "-_.:@/", min_size=1, max_size=128)
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)
tokens = st.text(UPPER, min_size=2, max_size=12)
sha256_hex = st.text("0123456789abcdef", min_size=64, max_size=64)
codes = st.builds(str.__add__, st.text(string.ascii_lowercase, min_size=1, max_size=1),
                  st.text(LOWER_DIGITS + "_", max_size=20))  # fmt: skip
isins = st.builds(
    lambda country, rest: country + rest + check_digit(country + rest),
    st.text(UPPER, min_size=2, max_size=2),
    st.text(UPPER + string.digits, min_size=9, max_size=9),
)
utc_times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
faces = st.integers(1, 10**9).map(lambda n: n * FACE_JPY_MIN)
dates = st.dates(date(1970, 1, 1), date(2200, 1, 1))


def decimals(low: int, high: int) -> st.SearchStrategy[Decimal]:
    return st.integers(0, 18).flatmap(
        lambda places: st.decimals(
            min_value=low, max_value=high, places=places, allow_nan=False, allow_infinity=False
        )
    )


positive = decimals(0, 10**15).filter(lambda d: d > 0)
non_negative = decimals(0, 10**15)
accounts = st.lists(ids, min_size=2, max_size=2, unique=True)


@st.composite
def ledger_events(draw: st.DrawFn) -> BalanceChanged:
    asset = draw(st.one_of(tokens, isins))
    amounts = st.integers(0, 10**15).map(Decimal) if len(asset) == 12 else non_negative
    before_available, available = draw(amounts), draw(amounts)
    before_locked, locked = draw(amounts), draw(amounts)
    if (before_available, before_locked) == (available, locked):
        locked += 1
    with localcontext() as ctx:
        ctx.prec = 100  # exact differences of 34-digit amounts
        delta_available, delta_locked = available - before_available, locked - before_locked
    return BalanceChanged(
        account=draw(ids),
        asset=asset,
        delta_available=delta_available,
        delta_locked=delta_locked,
        available=available,
        locked=locked,
        cause=draw(ids),
        seq=draw(st.integers(1, 2**63 - 1)),
        prev_hash=draw(sha256_hex),
        hash=draw(sha256_hex),
    )


#: A trade's FX fields: none, or all three (docs/fx.md).
fx_fields: st.SearchStrategy[dict[str, Any]] = st.just({}) | st.fixed_dictionaries(
    {"fx_rate": positive, "fx_source": ids, "fx_time": utc_times}
)


@st.composite
def trades(draw: st.DrawFn) -> TradeExecuted:
    buyer, seller = draw(accounts)
    return TradeExecuted(
        trade_id=draw(ids),
        venue=draw(ids),
        isin=draw(isins),
        buyer=buyer,
        seller=seller,
        quantity=draw(faces),
        price=draw(positive),
        currency=draw(tokens),
        accrued_interest=draw(st.none() | non_negative),
        trade_time=draw(utc_times),
        trade_date=draw(st.none() | dates),
        settlement_date=draw(st.none() | dates),
        **draw(fx_fields),
    )


@st.composite
def settlements(draw: st.DrawFn) -> SettlementStatusChanged:
    buyer, seller = draw(accounts)
    status = draw(st.sampled_from(get_args(SettlementStatus)))
    reason = None if status in ("settled", "partially_settled") else draw(codes)
    parted = status == "partially_settled" or (status == "settled" and draw(st.booleans()))
    return SettlementStatusChanged(
        trade_id=draw(ids),
        status=status,
        reason=reason,
        isin=draw(isins),
        buyer=buyer,
        seller=seller,
        quantity=draw(faces),
        cash_amount=draw(positive),
        currency=draw(tokens),
        at=draw(utc_times),
        trade_date=draw(st.none() | dates),
        settlement_date=draw(st.none() | dates),
        price=draw(st.none() | positive),
        principal=draw(st.none() | non_negative),
        accrued=draw(st.none() | non_negative),
        days_accrued=draw(st.none() | st.integers(0, 366)),
        part=draw(st.integers(1, 1_000_000)) if parted else None,
        part_quantity=draw(faces) if parted else None,
        part_cash_amount=draw(positive) if parted else None,
        part_principal=draw(st.none() | non_negative) if parted else None,
        part_accrued=draw(st.none() | non_negative) if parted else None,
    )


@st.composite
def instruments(draw: st.DrawFn) -> Instrument:
    issued = draw(st.dates(date(1970, 1, 1), date(2150, 1, 1)))
    years = draw(st.integers(1, 40))
    discount = draw(st.booleans())
    month, day = draw(st.integers(1, 12)), draw(st.integers(1, 28))
    matures = date(issued.year + years, month, day)
    coupon_dates = (
        () if discount else (f"{month:02d}-{day:02d}", f"{(month + 5) % 12 + 1:02d}-{day:02d}")
    )
    return Instrument(
        isin="JP1"
        + (body := draw(st.text(UPPER + string.digits, min_size=8, max_size=8)))
        + check_digit("JP1" + body),
        kind="discount"
        if discount
        else draw(st.sampled_from(["fixed", "floating", "inflation_indexed"])),
        series=draw(st.text(string.printable[:95], min_size=1, max_size=64)),
        coupon_rate=Decimal(0) if discount else draw(decimals(0, 20)),
        coupon_dates=coupon_dates,
        issue_date=issued,
        maturity_date=matures,
        face_unit=draw(st.sampled_from([50_000, 100_000])),
        price_tick=draw(st.sampled_from([Decimal("0.001"), Decimal("0.01")])),
        status=draw(st.sampled_from(["active", "halted", "matured"])),
    )


@st.composite
def order_events(draw: st.DrawFn) -> OrderStatusChanged:
    event = draw(st.sampled_from(get_args(OrderEventKind)))
    fill = event in ("partially_filled", "filled")
    return OrderStatusChanged(
        order_id=draw(ids),
        venue=draw(ids),
        isin=draw(isins),
        currency=draw(tokens),
        account=draw(st.none() | ids),
        side=draw(st.none() | st.sampled_from(["buy", "sell"])),
        event=event,
        filled_quantity=draw(faces) if fill else 0,
        remaining_quantity=draw(st.integers(0, 10**9).map(lambda n: n * FACE_JPY_MIN)),
        price=draw(st.none() | positive),
        trade_id=draw(ids) if fill else draw(st.none() | ids),
        reason=draw(codes) if event in ("rejected", "cancelled") else draw(st.none() | codes),
        at=draw(utc_times),
    )


@st.composite
def penalties(draw: st.DrawFn) -> FailPenalty:
    trade_id, day = draw(ids.filter(lambda i: len(i) <= 100)), draw(st.dates())
    liable, counterparty = draw(st.lists(ids, min_size=2, max_size=2, unique=True))
    side: Literal["seller", "buyer"] = draw(st.sampled_from(["seller", "buyer"]))
    return FailPenalty(
        penalty_id=f"{trade_id}:{day}:{side}",
        trade_id=trade_id,
        day=day,
        fail_day=draw(st.integers(1, 366)),
        side=side,
        liable=liable,
        counterparty=counterparty,
        reason=draw(codes),
        policy=draw(st.sampled_from(["csdr", "jsda"])),
        base=draw(positive),
        rate=draw(positive),
        per=draw(st.sampled_from(["day", "year"])),
        amount=draw(positive),
        currency=draw(tokens),
        isin=draw(isins),
        at=draw(utc_times),
    )


@st.composite
def orders(draw: st.DrawFn) -> SubmitOrder:
    action = draw(st.sampled_from(get_args(OrderAction)))

    def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return strategy if action == "new" else st.none() | strategy

    return SubmitOrder(
        order_id=draw(ids),
        venue=CLOSING_VENUE if action == "close" else draw(ids),
        account=draw(ids),
        isin=draw(isins),
        side=draw(optional(st.sampled_from(["buy", "sell"]))),
        quantity=draw(optional(faces)),
        price=draw(st.none() | positive),
        currency=draw(tokens),
        time_in_force=draw(st.sampled_from(["GTC", "IOC"])),
        action=action,
        trade_date=draw(st.none() | st.dates()),
        settlement_date=draw(st.none() | st.dates()),
    )


records: dict[str, st.SearchStrategy[Any]] = {
    PAYMENTS: st.builds(
        MoveCash,
        payment_id=ids,
        account=ids,
        token=tokens,
        amount=positive,
        kind=st.sampled_from(["deposit", "withdrawal"]),
    ),
    CUSTODY: st.builds(
        MoveBonds,
        movement_id=ids,
        account=ids,
        isin=isins,
        quantity=st.integers(1, 2**53 - 1),
        kind=st.sampled_from(["deposit", "withdrawal"]),
    ),
    TRADES: trades(),
    ORDERS: orders(),
    SETTLEMENTS: settlements(),
    REJECTIONS: st.builds(
        RecordRejected,
        source_topic=st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=40),
        reason=codes,
        detail=any_text,
        source_partition=st.integers(0, 2**31 - 1),
        source_offset=st.integers(0, 2**63 - 1),
        key=st.none() | st.text(max_size=256),
        ref=st.none()
        | st.text(string.ascii_letters + string.digits + "-:", min_size=1, max_size=128),
        value_sha256=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
        value_bytes=st.integers(0, 2**20),
        at=utc_times,
    ),
    LEDGER_EVENTS: ledger_events(),
    ORDER_EVENTS: order_events(),
    INSTRUMENTS: instruments(),
    CLOCK: st.builds(AdvanceClock, to=utc_times),
    PENALTIES: penalties(),
    CANCELLATIONS: st.builds(CancelTrade, trade_id=ids, venue=ids),
    FX_RATES: st.builds(FxRate, currency=tokens, rate=positive, source=ids, at=utc_times),
    RESERVES: st.builds(
        ReserveAttested,
        attestation_id=ids,
        isin=isins,
        face=st.integers(0, 2**53 - 1),
        as_of=utc_times,
    ),
}
topic_and_record = st.sampled_from(sorted(TOPIC_MODELS)).flatmap(
    lambda topic: st.tuples(st.just(topic), records[topic])
)


def _no_floats(text: str) -> float:
    raise AssertionError(f"JSON number with a fraction or exponent in the output: {text}")


# --- Models and the codec round trip ---------------------------------------------


#: Models past version 1: ledger-events gained its hash chain in version 2.
SCHEMA_VERSIONS = {LEDGER_EVENTS: 2, REJECTIONS: 2}


def test_a_version_1_ledger_event_is_refused() -> None:
    # The chain is required: a record without it cannot pass for a chained one.
    assert reject(LEDGER_EVENTS, schema_version=1).reason == "schema"
    assert reject(LEDGER_EVENTS, hash="A" * 64).reason == "schema"  # upper-case hex


def test_there_is_a_strategy_and_a_sample_for_every_topic() -> None:
    assert set(records) == set(SAMPLES) == set(EXPECTED_KEYS) == set(TOPIC_MODELS)


@pytest.mark.parametrize("topic", sorted(TOPIC_MODELS))
def test_every_model_is_frozen_strict_and_versioned(topic: str) -> None:
    model = decode(topic, raw(topic))
    assert type(model) is TOPIC_MODELS[topic]
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") == "forbid"
    assert model.schema_version == SCHEMA_VERSIONS.get(topic, 1)  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        model.schema_version = 1  # type: ignore[attr-defined]


@given(topic_and_record)
def test_decode_inverts_encode(topic_record: tuple[str, BaseModel]) -> None:
    topic, record = topic_record
    wire = encode(record)
    back = decode(topic, wire)
    assert back == record
    assert encode(back) == wire  # one spelling per record: a replay re-encodes identically


@given(topic_and_record)
def test_encode_is_compact_utf8_json_without_float_numbers(
    topic_record: tuple[str, BaseModel],
) -> None:
    wire = encode(topic_record[1])
    text = wire.decode("utf-8")
    obj = json.loads(text, parse_float=_no_floats)
    assert text == json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    assert obj["schema_version"] == SCHEMA_VERSIONS.get(topic_record[0], 1)


@pytest.mark.parametrize("topic", sorted(TOPIC_MODELS))
def test_key_for_follows_the_topic_table(topic: str) -> None:
    assert key_for(topic, decode(topic, raw(topic))) == EXPECTED_KEYS[topic]


def test_key_for_a_keyless_rejection_is_empty() -> None:
    assert key_for(REJECTIONS, decode(REJECTIONS, raw(REJECTIONS, key=None))) == b""


def test_key_for_refuses_a_model_of_another_topic() -> None:
    trade = decode(TRADES, raw(TRADES))
    with pytest.raises(TypeError, match="SettlementStatusChanged"):
        key_for(SETTLEMENTS, trade)
    with pytest.raises(SchemaError) as caught:
        key_for("no-such-topic", trade)
    assert caught.value.reason == "unknown_topic"


def test_encoding_writes_decimals_and_times_in_their_wire_form() -> None:
    trade = decode(TRADES, raw(TRADES, price="99.50", trade_time="2026-01-02T03:04:05.250-00:00"))
    obj = orjson.loads(encode(trade))
    assert obj["price"] == "99.50"  # the scale the venue sent is kept
    assert "accrued_interest" not in obj  # absent: kessai computes it (issue 20)
    assert obj["trade_time"] == "2026-01-02T03:04:05.250000Z"


def test_decimals_from_python_never_reach_the_wire_in_exponent_form() -> None:
    payment = MoveCash(
        payment_id="p", account="a", token="USDC", amount=Decimal("1E+3"), kind="deposit"
    )
    assert orjson.loads(encode(payment))["amount"] == "1000"
    event = BalanceChanged(
        account="a",
        asset="USDC",
        delta_available=Decimal("-0"),
        delta_locked=Decimal("5E-7"),
        available=Decimal("-0"),
        locked=Decimal("5E-7"),
        cause="c",
        seq=1,
        prev_hash="0" * 64,
        hash="1" * 64,
    )
    obj = orjson.loads(encode(event))
    assert (obj["available"], obj["locked"]) == ("0", "0.0000005")
    assert decode(LEDGER_EVENTS, encode(event)) == event


def test_amounts_are_exact_beyond_float_precision() -> None:
    amount = "123456789012345678.123456789012345678"
    payment = decode(PAYMENTS, raw(PAYMENTS, amount=amount))
    assert payment.amount == Decimal(amount)
    assert orjson.loads(encode(payment))["amount"] == amount


# --- What decode refuses, and why -----------------------------------------------------

# The settlement issue's list of rejection reasons, with one bad record for each case it
# names: (topic, value, reason, how the detail starts).
REASON_CASES = [
    pytest.param(
        PAYMENTS, b'{"account": "\xff"}', "malformed", "'utf-8' codec can't decode", id="utf-8"
    ),
    pytest.param(PAYMENTS, b'{"amount": "1"', "malformed", "unexpected end of data", id="json"),
    pytest.param(PAYMENTS, b'["p-1"]', "malformed", "want a JSON object", id="object"),
    pytest.param(
        PAYMENTS,
        b" " * (VALUE_BYTES_MAX + 1),
        "malformed",
        f"{VALUE_BYTES_MAX + 1} bytes",
        id="size",
    ),
    pytest.param(PAYMENTS, raw(PAYMENTS, kind=...), "schema", "kind: required", id="missing"),
    pytest.param(PAYMENTS, raw(PAYMENTS, account=7), "schema", "account: must be", id="mistyped"),
    pytest.param(PAYMENTS, raw(PAYMENTS, memo="x"), "schema", "memo: unknown field", id="unknown"),
    pytest.param(
        PAYMENTS, raw(PAYMENTS, schema_version=2), "schema", "schema_version: ", id="version"
    ),
    pytest.param(
        TRADES, raw(TRADES, isin=JGB[:-1] + "2"), "invalid_isin", "isin: must be", id="isin-digit"
    ),
    pytest.param(
        CUSTODY, raw(CUSTODY, isin="JP36334000"), "invalid_isin", "isin: must be", id="isin-format"
    ),
    pytest.param(
        TRADES, raw(TRADES, quantity=0), "invalid_quantity", "quantity: must be", id="quantity-0"
    ),
    pytest.param(
        CUSTODY,
        raw(CUSTODY, quantity=1.5),
        "invalid_quantity",
        "quantity: must be",
        id="quantity-1.5",
    ),
    pytest.param(
        ORDERS, raw(ORDERS, quantity=75_000), "invalid_quantity", "quantity: must be", id="lot"
    ),
    pytest.param(TRADES, raw(TRADES, price="0"), "invalid_price", "price: must be", id="price-0"),
    pytest.param(
        TRADES,
        raw(TRADES, signer="venue-a", signature="A" * 85 + "B"),
        "bad_signature",
        "signature: must be an Ed25519 signature",
        id="signature-form",
    ),
    pytest.param(
        ORDERS,
        raw(ORDERS, signature="A" * 86),
        "bad_signature",
        "signer and signature come together",
        id="signature-alone",
    ),
    pytest.param(
        ORDERS, raw(ORDERS, price=99.5), "invalid_price", "price: must be", id="price-number"
    ),
    pytest.param(
        TRADES,
        raw(TRADES, accrued_interest="-1"),
        "invalid_price",
        "accrued_interest: ",
        id="accrued<0",
    ),
    pytest.param(
        TRADES,
        raw(TRADES, accrued_interest="1e3"),
        "invalid_price",
        "accrued_interest: ",
        id="accrued-1e3",
    ),
    pytest.param(
        PAYMENTS,
        raw(PAYMENTS, amount=12.5),
        "invalid_amount",
        "amount: must be",
        id="amount-number",
    ),
    pytest.param(
        PAYMENTS, raw(PAYMENTS, amount="-250"), "invalid_amount", "amount: must be", id="amount<0"
    ),
    pytest.param(
        TRADES, raw(TRADES, seller="acct-a"), "same_account", "buyer and seller", id="same-account"
    ),
    pytest.param(
        TRADES,
        raw(TRADES, fx_rate="151.234"),
        "invalid_fx_rate",
        "fx_rate, fx_source and",
        id="fx-rate-alone",
    ),
    pytest.param(
        INSTRUMENTS,
        raw(INSTRUMENTS, isin=JGB),
        "not_a_jgb",
        "JP3633400001 is not a JGB",
        id="toyota",
    ),
    pytest.param(
        INSTRUMENTS,
        raw(INSTRUMENTS, maturity_date="2035-03-19"),
        "invalid_instrument",
        "a coupon bond matures on one of its coupon_dates",
        id="maturity-off-coupon",
    ),
    pytest.param(
        INSTRUMENTS,
        raw(INSTRUMENTS, coupon_dates=["02-29", "08-29"], maturity_date="2035-08-29"),
        "invalid_instrument",
        "a coupon date falls every year",
        id="leap-day-coupon",
    ),
]


@pytest.mark.parametrize(("topic", "value", "reason", "detail"), REASON_CASES)
def test_each_kind_of_bad_record_has_its_reason(
    topic: str, value: bytes, reason: str, detail: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        decode(topic, value)
    assert (caught.value.reason, caught.value.detail[: len(detail)]) == (reason, detail)


def test_every_reason_but_unknown_topic_has_a_case() -> None:
    # unknown_topic is the caller's mistake (no such topic), never a record's.
    assert {case.values[2] for case in REASON_CASES} == set(get_args(Reason)) - {"unknown_topic"}


def test_detail_names_the_field_and_what_came_instead() -> None:
    error = reject(PAYMENTS, amount=12.5)
    assert error.reason == "invalid_amount"
    assert error.detail == "amount: must be a decimal string > 0, got 12.5 (a JSON number)"


# Every decimal field, and the reason its bad values get: prices (and the accrued
# interest that goes with them) are invalid_price, any other money is invalid_amount.
MONEY_FIELDS = [
    (PAYMENTS, "amount", "invalid_amount"),
    (TRADES, "price", "invalid_price"),
    (TRADES, "accrued_interest", "invalid_price"),
    (ORDERS, "price", "invalid_price"),
    (SETTLEMENTS, "cash_amount", "invalid_amount"),
    (LEDGER_EVENTS, "delta_available", "invalid_amount"),
    (LEDGER_EVENTS, "delta_locked", "invalid_amount"),
    (LEDGER_EVENTS, "available", "invalid_amount"),
    (LEDGER_EVENTS, "locked", "invalid_amount"),
    (ORDER_EVENTS, "price", "invalid_price"),
    (ORDERS, "max_notional", "invalid_amount"),
    (SETTLEMENTS, "price", "invalid_price"),
    (SETTLEMENTS, "principal", "invalid_amount"),
    (SETTLEMENTS, "accrued", "invalid_amount"),
    (SETTLEMENTS, "part_cash_amount", "invalid_amount"),
    (SETTLEMENTS, "part_principal", "invalid_amount"),
    (SETTLEMENTS, "part_accrued", "invalid_amount"),
    (SETTLEMENTS, "fx_rate", "invalid_fx_rate"),
    (TRADES, "fx_rate", "invalid_fx_rate"),
    (FX_RATES, "rate", "invalid_amount"),
    (INSTRUMENTS, "coupon_rate", "invalid_amount"),
    (INSTRUMENTS, "price_tick", "invalid_amount"),
    (PENALTIES, "base", "invalid_amount"),
    (PENALTIES, "rate", "invalid_amount"),
    (PENALTIES, "amount", "invalid_amount"),
]


def test_money_fields_lists_every_decimal_field() -> None:
    # A new decimal field must be given its reason here, not fall into one by default.
    found = set()
    for topic, model in TOPIC_MODELS.items():
        for name, prop in model.model_json_schema()["properties"].items():
            if any(v.get("maxLength") == DECIMAL_CHARS_MAX for v in prop.get("anyOf", [prop])):
                found.add((topic, name))
    assert found == {(topic, field) for topic, field, _ in MONEY_FIELDS}


@pytest.mark.parametrize(("topic", "field", "reason"), MONEY_FIELDS)
@pytest.mark.parametrize("number", [12.5, 100, 0.1, True])
def test_money_must_be_a_string_never_a_json_number(
    topic: str, field: str, reason: str, number: Any
) -> None:
    error = reject(topic, **{field: number})
    assert error.reason == reason
    assert error.detail.startswith(f"{field}: must be a decimal string")


@pytest.mark.parametrize(
    "text",
    ["1e5", "1E+3", "NaN", "nan", "Infinity", "-Infinity", "+1", ".5", "5.", "01", "1_000",
     " 1", "1 ", "1,5", "0x10", "١٢", "", "-", "1" * 65],
)  # fmt: skip
def test_decimal_strings_are_plain_notation_only(text: str) -> None:
    assert reject(PAYMENTS, amount=text).detail.startswith("amount: must be a decimal string")


@pytest.mark.parametrize(
    ("topic", "field", "text", "reason"),
    [
        (PAYMENTS, "amount", "0", "invalid_amount"),
        (PAYMENTS, "amount", "0.000", "invalid_amount"),
        (PAYMENTS, "amount", "-1", "invalid_amount"),
        (TRADES, "price", "0.0", "invalid_price"),
        (TRADES, "price", "-99.5", "invalid_price"),
        (SETTLEMENTS, "cash_amount", "0", "invalid_amount"),
    ],
)
def test_positive_amounts_refuse_zero_and_negatives(
    topic: str, field: str, text: str, reason: str
) -> None:
    assert reject(topic, **{field: text}).reason == reason


def test_accrued_interest_may_be_zero_but_not_negative() -> None:
    assert decode(TRADES, raw(TRADES, accrued_interest="0.00")).accrued_interest == 0
    assert reject(TRADES, accrued_interest="-0.01").reason == "invalid_price"


@pytest.mark.parametrize(
    ("topic", "value"),
    [
        (TRADES, True),  # bool is an int in Python, never a quantity
        (TRADES, 100_000.0),
        (TRADES, "100000"),
        (TRADES, 0),
        (TRADES, -50_000),
        (TRADES, 75_000),  # not a multiple of the minimum denomination
        (TRADES, 10),
        (ORDERS, 60_000),
        (SETTLEMENTS, 1),
        (CUSTODY, 0),
        (CUSTODY, False),
        (CUSTODY, True),  # == 1, so only the type check refuses it
        (CUSTODY, 1.5),
        (CUSTODY, 2**53),
    ],
)
def test_quantities_are_positive_json_integers(topic: str, value: Any) -> None:
    error = reject(topic, quantity=value)
    assert error.reason == "invalid_quantity"
    assert error.detail.startswith("quantity: must be")


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "true (a JSON boolean)"), (None, "null"), ("7", '"7"'), ([7], "a JSON array"),
     ({"n": 7}, "a JSON object"), (7.5, "7.5 (a JSON number)"), ("x" * 50, '"' + "x" * 36 + '...')],
)  # fmt: skip
def test_details_show_what_came_as_json(value: Any, shown: str) -> None:
    assert reject(CUSTODY, quantity=value).detail.endswith(f", got {shown}")


def test_integers_beyond_64_bits_are_not_quantities() -> None:
    # orjson reads them as floats; they must be refused, not rounded into a quantity.
    value = raw(TRADES).replace(b'"quantity":100000', b'"quantity":18446744073709551616')
    assert b"18446744073709551616" in value
    with pytest.raises(SchemaError) as caught:
        decode(TRADES, value)
    assert caught.value.detail.startswith("quantity: must be")


def test_custody_quantities_need_not_be_multiples_of_the_minimum() -> None:
    # Only trades and orders are in FACE_JPY_MIN lots; a custodian books any face amount.
    assert decode(CUSTODY, raw(CUSTODY, quantity=1)).quantity == 1


@pytest.mark.parametrize(
    ("topic", "field"),
    [(CUSTODY, "isin"), (TRADES, "isin"), (ORDERS, "isin"), (SETTLEMENTS, "isin")],
)
@pytest.mark.parametrize("isin", ["JP3633400002", "US0373831005", "jp3633400001", "JP36334000", 7])
def test_bad_isins_have_their_own_reason(topic: str, field: str, isin: Any) -> None:
    error = reject(topic, **{field: isin})
    assert error.reason == "invalid_isin"
    assert error.detail.startswith(f"{field}: must be an ISIN")


def test_isins_of_any_country_are_accepted() -> None:
    assert decode(CUSTODY, raw(CUSTODY, isin="US0378331005")).isin == "US0378331005"


@pytest.mark.parametrize(
    ("asset", "reason"),
    [("USDC", None), (JGB, None), (JGB[:-1] + "2", "invalid_isin"), ("usdc", "schema"),
     ("U", "schema"), ("ABCDEFGHIJKLM", "schema")],
)  # fmt: skip
def test_a_ledger_asset_is_a_token_or_an_isin(asset: str, reason: str | None) -> None:
    if reason is None:
        assert decode(LEDGER_EVENTS, raw(LEDGER_EVENTS, asset=asset)).asset == asset
    else:
        assert reject(LEDGER_EVENTS, asset=asset).reason == reason


@pytest.mark.parametrize("token", ["jpyc", "J", "ABCDEFGHIJKLM", "JPY1", "JP YC", "ＪＰＹＣ", 5])
def test_token_names_are_2_to_12_upper_case_ascii_letters(token: Any) -> None:
    error = reject(PAYMENTS, token=token)
    assert error.detail.startswith("token: must be a token name")


@pytest.mark.parametrize(
    ("bad_id", "named"),
    [
        ("", None),
        ("x" * 129, None),
        (5, None),
        ("a b", "U+0020 (SPACE) at 1"),
        ("a\tb", "U+0009 (unnamed) at 1"),
        ("a\u3000b", "U+3000 (IDEOGRAPHIC SPACE) at 1"),
        ("a\x00b", "U+0000 (unnamed) at 1"),
        # M12: invisible, reordering and look-alike characters (security-review.md).
        ("alice\u200b", "U+200B (ZERO WIDTH SPACE) at 5"),
        ("\ufeffalice", "U+FEFF (ZERO WIDTH NO-BREAK SPACE) at 0"),
        ("ali\u202ece", "U+202E (RIGHT-TO-LEFT OVERRIDE) at 3"),
        ("a\x9bb", "U+009B (unnamed) at 1"),
        ("\u0430lice", "U+0430 (CYRILLIC SMALL LETTER A) at 0"),
        ("\uff41lice", "U+FF41 (FULLWIDTH LATIN SMALL LETTER A) at 0"),
        ("e\u0301", "U+0301 (COMBINING ACUTE ACCENT) at 1"),
        ("口座-1", "U+53E3 (CJK UNIFIED IDEOGRAPH-53E3) at 0"),
    ],
)
def test_ids_are_short_ascii_and_a_refusal_names_the_character(
    bad_id: Any, named: str | None
) -> None:
    error = reject(TRADES, trade_id=bad_id)
    assert error.reason == "schema"
    assert error.detail.startswith(
        "trade_id: must be 1-128 characters of A-Z a-z 0-9 - _ . : @ /"
    ), error.detail
    if named is not None:
        assert f"{named} is not" in error.detail, error.detail


@pytest.mark.parametrize("good_id", ["x" * 128, "venue-a:T-1", "a:b/c@d", "acct_1.2"])
def test_ids_of_the_safe_set_pass(good_id: str) -> None:
    assert decode(TRADES, raw(TRADES, trade_id=good_id)).trade_id == good_id


@given(st.text(min_size=1, max_size=40))
def test_every_accepted_id_is_nfc_ascii_without_format_characters(text: str) -> None:
    try:
        decoded = decode(TRADES, raw(TRADES, trade_id=text))
    except SchemaError:
        return
    assert decoded.trade_id.isascii() and decoded.trade_id.isprintable()
    assert unicodedata.normalize("NFC", decoded.trade_id) == decoded.trade_id
    assert not any(unicodedata.category(c) == "Cf" for c in decoded.trade_id)


@pytest.mark.parametrize(
    "when",
    [
        "2026-01-02T03:04:05+09:00",  # Tokyo time: must be converted to UTC by the producer
        "2026-01-02T03:04:05",  # naive
        "2026-01-02 03:04:05Z",
        "2026-01-02",
        "2026-02-30T00:00:00Z",
        "2026-01-02T03:04:05.1234567Z",  # a 7th digit would be silently dropped
        "1700000000",
        1700000000,
        "",
    ],
)
def test_times_are_iso_8601_utc(when: Any) -> None:
    error = reject(TRADES, trade_time=when)
    assert error.reason == "schema"
    assert error.detail.startswith("trade_time: must be an ISO-8601 UTC time")


@pytest.mark.parametrize("when", ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00"])
def test_utc_offsets_are_written_as_z(when: str) -> None:
    settlement = decode(SETTLEMENTS, raw(SETTLEMENTS, at=when))
    assert settlement.at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert orjson.loads(encode(settlement))["at"] == "2026-01-02T03:04:05Z"


def test_any_zero_offset_becomes_the_one_utc() -> None:
    fields = {**SAMPLES[SETTLEMENTS], "cash_amount": Decimal("99875")}
    odd_utc = timezone(timedelta(0), "GMT")
    settlement = SettlementStatusChanged(**{**fields, "at": datetime(2026, 1, 2, tzinfo=odd_utc)})
    assert settlement.at.tzinfo is UTC
    assert decode(SETTLEMENTS, encode(settlement)).at.tzinfo is UTC


def test_python_callers_must_pass_utc_too() -> None:
    tokyo = timezone(timedelta(hours=9))
    fields = {**SAMPLES[SETTLEMENTS], "cash_amount": Decimal("99875")}
    with pytest.raises(ValidationError, match="UTC"):
        SettlementStatusChanged(**{**fields, "at": datetime(2026, 1, 2, tzinfo=tokyo)})
    with pytest.raises(ValidationError, match="UTC"):
        SettlementStatusChanged(**{**fields, "at": datetime(2026, 1, 2)})


@pytest.mark.parametrize("version", [2, 0, True, 1.0, "1"])
def test_schema_version_is_the_integer_1(version: Any) -> None:
    error = reject(PAYMENTS, schema_version=version)
    assert error.reason == "schema"
    assert error.detail.startswith("schema_version: ")


def test_schema_version_may_be_omitted() -> None:
    assert "schema_version" not in SAMPLES[PAYMENTS]
    assert decode(PAYMENTS, raw(PAYMENTS)).schema_version == 1


def test_trades_need_two_parties() -> None:
    error = reject(TRADES, seller="acct-a")
    assert (error.reason, error.detail) == ("same_account", "buyer and seller must differ")
    error = reject(SETTLEMENTS, seller="acct-a")
    assert (error.reason, error.detail) == ("same_account", "buyer and seller must differ")


def test_new_orders_need_side_and_quantity_but_cancels_do_not() -> None:
    assert reject(ORDERS, side=...).detail == "a new order needs side and quantity"
    assert reject(ORDERS, side=...).reason == "schema"
    assert reject(ORDERS, quantity=None).detail == "a new order needs side and quantity"
    cancel = decode(ORDERS, raw(ORDERS, action="cancel", side=..., quantity=..., price=...))
    assert (cancel.side, cancel.quantity, cancel.price) == (None, None, None)


def test_orders_default_to_new_gtc_and_null_price_means_market() -> None:
    order = decode(ORDERS, raw(ORDERS, price=None))
    assert (order.action, order.time_in_force, order.price) == ("new", "GTC", None)
    assert decode(ORDERS, raw(ORDERS, price=...)).price is None
    assert reject(ORDERS, time_in_force="FOK").detail.startswith("time_in_force:")


def test_settlement_reasons_match_the_status() -> None:
    assert reject(SETTLEMENTS, status="failed").detail == "reason is required when status is failed"
    assert reject(SETTLEMENTS, reason="late").detail == "reason must be null when status is settled"
    failed = decode(SETTLEMENTS, raw(SETTLEMENTS, status="failed", reason="deadline_passed"))
    assert failed.reason == "deadline_passed"
    assert decode(SETTLEMENTS, raw(SETTLEMENTS, status="pending")).reason is None
    assert reject(SETTLEMENTS, status="failed").reason == "schema"
    assert reject(SETTLEMENTS, status="failed", reason="Not A Code").reason == "schema"


@pytest.mark.parametrize(
    ("changes", "reason", "detail"),
    [
        ({"delta_available": "0", "delta_locked": "0"}, "invalid_amount", "cannot both be 0"),
        ({"delta_available": "900126"}, "invalid_amount", "balance before the change"),  # was -1
        ({"delta_locked": "99876"}, "invalid_amount", "balance before the change"),
        ({"available": "-1"}, "invalid_amount", "available: must be a decimal string >= 0"),
        ({"seq": 0}, "schema", "seq: must be an integer >= 1"),
        ({"seq": "2"}, "schema", "seq: must be an integer >= 1"),
        ({"seq": True}, "schema", "seq: must be an integer >= 1"),
        (
            {"asset": JGB, "locked": "99875.5", "delta_locked": "99875.5"},
            "invalid_amount",
            "whole yen",
        ),
    ],
)
def test_ledger_events_are_consistent(changes: dict[str, Any], reason: str, detail: str) -> None:
    error = reject(LEDGER_EVENTS, **changes)
    assert error.reason == reason
    assert detail in error.detail


def test_schema_errors_read_well_and_survive_pickling() -> None:
    error = reject(TRADES, fee="1")
    assert str(error) == "schema: fee: unknown field"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.detail) == (error.reason, error.detail)


def test_unknown_and_missing_fields() -> None:
    assert (reject(TRADES, fee="1").reason, reject(TRADES, fee="1").detail) == (
        "schema",
        "fee: unknown field",
    )
    error = reject(TRADES, price=...)
    assert (error.reason, error.detail) == ("schema", "price: required")


def test_more_than_one_error_is_counted_not_listed() -> None:
    error = reject(TRADES, price=1, currency=2)
    assert error.detail.startswith("price:")
    assert error.detail.endswith("(and 1 more)")


@pytest.mark.parametrize(
    ("topic", "value", "reason", "detail"),
    [
        (TRADES, b'{"price": "\xff"}', "malformed", "can't decode byte 0xff"),
        (TRADES, b"\xef\xbb\xbf{}", "malformed", "byte order mark"),  # a BOM is not JSON
        (TRADES, b"{", "malformed", "unexpected end of data"),
        (TRADES, b"", "malformed", "empty document"),
        (TRADES, b'{"price": NaN}', "malformed", "expected a JSON value"),
        (TRADES, b"[]", "malformed", "want a JSON object, got a JSON array"),
        (TRADES, b"null", "malformed", "want a JSON object, got null"),
        (TRADES, b'"t-1"', "malformed", 'want a JSON object, got "t-1"'),
        (TRADES, b" " * (VALUE_BYTES_MAX + 1), "malformed", f"more than {VALUE_BYTES_MAX}"),
        ("trade", b"{}", "unknown_topic", "no schema for topic 'trade'"),
    ],
)
def test_values_that_are_not_records(topic: str, value: bytes, reason: str, detail: str) -> None:
    # One reason covers all of these, so the detail is what tells them apart.
    with pytest.raises(SchemaError) as caught:
        decode(topic, value)
    assert caught.value.reason == reason
    assert detail in caught.value.detail


@given(st.sampled_from(sorted(TOPIC_MODELS)), st.binary(max_size=200))
def test_any_bytes_decode_or_raise_schema_error(topic: str, value: bytes) -> None:
    try:
        decode(topic, value)
    except SchemaError as error:
        assert error.reason and error.detail


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=5,
)


@given(topic_and_record, st.data())
def test_one_bad_field_is_named_in_the_detail(
    topic_record: tuple[str, BaseModel], data: st.DataObject
) -> None:
    topic, record = topic_record
    obj = orjson.loads(encode(record))
    field = data.draw(st.sampled_from(sorted(obj)))
    obj[field] = data.draw(json_values)
    try:
        decode(topic, orjson.dumps(obj))
    except SchemaError as error:
        # Either the field itself, or a rule across fields that names it.
        assert error.detail.startswith(f"{field}:") or field in error.detail, error.detail
        assert len(error.detail) <= 1000


def test_a_rejection_points_at_what_arrived_without_quoting_it() -> None:
    value = b'{"trade_id": "venue-a:t1", "isin": "\xff"}'
    with pytest.raises(SchemaError) as caught:
        decode(TRADES, value)
    at = datetime(2026, 1, 2, tzinfo=UTC)
    rejection = rejection_for(source_of(TRADES, 3, 41, b"t-\xfe", value), caught.value, at=at)
    assert rejection.reason == "malformed"
    assert (rejection.source_partition, rejection.source_offset) == (3, 41)
    assert rejection.value_sha256 == hashlib.sha256(value).hexdigest()
    assert rejection.value_bytes == len(value)
    assert rejection.key == "t-\\xfe"
    assert rejection.ref is None  # not JSON: no id to read
    assert decode(REJECTIONS, encode(rejection)) == rejection
    assert key_for(REJECTIONS, rejection) == b"t-\\xfe"
    good_id = orjson.dumps({"trade_id": "venue-a:t2", "price": "x"})
    assert rejection_for(source_of(TRADES, 0, 0, None, good_id), caught.value, at=at).ref == (
        "venue-a:t2"
    )
    tombstone = rejection_for(source_of(TRADES, 0, 7, None, None), caught.value, at=at)
    assert tombstone.key is None and tombstone.value_sha256 is None
    assert tombstone.value_bytes == 0


def test_a_tombstone_is_malformed_with_its_reason() -> None:
    for topic in (PAYMENTS, CUSTODY, TRADES, ORDERS):
        with pytest.raises(SchemaError) as caught:
            decode(topic, None)
        assert (caught.value.reason, caught.value.detail) == ("malformed", "no value (a tombstone)")


# --- JSON Schemas --------------------------------------------------------------------


def float_paths(schema: Any, path: str = "$") -> list[str]:
    """Every place in a JSON Schema that admits a JSON number with a fraction."""
    found: list[str] = []
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "number" or (isinstance(kind, list) and "number" in kind):
            found.append(path)
        for key, sub in schema.items():
            found += float_paths(sub, f"{path}.{key}")
    elif isinstance(schema, list):
        for i, sub in enumerate(schema):
            found += float_paths(sub, f"{path}[{i}]")
    return found


@pytest.mark.parametrize("topic", sorted(TOPIC_MODELS))
def test_no_schema_field_is_a_float(topic: str) -> None:
    assert float_paths(TOPIC_MODELS[topic].model_json_schema()) == []


def test_the_float_scan_finds_floats() -> None:
    class Priced(BaseModel):
        price: float | None
        nested: list[dict[str, float]]

    assert sorted(float_paths(Priced.model_json_schema())) == [
        "$.properties.nested.items.additionalProperties",
        "$.properties.price.anyOf[0]",
    ]


def test_checked_in_json_schemas_match_the_models() -> None:
    assert gen.drifted() == [], "run: python -m schemas.gen"
    assert sorted(p.name for p in gen.JSON_DIR.glob("*.json")) == sorted(
        f"{topic}.json" for topic in TOPIC_MODELS
    )


def test_gen_check_names_drifted_files_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gen.main([], json_dir=tmp_path) == 0
    assert gen.main(["--check"], json_dir=tmp_path) == 0
    trades_file = tmp_path / "trades.json"
    edited = trades_file.read_text().replace('"minimum": 50000', '"minimum": 1')
    trades_file.write_text(edited)
    (tmp_path / "payments.json").unlink()
    (tmp_path / "old-topic.json").write_text("{}\n")
    capsys.readouterr()

    assert gen.main(["--check"], json_dir=tmp_path) == 1
    err = capsys.readouterr().err
    for name in ("trades.json", "payments.json", "old-topic.json"):
        assert name in err
    assert "custody.json" not in err
    assert trades_file.read_text() == edited  # --check wrote nothing
    assert not (tmp_path / "payments.json").exists()

    assert gen.main([], json_dir=tmp_path) == 0
    assert gen.drifted(tmp_path) == []
    assert not (tmp_path / "old-topic.json").exists()


def test_generated_files_are_sorted_indented_and_end_with_a_newline() -> None:
    text = (gen.JSON_DIR / "trades.json").read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_the_documented_check_command_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "schemas.gen", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_max_notional_caps_a_new_market_buy_only() -> None:
    base = {"order_id": "o1", "venue": "v", "account": "a", "isin": "JP1103551Q43",
            "currency": "JPYC", "quantity": 100_000}  # fmt: skip
    market_buy = {**base, "side": "buy", "max_notional": "100000"}
    order = decode(ORDERS, orjson.dumps(market_buy))
    assert isinstance(order, SubmitOrder) and order.max_notional == Decimal("100000")
    for refused in ({**market_buy, "price": "99.5"}, {**market_buy, "side": "sell"}):
        with pytest.raises(SchemaError, match="max_notional caps a market buy only"):
            decode(ORDERS, orjson.dumps(refused))
    # A cancel may echo its order's fields.
    cancel = {**market_buy, "price": "99.5", "action": "cancel"}
    order = decode(ORDERS, orjson.dumps(cancel))
    assert isinstance(order, SubmitOrder) and order.action == "cancel"
