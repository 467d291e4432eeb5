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
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final, Literal

from streams.bonds.calendar import add_business_days
from streams.bonds.terms import start_of
from streams.settlement.messages import Trade

__all__ = ["DAY_S", "FailRules", "failing_reason"]

DAY_S: Final = 86_400.0

FailingReason = Literal[
    "insufficient_securities", "insufficient_cash", "insufficient_securities_and_cash"
]


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

    def cutoff(self, trade: Trade, n: int) -> float:
        """The ``n``-th cut-off of ``trade`` (0: its settlement date's), epoch seconds.

        A trade without a settlement date (an engine without dates) has its deadline
        as its first cut-off and one a day after it."""
        if not trade.settlement_date:
            return trade.deadline_at_s + n * DAY_S
        day = dt.date.fromisoformat(trade.settlement_date)
        if self.business_days:
            day = add_business_days(day, n)
        else:
            day += dt.timedelta(days=n)
        return start_of(day) + self.cutoff_s

    def to_json(self) -> dict[str, Any]:
        return {
            "cutoff_s": self.cutoff_s,
            "max_days": self.max_days,
            "business_days": self.business_days,
        }

    @classmethod
    def from_json(cls, raw: Any) -> FailRules | None:
        if raw is None:
            return None
        return cls(float(raw["cutoff_s"]), int(raw["max_days"]), bool(raw["business_days"]))


def failing_reason(*, bonds_short: bool, cash_short: bool) -> FailingReason:
    """The reason of a ``failing`` status: which legs could not lock at the cut-off
    (both are probed, so that each party liable for the fail is named)."""
    if bonds_short and cash_short:
        return "insufficient_securities_and_cash"
    return "insufficient_securities" if bonds_short else "insufficient_cash"
