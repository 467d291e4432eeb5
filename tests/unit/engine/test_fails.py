"""The engine in the recycle mode (issue 21) on a T+1 market: a trade unsettled at its
settlement date's cut-off is failing, recycles, settles with its original amount when
the bonds arrive, or is cancelled after the last fail day; a trade stamped too far
ahead is refused. The clock is the batches' (as under ``KESSAI_CLOCK=ticks``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import CANCELLATIONS, PENALTIES, SETTLEMENTS, decode
from streams.engine.core import Engine, Rules
from streams.ledger import domain
from streams.settlement.fails import FailRules, PenaltyRules
from tests.unit.engine.test_bonds import JGB, T1, batch, custody, instrument, jst, settlements
from tests.unit.engine.test_bonds import trade as bond_trade
from tests.unit.engine.test_core import Input, cash

RECYCLE = dataclasses.replace(
    T1,
    fails=FailRules(
        cutoff_s=14 * 3600.0, max_days=3, business_days=True, penalties=PenaltyRules("csdr")
    ),
    ahead_s=300.0,
    any_fit=True,
)


#: (day, side, amount) of each penalty written, by the last call of :func:`statuses`.
PENALTIES_WRITTEN: list[tuple[str, str, str]] = []


def statuses(engine: Engine, at: float, *records: object) -> list[tuple[str, str | None]]:
    out = batch(engine, RECYCLE, at, list(records))  # type: ignore[arg-type]
    PENALTIES_WRITTEN.clear()
    for topic, _, value in out.records:
        if topic in (SETTLEMENTS, PENALTIES):
            decode(topic, value)  # every record is valid
        if topic == PENALTIES:
            p = orjson.loads(value)
            PENALTIES_WRITTEN.append((p["day"], p["side"], p["amount"]))
    return [(r["status"], r["reason"]) for r in settlements(out)]


def balances(engine: Engine, account: str) -> dict[str, list[int]]:
    return domain.AccountState.from_bytes(engine.accounts[account]).balances


def opened(*, buyer_funded: bool) -> Engine:
    """Trade t3 on Tue 4 Nov 2025 (T+1: Wed 5 Nov), the seller without the bonds."""
    engine = Engine()
    funding = [cash(2, "b", 200_000_000)] if buyer_funded else []
    day = jst("2025-11-04")
    first = statuses(engine, day, instrument(), *funding, bond_trade(3, day))
    assert first == [("pending", "awaiting_settlement_date")]
    assert statuses(engine, jst("2025-11-05", 0)) == [("pending", "insufficient_securities")]
    return engine


def test_a_fail_recycles_for_days_and_settles_its_original_amount_when_the_bonds_come() -> None:
    engine = opened(buyer_funded=True)
    assert statuses(engine, jst("2025-11-05", 14) - 1) == []
    assert PENALTIES_WRITTEN == []  # nothing before the cut-off
    assert statuses(engine, jst("2025-11-05", 14)) == [("failing", "insufficient_securities")]
    # CSDR, a lack of securities: 98,878,424 x 0.10 bp = ¥988 a day, the seller's.
    assert PENALTIES_WRITTEN == [("2025-11-05", "seller", "988")]
    # Thu 6 Nov: a second fail day, the same reason, no new status; its penalty.
    assert statuses(engine, jst("2025-11-06", 14)) == []
    assert PENALTIES_WRITTEN == [("2025-11-06", "seller", "988")]
    assert engine.open["t3"].fail_days == 2
    out = batch(engine, RECYCLE, jst("2025-11-07", 9), [custody(4, JGB, 100_000_000)])
    [settled] = settlements(out)
    assert (settled["status"], settled["cash_amount"], settled["accrued"]) == (
        "settled",
        "98878424",
        "113424",
    )  # accrued to 5 Nov, the settlement date, not recomputed to 7 Nov
    assert balances(engine, "b")[JGB] == [100_000_000, 0]
    # Settled: Fri 7 Nov's cut-off costs nothing.
    assert statuses(engine, jst("2025-11-07", 14)) == [] and PENALTIES_WRITTEN == []


def test_both_short_names_both_and_the_last_fail_day_cancels_and_gives_back() -> None:
    engine = opened(buyer_funded=False)
    assert statuses(engine, jst("2025-11-05", 14)) == [
        ("failing", "insufficient_securities_and_cash")
    ]
    # Each failing party pays its own: the buyer 98,878,424 x 0.75 % / 365 = ¥2,031.
    assert PENALTIES_WRITTEN == [("2025-11-05", "seller", "988"), ("2025-11-05", "buyer", "2031")]
    # The buyer's cash comes; Thu 6 Nov's cut-off says only the bonds are short.
    statuses(engine, jst("2025-11-06", 9), cash(5, "b", 200_000_000))
    assert statuses(engine, jst("2025-11-06", 14)) == [("failing", "insufficient_securities")]
    assert statuses(engine, jst("2025-11-07", 14)) == []
    # Some bonds, not enough: the queued lock keeps waiting, nothing is taken.
    statuses(engine, jst("2025-11-07", 15), custody(6, JGB, 50_000_000))
    assert balances(engine, "s")[JGB] == [50_000_000, 0]
    # Mon 10 Nov, three business days after 5 Nov: cancelled, nothing left locked.
    assert statuses(engine, jst("2025-11-10", 14)) == [("cancelled", "max_fail_days")]
    assert PENALTIES_WRITTEN == []  # cancelled: no penalty for its last day
    assert not engine.open
    seller = domain.AccountState.from_bytes(engine.accounts["s"])
    assert not seller.locks and not seller.waiting
    assert balances(engine, "b")["JPYC"] == [200_000_000, 0]


def test_an_engine_stopped_for_days_counts_each_fail_day_it_missed() -> None:
    engine = opened(buyer_funded=True)
    # Back on Wed 12 Nov: failing, then cancelled, in the one batch.
    assert statuses(engine, jst("2025-11-12", 9)) == [
        ("failing", "insufficient_securities"),
        ("cancelled", "max_fail_days"),
    ]


def test_a_large_fail_does_not_hold_back_a_small_sale_the_seller_can_deliver() -> None:
    # The domain review's head-of-line case: the seller holds ¥60m, a ¥100m sale waits;
    # a later ¥50m sale to another buyer settles at once (strict FIFO held it too).
    engine = opened(buyer_funded=True)
    statuses(engine, jst("2025-11-05", 9), custody(4, JGB, 60_000_000))
    second = bond_trade(
        5, jst("2025-11-05", 9), quantity=50_000_000, buyer="c", settlement_date="2025-11-05"
    )
    out = batch(engine, RECYCLE, jst("2025-11-05", 9), [cash(6, "c", 60_000_000), second])
    assert [(r["trade_id"], r["status"]) for r in settlements(out)] == [("t5", "settled")]
    assert balances(engine, "s")[JGB] == [10_000_000, 0]
    # Under strict FIFO the second sale waits behind the first.
    fifo = dataclasses.replace(RECYCLE, any_fit=False)
    engine = opened(buyer_funded=True)
    batch(engine, fifo, jst("2025-11-05", 9), [custody(4, JGB, 60_000_000)])
    out = batch(engine, fifo, jst("2025-11-05", 9), [cash(6, "c", 60_000_000), second])
    assert [(r["status"], r["reason"]) for r in settlements(out)] == [
        ("pending", "insufficient_securities")
    ]


def test_a_trade_stamped_more_than_the_allowance_ahead_is_refused() -> None:
    engine = Engine()
    now = jst("2025-11-04")
    out = batch(engine, RECYCLE, now, [instrument(), bond_trade(3, now + 301)])
    assert out.rejected == [("trades", "invalid_trade_time")]
    assert not engine.open
    out = batch(engine, RECYCLE, now + 1, [bond_trade(4, now + 300)])
    assert out.rejected == [] and out.received == 1


def test_the_rules_of_the_mode_are_in_the_manifest() -> None:
    assert Rules.from_json(RECYCLE.to_json()) == RECYCLE
    old = {k: v for k, v in T1.to_json().items() if k not in ("fails", "ahead_s")}
    assert Rules.from_json(old) == T1  # a batch written before the mode: atomic


def test_a_partial_delivery_settles_the_part_then_the_rest_and_the_parts_sum_exactly() -> None:
    # The domain review's example: ¥100m at 98.765 for 5 Nov 2025, the seller holding
    # ¥60m at the cut-off, partial settlement allowed.
    engine = Engine()
    day = jst("2025-11-04")
    statuses(engine, day, instrument(), cash(2, "b", 200_000_000),
             bond_trade(3, day, partial="allowed"), custody(4, JGB, 60_000_000))  # fmt: skip
    assert statuses(engine, jst("2025-11-05", 0)) == [("pending", "insufficient_securities")]
    out = batch(engine, RECYCLE, jst("2025-11-05", 14), [])
    [part, failing] = settlements(out)
    assert (part["status"], part["part"], part["part_quantity"]) == (
        "partially_settled",
        1,
        60_000_000,
    )
    # 60m x 98.765 / 100 = 59,259,000; 0.1134246 per 100 x 60m = 68,054 (truncated).
    assert (part["part_principal"], part["part_accrued"], part["part_cash_amount"]) == (
        "59259000",
        "68054",
        "59327054",
    )
    assert (part["quantity"], part["cash_amount"]) == (100_000_000, "98878424")  # the trade
    assert (failing["status"], failing["reason"]) == ("failing", "insufficient_securities")
    # The day's penalty is on what failed: the rest, 39,551,370 x 0.10 bp = ¥395.
    [penalty] = [orjson.loads(v) for t, _, v in out.records if t == PENALTIES]
    assert (penalty["base"], penalty["amount"]) == ("39551370", "395")
    assert balances(engine, "b")[JGB] == [60_000_000, 0]
    assert balances(engine, "s")["JPYC"] == [59_327_054, 0]
    # The rest comes: it settles at once, taking what remains (not recomputed for 40m,
    # which would give 39,506,000 + 45,369 = 39,551,369).
    out = batch(engine, RECYCLE, jst("2025-11-06", 9), [custody(5, JGB, 40_000_000)])
    [rest] = settlements(out)
    assert (rest["status"], rest["part"], rest["part_quantity"]) == ("settled", 2, 40_000_000)
    assert (rest["part_principal"], rest["part_accrued"], rest["part_cash_amount"]) == (
        "39506000",
        "45370",
        "39551370",
    )
    assert 59_327_054 + 39_551_370 == 98_878_424
    assert balances(engine, "b") == {"JPYC": [200_000_000 - 98_878_424, 0], JGB: [100_000_000, 0]}
    assert balances(engine, "s") == {JGB: [0, 0], "JPYC": [98_878_424, 0]}
    assert not engine.open


def test_without_partial_allowed_nothing_moves_until_all_can() -> None:
    engine = Engine()
    day = jst("2025-11-04")
    statuses(engine, day, instrument(), cash(2, "b", 200_000_000), bond_trade(3, day),
             custody(4, JGB, 60_000_000))  # fmt: skip
    statuses(engine, jst("2025-11-05", 0))
    assert statuses(engine, jst("2025-11-05", 14)) == [("failing", "insufficient_securities")]
    assert balances(engine, "s")[JGB] == [60_000_000, 0]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from([0, 50_000, 1_000_000, 10_000_000, 25_050_000, 60_000_000]), max_size=6
    ),
    st.sampled_from([98_878_424, 60_000_000, 200_000_000]),
)
def test_any_run_of_partial_deliveries_sums_to_the_trade_and_conserves(
    deliveries: list[int], buyer_cash: int
) -> None:
    """Deliveries come one fail day at a time; whatever they are, the parts never
    exceed the trade, their sum is the trade when it settles, nothing is created or
    lost, and each fail day's penalty is on what is still to settle."""
    engine = Engine()
    day = jst("2025-11-04")
    batch(engine, RECYCLE, day, [instrument(), cash(2, "b", buyer_cash),
                                 bond_trade(3, day, partial="allowed")])  # fmt: skip
    batch(engine, RECYCLE, jst("2025-11-05", 0), [])
    records: list[dict[str, Any]] = []
    sent = 0
    for n, face in enumerate(deliveries):
        assert RECYCLE.fails is not None
        cutoff = RECYCLE.fails.cutoff(engine.open["t3"].trade, n) if "t3" in engine.open else 0
        more = [custody(10 + n, JGB, face)] if face else []
        for at, inputs in ((cutoff - 3600, more), (cutoff, [])):
            if "t3" not in engine.open:
                break
            out = batch(engine, RECYCLE, at, inputs)
            sent += sum(face for _ in inputs)
            records += [orjson.loads(v) for t, _, v in out.records if t in (SETTLEMENTS, PENALTIES)]
    parts = [r for r in records if "part" in r and "penalty_id" not in r]
    assert sum(p["part_quantity"] for p in parts) <= 100_000_000
    paid = sum(int(p["part_cash_amount"]) for p in parts)
    ended = [r["status"] for r in records if r.get("status") in ("settled", "cancelled")]
    if parts and ended == ["settled"]:
        assert (sum(p["part_quantity"] for p in parts), paid) == (100_000_000, 98_878_424)
    held = {a: balances(engine, a) for a in ("b", "s")}
    assert (
        held["b"].get(JGB, [0, 0])[0]
        + held["s"].get(JGB, [0, 0])[0]
        + sum(held[a].get(JGB, [0, 0])[1] for a in ("b", "s"))
        == sent
    )
    assert sum(sum(held[a].get("JPYC", [0, 0])) for a in ("b", "s")) == buyer_cash
    bases = [int(r["base"]) for r in records if "penalty_id" in r]
    assert bases == sorted(bases, reverse=True)  # what fails only shrinks


