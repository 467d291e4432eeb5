"""Bridge precision (issue 21; the domain review's P5): JPYC has 18 decimals on-chain
and 0 in the ledger. A deposit credits the whole ledger units and keeps the rest as
the bridge's dust, whose whole units go to ``bridge-dust:{token}``; a withdrawal moves
whole ledger units; payment ids are unique across accounts and tokens."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import LEDGER_EVENTS, PAYMENTS, REJECTIONS
from streams.config import Settings
from streams.engine.core import Engine, Outputs, Rules
from streams.errors import ConfigError
from streams.ledger import domain
from tests.unit.engine.test_bonds import batch
from tests.unit.engine.test_core import Input

TOKENS = {"JPYC": 0, "USDC": 6}
BRIDGED = Rules(tokens=TOKENS, deadline_s=60.0, onchain={"JPYC": 18, "USDC": 6})
E18 = 10**18


def pay(n: int, account: str, amount: str, token: str = "JPYC", kind: str = "deposit") -> Input:
    value = {"payment_id": f"p{n}", "account": account, "token": token,
             "amount": amount, "kind": kind}  # fmt: skip
    return PAYMENTS, account.encode(), orjson.dumps(value), 0.0


def available(engine: Engine, account: str, token: str = "JPYC") -> int:
    state = domain.AccountState.from_bytes(engine.accounts.get(account))
    return state.balances.get(token, [0, 0])[0]


def rejected(out: Outputs) -> list[tuple[str, str]]:
    found = (orjson.loads(v) for t, _, v in out.records if t == REJECTIONS)
    return [(r["reason"], r["detail"]) for r in found]


def causes(out: Outputs) -> list[tuple[str, str, str]]:
    found = (orjson.loads(v) for t, _, v in out.records if t == LEDGER_EVENTS)
    return [(r["account"], r["delta_available"], r["cause"]) for r in found]


def test_1000_5_jpyc_on_chain_credits_1000_and_puts_0_5_in_dust() -> None:
    engine = Engine()
    out = batch(engine, BRIDGED, 1.0, [pay(1, "alice", "1000.5")])
    assert causes(out) == [("alice", "1000", "payment:p1")]
    assert available(engine, "alice") == 1_000
    assert engine.dust == {"JPYC": E18 // 2}
    assert engine.inflow == {"JPYC": 1_000}


def test_dust_that_makes_a_whole_yen_is_credited_to_the_dust_account() -> None:
    engine = Engine()
    batch(engine, BRIDGED, 1.0, [pay(1, "alice", "1000.5")])
    out = batch(engine, BRIDGED, 2.0, [pay(2, "bob", "2.75")])
    # 0.5 + 0.75 = 1.25: one yen to bridge-dust:JPYC, 0.25 left below the unit.
    assert causes(out) == [("bob", "2", "payment:p2"),
                           ("bridge-dust:JPYC", "1", "dust:payment:p2")]  # fmt: skip
    assert engine.dust == {"JPYC": E18 // 4}
    ledger_total = sum(available(engine, a) for a in ("alice", "bob", "bridge-dust:JPYC"))
    assert ledger_total * E18 + engine.dust["JPYC"] == 100_325 * E18 // 100  # 1,003.25
    assert engine.inflow == {"JPYC": 1_003}


def test_a_deposit_below_one_yen_is_dust_only_and_its_id_is_used() -> None:
    engine = Engine()
    out = batch(engine, BRIDGED, 1.0, [pay(1, "alice", "0.000000000000000001")])
    assert causes(out) == [] and rejected(out) == []
    assert engine.dust == {"JPYC": 1} and "payment:p1" in engine.applied
    out = batch(engine, BRIDGED, 2.0, [pay(1, "alice", "0.000000000000000001")])
    assert [r[0] for r in rejected(out)] == ["duplicate"]
    assert engine.dust == {"JPYC": 1}


def test_a_withdrawal_moves_whole_ledger_units_only() -> None:
    engine = Engine()
    batch(engine, BRIDGED, 1.0, [pay(1, "alice", "100")])
    before = dict(engine.accounts)
    out = batch(engine, BRIDGED, 2.0, [pay(2, "alice", "10.5", kind="withdrawal")])
    [(reason, detail)] = rejected(out)
    assert reason == "invalid_amount" and "a withdrawal moves whole ledger units" in detail
    assert engine.accounts == before
    out = batch(engine, BRIDGED, 3.0, [pay(3, "alice", "10", kind="withdrawal")])
    assert causes(out) == [("alice", "-10", "payment:p3")]


def test_a_token_as_fine_on_chain_as_in_the_ledger_refuses_finer() -> None:
    engine = Engine()
    out = batch(engine, BRIDGED, 1.0, [pay(1, "alice", "1.0000001", token="USDC"),
                                       pay(2, "alice", "1." + "0" * 18 + "1")])  # fmt: skip
    assert [r[0] for r in rejected(out)] == ["invalid_amount", "invalid_amount"]
    assert "more than 6 decimals" in rejected(out)[0][1]
    assert "more than 18 decimals (its on-chain precision)" in rejected(out)[1][1]
    assert not engine.dust and not engine.accounts


def test_a_payment_id_is_unique_across_accounts_and_tokens() -> None:
    engine = Engine()
    out = batch(engine, BRIDGED, 1.0, [pay(1, "alice", "100"), pay(1, "bob", "100"),
                                       pay(1, "alice", "5", token="USDC")])  # fmt: skip
    assert [r[0] for r in rejected(out)] == ["duplicate", "duplicate"]
    assert available(engine, "alice") == 100 and available(engine, "bob") == 0


def test_a_restored_engine_keeps_the_dust_and_old_rules_refuse_finer_deposits() -> None:
    engine = Engine()
    out = batch(engine, BRIDGED, 1.0, [pay(1, "alice", "1000.5")])
    restored = Engine()
    for table, key, value in out.changelog:
        restored.restore_row(table.removeprefix("kessai-"), key.decode(), value)
    assert restored.dust == engine.dust and restored.inflow == engine.inflow
    assert Rules.from_json(BRIDGED.to_json()) == BRIDGED
    old = Rules.from_json({k: v for k, v in BRIDGED.to_json().items() if k != "onchain"})
    assert old.onchain is None  # a batch written before: finer than the ledger, refused
    out = batch(Engine(), old, 1.0, [pay(1, "alice", "1000.5")])
    assert [r[0] for r in rejected(out)] == ["invalid_amount"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 10**21)), min_size=1, max_size=12))
def test_ledger_plus_dust_is_always_what_the_bridge_took_on_chain(
    deposits: list[tuple[int, int]],
) -> None:
    engine = Engine()
    for n, (who, wei) in enumerate(deposits):
        amount = format(Decimal(wei).scaleb(-18), "f")
        batch(engine, BRIDGED, float(n), [pay(n, f"acct-{who}", amount)])
    accounts = [f"acct-{i}" for i in range(4)] + ["bridge-dust:JPYC"]
    ledger = sum(available(engine, a) for a in accounts)
    assert ledger * E18 + engine.dust.get("JPYC", 0) == sum(w for _, w in deposits)
    assert 0 <= engine.dust.get("JPYC", 0) < E18
    assert engine.inflow.get("JPYC", 0) == ledger


@pytest.mark.parametrize(
    ("text", "ledger", "onchain"),
    [
        ("JPYC:0:18,USDC:6", {"JPYC": 0, "USDC": 6}, {"JPYC": 18, "USDC": 6}),
        ("JPYC:0,USDC:6", {"JPYC": 0, "USDC": 6}, {"JPYC": 0, "USDC": 6}),
    ],
)
def test_tokens_say_their_ledger_and_on_chain_decimals(
    text: str, ledger: dict[str, int], onchain: dict[str, int]
) -> None:
    settings_ = Settings.from_env({"KESSAI_TOKENS": text})
    assert (settings_.tokens, settings_.onchain) == (ledger, onchain)
    default = Settings.from_env({})
    assert (default.tokens, default.onchain) == (TOKENS, {"JPYC": 18, "USDC": 6})


@pytest.mark.parametrize("text", ["JPYC:18", "JPYC:0:19", "JPYC:6:2", "JPYC:x"])
def test_tokens_past_the_ledgers_64_bits_or_coarser_on_chain_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="LEDGER"):
        Settings.from_env({"KESSAI_TOKENS": text})


def test_the_rules_of_the_service_carry_the_on_chain_decimals() -> None:
    from streams.engine.service import rules_of

    rules = rules_of(dataclasses.replace(Settings(), onchain={"JPYC": 18, "USDC": 6}))
    assert rules.onchain == {"JPYC": 18, "USDC": 6}


def test_a_deposit_as_large_as_before_is_taken_at_on_chain_precision() -> None:
    """The move limit stays in ledger units (10**30): a deposit of 10**13 JPYC is 10**31
    on-chain units, and credits 10**13 (the bench's funding: the limit once counted
    the on-chain units and refused it)."""
    engine = Engine()
    out = batch(engine, BRIDGED, 1.0, [pay(1, "alice", str(10**13)), pay(2, "bob", "1" + "0" * 31)])
    assert available(engine, "alice") == 10**13
    [(reason, detail)] = rejected(out)
    assert reason == "invalid_amount" and f"more than {10**30} ledger units" in detail
