"""``kessai penalties``'s fold: a month per counterparty pair, exact sums, each format."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

import orjson

from schemas import FailPenalty
from streams.audit.penalties import fold, render


def penalty(trade_id: str, day: str, liable: str, other: str, amount: str) -> FailPenalty:
    side: Literal["seller", "buyer"] = "seller" if liable.startswith("s") else "buyer"
    return FailPenalty(
        penalty_id=f"{trade_id}:{day}:{side}", trade_id=trade_id, day=dt.date.fromisoformat(day),
        fail_day=1, side=side, liable=liable, counterparty=other,
        reason="insufficient_securities", policy="csdr", base=Decimal("98878424"),
        rate=Decimal("0.00001"), per="day", amount=Decimal(amount), currency="JPYC",
        isin="JP1103771Q62", at=dt.datetime(2025, 11, 5, 5, tzinfo=dt.UTC),
    )  # fmt: skip


RECORDS = [
    penalty("t1", "2025-11-05", "s1", "b1", "988"),
    penalty("t1", "2025-11-06", "s1", "b1", "988"),
    penalty("t1", "2025-11-07", "s1", "b1", "988"),
    penalty("t2", "2025-11-28", "s1", "b1", "10"),
    penalty("t3", "2025-11-05", "b2", "s1", "2031"),
    penalty("t1", "2025-12-01", "s1", "b1", "988"),  # next month
]


def test_a_month_sums_per_pair_largest_first() -> None:
    pairs = fold(RECORDS, "2025-11")
    assert [(p.liable, p.counterparty, p.fail_days, len(p.trades), p.amount) for p in pairs] == [
        ("s1", "b1", 4, 2, Decimal(2974)),  # ¥988 x 3 + ¥10
        ("b2", "s1", 1, 1, Decimal(2031)),
    ]
    assert [p.month for p in fold(RECORDS)] == ["2025-11", "2025-11", "2025-12"]
    assert fold(RECORDS, "2026-01") == []


def test_each_format_says_the_same() -> None:
    pairs = fold(RECORDS, "2025-11")
    table = render(pairs, "table")
    assert "2974" in table and table.splitlines()[-1].split() == ["total", "JPYC", "5005"]
    rows = orjson.loads(render(pairs, "json"))
    want = {"month": "2025-11", "liable": "s1", "counterparty": "b1", "currency": "JPYC",
            "fail_days": 4, "trades": 2, "amount": "2974"}  # fmt: skip
    assert rows[0] == want
    assert render(pairs, "csv").splitlines()[1] == "2025-11,s1,b1,JPYC,4,2,2974"
    assert render([], "table") == "no penalties\n"
