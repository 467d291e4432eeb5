"""The matching variant's load: valid orders in crossing pairs, each one trade whose id
the observer can compute from the taker alone."""

from __future__ import annotations

import orjson
from kessai_bench.orders import OrderFactory, taker_trade_id

from schemas import ORDERS, SubmitOrder, decode
from streams.matching.handler import request_of
from streams.matching.matcher import Matcher


def test_each_pair_makes_exactly_the_trade_the_observer_expects() -> None:
    factory = OrderFactory("T", seed=3)
    matcher = Matcher({}, tokens={"JPYC": 0})
    expected: list[bytes] = []
    made: list[bytes] = []
    for _ in range(200):
        key, value = factory.record()
        order = decode(ORDERS, value)  # what the agent decodes: valid, byte for byte
        assert isinstance(order, SubmitOrder) and key == order.isin.encode()
        handled = matcher.handle(request_of(order))
        assert handled.rejected is None
        made += [t.trade_id.encode() for t in handled.trades]
        trade_id = taker_trade_id(value)
        if orjson.loads(value)["side"] == "buy":
            assert trade_id is not None
            expected.append(trade_id)
        else:
            assert trade_id is None
    assert made == expected and len(made) == 100
    # Every book is empty again after each pair: nothing rests.
    assert all(len(book) == 0 for book in matcher.books().values())
