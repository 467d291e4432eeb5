"""A ``trades`` record in the engine: keys, limits, and each trade id used once."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.engine.core import Batch, Engine, Outputs, Rules
from streams.money import TRADE_TOKENS_MAX
from streams.security.quota import Limit
from streams.settlement.intake import Checked, check_record, deadline_at, to_trade
from streams.settlement.messages import Trade

TOKENS = {"JPYC": 0, "USDC": 6}


def trade(trade_id: str = "t1", price: str = "99.5", **fields: str) -> bytes:
    return orjson.dumps({"trade_id": trade_id, "venue": "v", "isin": "JP1103551Q43",
        "buyer": "b", "seller": "s", "quantity": 100_000, "price": price,
        "currency": "JPYC", "trade_time": "2026-11-25T00:00:00Z", **fields})  # fmt: skip


def _send(engine: Engine, rules: Rules, key: bytes | None, value: bytes, at: float,
          partition: int = 0) -> Outputs:  # fmt: skip
    batch = Batch(engine, rules, at)
    batch.record("trades", partition, 0, key, value, at)
    return batch.finish()


def _outcome(out: Outputs) -> str:
    """What became of the one record: its rejection's reason, or "accepted"."""
    return out.rejected[0][1] if out.rejected else ("accepted" if out.received else "nothing")


def test_a_trade_must_be_keyed_by_its_id() -> None:
    good = check_record(b"t1", trade())
    assert isinstance(good, Checked)
    made = to_trade(good.trade, 1_000.0, tokens=TOKENS, deadline_s=30)
    assert isinstance(made, Trade) and made.deadline_at_s == 1_030.0
    for key in (None, b"t2", b""):
        rejected = check_record(key, trade())
        assert isinstance(rejected, tuple) and rejected[0] == "wrong_key", key


def test_a_trade_id_is_used_once_and_a_record_that_does_not_decode_uses_none() -> None:
    engine, rules = Engine(), Rules(tokens=TOKENS, deadline_s=1)
    assert _outcome(_send(engine, rules, b"t1", trade(price="0"), 0.0)) == "invalid_price"
    assert not engine.seen("t1")
    assert _outcome(_send(engine, rules, b"t1", trade(), 0.0)) == "accepted"
    again = _send(engine, rules, b"t1", trade(price="98"), 5.0)
    assert _outcome(again) == "duplicate"


@pytest.mark.parametrize(("currency", "decimals"), [("JPYC", 0), ("USDC", 6)])
def test_the_cash_leg_limit_is_in_whole_tokens_not_raw_units(currency: str, decimals: int) -> None:
    """10**12 whole tokens per trade, whatever the token's decimals (a limit in raw
    units once capped a trade at ~9.22 JPYC at 18 decimals: the domain review, P5)."""
    # 100,000 face at 10**9 per 100: 10**12 tokens, the most a trade may move.
    fits = check_record(b"t1", trade(price="1000000000", currency=currency))
    assert isinstance(fits, Checked)
    made = to_trade(fits.trade, 0.0, tokens=TOKENS, deadline_s=1, token_limit=True)
    assert isinstance(made, Trade) and made.cash_units == TRADE_TOKENS_MAX * 10**decimals
    over = check_record(b"t1", trade(price="1000000000.01", currency=currency))
    assert isinstance(over, Checked)
    refused = to_trade(over.trade, 0.0, tokens=TOKENS, deadline_s=1, token_limit=True)
    assert refused == ("invalid_price", f"cash leg of t1 is more than 1,000,000,000,000 {currency}")
    # Under the rules of a log written before (no on-chain decimals): 64 bits of units.
    assert isinstance(to_trade(over.trade, 0.0, tokens=TOKENS, deadline_s=1), Trade)
    huge = check_record(b"t1", trade(price="1" + "0" * 29, currency=currency))
    assert isinstance(huge, Checked)
    for limit in (True, False):
        refused = to_trade(huge.trade, 0.0, tokens=TOKENS, deadline_s=1, token_limit=limit)
        assert isinstance(refused, tuple) and refused[0] == "invalid_price"


def test_a_checked_trade_rejected_after_uses_its_id_up() -> None:
    """H3: a trade rejected `unknown_token` settled when sent again once the token was
    configured: the same economic trade, twice if the venue had re-issued it."""
    engine = Engine()
    eurc = trade("t7", currency="EURC")
    first = _send(engine, Rules(tokens=TOKENS, deadline_s=1), b"t7", eurc, 0.0)
    assert _outcome(first) == "unknown_token"
    later = Rules(tokens={**TOKENS, "EURC": 2}, deadline_s=1)
    assert _outcome(_send(engine, later, b"t7", eurc, 9.0)) == "duplicate"


