"""The FX rate's checks and the one conversion (streams/settlement/fx.py), pure."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import FxRate
from streams.settlement.fx import FxRules, Quote, check, convert

AT = dt.datetime(2025, 11, 4, 1, 0, tzinfo=dt.UTC)
REFERENCE = FxRate(currency="USDC", rate=Decimal("151.234"), source="fixing", at=AT)


def test_the_domain_reviews_example_98878424_jpy_at_151234_is_653810809738_usdc() -> None:
    assert convert(98_878_424, Decimal("151.234"), 6) == 653_810_809_738


@given(
    st.integers(0, 10**15),
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal("100000"), places=4),
    st.integers(0, 18),
)
def test_the_conversion_is_the_truncation_of_the_exact_quotient(
    jpy: int, rate: Decimal, decimals: int
) -> None:
    units = convert(jpy, rate, decimals)
    scaled, exact = jpy * 10**decimals, Fraction(rate)
    # units x rate <= jpy < (units + 1) x rate, in the token's smallest unit: exact.
    assert units * exact <= scaled < (units + 1) * exact


def quote(rate: str = "151.234", *, seconds: float = 0) -> Quote:
    return Quote(Decimal(rate), "venue-feed", AT + dt.timedelta(seconds=seconds))


@pytest.mark.parametrize(
    ("q", "reference", "reason"),
    [
        (quote(seconds=61), REFERENCE, "stale_fx_rate"),
        (quote(seconds=-61), REFERENCE, "stale_fx_rate"),
        (quote(), None, "fx_rate_unavailable"),
        (quote(), REFERENCE.model_copy(update={"at": AT - dt.timedelta(seconds=61)}),
         "fx_rate_unavailable"),
        (quote("152.0"), REFERENCE, "fx_rate_out_of_band"),  # +0.51 %
        (quote("150.47"), REFERENCE, "fx_rate_out_of_band"),  # -0.505 %
    ],
)  # fmt: skip
def test_a_stale_unreferenced_or_out_of_band_rate_is_refused_with_its_reason(
    q: Quote, reference: FxRate | None, reason: str
) -> None:
    refused = check(q, AT, "USDC", reference, FxRules())
    assert refused is not None and refused[0] == reason
    assert "USDC" in refused[1] or "fx_time" in refused[1]


@pytest.mark.parametrize(
    "q", [quote(), quote(seconds=60), quote(seconds=-60), quote("151.99"), quote("150.48")]
)
def test_a_fresh_rate_within_the_band_is_taken(q: Quote) -> None:
    assert check(q, AT, "USDC", REFERENCE, FxRules()) is None


def test_the_rules_travel_in_the_manifest() -> None:
    rules = FxRules(30.0, Decimal("0.001"))
    assert FxRules.from_json(rules.to_json()) == rules
    assert FxRules.from_json(None) is None
