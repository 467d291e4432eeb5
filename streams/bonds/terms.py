"""What the security master says about one trade or holding of a JGB. Pure.

:func:`check_trade` and :func:`check_holding` refuse what the instrument does not
allow (``unknown_isin``, ``not_a_jgb``, ``invalid_quantity``, ``invalid_tick``,
``instrument_halted`` / ``instrument_matured``); :func:`trade_dates` fixes a trade's
trade and settlement dates (JST) and refuses impossible ones
(``invalid_trade_date``, ``invalid_settlement_date``, ``settlement_after_maturity``);
:func:`accrued_on` is kessai's accrued interest for a settlement date. The engine's
trade intake (:mod:`streams.settlement.intake`) calls them; docs/bonds.md has the
rules and where each comes from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Final

from schemas import JGB_ISIN_PREFIX, Instrument
from streams.bonds.accrued import Accrued, accrued
from streams.bonds.calendar import CalendarError, add_business_days, is_business_day

__all__ = [
    "JST",
    "NO_ACCRUED",
    "SETTLEMENT_DAYS_MAX",
    "YEN_TOKEN",
    "Dates",
    "accrued_on",
    "check_holding",
    "check_trade",
    "coupon_month_days",
    "jst_date",
    "start_of",
    "trade_accrued",
    "trade_dates",
]

#: The cash token kessai computes accrued interest in: a yen stablecoin. A trade paid
#: in another token (USDC) takes the venue's accrued until it carries an FX rate
#: (issue 21).
YEN_TOKEN: Final = "JPYC"
#: Japan's time zone: no daylight saving, so a fixed offset.
JST: Final = dt.timezone(dt.timedelta(hours=9), "JST")
#: Latest settlement date after the trade date: a JGB bought when issued settles on its
#: issue date, at most about a week after the auction; a month leaves room, and stops
#: a trade stamped to settle next year from holding locks and a place in memory.
SETTLEMENT_DAYS_MAX: Final = 31

#: Why a record is refused: (reason code, detail).
Rejected = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Dates:
    trade_date: dt.date
    settlement_date: dt.date
    #: 00:00 JST of the settlement date, epoch seconds: the trade waits until then.
    starts_s: float


def jst_date(epoch_s: float) -> dt.date:
    """The date in Japan at ``epoch_s``."""
    return dt.datetime.fromtimestamp(epoch_s, JST).date()


@lru_cache(maxsize=1024)
def start_of(day: dt.date) -> float:
    """00:00 JST of ``day``, epoch seconds."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=JST).timestamp()


def coupon_month_days(instrument: Instrument) -> tuple[tuple[int, int], ...]:
    """``("03-20", "09-20")`` -> ``((3, 20), (9, 20))``."""
    return tuple((int(md[:2]), int(md[3:])) for md in instrument.coupon_dates)


def check_holding(instrument: Instrument | None, isin: str, quantity: int) -> Rejected | None:
    """Why ``quantity`` face of ``isin`` may not be held (a custody movement, a trade)."""
    if not isin.startswith(JGB_ISIN_PREFIX):
        return "not_a_jgb", f"{isin} is not a Japanese government bond ({JGB_ISIN_PREFIX}...)"
    if instrument is None:
        return "unknown_isin", f"{isin} is not in the security master (topic instruments)"
    if quantity % instrument.face_unit != 0:
        return (
            "invalid_quantity",
            f"{quantity} is not a multiple of {isin}'s face unit {instrument.face_unit}",
        )
    return None


def check_trade(
    instrument: Instrument | None, isin: str, quantity: int, price: Decimal, currency: str
) -> Rejected | None:
    """Why a trade of ``quantity`` face of ``isin`` at ``price`` is refused. The tick is
    in yen per ¥100 face: a price in another token (USDC per ¥100 face, until trades
    carry an FX rate: issue 21) is not held to it."""
    held = check_holding(instrument, isin, quantity)
    if held is not None or instrument is None:
        return held
    if instrument.status != "active":
        return f"instrument_{instrument.status}", f"{isin} is {instrument.status}"
    if currency == YEN_TOKEN and price % instrument.price_tick != 0:
        return (
            "invalid_tick",
            f"price {price} is not a multiple of {isin}'s tick {instrument.price_tick}",
        )
    return None


def trade_dates(
    trade_time_s: float,
    trade_date: dt.date | None,
    settlement_date: dt.date | None,
    *,
    lag: int,
    maturity: dt.date | None,
) -> Dates | Rejected:
    """A trade's dates: the trade date (JST date of ``trade_time_s``; a venue's must
    equal it), the settlement date (the venue's, or ``lag`` business days later).

    With ``lag`` ≥ 1 (the BOJ-NET convention) a settlement date must be a Japanese
    business day; with 0 (a 24/7 token market) any day is. Never before the trade
    date, nor more than :data:`SETTLEMENT_DAYS_MAX` after it, nor on or after the
    bond's ``maturity``."""
    traded = jst_date(trade_time_s)
    if trade_date is not None and trade_date != traded:
        return (
            "invalid_trade_date",
            f"trade_date {trade_date} is not the date in Japan of trade_time ({traded})",
        )
    try:
        settles = settlement_date or _after(traded, lag)
        closed = lag > 0 and not is_business_day(settles)
    except CalendarError as err:
        return "invalid_settlement_date", str(err)
    if closed:
        return "invalid_settlement_date", f"{settles} is not a Japanese business day"
    if not traded <= settles <= traded + dt.timedelta(days=SETTLEMENT_DAYS_MAX):
        return (
            "invalid_settlement_date",
            f"settlement_date {settles} is not within {SETTLEMENT_DAYS_MAX} days on or "
            f"after the trade date {traded}",
        )
    if maturity is not None and settles >= maturity:
        return (
            "settlement_after_maturity",
            f"settlement_date {settles} is on or after the bond's maturity {maturity}",
        )
    return Dates(traded, settles, start_of(settles))


@lru_cache(maxsize=1024)
def _after(day: dt.date, lag: int) -> dt.date:
    return add_business_days(day, lag)


def trade_accrued(
    instrument: Instrument | None, currency: str, face: int, settles: dt.date
) -> Accrued | None:
    """kessai's accrued interest on a trade of ``face`` in ``currency``: a JPYC trade of
    a bond in the security master (:func:`accrued_on`); None: the venue's is taken. The
    trade intake and a partial settlement's part both ask this."""
    if instrument is None or currency != YEN_TOKEN:
        return None
    return accrued_on(instrument, face, settles)


def accrued_on(instrument: Instrument, face: int, settles: dt.date) -> Accrued | None:
    """kessai's accrued interest on ``face`` of ``instrument`` settling on ``settles``.

    None: kessai does not compute it. An inflation-indexed bond accrues on its indexed
    principal (face × the index ratio of the settlement date), and the security master
    carries no CPI: the venue's figure is taken (docs/bonds.md, known limitation). A
    discount bond accrues nothing: :data:`NO_ACCRUED`."""
    if instrument.kind == "inflation_indexed":
        return None
    if instrument.kind == "discount":
        return NO_ACCRUED
    return accrued(
        face,
        instrument.coupon_rate,
        settles,
        coupon_month_days(instrument),
        accrues_from=instrument.issue_date,
    )


#: What a discount bond accrues.
NO_ACCRUED: Final = Accrued(last_coupon=dt.date.min, days=0, ai100=Decimal(0), jpy=0)
