"""Japanese business days (streams/bonds/calendar.py): domain-review §2.2's cases."""

from __future__ import annotations

import datetime as dt

import pytest

from streams.bonds.calendar import (
    CalendarError,
    add_business_days,
    is_business_day,
    next_business_day,
)


def test_t_plus_1_from_friday_31_october_2025_is_tuesday_4_november() -> None:
    # Mon 3 Nov is Culture Day.
    assert add_business_days(dt.date(2025, 10, 31), 1) == dt.date(2025, 11, 4)


def test_a_24_7_market_settles_on_the_trade_date_whatever_it_is() -> None:
    assert add_business_days(dt.date(2025, 11, 3), 0) == dt.date(2025, 11, 3)


def test_the_coupon_of_sunday_20_september_2026_is_paid_thursday_24th() -> None:
    # 21 Respect for the Aged Day, 22 a citizens' holiday, 23 Autumnal Equinox.
    assert next_business_day(dt.date(2026, 9, 20)) == dt.date(2026, 9, 24)


@pytest.mark.parametrize(
    "day",
    ["2025-12-31", "2026-01-01", "2026-01-02", "2026-01-03", "2026-03-20", "2026-05-06"],
)
def test_the_bank_of_japans_closed_days(day: str) -> None:
    assert not is_business_day(dt.date.fromisoformat(day))


def test_an_ordinary_wednesday_is_a_business_day() -> None:
    assert is_business_day(dt.date(2025, 11, 5))
    assert not is_business_day(dt.date(2025, 11, 8))  # a Saturday


def test_a_year_without_a_holiday_calendar_is_refused_not_guessed() -> None:
    assert is_business_day(dt.date(2099, 6, 1))  # a Monday, in the calendar's range
    with pytest.raises(CalendarError, match="2150"):
        is_business_day(dt.date(2150, 6, 1))
