"""The engine over random input streams cut into random batches: money is conserved,
every accepted trade ends exactly once (settled or failed), no lock outlives its trade,
ids are used once, and an engine restored from its changelog rows at any batch
boundary writes exactly what an engine that never stopped writes."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    CANCELLATIONS,
    CUSTODY,
    LEDGER_EVENTS,
    PAYMENTS,
    PENALTIES,
    REJECTIONS,
    SETTLEMENTS,
    TRADES,
)
from streams.engine.core import Batch, Engine, Outputs, Rules, trade_time_of
from streams.ledger import domain
from streams.settlement.fails import DAY_S, FailRules, PenaltyRules
from streams.topics import ENGINE_CHANGELOGS

BOND = "JP1103551Q43"
ACCOUNTS = ("a", "b", "c")
RULES = Rules(tokens={"JPYC": 0, "USDC": 6}, deadline_s=30.0)
#: The same, with a window (ADR 0033) that the runs' clocks cross: batches are 10 s apart.
WINDOWED = Rules(tokens={"JPYC": 0, "USDC": 6}, deadline_s=30.0, window_s=45.0)
#: The recycle mode (issue 21): a trade still locking at its deadline is failing, one
#: fail day a day, cancelled at the second, with any-fit recycling; its runs' batches
#: are 10 hours apart.
RECYCLE = Rules(
    tokens={"JPYC": 0, "USDC": 6},
    deadline_s=30.0,
    fails=FailRules(
        cutoff_s=DAY_S, max_days=2, business_days=False, penalties=PenaltyRules("csdr")
    ),
    any_fit=True,
)
ENDS = ("settled", "failed", "cancelled")


def step_of(rules: Rules) -> float:
    """The clock's step between a run's batches: 10 s, 10 hours in the recycle mode
    (so that a run crosses several fail days)."""
    return 10.0 if rules.fails is None else 36_000.0


T0 = 1_800_000_000.0

#: An input: (topic, key, value, broker time offset in seconds).
Input = tuple[str, bytes, bytes, float]


def trade(
    n: int,
    buyer: str,
    seller: str,
    quantity: int,
    price: str,
    age_s: int = 0,
    partial: bool = False,
) -> Input:
    """Trade ``n``, its trade time ``age_s`` before the first batch's clock; ``partial``:
    it may settle in parts."""
    value: dict[str, Any] = {
        "trade_id": f"t{n}",
        "venue": "v",
        "isin": BOND,
        "buyer": buyer,
        "seller": seller,
        "quantity": quantity,
        "price": price,
        "currency": "JPYC",
        "accrued_interest": "0",
        "trade_time": datetime.fromtimestamp(T0 - age_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if partial:
        value["partial"] = "allowed"
    return TRADES, f"t{n}".encode(), orjson.dumps(value), 0.0


def cash(n: int, account: str, amount: int, kind: str = "deposit") -> Input:
    value = {"payment_id": f"p{n}", "account": account, "token": "JPYC",
             "amount": str(amount), "kind": kind}  # fmt: skip
    return PAYMENTS, account.encode(), orjson.dumps(value), 0.0


def bonds(n: int, account: str, quantity: int) -> Input:
    value = {"movement_id": f"m{n}", "account": account, "isin": BOND,
             "quantity": quantity, "kind": "deposit"}  # fmt: skip
    return CUSTODY, account.encode(), orjson.dumps(value), 0.0


@st.composite
def inputs(draw: st.DrawFn) -> list[Input]:
    out: list[Input] = []
    for n in range(draw(st.integers(1, 25))):
        kind = draw(
            st.sampled_from(["trade", "trade", "cash", "bonds", "withdraw", "again", "cancel"])
        )
        buyer, seller = draw(st.permutations(ACCOUNTS))[:2]
        if kind == "trade":
            qty = 50_000 * draw(st.integers(1, 4))
            price = draw(st.sampled_from(["99.5", "100", "101.25"]))
            age = draw(st.sampled_from([0, 0, 10, 40, 60]))
            out.append(trade(n, buyer, seller, qty, price, age, draw(st.booleans())))
        elif kind == "cash":
            out.append(cash(n, buyer, draw(st.integers(1, 400_000))))
        elif kind == "withdraw":
            out.append(cash(n, buyer, draw(st.integers(1, 200_000)), "withdrawal"))
        elif kind == "bonds":
            out.append(bonds(n, seller, 50_000 * draw(st.integers(1, 4))))
        elif kind == "cancel":
            # The venue cancels a trade (sent before or after it, or none such).
            value = orjson.dumps({"trade_id": f"t{draw(st.integers(0, 25))}", "venue": "v"})
            out.append((CANCELLATIONS, orjson.loads(value)["trade_id"].encode(), value, 0.0))
        elif out:
            out.append(draw(st.sampled_from(out)))  # the same record again
    return out


def run(
    records: list[Input],
    cuts: list[int],
    *,
    restore_at: int | None = None,
    rules: Rules = RULES,
    t0: float = T0,
) -> tuple[Engine, list[Outputs]]:
    """Apply ``records`` in batches ending at ``cuts`` (indices), the clock moving
    :func:`step_of` a batch; with ``restore_at``, a fresh engine restored from the rows
    committed so far takes over before that batch."""
    engine, outs = Engine(), []
    rows: list[tuple[str, bytes, bytes | None]] = []
    bounds = [0, *sorted({min(c, len(records)) for c in cuts}), len(records)]
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        if i == restore_at:
            engine = Engine()
            for name, key, value in rows:
                engine.restore_row(name, key.decode(), value)
            engine.restored()
        now = t0 + step_of(rules) * i
        batch = Batch(engine, rules, now)
        for offset in range(start, end):
            topic, key, value, _ = records[offset]
            batch.record(topic, 0, offset, key, value, now)
        batch.expire()
        out = batch.finish()
        rows.extend(out.changelog)
        outs.append(out)
    return engine, outs


def totals(engine: Engine) -> Counter[str]:
    out: Counter[str] = Counter()
    for raw in engine.accounts.values():
        for asset, (available, locked) in domain.AccountState.from_bytes(raw).balances.items():
            out[asset] += available + locked
    return out


def _statuses(outs: list[Outputs]) -> list[tuple[str, str]]:
    return [(s.trade.trade_id, s.status) for out in outs for s in out.statuses]


cases = st.tuples(inputs(), st.lists(st.integers(0, 25), max_size=6))


@settings(max_examples=300, deadline=None)
@given(cases, st.sampled_from([RULES, RECYCLE]))
def test_money_is_conserved_and_every_accepted_trade_ends_once(case: Any, rules: Rules) -> None:
    records, cuts = case
    engine, outs = run(records, cuts, rules=rules)
    # Conservation: balances are exactly deposits minus withdrawals applied.
    for asset in set(totals(engine)) | set(engine.inflow):
        assert totals(engine)[asset] == engine.inflow.get(asset, 0), asset
    # Each trade: at most one terminal status, and none after it.
    ended: dict[str, str] = {}
    for trade_id, status in _statuses(outs):
        assert trade_id not in ended, (trade_id, status, ended[trade_id])
        if status in ENDS:
            ended[trade_id] = status
        # Each mode has its words: failing and cancelled are the recycle mode's.
        recycled = ("failing", "partially_settled", "cancelled")
        # (A cancellation is cancelled in either mode.)
        assert status in (recycled if rules.fails else ("failed", "cancelled")) or status in (
            "pending",
            "settled",
        )
    received = sum(out.received for out in outs)
    # Past every deadline (every fail day), nothing stays open and nothing stays locked.
    last = T0 + step_of(rules) * (len(cuts) + 2) + rules.deadline_s
    late = Batch(engine, rules, last + (0 if rules.fails is None else 3 * DAY_S))
    late.expire()
    outs.append(late.finish())
    ended = {t: s for t, s in _statuses(outs) if s in ENDS}
    assert len(ended) == received and not engine.open
    _penalties_only_while_failing(outs, rules)
    _parts_sum_to_the_trade(outs)
    for raw in engine.accounts.values():
        state = domain.AccountState.from_bytes(raw)
        assert not state.locks and not state.waiting
        assert all(locked == 0 and available >= 0 for available, locked in state.balances.values())


def _parts_sum_to_the_trade(outs: list[Outputs]) -> None:
    """A trade settled in parts: its parts' face and cash sum to the trade's exactly,
    numbered 1, 2, ..., the last one ``settled``."""
    parts: dict[str, list[dict[str, Any]]] = {}
    for out in outs:
        for topic, _, value in out.records:
            record = orjson.loads(value)
            if topic == SETTLEMENTS and "part" in record:
                parts.setdefault(record["trade_id"], []).append(record)
    for trade_id, mine in parts.items():
        assert [p["part"] for p in mine] == list(range(1, len(mine) + 1)), mine
        if mine[-1]["status"] != "settled":
            continue  # cancelled after a part: the rest never moved
        assert sum(p["part_quantity"] for p in mine) == mine[0]["quantity"], trade_id
        assert sum(int(p["part_cash_amount"]) for p in mine) == int(mine[0]["cash_amount"])


def _penalties_only_while_failing(outs: list[Outputs], rules: Rules) -> None:
    """A penalty comes only while its trade is failing: never before its cut-off's
    ``failing``, never after it settled or was cancelled; one per party per fail day,
    at most ``max_days`` of them."""
    last: dict[str, str] = {}
    days: dict[str, int] = {}
    seen: set[tuple[str, int, str]] = set()
    for out in outs:
        for topic, _, value in out.records:
            record = orjson.loads(value)
            if topic == SETTLEMENTS:
                last[record["trade_id"]] = record["status"]
            elif topic == PENALTIES:
                assert rules.fails is not None
                trade_id = record["trade_id"]
                assert last.get(trade_id) == "failing", (record, last.get(trade_id))
                day = record["fail_day"]
                assert day >= days.get(trade_id, 1), record  # fail days only go forward
                days[trade_id] = day
                assert (trade_id, day, record["side"]) not in seen, record
                seen.add((trade_id, day, record["side"]))
                assert day <= rules.fails.max_days
                assert int(record["amount"]) >= 0


@settings(max_examples=300, deadline=None)
@given(cases, st.integers(0, 7), st.sampled_from([RULES, WINDOWED, RECYCLE]))
def test_an_engine_restored_from_its_rows_writes_what_one_that_never_stopped_writes(
    case: Any, restore_at: int, rules: Rules
) -> None:
    records, cuts = case
    whole_engine, whole = run(records, cuts, rules=rules)
    again_engine, again = run(records, cuts, restore_at=restore_at, rules=rules)
    assert [o.records for o in again] == [o.records for o in whole]
    assert [o.archive for o in again] == [o.archive for o in whole]
    assert again_engine.accounts == whole_engine.accounts
    assert again_engine.finished == whole_engine.finished
    assert again_engine.applied == whole_engine.applied
    assert again_engine.inflow == whole_engine.inflow
    if rules.window_s is not None:
        assert sorted(again_engine.leaving) == sorted(whole_engine.leaving)


@settings(max_examples=300, deadline=None)
@given(cases)
def test_under_a_window_old_ids_leave_for_the_archive_and_no_trade_settles_twice(
    case: Any,
) -> None:
    records, cuts = case
    engine, outs = run(records, cuts, rules=WINDOWED)
    # Each trade record: its first arrival settles or not; every repeat is refused,
    # as a duplicate while its id is held, as stale once it may have left.
    ended: dict[str, str] = {}
    for trade_id, status in _statuses(outs):
        assert trade_id not in ended, (trade_id, status)
        if status in ("settled", "failed"):
            ended[trade_id] = status
    sent = Counter(value for topic, _, value, _ in records if topic == TRADES)
    refused = Counter(reason for out in outs for topic, reason in out.rejected if topic == TRADES)
    first_times = len(sent)
    accepted = sum(out.received for out in outs)
    assert accepted + refused["stale_trade"] + refused["duplicate"] >= sum(sent.values())
    assert accepted <= first_times
    # What left the window is archived once, with the row it had, and a tombstone.
    archived = [(key.decode(), row) for out in outs for key, row in out.archive]
    assert len({k for k, _ in archived}) == len(archived)
    tombstones = {
        key.decode() for out in outs for name, key, value in out.changelog
        if name == "engine-trades" and value is None
    }  # fmt: skip
    assert tombstones == {k for k, _ in archived}
    horizon = T0 + 10 * (len(outs) - 1) - (WINDOWED.window_s or 0)
    for trade_id, row in engine.finished.items():
        assert trade_time_of(row) >= horizon, (trade_id, row)
    for trade_id, row in archived:
        assert trade_id not in engine.finished and trade_time_of(row) < T0 + 10 * len(outs)


@settings(max_examples=200, deadline=None)
@given(cases)
def test_each_id_is_used_once_a_repeat_is_a_duplicate_and_moves_nothing(case: Any) -> None:
    records, cuts = case
    _, outs = run(records, cuts)
    seen: set[bytes] = set()
    for out in outs:
        for topic, _, value in out.records:
            if topic == REJECTIONS:
                continue
            if topic == SETTLEMENTS:
                obj = orjson.loads(value)
                seen.add(f"{obj['trade_id']}:{obj['status']}".encode())
    # Every record sent twice or more was rejected as a duplicate after its first time.
    # (A cancellation sent again finds its trade no longer open: trade_not_open.)
    sent = Counter((t, value) for t, _, value, _ in records if t != CANCELLATIONS)
    duplicates = sum(1 for out in outs for topic, reason in out.rejected if reason == "duplicate")
    assert duplicates == sum(n - 1 for n in sent.values())


def test_a_pending_trade_fails_at_its_deadline_and_gives_back_its_lock() -> None:
    records = [bonds(1, "s", 50_000), trade(2, "b", "s", 50_000, "100")]
    engine, outs = run(records, [])
    assert _statuses(outs) == [("t2", "pending")]
    assert engine.deadlines == [(T0 + RULES.deadline_s, "t2")]
    late = Batch(engine, RULES, T0 + RULES.deadline_s)
    late.expire()
    out = late.finish()
    assert [(s.status, s.reason) for s in out.statuses] == [("failed", "insufficient_cash")]
    seller = domain.AccountState.from_bytes(engine.accounts["s"])
    assert seller.balances[BOND] == [50_000, 0] and not seller.locks
    assert [t for t, _, _ in out.records] == [SETTLEMENTS, LEDGER_EVENTS]  # failed, then void
    assert {name for name, _, _ in out.changelog} <= set(ENGINE_CHANGELOGS)