def test_a_venue_past_its_rate_is_rate_limited_and_its_id_stays_free() -> None:
    """M13: one venue could flood a partition; a refused record must not use its id."""
    engine = Engine()
    rules = Rules(tokens=TOKENS, deadline_s=1, trade_limit=Limit(per_s=1, burst=2))

    def send(tid: str, at_s: float, venue: str = "v", partition: int = 0) -> str:
        value = trade(tid, venue=venue)
        return _outcome(_send(engine, rules, tid.encode(), value, at_s, partition))

    assert send("t1", 100.0) == send("t2", 100.0) == "accepted"
    assert send("t3", 100.0) == "rate_limited"
    assert not engine.seen("t3")
    # Other venues and the matcher's own trades have buckets of their own; another
    # partition does not (issue 19: the venue's client picked it).
    assert send("t4", 100.0, venue="w") == "accepted"
    assert send("t5", 100.0, partition=1) == "rate_limited"
    assert all(send(f"k{n}", 100.0, venue="kessai") == "accepted" for n in range(5))
    # A second later the venue has earned one more: t3 sent again is accepted.
    assert send("t3", 101.0) == "accepted"
    assert send("t6", 101.0) == "rate_limited"


@given(
    st.floats(0, 4e9, allow_nan=False),
    st.floats(0, 4e9, allow_nan=False),
    st.floats(1, 86_400, allow_nan=False),
)
def test_a_deadline_counts_from_the_trade_time_within_the_arrivals_bounds(
    trade_time_s: float, arrived_s: float, deadline_s: float
) -> None:
    """M1: the deadline follows the venue's signed trade_time, but a trade stamped in the
    future counts from its arrival, and one stamped long before has until its arrival."""
    due = deadline_at(trade_time_s, arrived_s, deadline_s)
    assert arrived_s <= due <= arrived_s + deadline_s
    if arrived_s - deadline_s <= trade_time_s <= arrived_s:
        assert due == trade_time_s + deadline_s


def test_a_trade_stamped_a_year_ahead_counts_from_its_arrival() -> None:
    checked = check_record(b"t1", trade(trade_time="2027-12-04T00:00:00Z"))
    assert isinstance(checked, Checked)
    made = to_trade(checked.trade, 1_800_000_000.0, tokens=TOKENS, deadline_s=30)
    assert isinstance(made, Trade) and made.deadline_at_s == 1_800_000_030.0


@given(
    st.lists(
        st.tuples(
            st.sampled_from([50_000, 100_000, 150_000]),
            st.sampled_from(["98.765", "98.7650", "99.5", "100"]),
            st.sampled_from(
                ["2025-11-04T01:00:00Z", "2025-11-04T20:00:00Z", "2025-11-05T01:00:00Z"]
            ),
            st.sampled_from([None, "2025-11-06"]),
            st.booleans(),  # a new version of the security master before this trade
        ),
        max_size=12,
    )
)
def test_the_dated_memo_gives_what_the_intake_computes(
    trades: list[tuple[int, str, str, str | None, bool]],
) -> None:
    # to_trade with the memo (the engine's) must be to_trade without it, whatever the
    # order of trades: the face, the price as written, the day in Japan, the dates
    # and the very instrument object all part of what it is reused for.
    from schemas import Instrument
    from streams.settlement.intake import Master

    def bond(rate: str) -> Instrument:
        return Instrument.model_validate({
            "isin": "JP1103771Q62", "kind": "fixed", "series": "#377", "coupon_rate": rate,
            "coupon_dates": ["03-20", "09-20"], "issue_date": "2025-04-01",
            "maturity_date": "2035-03-20", "face_unit": 50_000, "price_tick": "0.001",
        })  # fmt: skip

    instruments = {"JP1103771Q62": bond("0.9")}
    master, memo = Master(1, instruments), {}  # type: ignore[var-annotated]
    for n, (face, price, at, settles, reissue) in enumerate(trades):
        if reissue:
            instruments["JP1103771Q62"] = bond("0.9" if n % 2 else "1.1")
        value = {**orjson.loads(trade(f"t{n}", price, trade_time=at)), "quantity": face,
                 "isin": "JP1103771Q62"}  # fmt: skip
        if settles is not None:
            value["settlement_date"] = settles
        checked = check_record(f"t{n}".encode(), orjson.dumps(value))
        assert isinstance(checked, Checked)
        kwargs = {"tokens": TOKENS, "deadline_s": 30.0, "master": master}
        plain = to_trade(checked.trade, 1_762_300_000.0, **kwargs)  # type: ignore[arg-type]
        memoized = to_trade(checked.trade, 1_762_300_000.0, memo=memo, **kwargs)  # type: ignore[arg-type]
        assert memoized == plain
