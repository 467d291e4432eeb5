"""Coupon dates, record and payment times, and amounts (streams/bonds/coupons.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from schemas import Instrument
from streams.bonds.coupons import Event, coupon_jpy, first_event_after, next_event
from streams.bonds.terms import start_of

BOND = Instrument(
    isin="JP1103771Q62",
    kind="fixed",
    series="10-year JGB #377",
    coupon_rate=Decimal("0.9"),
    coupon_dates=("03-20", "09-20"),
    issue_date=dt.date(2025, 4, 1),
    maturity_date=dt.date(2035, 3, 20),
    face_unit=50_000,
    price_tick=Decimal("0.001"),
)
D = dt.date.fromisoformat


def test_a_coupon_is_half_the_rate_on_the_face_truncated() -> None:
    assert coupon_jpy(100_000_000, Decimal("0.9")) == 450_000
    assert coupon_jpy(60_000_000, Decimal("0.9")) == 270_000
    assert coupon_jpy(50_000, Decimal("0.9")) == 225
    assert coupon_jpy(50_000, Decimal("0.005")) == 1  # 1.25 yen, truncated


def test_a_sunday_coupon_is_recorded_that_midnight_and_paid_on_the_next_business_day() -> None:
    event = next_event(BOND, D("2026-09-01"))
    assert event == Event(BOND.isin, D("2026-09-20"), redemption=False)
    assert event.record_s == start_of(D("2026-09-20"))  # 24:00 JST on the 19th
    # 21 Sep Respect for the Aged Day, 22 a citizens' holiday, 23 the equinox.
    assert event.pay_s == start_of(D("2026-09-24"))
    assert event.id == "coupon:JP1103771Q62:2026-09-20"


def test_the_last_coupon_date_is_the_redemption() -> None:
    assert next_event(BOND, D("2034-09-20")) == Event(BOND.isin, D("2035-03-20"), redemption=True)
    assert next_event(BOND, D("2035-03-20")) is None


def test_a_bond_published_now_pays_from_its_next_record_time_on() -> None:
    just_after = start_of(D("2026-03-20")) + 1
    assert first_event_after(BOND, just_after).date == D("2026-09-20")  # type: ignore[union-attr]
    assert first_event_after(BOND, just_after - 2).date == D("2026-03-20")  # type: ignore[union-attr]


def test_a_discount_bond_only_redeems() -> None:
    bill = BOND.model_copy(
        update={
            "kind": "discount",
            "coupon_rate": Decimal(0),
            "coupon_dates": (),
            "maturity_date": D("2027-02-10"),
        }
    )
    assert next_event(bill, D("2026-12-01")) == Event(bill.isin, D("2027-02-10"), redemption=True)


def test_no_coupon_before_the_first_one_nor_accrual_before_the_issue() -> None:
    # 5-year #185 of the reference file: issued 1 Dec 2026, first coupon 20 Jun 2027.
    new = BOND.model_copy(update={"coupon_dates": ("06-20", "12-20"), "issue_date": D("2026-12-01"),
                                  "first_coupon_date": D("2027-06-20"),
                                  "maturity_date": D("2031-12-20")})  # fmt: skip
    assert first_event_after(new, start_of(D("2026-11-30"))).date == D("2027-06-20")  # type: ignore[union-attr]
    assert next_event(new, D("2026-12-01")).date == D("2027-06-20")  # type: ignore[union-attr]
    from streams.bonds.terms import accrued_on

    on = accrued_on(new, 100_000_000, D("2026-12-10"))
    assert on is not None and (on.last_coupon, on.days) == (D("2026-12-01"), 9)
