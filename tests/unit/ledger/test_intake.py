"""The ledger's intake and the engine's moves on input that once stopped a worker."""

from __future__ import annotations

from typing import Any

import orjson

from schemas import LEDGER_EVENTS, BalanceChanged
from streams.engine.core import Batch, Engine, Outputs, Rules
from streams.ledger import domain as core
from streams.ledger.intake import intake_record as ledger_intake
from streams.ledger.messages import Move
from streams.money import BALANCE_UNITS_MAX
from streams.settlement.messages import Trade

TOKENS = {"JPYC": 0, "USDC": 6}


def payment(amount: str, *, payment_id: str = "p-1", account: str = "a") -> bytes:
    return orjson.dumps({"payment_id": payment_id, "account": account, "token": "JPYC",
                         "amount": amount, "kind": "deposit"})  # fmt: skip


RULES = Rules(tokens=TOKENS, deadline_s=60.0)


def new_ledger() -> Engine:
    return Engine()


def handle(engine: Engine, item: Move | Trade) -> Outputs:
    """One move (or trade) in a batch of its own; what the batch wrote."""
    batch = Batch(engine, RULES, 1_800_000_000.0)
    if isinstance(item, Move):
        batch.move(item)
    else:
        batch.start(item)
    return batch.finish()


def journal(out: Outputs) -> list[dict[str, object]]:
    records = [orjson.loads(v) for t, _, v in out.records if t == LEDGER_EVENTS]
    # Every record must be one the codec accepts.
    for record in records:
        BalanceChanged.model_validate(record)
    return records


def apply(engine: Engine, move: Move) -> list[dict[str, object]]:
    out = handle(engine, move)
    assert not out.rejected, out.rejected
    return journal(out)


def reason(out: Outputs) -> str | None:
    return out.rejected[0][1] if out.rejected else None


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
    state = core.AccountState.from_bytes(ledger.accounts["a"])  # the engine's row
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
        out = handle(ledger, move)
        if out.rejected:
            assert reason(out) == "invalid_amount"
            assert n == BALANCE_UNITS_MAX // 10**30
            return
    raise AssertionError("never refused")


def test_the_longest_ids_still_make_valid_journal_records() -> None:
    ledger = new_ledger()
    long_id = "p" * 128
    move = ledger_intake("payments", b"a", payment("100", payment_id=long_id), TOKENS, where=(0, 0))
    assert isinstance(move, Move)
    apply(ledger, move)  # cause "payment:" + 128 characters
    bonds = Move("custody:" + "m" * 128, "s" * 128, "JP1103551Q43", 100_000, "deposit")
    apply(ledger, bonds)
    trade = Trade("t" * 128, "JP1103551Q43", "a", "s" * 128, 100_000, "JPYC", 5, 60.0)
    assert len(journal(handle(ledger, trade))) == 6  # locks, posts, credits


def test_an_applied_move_counts_in_the_inflow_and_a_refused_one_does_not() -> None:
    ledger = new_ledger()
    deposit = ledger_intake("payments", b"a", payment("100"), TOKENS, where=(0, 0))
    assert isinstance(deposit, Move)
    apply(ledger, deposit)
    handle(ledger, deposit)  # a repeat: refused
    withdrawal = Move("payment:w", "a", "JPYC", 30, "withdrawal")
    handle(ledger, withdrawal)
    assert ledger.inflow == {"JPYC": 70}
    assert ledger.applied == {"payment:p-1", "payment:w"}


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
        return handle(ledger, move)

    assert reason(pay("w-9", "100", "withdrawal")) == "insufficient_funds"
    assert reason(pay("d-1", "500", "deposit")) is None
    again = pay("w-9", "100", "withdrawal")
    assert reason(again) == "duplicate"
    assert not journal(again)
    assert reason(pay("w-10", "100", "withdrawal")) is None  # a retry under a new id
