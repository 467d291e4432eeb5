"""The DvP saga and the ledger's locks, pure: hand-worked cases and invariants
over random interleavings (conservation, no negatives, one terminal status per
trade, exactly once; no lock outlives its trade)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.ledger import domain as ledger
from streams.ledger import journal
from streams.ledger.handler import account_step
from streams.ledger.messages import PostCmd
from streams.runtime.livesums import LiveSums
from streams.settlement.messages import Trade
from tests.support.simulation import Engine, Move

BOND = "JP1103551Q43"
FACE = 50_000


def _trade(
    tid: str, buyer: str, seller: str, qty: int, cash: int, deadline: float = 100.0
) -> Trade:
    return Trade(tid, BOND, buyer, seller, qty, "JPYC", cash, deadline)


def _funded(engine: Engine) -> None:
    engine.submit_move(Move("p-b", "buyer", "JPYC", 1_000_000, "deposit"))
    engine.submit_move(Move("c-s", "seller", BOND, 2 * FACE, "deposit"))
    engine.run()


def test_a_funded_trade_settles_both_legs_at_once() -> None:
    e = Engine()
    _funded(e)
    e.submit_trade(_trade("t1", "buyer", "seller", FACE, 600_000))
    e.run()
    assert [s.status for s in e.statuses] == ["settled"]
    assert e.accounts["buyer"].balances == {"JPYC": [400_000, 0], BOND: [FACE, 0]}
    assert e.accounts["seller"].balances == {BOND: [FACE, 0], "JPYC": [600_000, 0]}
    assert not e.accounts["buyer"].locks and not e.accounts["seller"].locks


def test_short_buyer_is_pending_then_settles_when_cash_arrives() -> None:
    e = Engine()
    e.submit_move(Move("c-s", "seller", BOND, FACE, "deposit"))
    e.submit_trade(_trade("t1", "buyer", "seller", FACE, 600_000))
    e.run()
    assert [(s.status, s.reason) for s in e.statuses] == [("pending", "insufficient_cash")]
    assert e.accounts["seller"].balances[BOND] == [0, FACE], "the bonds wait, locked"
    e.submit_move(Move("p-late", "buyer", "JPYC", 600_000, "deposit"))
    e.run()
    assert [s.status for s in e.statuses] == ["pending", "settled"]


def test_a_lock_refused_for_too_many_locks_fails_the_trade_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """M13: a lock refused at LOCKS_OPEN_MAX got no reply; the trade waited for its
    deadline and failed as `insufficient_cash`, the wrong reason."""
    monkeypatch.setattr(ledger, "LOCKS_OPEN_MAX", 1)
    e = Engine()
    e.submit_move(Move("c-s", "seller", BOND, 2 * FACE, "deposit"))
    e.submit_trade(_trade("t1", "buyer", "seller", FACE, 600_000))  # buyer short: queued
    e.run()
    e.submit_trade(_trade("t2", "buyer", "seller", FACE, 600_000))
    e.run()
    t2 = [(s.status, s.reason) for s in e.statuses if s.trade_id == "t2"]
    assert t2 == [("failed", "too_many_locks")], e.statuses
    # t2's bonds were locked, then given back: only t1's are still held.
    assert e.accounts["seller"].balances[BOND] == [FACE, FACE]


def test_deadline_fails_the_trade_and_releases_its_locks() -> None:
    e = Engine()
    e.submit_move(Move("c-s", "seller", BOND, FACE, "deposit"))
    e.submit_trade(_trade("t1", "buyer", "seller", FACE, 600_000, deadline=10.0))
    e.run()
    e.tick(9.0)
    e.run()
    assert e.statuses[-1].status == "pending"
    e.tick(10.0)
    e.run()
    assert (e.statuses[-1].status, e.statuses[-1].reason) == ("failed", "insufficient_cash")
    assert e.accounts["seller"].balances[BOND] == [FACE, 0]
    assert not e.accounts["buyer"].waiting, "the queued cash request is withdrawn"
    # Cash arriving after the failure settles nothing and is not locked.
    e.submit_move(Move("p-late", "buyer", "JPYC", 600_000, "deposit"))
    e.run()
    assert e.accounts["buyer"].balances["JPYC"] == [600_000, 0]
    assert [s.status for s in e.statuses].count("settled") == 0


def test_two_trades_competing_for_one_trades_cash_settle_one() -> None:
    e = Engine()
    e.submit_move(Move("p-b", "buyer", "JPYC", 600_000, "deposit"))
    e.submit_move(Move("c-s1", "s1", BOND, FACE, "deposit"))
    e.submit_move(Move("c-s2", "s2", BOND, FACE, "deposit"))
    e.submit_trade(_trade("t1", "buyer", "s1", FACE, 600_000))
    e.submit_trade(_trade("t2", "buyer", "s2", FACE, 600_000))
    e.run(lambda keys: random.Random(3).choice(keys))
    final = {s.trade_id: s.status for s in e.statuses}
    assert sorted(final.values()) == ["pending", "settled"]


def test_a_seller_without_bonds_does_not_sit_on_the_buyers_cash() -> None:
    # t1's seller has nothing: bonds are locked first, so t1 never takes the cash
    # that t2 needs.
    e = Engine()
    e.submit_move(Move("p-b", "buyer", "JPYC", 600_000, "deposit"))
    e.submit_move(Move("c-s2", "s2", BOND, FACE, "deposit"))
    e.submit_trade(_trade("t1", "buyer", "s1", FACE, 600_000))
    e.submit_trade(_trade("t2", "buyer", "s2", FACE, 600_000))
    e.run()
    final = {s.trade_id: (s.status, s.reason) for s in e.statuses}
    assert final == {"t1": ("pending", "insufficient_securities"), "t2": ("settled", None)}


def test_a_repeated_trade_id_is_rejected_and_settles_once() -> None:
    e = Engine()
    _funded(e)
    e.submit_trade(_trade("t1", "buyer", "seller", FACE, 100))
    e.submit_trade(_trade("t1", "buyer", "seller", FACE, 100))
    e.run()
    assert [s.status for s in e.statuses] == ["settled"]
    assert ("t1", "duplicate") in e.rejections


ACCOUNTS = ["a", "b", "c", "d"]
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("move"),
            st.sampled_from(ACCOUNTS),
            st.sampled_from(["JPYC", BOND]),
            st.integers(1, 8),
            st.sampled_from(["deposit", "deposit", "withdrawal"]),
            st.integers(0, 40),
        ),
        st.tuples(
            st.just("trade"),
            st.sampled_from(ACCOUNTS),
            st.sampled_from(ACCOUNTS),
            st.integers(1, 4),
            st.integers(1, 8),
            st.integers(0, 25),
        ),
        st.tuples(st.just("tick"), st.floats(0, 50)),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(ops, st.randoms(use_true_random=False))
def test_invariants_hold_over_random_flows_and_interleavings(flow, rnd) -> None:  # type: ignore[no-untyped-def]
    e = Engine()
    moves: dict[str, Move] = {}
    trade_ids: set[str] = set()
    now = 0.0
    for op in flow:
        if op[0] == "move":
            _, acct, asset, n, kind, mid = op
            units = n * (FACE if asset == BOND else 100_000)
            # A repeated id carries the same content, as a replayed record would.
            move = moves.setdefault(f"m{mid}", Move(f"m{mid}", acct, asset, units, kind))
            e.submit_move(move)
        elif op[0] == "trade":
            _, buyer, seller, qty, cash, tid = op
            if buyer == seller:
                continue  # refused by the schema before it reaches the saga
            trade_ids.add(f"t{tid}")
            e.submit_trade(
                _trade(f"t{tid}", buyer, seller, qty * FACE, cash * 100_000, deadline=now + 10)
            )
        else:
            now = max(now, op[1])
            e.tick(now)
        # Let some messages through now and then, in a random order.
        for _ in range(rnd.randint(0, 6)):
            if keys := e.busy():
                e.step(rnd.choice(keys))
    e.run(rnd.choice)
    e.tick(1e9)  # past every deadline
    e.run(rnd.choice)

    # Conservation: per asset, held == applied deposits - applied withdrawals (a move
    # applied is one whose id caused a journal record).
    net: dict[str, int] = {}
    for mid in {entry_.cause for entry_ in e.journal} & set(moves):
        m = moves[mid]
        net[m.asset] = net.get(m.asset, 0) + (m.units if m.kind == "deposit" else -m.units)
    held = e.totals()
    assert {a: n for a, n in e.core.inflow.items() if n} == {a: n for a, n in net.items() if n}
    for asset in set(net) | set(held):
        assert held.get(asset, 0) == net.get(asset, 0), asset
    _check_running_sums(e)
    # Exactly one terminal status per trade, and nothing after it.
    for tid in trade_ids:
        mine = [s.status for s in e.statuses if s.trade_id == tid]
        assert mine and mine[-1] in ("settled", "failed"), (tid, mine)
        assert sum(1 for s in mine if s in ("settled", "failed")) == 1, (tid, mine)
    # No lock outlives its trade; nothing left waiting.
    for account, state in e.accounts.items():
        assert not state.locks and not state.waiting, account
        for asset, (available, locked) in state.balances.items():
            assert available >= 0 and locked == 0, (account, asset)
    # The journal replays to the balances, with a gap-free seq per account.
    replayed: dict[tuple[str, str], list[int]] = {}
    seqs: dict[str, list[int]] = {}
    for p in e.journal:
        bal = replayed.setdefault((p.account, p.asset), [0, 0])
        bal[0] += p.delta_available
        bal[1] += p.delta_locked
        assert bal == [p.available, p.locked]
        seqs.setdefault(p.account, []).append(p.seq)
    for account, seq in seqs.items():
        assert seq == list(range(1, len(seq) + 1)), account
    for (account, asset), bal in replayed.items():
        assert e.accounts[account].balances[asset] == bal
    _check_hash_chains(e)


# ------------------------------------------------------- posting: debit and credit in one


def _seller_with_bonds_locked() -> ledger.Locked:
    """The seller after a bond deposit and the lock ``t1/bonds`` of all of it."""
    moved = ledger.move_units(
        ledger.AccountState(),
        command_id="c",
        account="seller",
        asset=BOND,
        units=FACE,
        kind="deposit",
        duplicate=False,
    )
    assert not isinstance(moved, ledger.LedgerRejection), moved
    state, _ = moved
    locked = ledger.request_lock(
        state, lock_id="t1/bonds", account="seller", asset=BOND, units=FACE
    )
    assert isinstance(locked, ledger.Locked)
    return locked


def test_posting_credits_the_other_leg_in_the_same_step_with_no_credit_message() -> None:
    locked = _seller_with_bonds_locked()
    post = PostCmd("t1/bonds", "t1", "seller", "buyer", receive_asset="JPYC", receive_units=7)

    fx = account_step(locked.state, "seller", post, already_applied=False)

    assert [(p.asset, p.delta_available, p.delta_locked, p.cause) for p in fx.postings] == [
        (BOND, 0, -FACE, "t1/bonds"),
        ("JPYC", 7, 0, "credit:t1/cash"),
    ]
    assert [r.what for r in fx.replies] == ["posted"]
    assert fx.state.balances == {BOND: [0, 0], "JPYC": [7, 0]}
    # Repeated: the lock is gone, and a post of a lock the account does not hold would
    # pay one side only (M6): the engine stops rather than apply it.
    with pytest.raises(AssertionError, match="holds no such lock"):
        account_step(fx.state, "seller", post, already_applied=False)


def _check_running_sums(e: Engine) -> None:
    """The metrics' running sums, kept from every batch, equal a full pass over the rows."""
    whole = LiveSums()
    whole.rebuild(e.core.accounts, e.core.inflow)
    assert +e.live.available == +whole.available and +e.live.locked == +whole.locked
    assert e.live.open_locks == whole.open_locks


def _check_hash_chains(e: Engine) -> None:
    """Each account's journal is one hash chain, and its state keeps the chain's tip."""
    tips: dict[str, str] = {}
    for entry in e.journal:
        assert entry.prev_hash == tips.get(entry.account, journal.GENESIS_HASH), entry
        tips[entry.account] = entry.hash
    for account, tip in tips.items():
        assert e.accounts[account].hash == tip, account
