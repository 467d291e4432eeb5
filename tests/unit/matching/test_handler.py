"""The matching agent's per-record handler: the checks before the books see an order."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from schemas import TRADES, decode
from streams.matching.handler import handle_record
from streams.matching.matcher import Matcher, row_key
from streams.security.quota import Limit, Quota

TOKENS = {"JPYC": 0}
ISIN = "JP1103551Q43"


def _order(order_id: str, venue: str = "v") -> bytes:
    return orjson.dumps({"order_id": order_id, "venue": venue, "account": "a", "isin": ISIN,
                         "side": "buy", "quantity": 100_000, "price": "99.5",
                         "currency": "JPYC"})  # fmt: skip


def test_an_order_past_its_venues_rate_is_rate_limited_and_its_id_stays_free() -> None:
    """M13: the venue hears why (an order event), nothing reaches the books, and the
    same order sent again once the bucket refilled is taken."""
    rows: dict[str, bytes] = {}
    matcher = Matcher(rows, tokens=TOKENS)
    quota = Quota({}, Limit(per_s=1, burst=1))

    def send(order_id: str, at_s: float, venue: str = "v") -> tuple[object, list[str]]:
        out = handle_record(lambda: matcher, ISIN.encode(), _order(order_id, venue), at_s,
                            quota=quota, partition=3)  # fmt: skip
        return out.rejection, [f"{e['event']}:{e['reason']}" for e in out.order_events]

    assert send("o1", 50.0) == (None, ["accepted:None"])
    reason, events = send("o2", 50.0)
    assert reason == (
        "rate_limited",
        "venue 'v' sent more than 1 records a second (bursts of 1; this one on partition 3); "
        "send it again later",
    )
    assert events == ["rejected:rate_limited"]
    assert len(rows) == 1  # o1's row only: o2's id is free
    assert send("o3", 50.0, venue="w")[0] is None  # a bucket of its own
    assert send("o2", 51.0) == (None, ["accepted:None"])


def test_orders_of_a_settlement_date_cross_only_each_other_and_their_trade_carries_it() -> None:
    """Issue 20: an order may name its settlement date. A dated sell and an undated buy
    do not cross; a buy of the same date does, and its trade settles on that date
    (the engine checks the rest); a date before the order's trade date is refused, the
    id left free; a restarted matcher keeps the dated book."""
    rows: dict[str, bytes] = {}
    at_s = 1_764_460_800.0  # Sun 30 Nov 2025 00:00 UTC: Sunday 09:00 in Japan

    def send(order_id: str, side: str, date: str | None, m: Matcher) -> Any:
        order = orjson.loads(_order(order_id)) | {"side": side, "account": side}
        if date is not None:
            order["settlement_date"] = date
        return handle_record(lambda: m, ISIN.encode(), orjson.dumps(order), at_s)

    matcher = Matcher(rows, tokens=TOKENS)
    assert send("s1", "sell", "2025-12-02", matcher).trades == []
    assert send("b1", "buy", None, matcher).trades == []  # the regular book: no cross
    restarted = Matcher(rows, tokens=TOKENS)
    [trade] = send("b2", "buy", "2025-12-02", restarted).trades
    assert trade["settlement_date"] == "2025-12-02"
    assert decode(TRADES, orjson.dumps(trade)).settlement_date == dt.date(2025, 12, 2)
    out = send("b3", "buy", "2025-11-28", restarted)
    assert out.rejection == (
        "invalid_settlement_date",
        "settlement_date 2025-11-28 is not within 31 days on or after the trade date 2025-11-30",
    )
    assert [e["event"] for e in out.order_events] == ["rejected"]
    assert row_key(ISIN, "v", "b3") not in rows  # the id stays free
    # A trade date, when sent, is the record's date in Japan.
    dated = orjson.loads(_order("b4")) | {"trade_date": "2025-11-29"}
    refused = handle_record(lambda: restarted, ISIN.encode(), orjson.dumps(dated), at_s)
    assert refused.rejection is not None and refused.rejection[0] == "invalid_trade_date"
    dated["trade_date"] = "2025-11-30"
    assert (
        handle_record(lambda: restarted, ISIN.encode(), orjson.dumps(dated), at_s).rejection is None
    )
    assert {(b[2], len(book)) for b, book in restarted.books().items()} == {
        ("2025-12-02", 0),
        (None, 2),  # b1 and b4
    }
