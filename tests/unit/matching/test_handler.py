"""The matching agent's per-record handler: the checks before the books see an order."""

from __future__ import annotations

import orjson

from streams.matching.handler import handle_record
from streams.matching.matcher import Matcher
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
