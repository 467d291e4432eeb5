"""The ledger's intake and handler on input that once stopped a worker."""

from __future__ import annotations

from typing import Any

import orjson

from schemas import BalanceChanged
from streams import wire
from streams.ledger import domain as core
from streams.ledger.handler import Ledger, handle_command
from streams.ledger.intake import intake_record as ledger_intake
from streams.ledger.messages import LockCmd, Move
from streams.money import BALANCE_UNITS_MAX

TOKENS = {"JPYC": 0, "USDC": 6}


def payment(amount: str, *, payment_id: str = "p-1", account: str = "a") -> bytes:
    return orjson.dumps({"payment_id": payment_id, "account": account, "token": "JPYC",
                         "amount": amount, "kind": "deposit"})  # fmt: skip


def new_ledger() -> Ledger:
    return Ledger({}, {}, {})


def apply(ledger: Ledger, move: Move) -> list[dict[str, object]]:
    out = handle_command(ledger, 0, move, lambda asset: TOKENS.get(asset, 0))
    assert out.rejection is None, out.rejection
    # Every record must be one the codec accepts: the agent validates it.
    for record in out.records:
        BalanceChanged.model_validate(record)
    return out.records


def test_a_huge_payment_is_rejected_not_a_crash() -> None:
    rejected = ledger_intake("payments", b"a", payment("1" + "0" * 31), TOKENS, where=(0, 0))
    assert isinstance(rejected, tuple) and rejected[0] == "invalid_amount"


def test_a_balance_past_64_bits_survives_the_table_exactly() -> None:
    ledger = new_ledger()
    big = 2**70
    move = ledger_intake("payments", b"a", payment(str(big)), TOKENS, where=(0, 0))
    assert isinstance(move, Move)
    [record] = apply(ledger, move)
    assert record["available"] == str(big)
    state = core.AccountState.from_bytes(ledger.accounts["a"])
    assert state.balances["JPYC"] == [big, 0]  # not a float
    again = ledger_intake("payments", b"a", payment("1", payment_id="p-2"), TOKENS, where=(0, 0))
    assert isinstance(again, Move)
    assert apply(ledger, again)[0]["available"] == str(big + 1)


def test_a_deposit_past_the_balance_limit_is_refused() -> None:
    ledger = new_ledger()
    for n in range(1_002):
        move = ledger_intake(
            "payments", b"a", payment(str(10**30), payment_id=f"p{n}"), TOKENS, where=(0, 0)
        )
        assert isinstance(move, Move)
        out = handle_command(ledger, 0, move, lambda asset: 0)
        if out.rejection is not None:
            assert out.rejection[1] == "invalid_amount"
            assert n == BALANCE_UNITS_MAX // 10**30
            return
    raise AssertionError("never refused")


def test_the_longest_ids_still_make_valid_journal_records() -> None:
    ledger = new_ledger()
    long_id = "p" * 128
    move = ledger_intake("payments", b"a", payment("100", payment_id=long_id), TOKENS, where=(0, 0))
    assert isinstance(move, Move)
    apply(ledger, move)  # cause "payment:" + 128 characters
    lock = LockCmd(
        lock_id="t" * 128 + "/cash", trade_id="t" * 128, account="a", asset="JPYC", units=5
    )
    out = handle_command(ledger, 0, lock, lambda asset: 0)
    for record in out.records:
        BalanceChanged.model_validate(record)


def test_an_applied_move_counts_in_its_partitions_inflow_and_a_refused_one_does_not() -> None:
    ledger = new_ledger()
    deposit = ledger_intake("payments", b"a", payment("100"), TOKENS, where=(0, 0))
    assert isinstance(deposit, Move)
    apply(ledger, deposit)
    handle_command(ledger, 3, deposit, lambda asset: 0)  # a repeat: refused
    withdrawal = Move("payment:w", "a", "JPYC", 30, "withdrawal")
    handle_command(ledger, 1, withdrawal, lambda asset: 0)
    assert ledger.inflow == {"0": {"JPYC": "100"}, "1": {"JPYC": "-30"}}
    assert ledger.applied == {"payment:p-1": True, "payment:w": True}


def test_units_past_64_bits_cross_the_internal_topics() -> None:
    """orjson refuses integers past 64 bits: a valid payment of 10**20 USDC units
    stopped the intake in wire.to_wire. Such units travel as decimal strings."""
    raw = orjson.dumps({"payment_id": "big", "account": "alice", "token": "USDC",
                        "amount": "100000000000000", "kind": "deposit"})  # fmt: skip
    move = ledger_intake("payments", b"alice", raw, {"USDC": 6}, where=(0, 0))
    assert isinstance(move, Move) and move.units == 10**20
    assert wire.ledger_command(wire.to_wire(move)) == move
    small = Move("m", "alice", "JPYC", 5, "deposit")
    assert b'"units":5' in wire.to_wire(small)  # what fits stays a number
    assert wire.ledger_command(wire.to_wire(small)) == small


def test_a_payment_keyed_by_anything_but_its_account_is_wrong_key() -> None:
    """L1: a wrong key spread one account's moves over partitions, out of order."""
    refused = ledger_intake("payments", b"not-a", payment("100"), TOKENS, where=(0, 0))
    assert isinstance(refused, tuple) and refused[0] == "wrong_key", refused
    assert isinstance(ledger_intake("payments", b"a", payment("100"), TOKENS, where=(0, 0)), Move)


def test_a_refused_withdrawal_sent_again_after_a_deposit_is_a_duplicate() -> None:
    """H3: ids were used up only on success, so the bridge's signed withdrawal refused
    for want of funds debited the account when anyone sent it again days later."""
    ledger = new_ledger()

    def pay(payment_id: str, amount: str, kind: str) -> Any:
        raw = orjson.dumps({"payment_id": payment_id, "account": "a", "token": "JPYC",
                            "amount": amount, "kind": kind})  # fmt: skip
        move = ledger_intake("payments", b"a", raw, TOKENS, where=(0, 0))
        assert isinstance(move, Move)
        return handle_command(ledger, 0, move, lambda asset: 0)

    assert pay("w-9", "100", "withdrawal").rejection[1] == "insufficient_funds"
    assert pay("d-1", "500", "deposit").rejection is None
    again = pay("w-9", "100", "withdrawal")
    assert again.rejection is not None and again.rejection[1] == "duplicate"
    assert not again.records
    assert pay("w-10", "100", "withdrawal").rejection is None  # a retry under a new id
