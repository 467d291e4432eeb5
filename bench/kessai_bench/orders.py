"""``orders`` records for the load generator: crossing pairs, one trade each.

The matching variant measures orders in, settlements out. Each pair is a resting
sell (the maker, ``{prefix}-{n:09d}-s``) and the buy that fills all of it (the taker,
``{prefix}-{n:09d}-b``): same bond, same price, same face, accounts drawn from the
bench's funded ones. Pairs are published back to back and keyed by ISIN, so a bond's
book sees maker then taker and empties again; every pair makes exactly one trade,
whose id is known in advance (:func:`streams.matching.book.fill_trade_id`). That is
how the observer pairs each settlement with its taker's publish time
(:func:`taker_trade_id`). Values are built as plain dicts in ``SubmitOrder``'s field
order and dumped with orjson, as :mod:`kessai_bench.trades` does for trades.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from kessai_bench.trades import ACCOUNTS, BONDS, SCHEMA_VERSION
from streams.matching.book import fill_trade_id

VENUE = "bench"
CURRENCY = "JPYC"
PRICE = "99.50"


class OrderFactory:
    """Makes order records ``(key, value)``: maker, taker, maker, taker, ..."""

    def __init__(self, prefix: str, *, seed: int = 7) -> None:
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.accounts = [f"acct-{i:05d}" for i in range(ACCOUNTS)]
        self.made = 0
        self._taker: dict[str, Any] | None = None

    def order(self) -> dict[str, Any]:
        """The next order as the JSON object a venue sends."""
        if self._taker is not None:
            taker, self._taker = self._taker, None
            return taker
        rng = self.rng
        self.made += 1
        seller, buyer = rng.sample(self.accounts, 2)
        isin = BONDS[self.made % len(BONDS)]
        quantity = 50_000 * rng.randrange(1, 21)
        pair = f"{self.prefix}-{self.made:09d}"

        def one(side: str, account: str, suffix: str) -> dict[str, Any]:
            return {
                "schema_version": SCHEMA_VERSION,
                "order_id": f"{pair}-{suffix}",
                "venue": VENUE,
                "account": account,
                "isin": isin,
                "side": side,
                "quantity": quantity,
                "price": PRICE,
                "currency": CURRENCY,
                "time_in_force": "GTC",
                "action": "new",
            }

        self._taker = one("buy", buyer, "b")
        return one("sell", seller, "s")

    def record(self) -> tuple[bytes, bytes]:
        """The next order as a Kafka record: key ISIN, value compact JSON."""
        value = self.order()
        return value["isin"].encode(), orjson.dumps(value)


def taker_trade_id(value: bytes) -> bytes | None:
    """The trade a taker order makes (its settlement's key); None for a maker."""
    order: dict[str, Any] = orjson.loads(value)
    order_id: str = order["order_id"]
    if not order_id.endswith("-b"):
        return None
    venue = order["venue"]
    maker = (venue, order_id[:-1] + "s")
    return fill_trade_id(order["isin"], order["currency"], maker, (venue, order_id)).encode()
