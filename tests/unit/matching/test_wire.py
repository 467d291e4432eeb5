"""The matcher's records, built without pydantic, are byte for byte what the models
write (``encode(Model(...))``), signed or not, for every kind the matcher sends."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import ORDER_EVENTS, TRADES, decode, encode
from streams.matching import handler
from streams.matching.handler import handle_record
from streams.matching.matcher import MatchedTrade, Matcher, OrderUpdate
from streams.security import signing
from tests.support.matching_models import order_event_model, trade_model

ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.:", min_size=1, max_size=20)
prices = st.decimals(Decimal("0.001"), Decimal("999.999"), places=3)
times = st.floats(1, 4e9, allow_nan=False).map(lambda s: datetime.fromtimestamp(s, UTC))
ISIN = "JP1103551Q43"


@settings(max_examples=300)
@given(ids, st.integers(1, 10**6), prices, st.sampled_from(["JPYC", "USDC"]), times)
def test_a_trade_is_what_the_model_writes(
    trade_id: str, units: int, price: Decimal, currency: str, at: datetime
) -> None:
    t = MatchedTrade(f"m-{trade_id}", ISIN, currency, "buyer", "seller", 50_000 * units, price)
    made = handler.trade_object(t, signing.utc_text(at))
    assert orjson.dumps(made) == encode(trade_model(t, at))
    assert decode(TRADES, orjson.dumps(made)) == trade_model(t, at)


@st.composite
def updates(draw: st.DrawFn) -> OrderUpdate:
    """An order step the model takes: a fill names its trade, a refusal its reason."""
    kind = draw(st.sampled_from(["accepted", "filled", "partially_filled", "cancelled",
                                 "rejected"]))  # fmt: skip
    fill = kind in ("filled", "partially_filled")
    reasons = st.sampled_from(["duplicate", "order_closed", "rate_limited"])
    return OrderUpdate(
        kind,  # type: ignore[arg-type]
        ISIN,
        "JPYC",
        "venue-a",
        draw(ids),
        draw(st.one_of(st.none(), st.just("acct-1"))),
        draw(st.one_of(st.none(), st.sampled_from(["buy", "sell"]))),
        draw(st.integers(1 if fill else 0, 10**12)),
        draw(st.integers(0, 10**12)),
        draw(st.one_of(st.none(), prices)),
        "m-1" if fill else draw(st.one_of(st.none(), st.just("m-1"))),
        draw(reasons) if kind in ("cancelled", "rejected") else draw(st.none() | reasons),
    )


@settings(max_examples=300)
@given(updates(), times)
def test_an_order_event_is_what_the_model_writes(u: OrderUpdate, at: datetime) -> None:
    made = handler.order_event_object(u, signing.utc_text(at))
    assert orjson.dumps(made) == encode(order_event_model(u, at))


def test_a_signed_trade_is_what_the_model_signed_writes_and_verifies() -> None:
    key = signing.SigningKey.generate(signing.MATCHER_SIGNER, "kessai-test")
    at = datetime(2026, 12, 4, 1, 2, 3, 456_000, tzinfo=UTC)
    t = MatchedTrade("m-1", ISIN, "JPYC", "buyer", "seller", 100_000, Decimal("99.50"))
    made = handler.signed_trade(handler.trade_object(t, signing.utc_text(at)), key)
    assert orjson.dumps(made) == encode(signing.sign_model(TRADES, trade_model(t, at), key))


def test_every_record_an_order_flow_makes_decodes_and_reencodes_to_its_bytes() -> None:
    """Accepted, partial and whole fills, a cancel, a duplicate and a malformed order."""
    matcher = Matcher({}, tokens={"JPYC": 0})

    def order(order_id: str, side: str, quantity: int, action: str = "new") -> bytes:
        return orjson.dumps({"order_id": order_id, "venue": "v", "account": f"a-{side}",
                             "isin": ISIN, "side": side, "quantity": quantity,
                             "price": "99.5", "currency": "JPYC", "action": action})  # fmt: skip

    flow = [order("s1", "sell", 300_000), order("b1", "buy", 100_000),
            order("b2", "buy", 400_000), order("s2", "sell", 50_000), order("b1", "buy", 100_000),
            orjson.dumps({"order_id": "x", "venue": "v", "isin": ISIN, "currency": "JPYC"}),
            order("b2", "buy", 400_000, "cancel")]  # fmt: skip
    kinds: set[str] = set()
    for i, value in enumerate(flow):
        out = handle_record(lambda: matcher, ISIN.encode(), value, 1_800_000_000.5 + i)
        for topic, records in ((TRADES, out.trades), (ORDER_EVENTS, out.order_events)):
            for obj in records:
                raw = orjson.dumps(obj)
                assert encode(decode(topic, raw)) == raw, obj
                kinds.add(f"{topic}:{obj.get('event', 'trade')}")
    assert kinds >= {"trades:trade", "order-events:accepted", "order-events:filled",
                     "order-events:partially_filled", "order-events:cancelled",
                     "order-events:rejected"}  # fmt: skip
