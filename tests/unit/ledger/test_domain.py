"""The ledger core: exact units, no negative balances, conservation, duplicates."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import MoveCash
from streams.ledger import domain as core
from streams.ledger.intake import to_move
from streams.money import from_units

TOKENS = {"JPYC": 0, "USDC": 6}


def move_cash(
    state: core.AccountState,
    *,
    command_id: str,
    account: str,
    token: str,
    amount: Decimal,
    kind: Literal["deposit", "withdrawal"],
    tokens: dict[str, int],
    duplicate: bool = False,
) -> tuple[core.AccountState, list[core.Posting]] | core.LedgerRejection:
    """A payment as the worker applies it: the intake's units (:func:`to_move`), then
    the ledger's :func:`~streams.ledger.domain.move_units`."""
    payment = MoveCash(payment_id=command_id, account=account, token=token, amount=amount,
                       kind=kind)  # fmt: skip
    move = to_move(payment, ("payments", 0, 0, account, None, 0, None), tokens)
    if isinstance(move, tuple):
        return core.LedgerRejection(*move)  # type: ignore[arg-type]
    return core.move_units(
        state,
        command_id=command_id,
        account=account,
        asset=move.asset,
        units=move.units,
        kind=kind,
        duplicate=duplicate,
    )


def test_deposit_then_withdrawal() -> None:
    s0 = core.AccountState()
    r1 = move_cash(
        s0,
        command_id="p1",
        account="a",
        token="USDC",
        amount=Decimal("10.25"),
        kind="deposit",
        tokens=TOKENS,
    )
    assert not isinstance(r1, core.LedgerRejection)
    s1, (post1,) = r1
    assert s1.balances == {"USDC": [10_250_000, 0]}
    assert (post1.delta_available, post1.available, post1.seq) == (10_250_000, 10_250_000, 1)
    r2 = move_cash(
        s1,
        command_id="p2",
        account="a",
        token="USDC",
        amount=Decimal("0.25"),
        kind="withdrawal",
        tokens=TOKENS,
    )
    assert not isinstance(r2, core.LedgerRejection)
    s2, (post2,) = r2
    assert s2.balances["USDC"] == [10_000_000, 0] and post2.seq == 2
    assert s1.balances["USDC"] == [10_250_000, 0], "states are never edited in place"


def test_overdraft_unknown_token_precision_and_duplicate_are_rejected() -> None:
    s = core.AccountState(seq=3, balances={"JPYC": [100, 0]})
    cases = [
        (dict(token="JPYC", amount=Decimal(101), kind="withdrawal"), "insufficient_funds"),
        (dict(token="EURC", amount=Decimal(1), kind="deposit"), "unknown_token"),
        (dict(token="JPYC", amount=Decimal("0.5"), kind="deposit"), "invalid_amount"),
    ]
    for kwargs, reason in cases:
        r = move_cash(s, command_id="x", account="a", tokens=TOKENS, **kwargs)  # type: ignore[arg-type]
        assert isinstance(r, core.LedgerRejection) and r.reason == reason, (kwargs, r)
    dup = move_cash(
        s,
        command_id="x",
        account="a",
        token="JPYC",
        amount=Decimal(1),
        kind="deposit",
        tokens=TOKENS,
        duplicate=True,
    )
    assert isinstance(dup, core.LedgerRejection) and dup.reason == "duplicate"


def test_state_round_trips_through_json() -> None:
    s = core.AccountState(seq=7, balances={"JPYC": [5, 2], "JP1103551Q43": [50_000, 0]})
    assert core.AccountState.from_json(s.to_json()) == s
    assert core.AccountState.from_json({}) == core.AccountState()


