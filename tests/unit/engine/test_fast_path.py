"""The engine's fast path settles a trade exactly as the saga's path would: the same
records, byte for byte, the same rows and the same state, over random account states;
and it declines whenever the saga's path could go another way."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine.core import Batch, Engine, Outputs, Rules
from streams.ledger import domain
from streams.settlement.messages import Trade

BOND = "JP1103551Q43"
RULES = Rules(tokens={"JPYC": 0, "USDC": 6}, deadline_s=60.0)
NOW = 1_800_000_000.0

amounts = st.integers(min_value=0, max_value=10**9)


@st.composite
def account_states(draw: st.DrawFn, assets: tuple[str, ...]) -> domain.AccountState:
    balances: dict[str, list[int]] = {}
    locks: dict[str, list[object]] = {}
    for asset in assets:
        if draw(st.booleans()):
            held = draw(st.lists(st.integers(1, 10**6), max_size=3))
            for i, units in enumerate(held):
                locks[f"old{len(locks)}-{i}/bonds"] = [asset, units]
            balances[asset] = [draw(amounts), sum(held)]
    waiting = []
    if draw(st.integers(0, 4)) == 0:
        waiting.append(["w1/cash", draw(st.sampled_from(assets)), draw(st.integers(1, 10**9))])
    tip = draw(st.sampled_from(["", "ab" * 32]))
    return domain.AccountState(
        seq=draw(st.integers(0, 50)), balances=balances, locks=locks, waiting=waiting, hash=tip
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[Engine, Trade]:
    currency = draw(st.sampled_from(["JPYC", "USDC"]))
    engine = Engine()
    for account in ("buyer", "seller"):
        if draw(st.integers(0, 5)):
            state = draw(account_states((BOND, "JPYC", "USDC")))
            engine.accounts[account] = state.to_bytes()
    trade = Trade(
        "t1",
        BOND,
        "buyer",
        "seller",
        draw(st.integers(1, 10**9)),
        currency,
        draw(st.integers(1, 10**9)),
        NOW + 60,
        trade_time_s=NOW - 1,
        arrived_s=NOW,
        signed=draw(st.sampled_from(["", '{"signed":1}'])),
    )
    return engine, trade


def _run(engine: Engine, trade: Trade, *, fast: bool) -> tuple[Engine, Outputs]:
    mine = copy.deepcopy(engine)
    batch = Batch(mine, RULES, NOW, fast=fast)
    batch.start(trade)
    batch.expire()
    return mine, batch.finish()


def _moved(out: Outputs) -> dict[str, list[int]]:
    return {asset: pair for asset, pair in out.balances.items() if pair != [0, 0]}


@settings(max_examples=400, deadline=None)
@given(cases())
def test_the_fast_path_writes_what_the_sagas_path_writes(case: tuple[Engine, Trade]) -> None:
    engine, trade = case
    fast_engine, fast = _run(engine, trade, fast=True)
    slow_engine, slow = _run(engine, trade, fast=False)
    assert fast.records == slow.records
    assert sorted(fast.changelog) == sorted(slow.changelog)
    assert [s.record for s in fast.statuses] == [s.record for s in slow.statuses]
    assert _moved(fast) == _moved(slow)
    assert fast.locks_delta == slow.locks_delta
    assert fast_engine.accounts == slow_engine.accounts
    assert fast_engine.finished == slow_engine.finished
    assert fast_engine.open.keys() == slow_engine.open.keys()


def test_a_funded_trade_takes_the_fast_path_and_settles() -> None:
    engine = Engine()
    engine.accounts["seller"] = domain.AccountState(balances={BOND: [100, 0]}).to_bytes()
    engine.accounts["buyer"] = domain.AccountState(balances={"JPYC": [500, 0]}).to_bytes()
    trade = Trade("t1", BOND, "buyer", "seller", 100, "JPYC", 500, NOW + 60)
    batch = Batch(engine, RULES, NOW)
    batch.start(trade)
    out = batch.finish()
    assert [s.status for s in out.statuses] == ["settled"]
    assert len(out.records) == 7  # six postings, one settlement
    assert not engine.open and engine.deadlines == []
    assert domain.AccountState.from_bytes(engine.accounts["buyer"]).balances == {
        "JPYC": [0, 0],
        BOND: [100, 0],
    }
