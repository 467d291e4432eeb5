"""The journal's hash chain: canonical bytes, the agent's records, roots."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from kessai_bench.replay import journal as bench_journal

from schemas import LEDGER_EVENTS, BalanceChanged, decode, encode
from streams.ledger import domain as core
from streams.ledger import journal
from streams.ledger.journal import GENESIS_HASH


def jcs(obj: dict[str, Any]) -> bytes:
    """RFC 8785 for objects of strings and small integers, as a counterparty would write it."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# Identifiers may hold anything but whitespace and control characters: quotes,
# backslashes and non-ASCII included.
ids = st.text(
    st.characters(exclude_categories=("Z", "C"), include_characters='"\\'),
    min_size=1,
    max_size=40,
)


@given(account=ids, cause=ids, seq=st.integers(1, 2**63 - 1))
def test_canonical_bytes_are_what_any_jcs_writer_gives(account: str, cause: str, seq: int) -> None:
    record = {
        "schema_version": 2,
        "account": account,
        "asset": "USDC",
        "delta_available": "-1.500000",
        "delta_locked": "1.500000",
        "available": "0.000001",
        "locked": "1.500000",
        "cause": cause,
        "seq": seq,
        "prev_hash": GENESIS_HASH,
        "hash": "f" * 64,
    }
    without_hash = {k: v for k, v in record.items() if k != "hash"}
    assert journal.canonical_bytes(record) == jcs(without_hash)
    assert journal.record_hash(record) == hashlib.sha256(jcs(without_hash)).hexdigest()


def test_a_worked_example_a_counterparty_can_recompute() -> None:
    # The example in docs/journal.md: keep the two in step.
    record = {
        "schema_version": 2,
        "account": "acct-alice",
        "asset": "JPYC",
        "delta_available": "1000000",
        "delta_locked": "0",
        "available": "1000000",
        "locked": "0",
        "cause": "payment:p-1",
        "seq": 1,
        "prev_hash": GENESIS_HASH,
    }
    assert journal.canonical_bytes(record) == (
        b'{"account":"acct-alice","asset":"JPYC","available":"1000000","cause":"payment:p-1",'
        b'"delta_available":"1000000","delta_locked":"0","locked":"0","prev_hash":"'
        + GENESIS_HASH.encode()
        + b'","schema_version":2,"seq":1}'
    )
    assert journal.record_hash(record) == (
        "e13467d6f9888ea7aec501eecc94eaad183bf8988f66ac44b2d13d32049bd0e2"
    )


@given(st.integers(1, 400), st.integers(1, 30), st.integers(0, 2**32))
def test_what_the_ledger_writes_validates_encodes_and_rehashes_the_same(
    records: int, accounts: int, seed: int
) -> None:
    for record in bench_journal(records, accounts, seed=seed):
        wire = encode(BalanceChanged.model_validate(record))
        back = orjson.loads(wire)
        # The codec writes exactly the object that was hashed: same members, same strings.
        assert back == record
        assert journal.record_hash(back) == back["hash"]
        assert decode(LEDGER_EVENTS, wire).hash == record["hash"]


def test_each_record_links_to_the_one_before_and_the_state_keeps_the_tip() -> None:
    s0 = core.AccountState()
    s1, p1 = core.move_units(
        s0, command_id="c1", account="a", asset="JPYC", units=10, kind="deposit", duplicate=False
    )  # type: ignore[misc]
    r1 = journal.chain(s0, s1, p1, lambda asset: 0)
    assert r1[0]["prev_hash"] == GENESIS_HASH and s1.hash == r1[0]["hash"]

    locked = core.request_lock(s1, lock_id="t1/cash", account="a", asset="JPYC", units=4)
    assert isinstance(locked, core.Locked)
    r2 = journal.chain(s1, locked.state, locked.postings, lambda asset: 0)
    assert r2[0]["prev_hash"] == r1[0]["hash"] and locked.state.hash == r2[0]["hash"]

    # A step with no posting (a queued request) keeps the tip: the core's fresh state
    # knows nothing of hashes.
    queued = core.request_lock(locked.state, lock_id="t2/cash", account="a", asset="JPYC", units=99)
    assert isinstance(queued, core.Queued) and queued.state.hash == ""
    assert journal.chain(locked.state, queued.state, [], lambda asset: 0) == []
    assert queued.state.hash == locked.state.hash

    # And the tip survives the table's bytes.
    assert core.AccountState.from_bytes(queued.state.to_bytes()).hash == queued.state.hash


def test_usdc_amounts_are_written_at_the_tokens_scale() -> None:
    posting = core.Posting("a", "USDC", -1_500_000, 1_500_000, 0, 1_500_000, "t1/cash", 3)
    record = journal.balance_changed(posting, 6, GENESIS_HASH)
    assert (record["delta_available"], record["available"]) == ("-1.500000", "0.000000")
    assert orjson.loads(encode(BalanceChanged.model_validate(record))) == record


def test_the_journal_root_is_sha256_over_sorted_accounts_and_roots() -> None:
    roots = {"b": "2" * 64, "a": "1" * 64, "é": "3" * 64}
    expected = hashlib.sha256(
        b"a\x00" + bytes.fromhex("1" * 64) + b"b\x00" + bytes.fromhex("2" * 64)
        + "é".encode() + b"\x00" + bytes.fromhex("3" * 64)
    ).hexdigest()  # fmt: skip
    assert journal.journal_root(roots) == expected
    assert journal.journal_root({}) == hashlib.sha256(b"").hexdigest()


def test_rechain_gives_each_account_its_own_chain() -> None:
    records = list(bench_journal(60, 3, seed=7))
    stripped = [{k: v for k, v in r.items() if k not in ("prev_hash", "hash")} for r in records]
    assert journal.rechain(stripped) == records
