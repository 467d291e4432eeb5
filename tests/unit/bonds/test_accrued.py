"""JGB accrued interest and cash (streams/bonds/accrued.py): every row of
domain-review §2.1 (a hypothetical 10-year JGB, 0.9 %, coupons 20 March and 20
September), the rounding case of §1.6, and the rules as properties."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.bonds.accrued import accrued, amount_jpy, last_coupon_date, principal_jpy

COUPON = Decimal("0.9")
MARCH_SEPTEMBER = ((3, 20), (9, 20))
HUNDRED_M = 100_000_000


@pytest.mark.parametrize(
    ("settles", "face", "last", "days", "ai100", "jpy"),
    [
        # T+1 from Tue 4 Nov 2025.
        ("2025-11-05", HUNDRED_M, "2025-09-20", 46, "0.1134246", 113_424),
        # The coupon date itself (a holiday: only a 24/7 venue settles then).
        ("2026-03-20", HUNDRED_M, "2026-03-20", 0, "0", 0),
        ("2026-09-18", HUNDRED_M, "2026-03-20", 182, "0.4487671", 448_767),
        # 183 days would be 0.4512328: capped at half the coupon.
        ("2026-09-19", HUNDRED_M, "2026-03-20", 183, "0.45", 450_000),
        # 29 February 2028 counted (NL/365 would give 162 days, ¥399,452).
        ("2028-03-01", HUNDRED_M, "2027-09-20", 163, "0.4019178", 401_917),
        # ¥10bn: truncating ai100 to 7 decimals first (else ¥11,342,465).
        ("2025-11-05", 10_000_000_000, "2025-09-20", 46, "0.1134246", 11_342_460),
    ],
)
def test_the_worked_rows_of_domain_review_2_1(
    settles: str, face: int, last: str, days: int, ai100: str, jpy: int
) -> None:
    got = accrued(face, COUPON, dt.date.fromisoformat(settles), MARCH_SEPTEMBER)
    assert got.last_coupon == dt.date.fromisoformat(last)
    assert got.days == days
    assert got.ai100 == Decimal(ai100)
    assert got.jpy == jpy


def test_the_cash_at_98_765_on_5_november_2025() -> None:
    a = accrued(HUNDRED_M, COUPON, dt.date(2025, 11, 5), MARCH_SEPTEMBER)
    assert principal_jpy(HUNDRED_M, Decimal("98.765")) == 98_765_000
    assert amount_jpy(HUNDRED_M, Decimal("98.765"), Decimal(a.jpy)) == 98_878_424


def test_principal_and_accrued_are_truncated_separately() -> None:
    """§1.6: ¥50,000 at 99.001 with accrued 12.6 is 49,500 + 12, not trunc(49,513.1)."""
    assert principal_jpy(50_000, Decimal("99.001")) == 49_500
    assert amount_jpy(50_000, Decimal("99.001"), Decimal("12.6")) == 49_512


def test_the_last_coupon_of_january_is_the_previous_septembers() -> None:
    assert last_coupon_date(dt.date(2026, 1, 10), MARCH_SEPTEMBER) == dt.date(2025, 9, 20)
    assert last_coupon_date(dt.date(2026, 9, 20), MARCH_SEPTEMBER) == dt.date(2026, 9, 20)


@given(
    settles=st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)),
    face=st.integers(0, 10**8).map(lambda n: n * 50_000),
    coupon=st.decimals("0", "10", places=3),
)
def test_accrued_never_passes_half_the_coupon_and_is_whole_yen(
    settles: dt.date, face: int, coupon: Decimal
) -> None:
    a = accrued(face, coupon, settles, MARCH_SEPTEMBER)
    assert 0 <= a.days <= 184
    assert 0 <= a.ai100 <= coupon / 2
    assert a.ai100 == a.ai100.quantize(Decimal("0.0000001"))
    assert 0 <= a.jpy <= coupon / 2 * face / 100


@given(
    start=st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)),
    later=st.integers(0, 200),
)
def test_accrued_grows_with_the_days_within_a_period(start: dt.date, later: int) -> None:
    one = accrued(HUNDRED_M, COUPON, start, MARCH_SEPTEMBER)
    two = accrued(HUNDRED_M, COUPON, start + dt.timedelta(days=later), MARCH_SEPTEMBER)
    if two.last_coupon == one.last_coupon:
        assert two.jpy >= one.jpy
