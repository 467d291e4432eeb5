"""When a JGB pays, and how much: coupon dates, record times, payment dates, amounts.
Pure.

- A coupon date ``C`` is unadjusted (20 March, even on a Sunday); its **record time**
  is the end of the day before, 00:00 JST on ``C``: whoever holds the bond then
  (settled positions, available and locked) is paid. Since the new BOJ-NET (2015)
  JGBs have no book-closure period, so this instant is the whole entitlement rule
  (domain review §2.2, P4).
- It is **paid** at 00:00 JST of the first Japanese business day on or after ``C``
  (20 September 2026, a Sunday, is paid Thursday 24th).
- Per holder: ``trunc(face × coupon_rate / 2 / 100)`` yen: ¥450,000 on ¥100m at
  0.9 %. At maturity (the last coupon date) the holder is also repaid the face.

A discount bond pays only its face at maturity. An inflation-indexed bond pays on its
indexed principal, which needs a CPI the security master does not carry: kessai pays
none of its coupons or redemption (docs/bonds.md, known limitation).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, localcontext

from schemas import Instrument
from streams.bonds.calendar import next_business_day
from streams.bonds.terms import coupon_month_days, start_of

__all__ = [
    "Event",
    "coupon_jpy",
    "first_event_after",
    "next_event",
    "pays",
    "record_time",
]


@dataclass(frozen=True, slots=True)
class Event:
    """One coupon date of one bond (with the redemption when it is the maturity)."""

    isin: str
    date: dt.date
    redemption: bool

    @property
    def id(self) -> str:
        """``coupon:{isin}:{date}`` (``redemption:...`` at maturity): the run's id."""
        kind = "redemption" if self.redemption else "coupon"
        return f"{kind}:{self.isin}:{self.date.isoformat()}"

    @property
    def record_s(self) -> float:
        return record_time(self.date)

    @property
    def pay_s(self) -> float:
        return start_of(next_business_day(self.date))


def pays(instrument: Instrument) -> bool:
    """Whether kessai pays this bond's coupons and redemption (not a JGBi)."""
    return instrument.kind != "inflation_indexed"


def record_time(day: dt.date) -> float:
    """The record time of a coupon on ``day``: 00:00 JST that day, epoch seconds."""
    return start_of(day)


def _dates(instrument: Instrument, year: int) -> list[dt.date]:
    return sorted(dt.date(year, m, d) for m, d in coupon_month_days(instrument))


def next_event(instrument: Instrument, after: dt.date) -> Event | None:
    """The first coupon date (or the maturity) strictly after ``after``; None past it.
    No coupon falls on or before the issue date, nor before ``first_coupon_date``."""
    maturity = instrument.maturity_date
    if after >= maturity:
        return None
    first = instrument.first_coupon_date or instrument.issue_date + dt.timedelta(days=1)
    after = max(after, first - dt.timedelta(days=1), instrument.issue_date)
    if instrument.kind != "discount":
        for year in (after.year, after.year + 1):
            for day in _dates(instrument, year):
                if after < day < maturity:
                    return Event(instrument.isin, day, redemption=False)
    return Event(instrument.isin, maturity, redemption=True)


def first_event_after(instrument: Instrument, now_s: float) -> Event | None:
    """The first event whose record time is after ``now_s``: what a bond published
    now will pay next (the ones before were paid before kessai knew it)."""
    day = max(instrument.issue_date, dt.datetime.fromtimestamp(now_s, dt.UTC).date())
    event = next_event(instrument, day - dt.timedelta(days=2))
    while event is not None and event.record_s <= now_s:
        event = next_event(instrument, event.date)
    return event


def coupon_jpy(face: int, coupon_rate: Decimal) -> int:
    """A holder's coupon: ``trunc(face × coupon_rate / 2 / 100)`` yen."""
    with localcontext() as ctx:
        ctx.prec = 60
        return int((face * coupon_rate / 200).to_integral_value(rounding=ROUND_DOWN))
