"""Money arithmetic every flow shares. Pure.

Amounts are integers in each asset's smallest unit (JPYC: 1 yen; USDC: 10**-6; bonds:
1 yen of face value), never floats. On the wire they are decimal strings; these
functions convert between the two exactly, and compute a trade's cash leg.
"""

from __future__ import annotations

from decimal import Context, Decimal, InvalidOperation
from typing import Final

__all__ = [
    "BALANCE_UNITS_MAX",
    "TRADE_TOKENS_MAX",
    "TRADE_UNITS_MAX",
    "UNITS_MAX",
    "cash_units",
    "from_units",
    "to_units",
    "trade_units_max",
]

#: Largest amount one deposit, withdrawal or trade may move, in smallest units: 10**30
#: (the schemas' room for 10**30 with 18 decimals), far beyond any real amount.
UNITS_MAX: Final = 10**30
#: Largest cash leg of one trade, in units: the ledger's limit, and 64 bits, because the
#: saga's table rows are JSON through faust's codec (orjson), which refuses larger
#: integers. The matcher refuses an order whose whole fill would be larger.
TRADE_UNITS_MAX: Final = min(UNITS_MAX, 2**63 - 1)
#: Largest cash leg of one trade in whole tokens (the domain review's P5: a limit in
#: raw units capped a trade at ~9.22 JPYC at 18 decimals): ¥1 trillion, $1 trillion.
#: With at most :data:`LEDGER_DECIMALS_MAX` decimals in the ledger it stays within
#: :data:`TRADE_UNITS_MAX`.
TRADE_TOKENS_MAX: Final = 10**12
#: Most decimals a token may have in the ledger (its on-chain decimals may be more:
#: a deposit's finer remainder is the bridge's dust, streams/ledger/intake.py).
LEDGER_DECIMALS_MAX: Final = 6
#: Largest balance a deposit may leave. Credits from trades are bounded by UNITS_MAX
#: each; past 64 bits a state's JSON keeps the number as a string.
BALANCE_UNITS_MAX: Final = 10**33
#: Digits for exact scaling of a 64-character decimal (Decimal's default is 28).
_EXACT_SCALE: Final = Context(prec=200)


def to_units(amount: Decimal, decimals: int, limit: int = UNITS_MAX) -> int | None:
    """``Decimal("1.5")`` at 6 decimals -> 1_500_000; None if it has finer precision
    or is more than ``limit`` units. Exact: never rounded to 28 digits."""
    scaled = amount.scaleb(decimals, context=_EXACT_SCALE)
    # copy_abs, not abs(): abs() rounds to the context's 28 digits.
    if scaled != scaled.to_integral_value() or scaled.copy_abs() > limit:
        return None
    return int(scaled)


def trade_units_max(decimals: int) -> int:
    """The largest cash leg of one trade, in the units of a token of ``decimals``:
    :data:`TRADE_TOKENS_MAX` whole tokens, and never past 64 bits."""
    tokens: int = TRADE_TOKENS_MAX * 10**decimals
    return min(TRADE_UNITS_MAX, tokens)


def from_units(units: int, decimals: int) -> Decimal:
    """1_500_000 at 6 decimals -> ``Decimal("1.500000")``."""
    return Decimal(units).scaleb(-decimals)


def cash_units(quantity: int, price: Decimal, accrued_interest: Decimal, decimals: int) -> int:
    """A trade's cash leg in the token's smallest unit: quantity × price / 100 + accrued,
    truncated (never rounded up) to the token's decimals.

    Exact: integer arithmetic on the decimals' own digits, so a 64-character price is
    truncated as written, never rounded first (a 60-digit context once made 150,000
    face at 666.66…6 cost 1,000,000 instead of 999,999). Raises
    :class:`decimal.InvalidOperation` (an ArithmeticError) for a price or accrued
    interest that is not a finite decimal of at most :data:`_EXPONENT_MAX` places.
    """
    p_num, p_den = _ratio(price)
    a_num, a_den = _ratio(accrued_interest)
    scale: int = 10**decimals
    # quantity * p_num / (100 * p_den) + a_num / a_den, times 10**decimals, over one
    # common denominator.
    numerator = (quantity * p_num * a_den + 100 * p_den * a_num) * scale
    denominator = 100 * p_den * a_den
    units = abs(numerator) // denominator  # truncated toward zero, as ROUND_DOWN
    return units if numerator >= 0 else -units


#: Most decimal places (or trailing zeros) cash arithmetic takes: a wire decimal has at
#: most 64 characters; past this, 10**exponent would be a denial of service.
_EXPONENT_MAX: Final = 200


def _ratio(value: Decimal) -> tuple[int, int]:
    exponent = value.as_tuple().exponent  # "n", "N" or "F" when not finite
    if not isinstance(exponent, int) or abs(exponent) > _EXPONENT_MAX:
        raise InvalidOperation(f"not a finite decimal of at most {_EXPONENT_MAX} places: {value}")
    return value.as_integer_ratio()
