"""Trades paid in USDC, in the engine (issue 21): priced in yen, converted once at the
trade's FX rate, checked against the ``fx-rates`` reference; the rate on the
settlement. The domain review's numbers (P5): ¥100m at 98.765 for settlement 5 Nov
2025 is 98,878,424 JPY, at 151.234 JPY/USD 653,810.809738 USDC."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import FX_RATES, LEDGER_EVENTS, PAYMENTS, REJECTIONS, SETTLEMENTS, decode
from streams.engine.core import Engine, Outputs
from streams.ledger import domain
from streams.ledger.messages import order_lock_id
from streams.money import to_units
from streams.settlement.fx import FxRules, convert
from tests.unit.engine.test_bonds import JGB, batch, custody, instrument, jst, settlements, utc_text
from tests.unit.engine.test_bonds import trade as bond_trade
from tests.unit.engine.test_core import Input, cash
from tests.unit.engine.test_fails import RECYCLE
from tests.unit.engine.test_orders import events, order

FX = dataclasses.replace(RECYCLE, fx=FxRules())
DAY = jst("2025-11-04")
USDC_653810 = "653810.809738"


def rate(rate: str = "151.234", at_s: float = DAY, currency: str = "USDC") -> Input:
    value = {"currency": currency, "rate": rate, "source": "fixing", "at": utc_text(at_s)}
    return FX_RATES, currency.encode(), orjson.dumps(value), 0.0


def usdc(n: int, account: str, amount: str) -> Input:
    value = {"payment_id": f"p{n}", "account": account, "token": "USDC",
             "amount": amount, "kind": "deposit"}  # fmt: skip
    return PAYMENTS, account.encode(), orjson.dumps(value), 0.0


def usdc_trade(n: int = 3, *, fx_rate: str = "151.234", fx_at: float = DAY, **more: Any) -> Input:
    return bond_trade(n, DAY, currency="USDC", fx_rate=fx_rate, fx_source="venue-feed",
                      fx_time=utc_text(fx_at), **more)  # fmt: skip


def funded_engine() -> Engine:
    engine = Engine()
    setup = [instrument(), rate(), custody(1, JGB, 100_000_000), usdc(2, "b", "1000000")]
    out = batch(engine, FX, DAY - 30, setup)
    assert not out.rejected, out.rejected
    return engine


def balances(engine: Engine, account: str) -> dict[str, list[int]]:
    return domain.AccountState.from_bytes(engine.accounts[account]).balances


def units(usdc: str) -> int:
    found = to_units(Decimal(usdc), 6)
    assert found is not None, usdc
    return found


def rejected(out: Outputs) -> list[str]:
    return [orjson.loads(v)["reason"] for t, _, v in out.records if t == REJECTIONS]


def test_the_worked_example_converts_98878424_jpy_once_to_653810809738_usdc() -> None:
    engine = funded_engine()
    out = batch(engine, FX, jst("2025-11-05", 9), [usdc_trade()])
    [record] = settlements(out)
    assert record["status"] == "settled"
    # The terms in yen, as a JPYC trade's; the cash their sum converted once.
    assert (record["principal"], record["accrued"], record["days_accrued"]) == (
        "98765000", "113424", 46)  # fmt: skip
    assert (record["cash_amount"], record["currency"]) == (USDC_653810, "USDC")
    assert (record["fx_rate"], record["fx_source"], record["fx_time"]) == (
        "151.234", "venue-feed", utc_text(DAY))  # fmt: skip
    assert balances(engine, "s")["USDC"] == [653_810_809_738, 0]
    assert balances(engine, "b")["USDC"] == [1_000_000_000_000 - 653_810_809_738, 0]
    # The finished trade's row keeps its rate: GET /trades/t3 shows it.
    from streams.engine.views import lookup_trade

    shown = lookup_trade(engine, "t3", {"JPYC": 0, "USDC": 6})
    assert shown is not None and shown["trade"]["fx_rate"] == "151.234"
    assert shown["trade"]["cash_amount"] == USDC_653810


REFUSED = [
    ("no rate", bond_trade(3, DAY, currency="USDC"), "fx_rate_required"),
    ("stale", usdc_trade(fx_at=DAY - 61), "stale_fx_rate"),
    ("out of band", usdc_trade(fx_rate="152.0"), "fx_rate_out_of_band"),
    ("jpyc with a rate", bond_trade(3, DAY, fx_rate="151.234", fx_source="venue-feed",
                                    fx_time=utc_text(DAY)), "invalid_fx_rate"),
    ("the venue's usdc accrued", usdc_trade(accrued_interest="0.75"), "accrued_mismatch"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("record", "reason"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_a_refused_rate_has_its_reason_changes_nothing_and_uses_the_id_up(
    record: Input, reason: str
) -> None:
    engine = funded_engine()
    before = dict(engine.accounts)
    out = batch(engine, FX, DAY + 1, [record])
    assert rejected(out) == [reason]
    assert engine.accounts == before and not engine.open
    out = batch(engine, FX, DAY + 2, [usdc_trade()])
    assert rejected(out) == ["duplicate"]


def test_without_a_recent_reference_a_usdc_trade_is_refused_unavailable() -> None:
    engine = Engine()
    out = batch(engine, FX, DAY, [instrument(), usdc_trade()])
    assert rejected(out) == ["fx_rate_unavailable"]
    out = batch(engine, FX, DAY + 1, [rate(at_s=DAY - 3600), usdc_trade(4)])
    assert rejected(out) == ["fx_rate_unavailable"]


def test_a_reference_must_be_newer_and_of_a_token_priced_in_yen() -> None:
    engine = funded_engine()
    out = batch(engine, FX, DAY + 1, [rate("150", at_s=DAY), rate("150", currency="JPYC"),
                                      rate("150", currency="EURC")])  # fmt: skip
    assert rejected(out) == ["stale_fx_rate", "unknown_token", "unknown_token"]
    assert engine.fx_rates["USDC"].rate == Decimal("151.234")


def test_a_restored_engine_keeps_the_references() -> None:
    engine, rows = Engine(), []
    out = batch(engine, FX, DAY, [rate()])
    rows.extend(out.changelog)
    restored = Engine()
    for table, key, value in rows:
        restored.restore_row(table.removeprefix("kessai-"), key.decode(), value)
    assert restored.fx_rates == engine.fx_rates
    assert list(restored.fx_rates) == ["USDC"]


def test_a_usdc_partial_delivery_converts_each_part_and_the_parts_sum_to_the_trade() -> None:
    engine = Engine()
    setup = [instrument(), rate(), usdc(2, "b", "1000000"), custody(4, JGB, 60_000_000),
             usdc_trade(partial="allowed")]  # fmt: skip
    batch(engine, FX, DAY, setup)
    batch(engine, FX, jst("2025-11-05", 0), [])
    out = batch(engine, FX, jst("2025-11-05", 14), [])
    [part, failing] = settlements(out)
    # The part's terms in yen, as a JPYC trade's (59,259,000 + 68,054); its cash their
    # sum converted at the trade's rate.
    assert engine.open["t3"].trade.fx_rate == "151.234"
    assert convert(59_327_054, Decimal("151.234"), 6) == 392_286_483_198
    assert (part["part_principal"], part["part_accrued"]) == ("59259000", "68054")
    assert part["part_cash_amount"] == "392286.483198"
    assert failing["status"] == "failing"
    out = batch(engine, FX, jst("2025-11-06", 9), [custody(5, JGB, 40_000_000)])
    [rest] = settlements(out)
    assert (rest["part_principal"], rest["part_accrued"]) == ("39506000", "45370")
    # The rest takes what remains: the parts sum to the trade exactly.
    assert rest["part_cash_amount"] == "261524.326540"
    assert 392_286_483_198 + 261_524_326_540 == 653_810_809_738
    assert balances(engine, "s")["USDC"] == [653_810_809_738, 0]


def usdc_order(order_id: str, account: str, side: str, price: str | None, **more: Any) -> Input:
    return order(order_id, account, side, 100_000_000, price, currency="USDC", **more)


def test_a_usdc_order_reserves_and_fills_at_the_reference_rate() -> None:
    engine = funded_engine()
    batch(engine, FX, DAY, [usdc_order("s1", "s", "sell", "98.765")])
    out = batch(engine, FX, DAY + 1, [usdc_order("b1", "b", "buy", "98.80")])
    assert [e[1] for e in events(out)] == ["accepted", "filled", "filled"]
    # Reserved at the limit, 98,913,424 JPY at the reference; the fill at 98.765 takes
    # 98,878,424 JPY's worth and gives the rest back.
    reserved = convert(98_913_424, engine.fx_rates["USDC"].rate, 6)
    lock = order_lock_id(JGB, "v", "b1")
    moves = [(to_units(Decimal(r["delta_locked"]), 6), r["cause"]) for r in (orjson.loads(v)
             for t, _, v in out.records if t == LEDGER_EVENTS)
             if r["account"] == "b" and r["cause"] == lock]  # fmt: skip
    assert moves == [(reserved, lock), (-(reserved - 653_810_809_738), lock)]
    out = batch(engine, FX, jst("2025-11-05", 0), [])
    [settled] = settlements(out)
    assert (settled["cash_amount"], settled["fx_rate"], settled["fx_source"]) == (
        USDC_653810, "151.234", "fixing")  # fmt: skip
    assert decode("settlements", orjson.dumps(settled))


def test_a_usdc_order_without_a_reference_is_rejected_unavailable() -> None:
    engine = Engine()
    batch(engine, FX, DAY - 30, [instrument(), usdc(2, "b", "1000000")])
    out = batch(engine, FX, DAY, [usdc_order("b1", "b", "buy", "98.80")])
    assert events(out) == [("b1", "rejected", "fx_rate_unavailable")]
    assert balances(engine, "b")["USDC"] == [1_000_000_000_000, 0]


def test_a_jpyc_trade_is_not_converted() -> None:
    engine = funded_engine()
    out = batch(engine, FX, DAY - 1, [cash(9, "b", 200_000_000)])
    out = batch(engine, FX, jst("2025-11-05", 9), [bond_trade(3, DAY)])
    [record] = settlements(out)
    assert record["cash_amount"] == "98878424" and "fx_rate" not in record


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from([0, 50_000, 1_000_000, 25_050_000, 60_000_000]), max_size=6),
    st.sampled_from(["653810.809738", "400000", "1000000"]),
)
def test_any_run_of_usdc_partial_deliveries_sums_to_the_converted_trade_and_conserves(
    deliveries: list[int], buyer_usdc: str
) -> None:
    """As test_fails.py's property for JPYC: whatever the deliveries, the parts never
    exceed the trade, their cash sums to the converted trade exactly when it settles,
    and no USDC or bond is created or lost."""
    engine = Engine()
    batch(engine, FX, DAY, [instrument(), rate(), usdc(2, "b", buyer_usdc),
                            usdc_trade(partial="allowed")])  # fmt: skip
    batch(engine, FX, jst("2025-11-05", 0), [])
    records: list[dict[str, Any]] = []
    for n, face in enumerate(deliveries):
        if "t3" not in engine.open:
            break
        assert FX.fails is not None
        cutoff = FX.fails.cutoff(engine.open["t3"].trade, n)
        for at, inputs in ((cutoff - 3600, [custody(10 + n, JGB, face)] if face else []),
                           (cutoff, [])):  # fmt: skip
            out = batch(engine, FX, at, inputs)
            records += [orjson.loads(v) for t, _, v in out.records if t == SETTLEMENTS]
    parts = [r for r in records if "part" in r]
    paid = sum(units(p["part_cash_amount"]) for p in parts)
    assert paid <= 653_810_809_738
    if sum(deliveries[:2]) >= 100_000_000 and units(buyer_usdc) >= 653_810_809_738:
        assert records[-1]["status"] == "settled"  # all there before the fail days ran out
    if parts and records[-1]["status"] == "settled":
        assert sum(p["part_quantity"] for p in parts) == 100_000_000
        assert paid == 653_810_809_738
    usdc_held = sum(sum(balances(engine, a).get("USDC", [0, 0])) for a in ("b", "s"))
    assert usdc_held == units(buyer_usdc)
    assert balances(engine, "s").get("USDC", [0, 0])[0] == paid


def test_a_backlogged_trade_is_checked_against_a_newer_reference() -> None:
    """A trade read after the references published since it (an engine that was down):
    the latest is newer than its trade time, and still checks it (within the band)."""
    engine = funded_engine()
    out = batch(engine, FX, DAY + 300, [rate("151.5", at_s=DAY + 290), usdc_trade()])
    assert rejected(out) == []
    assert engine.open["t3"].trade.fx_rate == "151.234"


def test_a_reference_stamped_ahead_of_its_arrival_is_refused_and_not_kept() -> None:
    """Kept, a reference dated a year ahead would refuse every later one (older) and
    every USDC trade until then."""
    engine = funded_engine()
    out = batch(engine, FX, DAY + 1, [rate("150", at_s=DAY + 1 + 301)])
    assert rejected(out) == ["invalid_fx_time"]
    assert engine.fx_rates["USDC"].at.timestamp() == DAY


def test_an_order_with_a_reference_too_old_is_refused_unavailable() -> None:
    engine = funded_engine()  # the reference at DAY
    out = batch(engine, FX, DAY + 120, [usdc_order("b1", "b", "buy", "98.80")])
    assert events(out) == [("b1", "rejected", "fx_rate_unavailable")]
