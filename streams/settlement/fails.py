"""When a trade that has not settled becomes a *fail*, and for how long it recycles. Pure.

In market practice (T2S, BOJ-NET, JSDA's fails guideline) a trade that cannot settle
on its settlement date is not cancelled: past the date's **cut-off** it is
``failing``, keeps recycling (it settles the moment both legs can lock), and ends by
settling, by cancellation, or after a maximum number of fail days. kessai does the
same under ``KESSAI_FAIL_MODE=recycle`` (the default); ``atomic`` keeps the 24/7
token market's all-or-nothing rule, a trade still locking at its deadline fails.

The cut-offs of a trade are one per fail day: the settlement date's at
:attr:`FailRules.cutoff_s` after 00:00 JST, then the next day's, and so on. A fail
day is a Japanese business day under the BOJ-NET convention (T+1 and later: a
settlement date is one too), and every day on a 24/7 token market (T+0). At the
``max_days``-th cut-off after the settlement date's, a trade still failing is
``cancelled``, ``max_fail_days``.

Each fail day costs the party that failed a **penalty** (:func:`penalties`), under a
selectable policy (:class:`PenaltyRules`): ``csdr`` (CSDR's cash penalties: a lack of
securities at a daily rate, a lack of cash at the central bank's lending rate over
365, each failing party charged) or ``jsda`` (JSDA's fails charge on a fail to
deliver JGBs: max(3 % - R, 0) over 365, R the reference policy rate). The base is the
trade's cash amount (principal plus accrued): kessai has no daily reference prices,
so the trade's own price stands for CSDR's. Amounts are truncated per day to the
token's units, and exact: computed with fractions, never floats.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final, Literal

from streams.bonds.calendar import add_business_days
from streams.bonds.terms import jst_date, start_of
from streams.settlement.messages import Trade

__all__ = ["DAY_S", "FailRules", "Penalty", "PenaltyRules", "failing_reason", "penalties"]

DAY_S: Final = 86_400.0
#: JSDA's fails charge: max(this - R, 0) a year, R the reference policy rate.
JSDA_CHARGE_CAP: Final = Decimal("0.03")

FailingReason = Literal[
    "insufficient_securities", "insufficient_cash", "insufficient_securities_and_cash"
]


@dataclass(frozen=True, slots=True)
class PenaltyRules:
    """``KESSAI_PENALTY_POLICY`` and its rates (decimal fractions, 0.0075 = 0.75 %)."""

    policy: Literal["csdr", "jsda"]
    #: csdr, a lack of securities: a day (0.00001: 0.10 bp, CSDR's rate for sovereign debt).
    securities_rate: Decimal = Decimal("0.00001")
    #: csdr, a lack of cash: a year (the central bank's lending rate).
    cash_rate: Decimal = Decimal("0.0075")
    #: jsda: R, the reference policy rate; the charge is max(3 % - R, 0) a year.
    reference_rate: Decimal = Decimal("0.005")

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "securities_rate": str(self.securities_rate),
            "cash_rate": str(self.cash_rate),
            "reference_rate": str(self.reference_rate),
        }

    @classmethod
    def from_json(cls, raw: Any) -> PenaltyRules | None:
        if raw is None:
            return None
        return cls(
            raw["policy"],
            Decimal(raw["securities_rate"]),
            Decimal(raw["cash_rate"]),
            Decimal(raw["reference_rate"]),
        )


Side = Literal["seller", "buyer"]


@dataclass(frozen=True, slots=True)
class Penalty:
    """One party's penalty for one fail day, in the trade's currency's units."""

    side: Side
    liable: str
    counterparty: str
    reason: str
    rate: Decimal
    per: Literal["day", "year"]
    units: int


