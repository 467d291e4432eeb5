"""The amounts of one part of a partially settled trade (issue 21). Pure.

A failing trade that allows it (``partial: allowed``) settles in parts: each part is
the largest whole number of the bond's face unit the seller holds, and its cash is
computed as the whole trade's was, per part: the principal ``trunc(face x price /
100)`` and the accrued interest ``trunc(ai100 x face / 100)`` (kessai's, from the
security master; else the venue's, pro rata), each truncated. The last part is not
computed: it is what remains (:meth:`streams.settlement.saga.Saga.last_part`), so the
parts sum to the trade exactly. The domain review's example: ¥100m at 98.765 for
settlement 5 Nov 2025 (98,878,424 JPYC), the seller holding ¥60m: part 1 is
59,259,000 + 68,054 = 59,327,054, the rest 39,551,370 (an independent computation of
the rest, 40m's principal and accrued, would give 39,551,369).

A trade paid in another token (``fx_rate``: streams/settlement/fx.py) keeps its
principal and accrued in whole yen: a part's are computed so, and its cash is their
sum converted at the trade's rate, truncated; the last part again takes the rest.
"""

from __future__ import annotations

from decimal import Decimal

from streams.money import cash_units
from streams.settlement.fx import convert
from streams.settlement.saga import Part, Saga

__all__ = ["next_part"]


def next_part(saga: Saga, face: int, *, accrued_units: int | None, decimals: int) -> Part | None:
    """Part ``saga.parts + 1`` of ``face`` (less than what remains); ``accrued_units``:
    kessai's accrued on ``face`` in units (whole yen for a converted trade; None: the
    venue's, pro rata). None when the part's cash truncates to nothing."""
    t = saga.trade
    assert 0 < face < saga.quantity_left, (face, saga.quantity_left)
    number = saga.parts + 1
    if t.principal_units is None or t.accrued_units is None:  # no dates: the cash, pro rata
        cash = t.cash_units * face // t.quantity
        return Part(number, face, cash) if cash > 0 else None
    rate = Decimal(t.fx_rate) if t.fx_rate else None
    principal = cash_units(face, Decimal(t.price), Decimal(0), 0 if rate else decimals)
    if accrued_units is None:
        accrued_units = t.accrued_units * face // t.quantity
    # Never more than remains (the superadditivity of truncation guarantees it while
    # the terms are those the trade was taken with; a floater's new rate might not).
    principal = min(principal, t.principal_units - saga.principal_paid)
    accrued = min(accrued_units, t.accrued_units - saga.accrued_paid)
    cash = principal + accrued if rate is None else convert(principal + accrued, rate, decimals)
    if cash <= 0:
        return None
    return Part(number, face, cash, principal, accrued)
