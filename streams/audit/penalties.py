"""``kessai penalties``'s fold: the fail penalties of a month per counterparty pair. Pure.

Each ``penalties`` record is one liable party's penalty for one fail day of one trade
(docs/fails.md). CSDR-style penalties are collected by the CSD and paid on to the
counterparty once a month; the fold gives that month's figure per pair: who owes
whom, in which currency, for how many fail days of how many trades, and the sum of
the per-day amounts (each already truncated; the sum is exact).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import orjson

from schemas import FailPenalty

__all__ = ["FORMATS", "Pair", "fold", "render"]

FORMATS: Final = ("table", "json", "csv")


@dataclass
class Pair:
    """One month's penalties owed by ``liable`` to ``counterparty`` in ``currency``."""

    month: str
    liable: str
    counterparty: str
    currency: str
    fail_days: int = 0
    trades: set[str] = field(default_factory=set)
    amount: Decimal = Decimal(0)


def fold(records: Iterable[FailPenalty], month: str | None = None) -> list[Pair]:
    """The records of ``month`` (``YYYY-MM``; None: every month) summed per month and
    pair, the largest amounts first."""
    pairs: dict[tuple[str, str, str, str], Pair] = {}
    for r in records:
        of = r.day.isoformat()[:7]
        if month is not None and of != month:
            continue
        key = (of, r.liable, r.counterparty, r.currency)
        pair = pairs.get(key)
        if pair is None:
            pair = pairs[key] = Pair(*key)
        pair.fail_days += 1
        pair.trades.add(r.trade_id)
        pair.amount += r.amount
    return sorted(pairs.values(), key=lambda p: (p.month, -p.amount, p.liable, p.counterparty))


def render(pairs: list[Pair], fmt: str) -> str:
    """``pairs`` as a table, JSON (amounts as decimal strings) or CSV."""
    rows: list[dict[str, Any]] = [
        {
            "month": p.month,
            "liable": p.liable,
            "counterparty": p.counterparty,
            "currency": p.currency,
            "fail_days": p.fail_days,
            "trades": len(p.trades),
            "amount": format(p.amount, "f"),
        }
        for p in pairs
    ]
    if fmt == "json":
        return orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["month"])
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    if not rows:
        return "no penalties\n"
    lines = [
        f"{'MONTH':<8}{'LIABLE':<24}{'OWED TO':<24}{'CURRENCY':<9}{'FAIL DAYS':>10}"
        f"{'TRADES':>8}{'AMOUNT':>18}"
    ]
    for row in rows:
        lines.append(
            f"{row['month']:<8}{row['liable'][:23]:<24}{row['counterparty'][:23]:<24}"
            f"{row['currency']:<9}{row['fail_days']:>10}{row['trades']:>8}{row['amount']:>18}"
        )
    totals: dict[str, Decimal] = {}
    for p in pairs:
        totals[p.currency] = totals.get(p.currency, Decimal(0)) + p.amount
    for currency, total in sorted(totals.items()):
        lines.append(f"{'total':<56}{currency:<9}{'':>18}{format(total, 'f'):>18}")
    return "\n".join(lines) + "\n"