commands = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["JPYC", "USDC", "JP1103551Q43"]),
        st.integers(min_value=1, max_value=10**9),
        st.sampled_from(["deposit", "withdrawal"]),
        st.integers(min_value=0, max_value=30),  # command id: repeats are likely
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(commands)
def test_conservation_no_negatives_gap_free_seq_and_exactly_once(cmds: list) -> None:  # type: ignore[type-arg]
    """Sum of balances per asset == deposits - withdrawals applied; seq gap-free."""
    states: dict[str, core.AccountState] = {}
    applied: set[str] = set()
    net: dict[str, int] = {}
    seqs: dict[str, list[int]] = {}
    for account, asset, units, kind, n in cmds:
        cid = f"{account}-{n}"
        state = states.get(account, core.AccountState())
        if asset == "JP1103551Q43":
            r = core.move_units(
                state,
                command_id=cid,
                account=account,
                asset=asset,
                units=units,
                kind=kind,
                duplicate=cid in applied,
            )
        else:
            amount = from_units(units, TOKENS[asset])
            r = move_cash(
                state,
                command_id=cid,
                account=account,
                token=asset,
                amount=amount,
                kind=kind,
                tokens=TOKENS,
                duplicate=cid in applied,
            )
        if isinstance(r, core.LedgerRejection):
            assert r.reason in ("duplicate", "insufficient_funds")
            assert (r.reason == "duplicate") == (cid in applied)
            continue
        states[account], postings = r
        applied.add(cid)
        net[asset] = net.get(asset, 0) + (units if kind == "deposit" else -units)
        for p in postings:
            seqs.setdefault(account, []).append(p.seq)
            assert p.available >= 0 and p.locked >= 0
    for asset, total in net.items():
        held = sum(
            s.balances.get(asset, [0, 0])[0] + s.balances.get(asset, [0, 0])[1]
            for s in states.values()
        )
        assert held == total
    for account, seq in seqs.items():
        assert seq == list(range(1, len(seq) + 1)), account


def _funded(units: int) -> core.AccountState:
    return core.AccountState(seq=1, balances={"JPYC": [units, 0]})


def test_lock_post_and_void_resolve_exactly_once() -> None:
    r = core.request_lock(_funded(100), lock_id="t1/cash", account="a", asset="JPYC", units=60)
    assert isinstance(r, core.Locked)
    assert r.state.balances["JPYC"] == [40, 60] and r.state.locks == {"t1/cash": ["JPYC", 60]}
    assert (r.postings[0].delta_available, r.postings[0].delta_locked) == (-60, 60)
    again = core.request_lock(r.state, lock_id="t1/cash", account="a", asset="JPYC", units=60)
    assert isinstance(again, core.LedgerRejection) and again.reason == "duplicate"
    posted = core.post_lock(r.state, lock_id="t1/cash", account="a")
    assert posted.outcome == "posted" and posted.state.balances["JPYC"] == [40, 0]
    assert (posted.asset, posted.units) == ("JPYC", 60)
    assert core.post_lock(posted.state, lock_id="t1/cash", account="a").outcome == "unknown"
    assert core.void_lock(posted.state, lock_id="t1/cash", account="a").outcome == "unknown"
    voided = core.void_lock(r.state, lock_id="t1/cash", account="a")
    assert voided.outcome == "voided" and voided.state.balances["JPYC"] == [100, 0]


def test_queued_requests_are_granted_oldest_first_per_asset() -> None:
    s = _funded(10)
    big = core.request_lock(s, lock_id="big", account="a", asset="JPYC", units=100)
    assert isinstance(big, core.Queued)
    small = core.request_lock(big.state, lock_id="small", account="a", asset="JPYC", units=5)
    assert isinstance(small, core.Queued), "funds exist, but 'big' waits before it"
    # 50 more: enough for 'small' alone, but 'big' is first in line.
    deposit = core.move_units(
        small.state,
        command_id="p",
        account="a",
        asset="JPYC",
        units=50,
        kind="deposit",
        duplicate=False,
    )
    assert not isinstance(deposit, core.LedgerRejection)
    assert core.grant_waiting(deposit[0], account="a") == []
    more = core.move_units(
        deposit[0],
        command_id="p2",
        account="a",
        asset="JPYC",
        units=45,
        kind="deposit",
        duplicate=False,
    )
    assert not isinstance(more, core.LedgerRejection)
    granted = core.grant_waiting(more[0], account="a")
    assert [g.lock_id for g in granted] == ["big", "small"]
    assert granted[-1].state.balances["JPYC"] == [0, 105] and not granted[-1].state.waiting


