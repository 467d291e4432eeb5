"""streams.money: exact units past 28 digits, capped; cash legs truncated, never rounded up."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import QUANTITY_MAX
from streams.money import UNITS_MAX, cash_units, from_units, to_units


def test_units_are_exact_and_refuse_finer_precision() -> None:
    assert to_units(Decimal("1.5"), 6) == 1_500_000
    assert to_units(Decimal("1000"), 0) == 1000
    assert to_units(Decimal("0.0000001"), 6) is None
    assert to_units(Decimal("1.5"), 0) is None
    assert from_units(1_500_000, 6) == Decimal("1.5")


def test_units_are_exact_past_28_digits_and_capped() -> None:
    assert to_units(Decimal("1234567890123456789012345678.9"), 0) is None
    assert to_units(Decimal("1234567890123456789012345678"), 0) == (1234567890123456789012345678)
    assert to_units(Decimal(UNITS_MAX), 0) == UNITS_MAX == 10**30
    assert to_units(Decimal(10**30 + 1), 0) is None
    assert to_units(Decimal("0.000001"), 6) == 1


def test_cash_leg_is_truncated_to_the_token_decimals() -> None:
    # 1,000,000 face at 99.875 per 100 = 998,750; plus accrued 123.456.
    assert cash_units(1_000_000, Decimal("99.875"), Decimal("123.456"), 0) == 998_873
    assert cash_units(1_000_000, Decimal("99.875"), Decimal("123.456"), 6) == 998_873_456_000
    # Never rounded up: 50,000 x 100.0000333 / 100 = 50,000.01665 -> 50,000.016 at 3.
    assert cash_units(50_000, Decimal("100.0000333"), Decimal(0), 3) == 50_000_016


def test_a_long_price_is_truncated_as_written_never_rounded_first() -> None:
    """M5: a 60-digit context rounded 150,000 × 666.66…6 / 100 up to 1,000,000."""
    assert cash_units(150_000, Decimal("666." + "6" * 60), Decimal(0), 0) == 999_999
    assert cash_units(300_000, Decimal("333." + "3" * 60), Decimal(0), 6) == 999_999_999_999


@given(
    quantity=st.integers(1, QUANTITY_MAX),
    price=st.from_regex(r"\A(0|[1-9][0-9]{0,20})\.[0-9]{1,42}\Z"),
    accrued=st.from_regex(r"\A(0|[1-9][0-9]{0,12})(\.[0-9]{1,30})?\Z"),
    decimals=st.integers(0, 18),
)
def test_cash_units_is_exact_floor_division(
    quantity: int, price: str, accrued: str, decimals: int
) -> None:
    exact = (quantity * Fraction(price) / 100 + Fraction(accrued)) * 10**decimals
    assert cash_units(quantity, Decimal(price), Decimal(accrued), decimals) == exact.numerator // (
        exact.denominator
    )


def test_a_price_that_is_not_a_finite_short_decimal_raises_an_arithmetic_error() -> None:
    for bad in ("NaN", "Infinity", "1e999999999", "1e-999999999"):
        with pytest.raises(InvalidOperation):
            cash_units(50_000, Decimal(bad), Decimal(0), 0)
