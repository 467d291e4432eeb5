"""Money arithmetic every flow shares. Pure.

Amounts are integers in each asset's smallest unit (JPYC: 1 yen; USDC: 10**-6; bonds:
1 yen of face value), never floats. On the wire they are decimal strings; these
functions convert between the two exactly, and compute a trade's cash leg.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Context, Decimal, localcontext
from typing import Final

__all__ = [
    "BALANCE_UNITS_MAX",
    "CASH_PRECISION_DIGITS",
    "UNITS_MAX",
    "cash_units",
    "from_units",
    "to_units",
]

#: Largest amount one deposit, withdrawal or trade may move, in smallest units: 10**30
#: (the schemas' room for 10**30 with 18 decimals), far beyond any real amount.
UNITS_MAX: Final = 10**30
#: Largest balance a deposit may leave. Credits from trades are bounded by UNITS_MAX
#: each; past 64 bits a state's JSON keeps the number as a string.
BALANCE_UNITS_MAX: Final = 10**33
#: Digits for exact scaling of a 64-character decimal (Decimal's default is 28).
_EXACT_SCALE: Final = Context(prec=200)
#: Digits of precision for cash arithmetic: 10**15 yen of face at 6 decimals fits.
CASH_PRECISION_DIGITS: Final = 60


def to_units(amount: Decimal, decimals: int) -> int | None:
    """``Decimal("1.5")`` at 6 decimals -> 1_500_000; None if it has finer precision
    or is more than :data:`UNITS_MAX` units. Exact: never rounded to 28 digits."""
    scaled = amount.scaleb(decimals, context=_EXACT_SCALE)
    # copy_abs, not abs(): abs() rounds to the context's 28 digits.
    if scaled != scaled.to_integral_value() or scaled.copy_abs() > UNITS_MAX:
        return None
    return int(scaled)


def from_units(units: int, decimals: int) -> Decimal:
    """1_500_000 at 6 decimals -> ``Decimal("1.500000")``."""
    return Decimal(units).scaleb(-decimals)


def cash_units(quantity: int, price: Decimal, accrued_interest: Decimal, decimals: int) -> int:
    """A trade's cash leg in the token's smallest unit: quantity × price / 100 + accrued,
    truncated (never rounded up) to the token's decimals."""
    with localcontext(Context(prec=CASH_PRECISION_DIGITS)):
        cash = Decimal(quantity) * price / Decimal(100) + accrued_interest
        truncated = cash.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN)
        return int(truncated.scaleb(decimals))
