"""The trade intake's handler: keys, limits, and each trade id forwarded once."""

from __future__ import annotations

import orjson

from streams.settlement.intake import handle_trade
from streams.settlement.intake import intake_record as trade_intake
from streams.settlement.messages import Trade

TOKENS = {"JPYC": 0, "USDC": 6}


def trade(trade_id: str = "t1", price: str = "99.5") -> bytes:
    return orjson.dumps({"trade_id": trade_id, "venue": "v", "isin": "JP1103551Q43",
        "buyer": "b", "seller": "s", "quantity": 100_000, "price": price,
        "currency": "JPYC", "trade_time": "2026-11-25T00:00:00Z"})  # fmt: skip


def test_a_trade_must_be_keyed_by_its_id() -> None:
    good = trade_intake(b"t1", trade(), 1_000.0, tokens=TOKENS, deadline_s=30)
    assert isinstance(good, Trade) and good.deadline_at_s == 1_030.0
    for key in (None, b"t2", b""):
        rejected = trade_intake(key, trade(), 1_000.0, tokens=TOKENS, deadline_s=30)
        assert isinstance(rejected, tuple) and rejected[0] == "wrong_key", key


def test_a_trade_id_is_forwarded_once_and_a_record_that_does_not_decode_uses_none() -> None:
    seen: dict[str, bool] = {}
    bad = handle_trade(seen, b"t1", trade(price="0"), 0.0, tokens=TOKENS, deadline_s=1)
    assert isinstance(bad, tuple) and seen == {}
    first = handle_trade(seen, b"t1", trade(), 0.0, tokens=TOKENS, deadline_s=1)
    assert isinstance(first, Trade) and seen == {"t1": True}
    again = handle_trade(seen, b"t1", trade(price="98"), 5.0, tokens=TOKENS, deadline_s=1)
    assert again == ("duplicate", "trade t1 was seen before")


def test_a_trade_whose_cash_leg_is_past_the_limit_is_invalid_price() -> None:
    rejected = trade_intake(b"t1", trade(price="1" + "0" * 29), 0.0, tokens=TOKENS, deadline_s=1)
    assert isinstance(rejected, tuple) and rejected[0] == "invalid_price"


def test_a_cash_leg_past_64_bits_is_refused_and_one_below_fits_every_table() -> None:
    """The saga's rows go through faust's JSON codec (orjson, 64-bit integers): a trade
    of 10**20 JPYC units would have stopped the worker at its commit."""
    from faust.utils import json as faust_json

    from streams.settlement.handler import handle_inbox

    # 100,000 face at 10**14 % = 10**17 JPYC: fits. At 10**16 %: 10**19, past 2**63.
    fits = trade_intake(b"t1", trade(price="1" + "0" * 14), 0.0, tokens=TOKENS, deadline_s=1)
    assert isinstance(fits, Trade) and fits.cash_units == 10**17
    sagas: dict[str, object] = {}
    handle_inbox(sagas, 0, fits, {})
    faust_json.dumps(sagas["t1"])  # the changelog write does this
    refused = trade_intake(b"t1", trade(price="1" + "0" * 16), 0.0, tokens=TOKENS, deadline_s=1)
    assert isinstance(refused, tuple) and refused[0] == "invalid_price"
    assert str(2**63 - 1) in refused[1]


def test_a_checked_trade_rejected_after_uses_its_id_up() -> None:
    """H3: a trade rejected `unknown_token` settled when sent again once the token was
    configured: the same economic trade, twice if the venue had re-issued it."""
    seen: dict[str, bool] = {}
    eurc = orjson.loads(trade("t7"))
    eurc["currency"] = "EURC"
    first = handle_trade(seen, b"t7", orjson.dumps(eurc), 0.0, tokens=TOKENS, deadline_s=1)
    assert isinstance(first, tuple) and first[0] == "unknown_token"
    later = {**TOKENS, "EURC": 2}
    again = handle_trade(seen, b"t7", orjson.dumps(eurc), 9.0, tokens=later, deadline_s=1)
    assert again == ("duplicate", "trade t7 was seen before")


def test_a_venue_past_its_rate_is_rate_limited_and_its_id_stays_free() -> None:
    """M13: one venue could flood a partition; a refused record must not use its id."""
    from streams.security.quota import Limit, Quota

    seen: dict[str, bool] = {}
    quota = Quota({}, Limit(per_s=1, burst=2))

    def send(tid: str, at_s: float, venue: str = "v", partition: int = 0) -> object:
        value = orjson.loads(trade(tid))
        value["venue"] = venue
        return handle_trade(seen, tid.encode(), orjson.dumps(value), at_s, tokens=TOKENS,
                            deadline_s=1, quota=quota, partition=partition)  # fmt: skip

    assert isinstance(send("t1", 100.0), Trade) and isinstance(send("t2", 100.0), Trade)
    limited = send("t3", 100.0)
    assert limited == (
        "rate_limited",
        "venue 'v' sent more than 1 records a second (bursts of 2) on partition 0; "
        "send it again later",
    )
    assert "t3" not in seen
    # Other venues, other partitions and the matcher's own trades have buckets of their own.
    assert isinstance(send("t4", 100.0, venue="w"), Trade)
    assert isinstance(send("t5", 100.0, partition=1), Trade)
    assert all(isinstance(send(f"k{n}", 100.0, venue="kessai"), Trade) for n in range(5))
    # A second later the venue has earned one more: t3 sent again settles.
    assert isinstance(send("t3", 101.0), Trade)
    assert send("t6", 101.0)[0] == "rate_limited"  # type: ignore[index]
