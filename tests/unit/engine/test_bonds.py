"""The engine with a security master (issue 20): what it refuses, the dates and accrued
it computes, the trades that wait for their settlement date, and the same properties as
test_core.py (conservation, one end per trade, restore) with all of it on."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    CUSTODY,
    INSTRUMENTS,
    ORDER_EVENTS,
    ORDERS,
    PAYMENTS,
    SETTLEMENTS,
    TRADES,
)
from streams.bonds.terms import start_of
from streams.engine.core import Batch, Engine, Outputs, Rules
from streams.ledger import domain
from tests.unit.engine.test_core import Input, cash, run, totals

#: The domain review's hypothetical 10-year JGB: 0.9 %, coupons 20 March and September.
JGB = "JP1103771Q62"
JGBI = "JP1120301Q65"  # inflation-indexed: a face unit of 100,000
TOYOTA = "JP3633400001"
UNKNOWN = "JP1201551P12"
TOKENS = {"JPYC": 0, "USDC": 6}
T1 = Rules(tokens=TOKENS, deadline_s=3600.0, settlement_lag=1, instruments_required=True)
T0 = Rules(tokens=TOKENS, deadline_s=3600.0, settlement_lag=0, instruments_required=True)


def instrument(isin: str = JGB, **changes: Any) -> Input:
    value: dict[str, Any] = {
        "isin": isin,
        "kind": "fixed",
        "series": "10-year JGB #377",
        "coupon_rate": "0.9",
        "coupon_dates": ["03-20", "09-20"],
        "issue_date": "2025-04-01",
        "maturity_date": "2035-03-20",
        "face_unit": 50_000,
        "price_tick": "0.001",
    }
    if isin == JGBI:
        value.update(
            kind="inflation_indexed",
            coupon_rate="0.005",
            face_unit=100_000,
            coupon_dates=["03-10", "09-10"],
            maturity_date="2035-03-10",
        )
    value.update(changes)
    return INSTRUMENTS, isin.encode(), orjson.dumps(value), 0.0


def jst(day: str, hour: int = 10) -> float:
    """``hour`` o'clock JST on ``day``, epoch seconds."""
    return start_of(dt.date.fromisoformat(day)) + hour * 3600


