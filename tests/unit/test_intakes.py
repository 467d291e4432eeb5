"""The agents' per-record functions on input that once stopped a worker."""

from __future__ import annotations

from decimal import Decimal

import orjson

from schemas import BalanceChanged
from streams.ledger import domain as core
from streams.ledger.handler import handle_command
from streams.ledger.intake import intake_record as ledger_intake
from streams.settlement import saga as saga_core
from streams.settlement import steps
from streams.settlement.intake import intake_record as trade_intake

TOKENS = {"JPYC": 0, "USDC": 6}


def payment(amount: str, *, payment_id: str = "p-1", account: str = "a") -> bytes:
    return orjson.dumps({"payment_id": payment_id, "account": account, "token": "JPYC",
                         "amount": amount, "kind": "deposit"})  # fmt: skip


def apply(accounts: dict[str, bytes], move: steps.Move) -> list[dict[str, object]]:
    out = handle_command(accounts, {}, move, lambda asset: TOKENS.get(asset, 0))
    assert out.rejection is None, out.rejection
    # Every record must be one the codec accepts: the agent validates it.
    for record in out.records:
        BalanceChanged.model_validate(record)
    return out.records


def test_units_are_exact_past_28_digits_and_capped() -> None:
    assert core.to_units(Decimal("1234567890123456789012345678.9"), 0) is None
    assert core.to_units(Decimal("1234567890123456789012345678"), 0) == (
        1234567890123456789012345678
    )
    assert core.to_units(Decimal(10**30), 0) == 10**30
    assert core.to_units(Decimal(10**30 + 1), 0) is None
    assert core.to_units(Decimal("0.000001"), 6) == 1


def test_a_huge_payment_is_rejected_not_a_crash() -> None:
    rejected = ledger_intake("payments", b"a", payment("1" + "0" * 31), TOKENS)
    assert isinstance(rejected, tuple) and rejected[0] == "invalid_amount"


def test_a_balance_past_64_bits_survives_the_table_exactly() -> None:
    accounts: dict[str, bytes] = {}
    big = 2**70
    move = ledger_intake("payments", b"a", payment(str(big)), TOKENS)
    assert isinstance(move, steps.Move)
    [record] = apply(accounts, move)
    assert record["available"] == str(big)
    state = core.AccountState.from_bytes(accounts["a"])
    assert state.balances["JPYC"] == [big, 0]  # not a float
    again = ledger_intake("payments", b"a", payment("1", payment_id="p-2"), TOKENS)
    assert isinstance(again, steps.Move)
    assert apply(accounts, again)[0]["available"] == str(big + 1)


def test_a_deposit_past_the_balance_limit_is_refused() -> None:
    accounts: dict[str, bytes] = {}
    for n in range(1_002):
        move = ledger_intake("payments", b"a", payment(str(10**30), payment_id=f"p{n}"), TOKENS)
        assert isinstance(move, steps.Move)
        out = handle_command(accounts, {}, move, lambda asset: 0)
        if out.rejection is not None:
            assert out.rejection[3] == "invalid_amount"
            assert n == core.BALANCE_UNITS_MAX // 10**30
            return
    raise AssertionError("never refused")


def test_the_longest_ids_still_make_valid_journal_records() -> None:
    accounts: dict[str, bytes] = {}
    long_id = "p" * 128
    move = ledger_intake("payments", b"a", payment("100", payment_id=long_id), TOKENS)
    assert isinstance(move, steps.Move)
    apply(accounts, move)  # cause "payment:" + 128 characters
    lock = saga_core.LockCmd(
        lock_id="t" * 128 + "/cash", trade_id="t" * 128, account="a", asset="JPYC", units=5
    )
    out = handle_command(accounts, {}, lock, lambda asset: 0)
    for record in out.records:
        BalanceChanged.model_validate(record)


def trade(trade_id: str = "t1", price: str = "99.5") -> bytes:
    return orjson.dumps({"trade_id": trade_id, "venue": "v", "isin": "JP1103551Q43",
        "buyer": "b", "seller": "s", "quantity": 100_000, "price": price,
        "currency": "JPYC", "trade_time": "2026-11-25T00:00:00Z"})  # fmt: skip


def test_a_trade_must_be_keyed_by_its_id() -> None:
    good = trade_intake(b"t1", trade(), 1_000.0, tokens=TOKENS, deadline_s=30)
    assert isinstance(good, saga_core.Trade) and good.deadline_at_s == 1_030.0
    for key in (None, b"t2", b""):
        rejected = trade_intake(key, trade(), 1_000.0, tokens=TOKENS, deadline_s=30)
        assert isinstance(rejected, tuple) and rejected[0] == "wrong_key", key


def test_a_trade_whose_cash_leg_is_past_the_limit_is_invalid_price() -> None:
    rejected = trade_intake(b"t1", trade(price="1" + "0" * 29), 0.0, tokens=TOKENS, deadline_s=1)
    assert isinstance(rejected, tuple) and rejected[0] == "invalid_price"


def test_units_past_64_bits_cross_the_internal_topics() -> None:
    """orjson refuses integers past 64 bits: a valid payment of 10**20 USDC units
    stopped the intake in wire.to_wire. Such units travel as decimal strings."""
    from streams import wire
    from streams.ledger import intake as ledger_intake
    from streams.settlement.steps import Move

    raw = orjson.dumps({"payment_id": "big", "account": "alice", "token": "USDC",
                        "amount": "100000000000000", "kind": "deposit"})  # fmt: skip
    move = ledger_intake.intake_record("payments", b"alice", raw, {"USDC": 6})
    assert isinstance(move, Move) and move.units == 10**20
    assert wire.from_wire(wire.to_wire(move)) == move
    small = Move("m", "alice", "JPYC", 5, "deposit")
    assert b'"units":5' in wire.to_wire(small)  # what fits stays a number
    assert wire.from_wire(wire.to_wire(small)) == small


def test_a_cash_leg_past_64_bits_is_refused_and_one_below_fits_every_table() -> None:
    """The saga's rows go through faust's JSON codec (orjson, 64-bit integers): a trade
    of 10**20 JPYC units would have stopped the worker at its commit."""
    from faust.utils import json as faust_json

    from streams.settlement.handler import handle_inbox

    # 100,000 face at 10**14 % = 10**17 JPYC: fits. At 10**16 %: 10**19, past 2**63.
    fits = trade_intake(b"t1", trade(price="1" + "0" * 14), 0.0, tokens=TOKENS, deadline_s=1)
    assert isinstance(fits, saga_core.Trade) and fits.cash_units == 10**17
    sagas: dict[str, object] = {}
    handle_inbox(sagas, 0, fits, {})
    faust_json.dumps(sagas["t1"])  # the changelog write does this
    refused = trade_intake(b"t1", trade(price="1" + "0" * 16), 0.0, tokens=TOKENS, deadline_s=1)
    assert isinstance(refused, tuple) and refused[0] == "invalid_price"
    assert str(2**63 - 1) in refused[1]
