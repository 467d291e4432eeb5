"""Act 6 of the demo: a fail that recycles, with its penalties and a partial delivery
(docs/fails.md), on act 5's broker and simulated clock.

A T+1 trade whose seller has no bonds is ``failing`` from its settlement date's 14:00
JST cut-off; each fail day costs the seller a CSDR penalty; the seller delivers part
of the bonds and the next cut-off settles that part; the rest comes and settles. The
parts and penalties printed are computed here from the rules and compared with what the
worker wrote; then the month's penalties are summed as ``kessai penalties`` does.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from schemas import PENALTIES, FailPenalty, decode
from streams.audit.penalties import fold, render
from streams.bonds.accrued import accrued
from streams.bonds.terms import start_of
from streams.kafka.reader import read_committed
from streams.money import cash_units

if TYPE_CHECKING:
    from streams.devtools.demo.bonds import _Act

__all__ = ["play_fails"]

#: 10-year JGB #377: 0.9 %, coupons 20 March and September.
BOND = "JP1103771Q62"
COUPON_DATES = ((3, 20), (9, 20))
PRICE = Decimal("98.765")
FACE = 100_000_000
PART = 60_000_000
SETTLES = dt.date(2028, 12, 5)  # Tue; traded Mon 4 Dec 2028, T+1


def _jst(day: str, hour: int = 0) -> float:
    return start_of(dt.date.fromisoformat(day)) + hour * 3600


def _utc(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cash(face: int) -> tuple[int, int]:
    """Principal and kessai's accrued on ``face`` for settlement on SETTLES, yen."""
    principal = cash_units(face, PRICE, Decimal(0), 0)
    return principal, accrued(face, Decimal("0.9"), SETTLES, COUPON_DATES).jpy


async def play_fails(act: _Act) -> None:
    print("\nAct 6: a fail that recycles, its penalties, a partial delivery (docs/fails.md)")
    erin, frank = act.acct("erin"), act.acct("frank")
    await act.deposit(6, "frank", None, 200_000_000)
    await act.ledger(f"payment:bp6-{act.run}")
    trade_id = f"v:f1-{act.run}"
    await act.send("trades", trade_id, {
        "trade_id": trade_id, "venue": "v", "isin": BOND, "buyer": frank, "seller": erin,
        "quantity": FACE, "price": str(PRICE), "currency": "JPYC", "partial": "allowed",
        "trade_time": _utc(_jst("2028-12-04", 10))})  # fmt: skip
    await act.status(trade_id, "pending", "awaiting_settlement_date")
    principal, interest = _cash(FACE)
    total = principal + interest
    print(f"  Mon 4 Dec 2028: erin sells frank 100m of #377 at {PRICE}, T+1, partial "
          f"settlement allowed: {total:,} JPYC; erin has no bonds")  # fmt: skip
    await act.tick(_jst("2028-12-05", 14))
    failing = await act.status(trade_id, "failing", "insufficient_securities")
    act.expect("Tue 5 Dec 14:00 JST, the cut-off: failing", failing.get("reason"),
               "insufficient_securities")  # fmt: skip
    day_penalty = total // 100_000  # CSDR: 0.10 bp a day on what fails
    for day in ("2028-12-05", "2028-12-06", "2028-12-07"):
        if day != "2028-12-05":
            await act.tick(_jst(day, 14))
        penalty = await _penalty(act, trade_id, day)
        act.expect(f"{day}: erin's penalty, 0.10 bp of {total:,}", penalty.get("amount"),
                   day_penalty)  # fmt: skip
    await act.deposit(7, "erin", BOND, PART)
    await act.ledger(f"custody:bc7-{act.run}")
    print("  erin delivers 60m; at Fri 8 Dec's cut-off that part settles, the rest fails on:")
    await act.tick(_jst("2028-12-08", 14))
    await _parts(act, trade_id, total)


async def _parts(act: _Act, trade_id: str, total: int) -> None:
    part_principal, part_interest = _cash(PART)
    part = await act.status(trade_id, "partially_settled", None)
    act.expect("part 1, 60m: principal", part.get("part_principal"), part_principal)
    act.expect("part 1: accrued, truncated on 60m", part.get("part_accrued"), part_interest)
    first = part_principal + part_interest
    act.expect("part 1: cash", part.get("part_cash_amount"), first)
    penalty = await _penalty(act, trade_id, "2028-12-08")
    act.expect(f"Fri 8 Dec: the penalty on the rest, {total - first:,}", penalty.get("amount"),
               (total - first) // 100_000)  # fmt: skip
    await act.deposit(8, "erin", BOND, FACE - PART)
    settled = await act.status(trade_id, "settled", None)
    print("  erin delivers the other 40m: the rest settles at once, taking what remains")
    act.expect("part 2, the rest: cash", settled.get("part_cash_amount"), total - first)
    act.expect("parts 1 + 2 = the trade", first + int(settled.get("part_cash_amount", 0)), total)
    print("  the month's penalties per pair (kessai penalties --month 2028-12):")
    records = await read_committed(act.settings, PENALTIES)
    taken: list[Any] = [decode(PENALTIES, r.value) for r in records]
    mine = [p for p in taken if isinstance(p, FailPenalty) and p.trade_id == trade_id]
    for line in render(fold(mine, "2028-12"), "table").splitlines():
        print(f"    {line}")
    act.expect("fail days charged", len(mine), 4)


async def _penalty(act: _Act, trade_id: str, day: str) -> dict[str, Any]:
    found = await act.find(PENALTIES, lambda r: (r["trade_id"], r["day"]) == (trade_id, day))
    return found or {}