def utc_text(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trade(
    n: int,
    at_s: float,
    isin: str = JGB,
    quantity: int = 100_000_000,
    price: str = "98.765",
    **more: Any,
) -> Input:
    value = {
        "trade_id": f"t{n}",
        "venue": "v",
        "isin": isin,
        "buyer": "b",
        "seller": "s",
        "quantity": quantity,
        "price": price,
        "currency": "JPYC",
        "trade_time": utc_text(at_s),
        **more,
    }
    return TRADES, f"t{n}".encode(), orjson.dumps(value), 0.0


def custody(n: int, isin: str, quantity: int, account: str = "s") -> Input:
    value = {
        "movement_id": f"m{n}",
        "account": account,
        "isin": isin,
        "quantity": quantity,
        "kind": "deposit",
    }
    return CUSTODY, account.encode(), orjson.dumps(value), 0.0


def batch(engine: Engine, rules: Rules, now_s: float, records: list[Input]) -> Outputs:
    b = Batch(engine, rules, now_s)
    for offset, (topic, key, value, _) in enumerate(records):
        b.record(topic, 0, offset, key, value, now_s)
    b.expire()
    return b.finish()


def settlements(out: Outputs) -> list[dict[str, Any]]:
    return [orjson.loads(v) for t, _, v in out.records if t == SETTLEMENTS]


def funded(*more: Input) -> list[Input]:
    return [instrument(), custody(1, JGB, 100_000_000), cash(2, "b", 200_000_000), *more]


def test_the_worked_example_settles_principal_plus_kessais_accrued() -> None:
    # Trade Tue 4 Nov 2025, T+1: Wed 5 Nov, 46 days after 20 Sep: accrued ¥113,424.
    out = batch(Engine(), T1, jst("2025-11-05", 9), funded(trade(3, jst("2025-11-04"))))
    [record] = settlements(out)
    assert record["status"] == "settled"
    assert record["cash_amount"] == "98878424"
    assert (record["trade_date"], record["settlement_date"]) == ("2025-11-04", "2025-11-05")
    assert (record["price"], record["principal"], record["accrued"]) == (
        "98.765",
        "98765000",
        "113424",
    )
    assert record["days_accrued"] == 46


def test_friday_31_october_2025_settles_tuesday_4_november_and_waits_for_it() -> None:
    engine = Engine()
    out = batch(engine, T1, jst("2025-10-31", 15), funded(trade(3, jst("2025-10-31", 14))))
    [record] = settlements(out)
    assert (record["status"], record["reason"]) == ("pending", "awaiting_settlement_date")
    assert record["settlement_date"] == "2025-11-04"
    # Nothing is locked while it waits: the seller's bonds are still available.
    assert domain.AccountState.from_bytes(engine.accounts["s"]).balances[JGB] == [100_000_000, 0]
    assert settlements(batch(engine, T1, jst("2025-11-04", 0) - 1, [])) == []
    [settled] = settlements(batch(engine, T1, jst("2025-11-04", 0), []))
    assert settled["status"] == "settled"
    # 45 days from 20 Sep to 4 Nov: 0.9 x 45 / 365 = 0.1109589 per ¥100 → ¥110,958.
    assert (settled["accrued"], settled["days_accrued"]) == ("110958", 45)


def test_the_deadline_counts_from_the_settlement_date_not_the_arrival() -> None:
    engine = Engine()
    unfunded = [instrument(), trade(3, jst("2025-10-31", 14))]
    batch(engine, T1, jst("2025-10-31", 15), unfunded)
    starts = jst("2025-11-04", 0)
    assert [s["reason"] for s in settlements(batch(engine, T1, starts, []))] == [
        "insufficient_securities"
    ]
    assert settlements(batch(engine, T1, starts + T1.deadline_s - 1, [])) == []
    [failed] = settlements(batch(engine, T1, starts + T1.deadline_s, []))
    assert (failed["status"], failed["reason"]) == ("failed", "insufficient_securities")


REFUSED = [
    pytest.param(trade(3, jst("2025-11-04"), isin=UNKNOWN), "unknown_isin", id="unknown"),
    pytest.param(trade(3, jst("2025-11-04"), isin=TOYOTA), "not_a_jgb", id="toyota"),
    pytest.param(
        trade(3, jst("2025-11-04"), isin=JGBI, quantity=50_000), "invalid_quantity", id="odd-lot"
    ),
    pytest.param(trade(3, jst("2025-11-04"), price="98.7655"), "invalid_tick", id="tick"),
    pytest.param(
        trade(3, jst("2025-11-04"), accrued_interest="0"), "accrued_mismatch", id="accrued-0"
    ),
    pytest.param(
        trade(3, jst("2025-10-31"), settlement_date="2025-11-03"),
        "invalid_settlement_date",
        id="culture-day",
    ),
    pytest.param(
        trade(3, jst("2025-11-04"), settlement_date="2025-11-03"),
        "invalid_settlement_date",
        id="before-trade-date",
    ),
    pytest.param(
        trade(3, jst("2025-11-04"), settlement_date="2025-12-26"),
        "invalid_settlement_date",
        id="too-far",
    ),
    pytest.param(
        trade(3, jst("2025-11-04"), trade_date="2025-11-05"), "invalid_trade_date", id="trade-date"
    ),
    pytest.param(trade(3, jst("2035-03-19")), "settlement_after_maturity", id="maturity"),
    pytest.param(custody(3, UNKNOWN, 50_000), "unknown_isin", id="custody-unknown"),
    pytest.param(custody(3, JGB, 70_000), "invalid_quantity", id="custody-odd-lot"),
    pytest.param(instrument(coupon_rate="1.0"), "instrument_terms_changed", id="new-coupon"),
]


@pytest.mark.parametrize(("record", "reason"), REFUSED)
def test_what_the_security_master_refuses_has_its_reason_and_changes_nothing(
    record: Input, reason: str
) -> None:
    engine = Engine()
    batch(engine, T1, jst("2025-11-04"), [*funded(), instrument(JGBI)])
    before = dict(engine.accounts), dict(engine.instruments)
    out = batch(engine, T1, jst("2025-11-04", 11), [record])
    assert [r for _, r in out.rejected] == [reason]
    assert settlements(out) == [] and (dict(engine.accounts), dict(engine.instruments)) == before


def test_the_mismatch_says_what_was_expected_and_what_came() -> None:
    out = batch(
        Engine(),
        T1,
        jst("2025-11-04", 11),
        funded(trade(3, jst("2025-11-04"), accrued_interest="113000")),
    )
    [(_, _, value)] = [r for r in out.records if r[0] == "rejections"]
    assert (
        "expected 113424 JPYC (46 days from 2025-09-20), got 113000"
        in orjson.loads(value)["detail"]
    )


@pytest.mark.parametrize(
    ("status", "reason"), [("halted", "instrument_halted"), ("matured", "instrument_matured")]
)
def test_a_halted_or_matured_bond_does_not_trade_and_a_lifted_halt_trades_again(
    status: str, reason: str
) -> None:
    engine = Engine()
    batch(engine, T1, jst("2025-11-04"), [*funded(), instrument(status=status)])
    out = batch(engine, T1, jst("2025-11-04", 11), [trade(3, jst("2025-11-04"))])
    assert [r for _, r in out.rejected] == [reason]
    batch(engine, T1, jst("2025-11-04", 12), [instrument(status="active")])
    later = batch(engine, T1, jst("2025-11-05", 12), [trade(4, jst("2025-11-04", 12))])
    assert [s["status"] for s in settlements(later)] == ["settled"]


def test_a_24_7_market_settles_on_the_trade_date_even_a_holiday() -> None:
    # Lag 0: Sat 19 Sep 2026 settles that day; 183 days, capped at half the coupon.
    out = batch(
        Engine(), T0, jst("2026-09-19", 11), funded(trade(3, jst("2026-09-19"), price="99.1"))
    )
    [record] = settlements(out)
    assert (record["settlement_date"], record["accrued"], record["days_accrued"]) == (
        "2026-09-19",
        "450000",
        183,
    )


def test_an_inflation_indexed_trade_takes_the_venues_accrued() -> None:
    records = [
        instrument(JGBI),
        custody(1, JGBI, 100_000),
        cash(2, "b", 200_000),
        trade(
            3, jst("2025-11-04"), isin=JGBI, quantity=100_000, price="101.5", accrued_interest="3"
        ),
    ]
    [record] = settlements(batch(Engine(), T1, jst("2025-11-05", 9), records))
    assert (record["cash_amount"], record["accrued"]) == ("101503", "3")
    assert "days_accrued" not in record


def test_a_usdc_trade_takes_the_venues_accrued_until_it_carries_a_rate() -> None:
    records = [
        instrument(),
        custody(1, JGB, 50_000),
        (
            PAYMENTS,
            b"b",
            orjson.dumps(
                {
                    "payment_id": "p",
                    "account": "b",
                    "token": "USDC",
                    "amount": "1000",
                    "kind": "deposit",
                }
            ),
            0.0,
        ),
        trade(
            3,
            jst("2025-11-04"),
            quantity=50_000,
            price="0.652",
            currency="USDC",
            accrued_interest="0.000748",
        ),
    ]
    [record] = settlements(batch(Engine(), T1, jst("2025-11-05", 9), records))
    assert (record["principal"], record["accrued"], record["cash_amount"]) == (
        "326.000000",
        "0.000748",
        "326.000748",
    )


# --- The properties of test_core.py, with the security master and dates on -----------

#: Batches run 10 s apart from here: 30 s before a settlement date begins.
DAY = "2027-01-15"
START = start_of(dt.date.fromisoformat(DAY))
DATED = Rules(
    tokens=TOKENS,
    deadline_s=30.0,
    settlement_lag=0,
    instruments_required=True,
    paying_agent="agent",
)


@st.composite
def dated_inputs(draw: st.DrawFn) -> list[Input]:
    # A coupon on DAY, whose record time the runs cross; or the bond matures then.
    matures = draw(st.sampled_from(["2035-01-15", DAY]))
    terms: dict[str, Any] = {"coupon_dates": ["01-15", "07-15"], "maturity_date": matures}
    out: list[Input] = [instrument(**terms)]
    for n in range(draw(st.integers(1, 25))):
        kinds = ["trade", "trade", "cash", "bonds", "again", "halt", "agent", "attest"]
        kind = draw(st.sampled_from(kinds))
        buyer, seller = draw(st.permutations(["a", "b", "c"]))[:2]
        if kind == "trade":
            more: dict[str, Any] = {"settlement_date": DAY} if draw(st.booleans()) else {}
            value = orjson.loads(trade(n, START - 40, **more)[2])
            value.update(
                buyer=buyer,
                seller=seller,
                quantity=50_000 * draw(st.integers(1, 4)),
                price=draw(st.sampled_from(["99.5", "100", "101.25"])),
            )
            out.append((TRADES, f"t{n}".encode(), orjson.dumps(value), 0.0))
        elif kind == "cash":
            out.append(cash(n, buyer, draw(st.integers(1, 400_000))))
        elif kind == "bonds":
            out.append(custody(n, JGB, 50_000 * draw(st.integers(1, 4)), seller))
        elif kind == "halt":
            out.append(instrument(**terms, status=draw(st.sampled_from(["halted", "active"]))))
        elif kind == "agent":
            out.append(cash(n, "agent", draw(st.integers(1, 2_000))))
        elif kind == "attest":
            out.append(attest(n, 50_000 * draw(st.integers(0, 8))))
        else:
            out.append(draw(st.sampled_from(out)))
    return out


def run_dated(records: list[Input], cuts: list[int], restore_at: int | None = None) -> Any:
    """test_core's run, its clocks crossing the settlement date's start."""
    return run(records, cuts, rules=DATED, restore_at=restore_at, t0=START - 30)


dated_cases = st.tuples(dated_inputs(), st.lists(st.integers(0, 25), max_size=6))


@settings(max_examples=200, deadline=None)
@given(dated_cases)
def test_with_dates_money_is_conserved_and_every_trade_ends_once(case: Any) -> None:
    records, cuts = case
    engine, outs = run_dated(records, cuts)
    for asset in set(totals(engine)) | set(engine.inflow):
        assert totals(engine)[asset] == engine.inflow.get(asset, 0), asset
    late = Batch(engine, DATED, START + 10_000)
    late.expire()
    outs.append(late.finish())
    ended = [s.trade.trade_id for o in outs for s in o.statuses if s.status != "pending"]
    assert len(ended) == len(set(ended)) == sum(o.received for o in outs) and not engine.open
    for raw in engine.accounts.values():
        state = domain.AccountState.from_bytes(raw)
        assert not state.locks and not state.waiting
    # Nothing settled before its settlement date began.
    for out in outs:
        for s in out.statuses:
            at = dt.datetime.fromisoformat(s.record["at"]).timestamp()
            assert s.status != "settled" or at >= s.trade.starts_at_s, s.record


@settings(max_examples=200, deadline=None)
@given(dated_cases, st.integers(0, 7))
def test_with_dates_a_restored_engine_writes_what_one_that_never_stopped_writes(
    case: Any, restore_at: int
) -> None:
    records, cuts = case
    whole_engine, whole = run_dated(records, cuts)
    again_engine, again = run_dated(records, cuts, restore_at=restore_at)
    assert [o.records for o in again] == [o.records for o in whole]
    assert again_engine.accounts == whole_engine.accounts
    assert again_engine.instruments == whole_engine.instruments
    assert (again_engine.schedule, again_engine.runs) == (whole_engine.schedule, whole_engine.runs)
    assert again_engine.reserves == whole_engine.reserves
    assert [o.reserve_breaches for o in again] == [o.reserve_breaches for o in whole]
    assert sorted(again_engine.starts) == sorted(whole_engine.starts)


# --- A simulated market's clock (KESSAI_CLOCK=ticks) ----------------------------------

TICKS = Rules(tokens=TOKENS, deadline_s=3600.0, settlement_lag=1, instruments_required=True,
              ticks=True)  # fmt: skip


def tick(to_s: float) -> Input:
    text = utc_text(to_s)
    return "clock", text.encode(), orjson.dumps({"to": text}), 0.0


def test_a_tick_moves_the_clock_so_a_waiting_trade_starts_and_settles_stamped_then() -> None:
    engine = Engine()
    batch(engine, TICKS, jst("2025-10-31", 15), funded(trade(3, jst("2025-10-31", 14))))
    out = batch(
        engine,
        TICKS,
        jst(
            "2025-10-31",
            15,
        )
        + 1,
        [tick(jst("2025-11-04", 0))],
    )
    [settled] = settlements(out)
    assert (settled["status"], settled["at"]) == ("settled", utc_text(jst("2025-11-04", 0)))


def test_a_tick_back_in_time_or_on_the_wall_clock_is_refused_and_moves_nothing() -> None:
    engine = Engine()
    out = batch(engine, TICKS, jst("2025-11-04"), [tick(jst("2025-11-03"))])
    assert out.rejected == [("clock", "clock_backwards")]
    out = batch(engine, T1, jst("2025-11-04"), [tick(jst("2025-11-05"))])
    assert out.rejected == [("clock", "clock_not_simulated")]


def test_under_ticks_a_trade_arrives_at_the_clocks_time_not_the_brokers() -> None:
    # The broker's time is 4 November, the clock's the 5th: the trade's deadline is an
    # hour after its trade time, which the clock's arrival bounds, not the broker's
    # (that would make it an hour after the broker's time, before the trade was made).
    rules = Rules(tokens=TOKENS, deadline_s=3600.0, settlement_lag=0, instruments_required=True,
                  ticks=True)  # fmt: skip
    engine = Engine()
    b = Batch(engine, rules, jst("2025-11-05", 10))
    for offset, (topic, key, value, _) in enumerate([instrument(), trade(3, jst("2025-11-05", 9))]):
        b.record(topic, 0, offset, key, value, jst("2025-11-04"))
    b.expire()
    b.finish()
    assert engine.deadlines == [(jst("2025-11-05", 10), "t3")]


# --- Coupons and redemption (streams/engine/actions.py) -------------------------------

PAYING = Rules(tokens=TOKENS, deadline_s=3600.0, settlement_lag=0, instruments_required=True,
               ticks=True, paying_agent="agent")  # fmt: skip


def holdings(engine: Engine, asset: str) -> dict[str, int]:
    out = {}
    for account, raw in engine.accounts.items():
        available, locked = domain.AccountState.from_bytes(raw).balances.get(asset, [0, 0])
        if available or locked:
            out[account] = available + locked
    return out


def causes(out: Outputs) -> list[tuple[str, str, str]]:
    events = [orjson.loads(v) for t, _, v in out.records if t == "ledger-events"]
    return [(e["account"], e["cause"], e["delta_available"]) for e in events]


def holders_of_60m_and_40m(agent_jpy: int) -> Engine:
    engine = Engine()
    batch(engine, PAYING, jst("2026-09-10"), [
        instrument(), custody(1, JGB, 60_000_000, "a"), custody(2, JGB, 40_000_000, "b"),
        cash(3, "agent", agent_jpy),
    ])  # fmt: skip
    return engine


def test_holders_at_the_record_time_are_paid_on_the_adjusted_date_once() -> None:
    engine = holders_of_60m_and_40m(450_000)
    # The record time passes (00:00 JST on Sunday 20 Sep): the run is fixed, not paid.
    out = batch(engine, PAYING, jst("2026-09-19", 23), [tick(jst("2026-09-20", 0))])
    assert out.paid == [] and list(engine.runs) == ["coupon:JP1103771Q62:2026-09-20"]
    # b sells 40m after the record time: the coupon still goes to b.
    batch(engine, PAYING, jst("2026-09-20", 1), [custody(4, JGB, 40_000_000, "c")])
    out = batch(engine, PAYING, jst("2026-09-20", 2), [tick(jst("2026-09-24", 0))])
    assert out.paid == [("coupon:JP1103771Q62:2026-09-20", 2, 450_000)]
    assert sorted(causes(out)) == [
        ("a", "coupon:JP1103771Q62:2026-09-20:a", "270000"),
        ("agent", "coupon:JP1103771Q62:2026-09-20", "-450000"),
        ("b", "coupon:JP1103771Q62:2026-09-20:b", "180000"),
    ]
    assert engine.runs == {} and engine.schedule[JGB].date == dt.date(2027, 3, 20)
    # The same run again (a repeat) pays nothing: every id is used.
    from streams.engine import actions

    again = Batch(engine, PAYING, jst("2026-09-24", 1))
    actions._pay(again, actions.Run(actions.Event(JGB, dt.date(2026, 9, 20), False),
                                    (("a", 60_000_000), ("b", 40_000_000))))  # fmt: skip
    assert again.finish().ledger_events == 0


def test_holders_are_due_once_the_record_time_passes_until_they_are_taken() -> None:
    """What makes the service commit a batch of no inputs before one whose clock passed
    a record time (the holders are then the journal's as of it)."""
    from streams.engine import actions

    engine = holders_of_60m_and_40m(450_000)
    record_s = jst("2026-09-20", 0)
    assert not actions.holders_due(engine, PAYING, record_s - 0.001)
    assert actions.holders_due(engine, PAYING, record_s)
    unpaid = dataclasses.replace(PAYING, paying_agent=None)  # no coupons paid: never due
    assert not actions.holders_due(engine, unpaid, record_s + 86_400)
    batch(engine, PAYING, record_s, [])
    assert not actions.holders_due(engine, PAYING, record_s + 1)  # taken


def test_an_unfunded_paying_agent_pays_nobody_until_it_can_pay_everyone() -> None:
    engine = holders_of_60m_and_40m(400_000)
    out = batch(engine, PAYING, jst("2026-09-19", 23), [tick(jst("2026-09-24", 0))])
    assert out.paid == [] and out.unfunded == [("coupon:JP1103771Q62:2026-09-20", 450_000, 400_000)]
    assert holdings(engine, "JPYC") == {"agent": 400_000}
    out = batch(engine, PAYING, jst("2026-09-24", 1), [cash(5, "agent", 50_000)])
    assert out.paid == [("coupon:JP1103771Q62:2026-09-20", 2, 450_000)]
    assert holdings(engine, "JPYC") == {"a": 270_000, "b": 180_000}


def test_maturity_fails_open_trades_redeems_face_plus_coupon_and_leaves_no_supply() -> None:
    short = instrument(maturity_date="2026-09-20", issue_date="2025-04-01")
    engine = Engine()
    before = jst("2026-09-19", 23) + 1800  # its deadline is after the record time
    # "a" offers 10m of its 100m: reserved; "s" has no bonds: its trade waits.
    offer = {"order_id": "o1", "venue": "v", "account": "a", "isin": JGB, "side": "sell",
             "quantity": 10_000_000, "price": "99.5", "currency": "JPYC"}  # fmt: skip
    batch(engine, PAYING, before, [
        short, custody(1, JGB, 100_000_000, "a"), cash(2, "agent", 100_450_000),
        trade(3, before, quantity=50_000_000),
        (ORDERS, JGB.encode(), orjson.dumps(offer), 0.0),
    ])  # fmt: skip
    out = batch(engine, PAYING, before + 1, [tick(jst("2026-09-20", 0))])
    assert [(s.status, s.reason) for s in out.statuses] == [("failed", "instrument_matured")]
    assert holdings(engine, JGB) == {} and engine.instruments[JGB].status == "matured"
    # Its books close: the offer is cancelled and its reservation goes back first, so
    # all 100m are burnt (streams/engine/orders.py).
    [event] = [orjson.loads(v) for t, _, v in out.records if t == ORDER_EVENTS]
    assert (event["order_id"], event["event"], event["reason"]) == (
        "o1",
        "cancelled",
        "instrument_matured",
    )
    out = batch(engine, PAYING, jst("2026-09-20", 0) + 1, [tick(jst("2026-09-24", 0))])
    assert out.paid == [("redemption:JP1103771Q62:2026-09-20", 1, 100_450_000)]
    assert holdings(engine, JGB) == {} and engine.inflow[JGB] == 0
    assert holdings(engine, "JPYC") == {"a": 100_450_000}
    assert engine.instruments[JGB].status == "matured" and JGB not in engine.schedule


def a_sells_x_10m() -> Input:
    """a sells x 10m of the bond on Fri 18 Sep 2026, before the coupon of the 20th."""
    topic, key, value, _ = trade(7, jst("2026-09-18"), quantity=10_000_000, price="99.5")
    return topic, key, orjson.dumps({**orjson.loads(value), "buyer": "x", "seller": "a"}), 0.0


def test_a_trade_that_settles_after_the_record_time_makes_its_market_claim() -> None:
    # a holds 60m at the record time, 10m of it sold to x for the 18th; x pays late.
    engine = holders_of_60m_and_40m(450_000)
    sale = a_sells_x_10m()
    patient = dataclasses.replace(PAYING, deadline_s=10 * 86_400)  # it waits for days
    out = batch(engine, patient, jst("2026-09-18", 11), [sale])
    assert [(s.status, s.reason) for s in out.statuses] == [("pending", "insufficient_cash")]
    out = batch(engine, patient, jst("2026-09-18", 12), [tick(jst("2026-09-24", 0))])
    assert out.paid == [("coupon:JP1103771Q62:2026-09-20", 2, 450_000)]  # a: 270,000
    out = batch(engine, patient, jst("2026-09-24", 1), [cash(8, "x", 20_000_000)])
    assert [s.status for s in out.statuses] == ["settled"]
    # The coupon on the 10m went to a, the holder of record: a pays it on to x.
    assert out.claims == [("t7", "2026-09-20", 45_000)]
    assert ("a", "claim:t7:2026-09-20", "-45000") in causes(out)
    assert ("x", "claim:t7:2026-09-20/credit", "45000") in causes(out)


def test_a_trade_that_settled_before_the_record_time_makes_no_claim() -> None:
    engine = holders_of_60m_and_40m(450_000)
    sale = a_sells_x_10m()
    out = batch(engine, PAYING, jst("2026-09-18", 11), [cash(8, "x", 20_000_000), sale])
    assert [s.status for s in out.statuses] == ["settled"] and out.claims == []
    out = batch(engine, PAYING, jst("2026-09-18", 12), [tick(jst("2026-09-24", 0))])
    assert out.paid == [("coupon:JP1103771Q62:2026-09-20", 3, 450_000)]  # a, b and x


# --- The custodian's reserve (topic reserves) -------------------------------------------


def attest(n: int, face: int, isin: str = JGB) -> Input:
    value = {"attestation_id": f"att{n}", "isin": isin, "face": face,
             "as_of": "2026-09-10T00:00:00Z"}  # fmt: skip
    return "reserves", isin.encode(), orjson.dumps(value), 0.0


def test_more_face_minted_than_attested_is_a_breach_until_the_reserve_covers_it() -> None:
    engine = Engine()
    out = batch(engine, PAYING, jst("2026-09-10"), [instrument(), attest(1, 100_000_000),
                                                    custody(2, JGB, 100_000_000, "a")])  # fmt: skip
    assert out.reserve_breaches == [] and engine.inflow[JGB] == 100_000_000
    out = batch(engine, PAYING, jst("2026-09-10", 11), [custody(3, JGB, 50_000, "b")])
    assert out.reserve_breaches == [(JGB, 100_050_000, 100_000_000)]
    out = batch(engine, PAYING, jst("2026-09-10", 12), [attest(4, 100_050_000)])
    assert out.reserve_breaches == []
    # An attestation applied once; one keyed by anything but its ISIN is refused.
    out = batch(engine, PAYING, jst("2026-09-10", 13), [attest(4, 1)])
    assert out.rejected == [("reserves", "duplicate")] and engine.reserves[JGB] == 100_050_000
    bad = ("reserves", b"other", attest(5, 1)[2], 0.0)
    assert batch(engine, PAYING, jst("2026-09-10", 14), [bad]).rejected == [
        ("reserves", "wrong_key")
    ]


def test_after_redemption_the_supply_is_zero_and_no_reserve_is_needed() -> None:
    short = instrument(maturity_date="2026-09-20")
    engine = Engine()
    batch(engine, PAYING, jst("2026-09-10"), [short, attest(1, 100_000_000),
                                              custody(2, JGB, 100_000_000, "a"),
                                              cash(3, "agent", 100_450_000)])  # fmt: skip
    batch(engine, PAYING, jst("2026-09-10", 11), [attest(4, 0), tick(jst("2026-09-24"))])
    out = batch(engine, PAYING, jst("2026-09-24", 1), [])
    assert engine.inflow[JGB] == 0 and out.reserve_breaches == []


# --- Found in review (each failed before its fix) -------------------------------------


def test_a_trade_settling_on_the_coupon_date_leaves_the_coupon_to_the_seller() -> None:
    # T+1 from Fri 18 Sep... settles Sun 20th on a 24/7 market: at the record time.
    engine = holders_of_60m_and_40m(450_000)
    topic, key, value, _ = a_sells_x_10m()
    sale = (topic, key, orjson.dumps({**orjson.loads(value), "settlement_date": "2026-09-20"}), 0.0)
    batch(engine, PAYING, jst("2026-09-18", 11), [cash(8, "x", 20_000_000), sale])
    out = batch(engine, PAYING, jst("2026-09-18", 12), [tick(jst("2026-09-20", 0))])
    assert [s.status for s in out.statuses] == ["settled"] and out.claims == []
    [(_, run)] = engine.runs.items()
    assert dict(run.holders) == {"a": 60_000_000, "b": 40_000_000}  # not x


def test_a_trade_settled_in_the_batch_that_passes_the_record_time_makes_no_claim() -> None:
    # The wall clock: x's cash arrives in the first batch after 00:00 JST on the 20th.
    wall = dataclasses.replace(PAYING, ticks=False, deadline_s=10 * 86_400)
    engine = holders_of_60m_and_40m(450_000)
    batch(engine, wall, jst("2026-09-18", 11), [a_sells_x_10m()])
    out = batch(engine, wall, jst("2026-09-20", 0) + 5, [cash(8, "x", 20_000_000)])
    assert [s.status for s in out.statuses] == ["settled"] and out.claims == []
    [(_, run)] = engine.runs.items()
    assert dict(run.holders) == {"a": 50_000_000, "b": 40_000_000, "x": 10_000_000}


def test_an_attestation_id_cannot_use_up_a_coupon_runs_id() -> None:
    engine = holders_of_60m_and_40m(450_000)
    sneaky = ("reserves", JGB.encode(), orjson.dumps(
        {"attestation_id": "coupon:JP1103771Q62:2026-09-20", "isin": JGB,
         "face": 100_000_000, "as_of": "2026-09-10T00:00:00Z"}), 0.0)  # fmt: skip
    batch(engine, PAYING, jst("2026-09-10", 11), [sneaky])
    out = batch(engine, PAYING, jst("2026-09-10", 12), [tick(jst("2026-09-24", 0))])
    assert ("agent", "coupon:JP1103771Q62:2026-09-20", "-450000") in causes(out)
    assert holdings(engine, "JPYC") == {"a": 270_000, "b": 180_000}


def test_a_matured_bond_cannot_be_deposited_again() -> None:
    engine = Engine()
    batch(engine, PAYING, jst("2026-09-10"), [instrument(status="matured")])
    out = batch(engine, PAYING, jst("2026-09-10", 1), [custody(1, JGB, 50_000)])
    assert out.rejected == [("custody", "instrument_matured")]