def _deposit(state: core.AccountState, units: int, asset: str = "JPYC") -> core.AccountState:
    moved = core.move_units(
        state, command_id=f"p{units}", account="a", asset=asset, units=units,
        kind="deposit", duplicate=False,
    )  # fmt: skip
    assert not isinstance(moved, core.LedgerRejection)
    return moved[0]


def test_any_fit_grants_a_request_that_fits_whoever_waits() -> None:
    # The domain review's case: holding 100,000, A needs 200,000 and B 50,000.
    s = _deposit(core.AccountState(), 100_000, "JP1")
    a = core.request_lock(s, lock_id="A", account="a", asset="JP1", units=200_000, any_fit=True)
    assert isinstance(a, core.Queued)
    b = core.request_lock(
        a.state, lock_id="B", account="a", asset="JP1", units=50_000, any_fit=True
    )
    assert isinstance(b, core.Locked), "B fits: it is not held behind A"
    assert b.state.balances["JP1"] == [50_000, 50_000]
    assert [w[0] for w in b.state.waiting] == ["A"]
    # Strict FIFO (the batches before issue 21): B waits behind A.
    fifo = core.request_lock(a.state, lock_id="B", account="a", asset="JP1", units=50_000)
    assert isinstance(fifo, core.Queued)


def test_any_fit_grants_in_settlement_date_order_skipping_what_does_not_fit() -> None:
    s = _funded(0)
    for lock, units, date in (("late", 60, "2025-11-06"), ("big", 500, "2025-11-04"),
                              ("early", 60, "2025-11-05"), ("also", 30, "2025-11-06")):  # fmt: skip
        q = core.request_lock(
            s, lock_id=lock, account="a", asset="JPYC", units=units, any_fit=True, priority=date
        )
        assert isinstance(q, core.Queued)
        s = q.state
    assert core.AccountState.from_bytes(s.to_bytes()) == s  # the priorities are kept
    # 100 arrive: 'big' (first by date) does not fit and is skipped; 'early' (5 Nov)
    # goes before 'late' (6 Nov, arrived first); 'also' fits in what is left.
    granted = core.grant_waiting(_deposit(s, 100), account="a", any_fit=True)
    assert [g.lock_id for g in granted] == ["early", "also"]
    assert [w[0] for w in granted[-1].state.waiting] == ["late", "big"]


def test_a_queued_request_can_be_withdrawn() -> None:
    q = core.request_lock(_funded(0), lock_id="t/cash", account="a", asset="JPYC", units=5)
    assert isinstance(q, core.Queued)
    res = core.void_lock(q.state, lock_id="t/cash", account="a")
    assert res.outcome == "unqueued" and not res.state.waiting and res.postings == []


def test_the_accounts_table_bytes_round_trip_and_read_the_old_dict_json() -> None:
    import orjson

    state = core.AccountState(
        seq=3,
        balances={"JPYC": [10, 5], "JP1103551Q43": [0, 50_000]},
        locks={"t1/cash": ["JPYC", 5]},
        waiting=[["t2/cash", "JPYC", 7]],
    )
    assert core.AccountState.from_bytes(state.to_bytes()) == state
    # A changelog written when the table held dicts (faust's JSON) reads the same.
    assert (
        core.AccountState.from_bytes(orjson.dumps(state.to_json(), option=orjson.OPT_INDENT_2))
        == state
    )
    assert (
        core.AccountState.from_bytes(b"")
        == core.AccountState()
        == core.AccountState.from_bytes(None)
    )


def test_the_bytes_the_accounts_table_keeps_are_right_sized() -> None:
    # orjson's own result keeps a ~4 KiB buffer; kept per account, that was 4.1 KB of
    # RSS each at a million accounts. Measured as RSS over many values.
    import gc

    def rss_kib() -> int:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    state = core.AccountState(seq=2, balances={"JPYC": [10_000_000, 0], "JP1103551Q43": [1, 0]})
    gc.collect()
    before = rss_kib()
    kept = [state.to_bytes() for _ in range(20_000)]
    after = rss_kib()
    assert len(kept[0]) < 200
    assert (after - before) * 1024 / len(kept) < 1_024  # ~4,100 before the copy
