"""A trade paid in a token other than JPYC: its FX rate's checks and the one conversion
(issue 21). Pure.

A JGB's price is yen per ¥100 face whatever pays for it. A trade paid in USDC carries
the rate it converts at (``fx_rate``, yen per USD), where the venue took it
(``fx_source``) and when (``fx_time``); kessai converts the yen amount once:
``usdc = trunc6((principal + accrued) / fx_rate)`` (the domain review's P5: 98,878,424
JPY at 151.234 is 653,810.809738 USDC). The rate must be fresh (``fx_time`` within
:attr:`FxRules.max_age_s` of the trade time: ``stale_fx_rate``) and near the
reference the ``fx-rates`` topic last gave for the token (within :attr:`FxRules.band`:
``fx_rate_out_of_band``); without a reference that recent, a trade in the token is
refused ``fx_rate_unavailable``. kessai's own fills (streams/engine/orders.py) are
priced at the reference itself. docs/fx.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from schemas import FxRate

__all__ = ["FxRules", "Quote", "check", "convert", "quote_of", "reference_age", "unavailable"]

#: Why a record was rejected: (reason code, detail).
Rejected = tuple[str, str]

#: The defaults (KESSAI_FX_MAX_AGE_S, KESSAI_FX_BAND).
MAX_AGE_S_DEFAULT: Final = 60.0
BAND_DEFAULT: Final = Decimal("0.005")


@dataclass(frozen=True)
class FxRules:
    """How fresh and how near the reference a trade's rate must be."""

    max_age_s: float = MAX_AGE_S_DEFAULT
    #: The largest |fx_rate / reference - 1| taken (0.005: half a percent).
    band: Decimal = BAND_DEFAULT

    def to_json(self) -> dict[str, Any]:
        return {"max_age_s": self.max_age_s, "band": str(self.band)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> FxRules | None:
        if raw is None:
            return None
        return cls(float(raw["max_age_s"]), Decimal(raw["band"]))


@dataclass(frozen=True, slots=True)
class Quote:
    """A rate a trade converts at: the venue's, or the reference's for kessai's fills."""

    rate: Decimal
    source: str
    at: datetime


def quote_of(reference: FxRate) -> Quote:
    """The reference as the rate kessai's own fills convert at (its source as the
    registrar named it: a fill's trade is kessai's, so whose rate it is goes without
    saying)."""
    return Quote(reference.rate, reference.source, reference.at)


def reference_age(reference: FxRate, at: datetime) -> float:
    """How much older than ``at`` the reference is (negative: newer)."""
    return (at - reference.at).total_seconds()


def check(
    quote: Quote,
    trade_time: datetime,
    currency: str,
    reference: FxRate | None,
    rules: FxRules,
) -> Rejected | None:
    """Why a trade at ``trade_time`` in ``currency`` may not convert at ``quote``."""
    age = abs((quote.at - trade_time).total_seconds())
    if age > rules.max_age_s:
        return (
            "stale_fx_rate",
            f"fx_time {quote.at.isoformat()} is {age:g} s from trade_time "
            f"{trade_time.isoformat()} (at most {rules.max_age_s:g})",
        )
    refused = unavailable(currency, reference, trade_time, rules)
    if refused is not None or reference is None:
        return refused
    if abs(quote.rate / reference.rate - 1) > rules.band:
        return (
            "fx_rate_out_of_band",
            f"fx_rate {quote.rate} is more than {rules.band} from the reference "
            f"{reference.rate} of {currency} ({reference.source})",
        )
    return None


def unavailable(
    currency: str, reference: FxRate | None, at: datetime, rules: FxRules
) -> Rejected | None:
    """Why no reference can check a rate at ``at``: none yet, or the one kept is more
    than the age allowed older than ``at``. A reference newer than ``at`` is one: a
    trade read from a backlog, after the references published since, is checked
    against the latest (the band then allows for the rate's move meanwhile)."""
    if reference is None:
        return "fx_rate_unavailable", f"no reference rate of {currency} on fx-rates yet"
    age = reference_age(reference, at)
    if age > rules.max_age_s:
        return (
            "fx_rate_unavailable",
            f"the reference rate of {currency} ({reference.rate} at "
            f"{reference.at.isoformat()}) is {age:g} s older than {at.isoformat()} "
            f"(at most {rules.max_age_s:g})",
        )
    return None


def convert(jpy: int, rate: Decimal, decimals: int) -> int:
    """``jpy`` yen at ``rate`` yen per token, in the token's units, truncated: exact
    (integer arithmetic on the rate's own digits, as :func:`streams.money.cash_units`).
    98,878,424 at 151.234, 6 decimals: 653,810,809,738."""
    num, den = rate.as_integer_ratio()
    units: int = jpy * den * 10**decimals // num
    return units
