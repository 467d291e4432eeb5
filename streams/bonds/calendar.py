"""Japanese business days, as BOJ-NET settles: not a weekend, not a national holiday
(with substitute and citizens' holidays), not 31 December to 3 January. Pure.

The national holidays come from the ``holidays`` package (country ``JP``: the
Cabinet Office's list, equinoxes and Happy-Monday rules included), not a table kept
here; the year-end days are the Bank of Japan's own closure. The package's rules
run to 2099 (checked: none for 2150); a year it has no holidays for raises
:class:`CalendarError` rather than calling every weekday a business day.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Final

import holidays

from streams.errors import KessaiError

__all__ = ["CalendarError", "add_business_days", "is_business_day", "next_business_day"]

#: The Bank of Japan is closed on these (month, day) besides the national holidays.
YEAR_END: Final = frozenset({(12, 31), (1, 1), (1, 2), (1, 3)})
#: How far :func:`add_business_days` and :func:`next_business_day` look, at most: the
#: longest run of closed days (Golden Week, the year end) is under two weeks.
SEARCH_DAYS_MAX: Final = 31


class CalendarError(KessaiError, ValueError):
    """A date in a year the holiday calendar does not cover."""


@lru_cache(maxsize=64)
def _national(year: int) -> frozenset[dt.date]:
    days = frozenset(holidays.country_holidays("JP", years=year))
    if not days:  # every year has New Year's Day: none means not covered
        raise CalendarError(f"no Japanese holiday calendar for {year}")
    return days


def is_business_day(day: dt.date) -> bool:
    """Whether BOJ-NET settles on ``day``."""
    if day.weekday() >= 5 or (day.month, day.day) in YEAR_END:
        return False
    return day not in _national(day.year)


def next_business_day(day: dt.date) -> dt.date:
    """``day`` itself if a business day, else the first one after it (a coupon falling
    on a holiday is paid then; its accrual still runs from the unadjusted date)."""
    for offset in range(SEARCH_DAYS_MAX):
        candidate = day + dt.timedelta(days=offset)
        if is_business_day(candidate):
            return candidate
    raise AssertionError(f"no business day within {SEARCH_DAYS_MAX} days of {day}")


def add_business_days(day: dt.date, count: int) -> dt.date:
    """The ``count``-th business day after ``day`` (T+1: ``count`` 1); ``count`` 0 is
    ``day`` itself, whatever it is (a 24/7 token market settles on the trade date)."""
    assert count >= 0, count
    for _ in range(count):
        day = next_business_day(day + dt.timedelta(days=1))
    return day