def test_the_metrics_count_fails_apart_and_leave_them_out_of_the_oldest_pending() -> None:
    from types import SimpleNamespace

    from streams.engine.agent import state_sums
    from streams.runtime.livesums import LiveSums

    engine = opened(buyer_funded=True)
    service: Any = SimpleNamespace(leading=True, sums=LiveSums(), engine=engine)
    sums = state_sums(service)
    assert sums is not None
    assert sums.open_trades == {("bonds", "insufficient_securities"): 1}
    assert sums.oldest_arrived_s == jst("2025-11-05", 0)  # since its date began
    statuses(engine, jst("2025-11-05", 14))
    sums = state_sums(service)
    assert sums is not None
    assert sums.open_trades == {("failing", "insufficient_securities"): 1}
    assert sums.oldest_arrived_s is None  # a fail has its own alert


def cancel(trade_id: str, venue: str = "v", key: str | None = None) -> Input:
    value = orjson.dumps({"trade_id": trade_id, "venue": venue})
    return CANCELLATIONS, (key or trade_id).encode(), value, 0.0


def test_the_venue_cancels_a_failing_trade_for_both_parties_and_it_gives_everything_back() -> None:
    engine = opened(buyer_funded=False)
    statuses(engine, jst("2025-11-05", 14))
    statuses(engine, jst("2025-11-05", 15), custody(4, JGB, 50_000_000))
    refused = [
        (cancel("t3", venue="w"), "not_authorized"),  # another venue's
        (cancel("t3", key="t9"), "wrong_key"),
        (cancel("t9"), "trade_not_open"),  # no such trade
    ]
    for record, reason in refused:
        out = batch(engine, RECYCLE, jst("2025-11-05", 16), [record])
        assert out.rejected == [("cancellations", reason)] and not settlements(out)
    assert statuses(engine, jst("2025-11-05", 16), cancel("t3")) == [
        ("cancelled", "bilateral_cancel")
    ]
    seller = domain.AccountState.from_bytes(engine.accounts["s"])
    assert seller.balances[JGB] == [50_000_000, 0] and not seller.locks and not seller.waiting
    # Again: it is no longer open; nothing changes.
    out = batch(engine, RECYCLE, jst("2025-11-05", 17), [cancel("t3")])
    assert out.rejected == [("cancellations", "trade_not_open")] and not settlements(out)
    assert statuses(engine, jst("2025-11-06", 14)) == []  # no fail day, no penalty after


def test_a_trade_waiting_for_its_date_or_settled_in_part_can_be_cancelled_in_any_mode() -> None:
    engine = Engine()
    day = jst("2025-11-04")
    atomic = dataclasses.replace(RECYCLE, fails=None)
    out = batch(engine, atomic, day, [instrument(), bond_trade(3, day), cancel("t3")])
    assert [(r["status"], r["reason"]) for r in settlements(out)] == [
        ("pending", "awaiting_settlement_date"),
        ("cancelled", "bilateral_cancel"),
    ]
    engine = Engine()
    statuses(engine, day, instrument(), cash(2, "b", 200_000_000),
             bond_trade(3, day, partial="allowed"), custody(4, JGB, 60_000_000))  # fmt: skip
    statuses(engine, jst("2025-11-05", 0))
    statuses(engine, jst("2025-11-05", 14))  # part 1 settles: 60m
    assert statuses(engine, jst("2025-11-05", 15), cancel("t3")) == [
        ("cancelled", "bilateral_cancel")
    ]
    assert balances(engine, "b")[JGB] == [60_000_000, 0]  # the part stays settled
    assert balances(engine, "b")["JPYC"] == [200_000_000 - 59_327_054, 0]