def penalties(
    trade: Trade, reason: str, rules: PenaltyRules, base_units: int | None = None
) -> list[Penalty]:
    """The penalties of one fail day of ``trade``, failing for ``reason`` (the legs
    short at the cut-off): one per liable party the policy charges. ``base_units``: the
    cash still to settle (a trade settled in part: what remains), default the trade's."""
    base = trade.cash_units if base_units is None else base_units
    out = []
    legs: tuple[tuple[Side, str], ...] = (
        ("seller", "insufficient_securities"),
        ("buyer", "insufficient_cash"),
    )
    for side, leg in legs:
        if reason not in (leg, "insufficient_securities_and_cash"):
            continue
        per: Literal["day", "year"] = "year"
        if rules.policy == "jsda":
            if side == "buyer":
                continue  # a fails charge is owed for a fail to deliver the bonds
            rate = max(JSDA_CHARGE_CAP - rules.reference_rate, Decimal(0))
        elif side == "seller":
            rate, per = rules.securities_rate, "day"
        else:
            rate = rules.cash_rate
        if rate <= 0:
            continue
        exact = Fraction(base) * Fraction(rate) / (365 if per == "year" else 1)
        seller_side = side == "seller"
        liable, other = (trade.seller, trade.buyer) if seller_side else (trade.buyer, trade.seller)
        out.append(Penalty(side, liable, other, leg, rate, per, int(exact)))  # int: truncates
    return out


@dataclass(frozen=True, slots=True)
class FailRules:
    """``KESSAI_CUTOFF``, ``KESSAI_MAX_FAIL_DAYS`` and the calendar of fail days."""

    #: The cut-off, seconds after 00:00 JST of the day (14:00 = 50,400; 24:00, the
    #: day's end, = 86,400).
    cutoff_s: float
    #: Cut-offs a trade may fail before it is cancelled (T2S: 60 business days).
    max_days: int
    #: Fail days are Japanese business days (True: T+1 and later) or every day.
    business_days: bool
    #: What each fail day costs the failing party (None: nothing is charged).
    penalties: PenaltyRules | None = None

    def cutoff(self, trade: Trade, n: int) -> float:
        """The ``n``-th cut-off of ``trade`` (0: its settlement date's), epoch seconds.

        A trade without a settlement date (an engine without dates) has its deadline
        as its first cut-off and one a day after it."""
        if not trade.settlement_date:
            return trade.deadline_at_s + n * DAY_S
        return start_of(self._day(trade.settlement_date, n)) + self.cutoff_s

    def day(self, trade: Trade, n: int) -> str:
        """The ``n``-th fail day of ``trade`` (0: its settlement date), ISO: the day
        its ``n``-th cut-off ends (an undated trade's: the JST date just before it)."""
        if not trade.settlement_date:
            return jst_date(self.cutoff(trade, n) - 1).isoformat()
        return self._day(trade.settlement_date, n).isoformat()

    def _day(self, settlement_date: str, n: int) -> dt.date:
        day = dt.date.fromisoformat(settlement_date)
        if self.business_days:
            return add_business_days(day, n)
        return day + dt.timedelta(days=n)

    def to_json(self) -> dict[str, Any]:
        return {
            "cutoff_s": self.cutoff_s,
            "max_days": self.max_days,
            "business_days": self.business_days,
            "penalties": None if self.penalties is None else self.penalties.to_json(),
        }

    @classmethod
    def from_json(cls, raw: Any) -> FailRules | None:
        if raw is None:
            return None
        return cls(
            float(raw["cutoff_s"]),
            int(raw["max_days"]),
            bool(raw["business_days"]),
            PenaltyRules.from_json(raw.get("penalties")),
        )


def failing_reason(*, bonds_short: bool, cash_short: bool) -> FailingReason:
    """The reason of a ``failing`` status: which legs could not lock at the cut-off
    (both are probed, so that each party liable for the fail is named)."""
    if bonds_short and cash_short:
        return "insufficient_securities_and_cash"
    return "insufficient_securities" if bonds_short else "insufficient_cash"
