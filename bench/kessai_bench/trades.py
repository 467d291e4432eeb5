"""Realistic ``trades`` records for the load generator, cheap enough for full speed.

A record is what a venue publishes on ``trades`` (:class:`schemas.TradeExecuted`),
byte for byte what :func:`schemas.encode` makes of it, keyed by ``trade_id`` as
kessai keys trades -- so the benchmark moves the real pipeline's payload size. It is
built as a plain dict in the model's field order and dumped with orjson (~0.2 µs)
instead of validating a model per record (~20 µs, which at full speed would be
the generator's bottleneck); ``tests/unit/test_bench_trades.py`` checks that both give
the same bytes. Ids have a fixed width, so every record has about the same size.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas import check_digit
from streams.security import signing

#: Three valid JGB-like ISINs (the settlement crash test's set).
BONDS: tuple[str, ...] = tuple(
    b + check_digit(b) for b in ("JP110355100", "JP110356100", "JP120144000")
)


def instrument(isin: str) -> dict[str, Any]:
    """The security master's record of one of :data:`BONDS` (illustrative terms), for
    the runs whose workers require the master."""
    return {"isin": isin, "kind": "fixed", "series": f"bench bond {isin}",
            "coupon_rate": "0.1", "coupon_dates": ["03-20", "09-20"],
            "issue_date": "2015-03-20", "maturity_date": "2045-03-20",
            "face_unit": 50_000, "price_tick": "0.01"}  # fmt: skip


#: USDC's reference rate (yen per USD) a run publishes on ``fx-rates`` before its
#: trades, and the rate its USDC trades carry (docs/fx.md).
USDC_JPY = "150.25"


def fx_reference(at: str | None = None) -> dict[str, Any]:
    """USDC's reference rate, observed ``at`` (default :data:`STARTED`, the trades'
    time): the engine refuses a USDC trade without one this recent."""
    return {"currency": "USDC", "rate": USDC_JPY, "source": "bench-fixing", "at": at or STARTED}


#: Accounts trades are drawn between; enough that keys spread over every partition.
ACCOUNTS = 1_000
#: ``schemas.TradeExecuted``'s version field, first in its encoding.
SCHEMA_VERSION = 1
#: The process's start, to the second: the trades' default ``trade_time``.
STARTED = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class TradeFactory:
    """Makes trade records ``(key, value)`` for one run: ids ``{prefix}-{n:09d}``."""

    def __init__(
        self,
        prefix: str,
        *,
        seed: int = 7,
        signer: signing.SigningKey | None = None,
        trade_time: str | None = None,
        kessai_accrued: bool = False,
    ) -> None:
        """With ``signer``, each trade is the signer's (its ``venue``) and signed;
        every trade carries ``trade_time`` (default: this process's start, to the
        second: recent, as the engine's window wants, and the same for every factory
        of a run). A USDC trade carries its FX rate (:data:`USDC_JPY`, at its trade
        time). With ``kessai_accrued``, a trade sends no accrued interest (kessai
        computes it from the security master, in yen whatever the currency)."""
        self.kessai_accrued = kessai_accrued
        self.prefix = prefix
        self.trade_time = trade_time or STARTED
        self.signer = signer
        self.venue = signer.signer if signer is not None else "sim"
        #: A signing venue's trade ids start with its id (streams/security/signing.py).
        self.id_prefix = f"{signer.signer}{signing.TRADE_ID_SEPARATOR}" if signer else ""
        self.rng = random.Random(seed)
        self.accounts = [f"acct-{i:05d}" for i in range(ACCOUNTS)]
        self.made = 0

    def trade(self) -> dict[str, Any]:
        """The next trade as the JSON object a venue sends (field order of the model)."""
        rng = self.rng
        self.made += 1
        buyer, seller = rng.sample(self.accounts, 2)
        trade = {
            "schema_version": SCHEMA_VERSION,
            "trade_id": f"{self.id_prefix}{self.prefix}-{self.made:09d}",
            "venue": self.venue,
            "isin": rng.choice(BONDS),
            "buyer": buyer,
            "seller": seller,
            "quantity": 50_000 * rng.randrange(1, 21),
            "price": f"{rng.randrange(9_800, 10_200) / 100:.2f}",
            "currency": "JPYC" if rng.random() < 0.8 else "USDC",
            "accrued_interest": f"{rng.randrange(0, 5_000) / 100:.2f}",
            "trade_time": self.trade_time,
        }
        if self.kessai_accrued:
            del trade["accrued_interest"]  # drawn all the same: the same trades otherwise
        if trade["currency"] == "USDC":  # priced in yen, converted at its rate
            trade.update(fx_rate=USDC_JPY, fx_source="bench-venue", fx_time=self.trade_time)
        return trade

    def record(self) -> tuple[bytes, bytes]:
        """The next trade as a Kafka record: key ``trade_id``, value compact JSON."""
        value = self.trade()
        if self.signer is not None:
            value = signing.sign("trades", value, self.signer)
        return value["trade_id"].encode(), orjson.dumps(value)
