"""A JGB trade's cash, the Japanese way (pure): principal and accrued interest, each
truncated to whole yen, then added.

For a fixed-coupon JGB paying ``coupon_pct`` a year in two halves on fixed month-days:

    days          = settlement date − the last unadjusted coupon date on or before it
                    (calendar days, 29 February counted)
    ai100         = trunc7(coupon_pct × days / 365), at most coupon_pct / 2
    accrued_jpy   = trunc0(ai100 × face / 100)
    principal_jpy = trunc0(face × price / 100)
    amount_jpy    = principal_jpy + accrued_jpy

``ai100`` is the accrued per ¥100 face, truncated to 7 decimals before it is scaled:
truncating only at the end gives ¥5 more on ¥10bn (domain-review §2.1). Decimal
arithmetic throughout, never float.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Final

__all__ = ["Accrued", "accrued", "amount_jpy", "last_coupon_date", "principal_jpy"]

_SEVEN: Final = Decimal("0.0000001")
_YEN: Final = Decimal(1)
#: Digits for the intermediate products: ¥10^15 face times a 7-decimal rate fits.
_PRECISION: Final = 60


@dataclass(frozen=True, slots=True)
class Accrued:
    """What an auditor needs to recompute a trade's accrued interest."""

    last_coupon: dt.date
    days: int
    #: Per ¥100 face, truncated to 7 decimals and capped at half the coupon.
    ai100: Decimal
    #: For the trade's face, truncated to whole yen.
    jpy: int


def last_coupon_date(settles: dt.date, coupon_month_days: tuple[tuple[int, int], ...]) -> dt.date:
    """The last coupon date on or before ``settles``, unadjusted (a coupon due on a
    holiday is paid later, but accrual counts from the due date)."""
    assert coupon_month_days, "a fixed-coupon bond has coupon dates"
    candidates = [
        dt.date(year, month, day)
        for year in (settles.year - 1, settles.year)
        for month, day in coupon_month_days
    ]
    return max(d for d in candidates if d <= settles)


def accrued(
    face: int,
    coupon_pct: Decimal,
    settles: dt.date,
    coupon_month_days: tuple[tuple[int, int], ...],
    accrues_from: dt.date | None = None,
) -> Accrued:
    """Accrued interest on ``face`` yen of a bond paying ``coupon_pct`` a year in halves
    on ``coupon_month_days``, for settlement on ``settles``; never counted from before
    ``accrues_from`` (the issue date: a bond accrues nothing before it exists)."""
    assert face >= 0 and coupon_pct >= 0, (face, coupon_pct)
    last = last_coupon_date(settles, coupon_month_days)
    if accrues_from is not None and last < accrues_from <= settles:
        last = accrues_from
    days = (settles - last).days
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        ai100 = min((coupon_pct * days / 365).quantize(_SEVEN, rounding=ROUND_DOWN), coupon_pct / 2)
        jpy = int((ai100 * face / 100).quantize(_YEN, rounding=ROUND_DOWN))
    return Accrued(last_coupon=last, days=days, ai100=ai100, jpy=jpy)


def principal_jpy(face: int, price: Decimal) -> int:
    """``face`` yen at ``price`` per ¥100 face, truncated to whole yen."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return int((face * price / 100).quantize(_YEN, rounding=ROUND_DOWN))


def amount_jpy(face: int, price: Decimal, accrued_jpy: Decimal) -> int:
    """The cash of a trade: the principal and the accrued, each truncated to whole yen
    first, then added (not the sum truncated: that is ¥1 more when both fractions add
    past one)."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return principal_jpy(face, price) + int(accrued_jpy.quantize(_YEN, rounding=ROUND_DOWN))
