"""The ledger journal's tamper evidence: a SHA-256 hash chain per account.

Every ``ledger-events`` record (schema_version 2) carries ``prev_hash`` and ``hash``:

- ``hash`` = SHA-256 of the record's **canonical bytes**, which include ``prev_hash``;
- ``prev_hash`` = the ``hash`` of the same account's previous record (``seq - 1``),
  or :data:`GENESIS_HASH` (64 zeros) for its first.

The canonical bytes of a record are its JSON object without the ``hash`` member,
serialized as RFC 8785 (JSON Canonicalization Scheme): members sorted by name, no
whitespace, strings as UTF-8 with only ``"`` and ``\\`` escaped (kessai's fields
cannot hold control characters), integers as plain digits. Every amount is a decimal
*string* on the wire, so no number formatting is involved: any JCS library, or
``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``,
reproduces them. docs/journal.md has a worked example.

Altering a record changes its hash; removing or reordering one breaks the next
record's ``prev_hash`` (and its ``seq``). An account's **root** as of a moment is the
``hash`` of its last record then; the **journal root** is SHA-256 over the accounts
sorted by id (by their UTF-8 bytes), each contributing ``account || 0x00 ||
root (32 bytes)``. A counterparty who holds the journal recomputes both.

Pure: no Kafka. The ledger agent calls :func:`chain` on each step's postings; the
auditors' tools (:mod:`streams.audit`) call :func:`record_hash` and
:func:`journal_root`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import orjson

from streams.ledger.domain import AccountState, Posting
from streams.money import from_units

#: The ``prev_hash`` of an account's first record.
GENESIS_HASH: Final = "0" * 64
#: ``ledger-events`` records carry the chain from this schema version on.
CHAINED_SCHEMA_VERSION: Final = 2

__all__ = [
    "CHAINED_SCHEMA_VERSION",
    "GENESIS_HASH",
    "balance_changed",
    "canonical_bytes",
    "chain",
    "entry",
    "journal_root",
    "rechain",
    "record_hash",
]


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of ``record`` without its ``hash`` member (see the module doc)."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def record_hash(record: Mapping[str, Any]) -> str:
    """The ``hash`` the record should carry: SHA-256 hex of :func:`canonical_bytes`."""
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def balance_changed(posting: Posting, decimals: int, prev_hash: str) -> dict[str, Any]:
    """The ``ledger-events`` record of one posting, as its wire JSON object, hashed.

    Amounts are written as :class:`schemas.BalanceChanged` writes them (``format(d,
    "f")`` of the units scaled by the asset's decimals), so the object validates and
    encodes to the same members and strings (a unit test checks the round trip).
    """
    p = posting
    return entry(
        p.account, p.asset, p.delta_available, p.delta_locked, p.available, p.locked,
        p.cause, p.seq, decimals, prev_hash,
    )  # fmt: skip


def entry(
    account: str,
    asset: str,
    delta_available: int,
    delta_locked: int,
    available: int,
    locked: int,
    cause: str,
    seq: int,
    decimals: int,
    prev_hash: str,
) -> dict[str, Any]:
    """:func:`balance_changed` of a posting given field by field (the engine's fast
    path builds no :class:`Posting`). The canonical bytes are built in their sorted
    order directly (:func:`canonical_bytes` gives the same bytes); at 0 decimals an
    amount is its plain digits, which is what ``format(Decimal, "f")`` writes."""
    if decimals:
        da, dl, av, lo = (
            format(from_units(units, decimals), "f")
            for units in (delta_available, delta_locked, available, locked)
        )
    else:
        da, dl, av, lo = str(delta_available), str(delta_locked), str(available), str(locked)
    canonical = {  # RFC 8785: members sorted by name
        "account": account,
        "asset": asset,
        "available": av,
        "cause": cause,
        "delta_available": da,
        "delta_locked": dl,
        "locked": lo,
        "prev_hash": prev_hash,
        "schema_version": CHAINED_SCHEMA_VERSION,
        "seq": seq,
    }
    return {
        "schema_version": CHAINED_SCHEMA_VERSION,
        "account": account,
        "asset": asset,
        "delta_available": da,
        "delta_locked": dl,
        "available": av,
        "locked": lo,
        "cause": cause,
        "seq": seq,
        "prev_hash": prev_hash,
        "hash": hashlib.sha256(orjson.dumps(canonical)).hexdigest(),
    }


def chain(
    before: AccountState,
    after: AccountState,
    postings: Iterable[Posting],
    decimals_of: Callable[[str], int],
) -> list[dict[str, Any]]:
    """Hash one ledger step's postings onto the account's chain; set ``after.hash``.

    ``before`` is the account's state before the step (its ``hash`` is the chain's
    tip), ``after`` the state the step returned. A step with no postings (a queued or
    withdrawn lock request) still carries the tip over: the core builds fresh states
    and knows nothing of hashes.
    """
    tip = before.hash or GENESIS_HASH
    records = []
    for posting in postings:
        record = balance_changed(posting, decimals_of(posting.asset), tip)
        tip = record["hash"]
        records.append(record)
    after.hash = "" if tip == GENESIS_HASH else tip
    return records


def rechain(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``records`` (wire objects, each account's in seq order) chained afresh.

    What a forger who rewrites the journal would do, and what tests use to build
    chained journals from plain balance changes. Sets ``schema_version`` 2.
    """
    tips: dict[str, str] = {}
    out = []
    for record in records:
        copy = {**record, "schema_version": CHAINED_SCHEMA_VERSION}
        copy["prev_hash"] = tips.get(copy["account"], GENESIS_HASH)
        copy["hash"] = record_hash(copy)
        tips[copy["account"]] = copy["hash"]
        out.append(copy)
    return out


def journal_root(roots: Mapping[str, str]) -> str:
    """SHA-256 hex over ``account || 0x00 || root`` for every account, sorted by id bytes."""
    digest = hashlib.sha256()
    for account_bytes, root in sorted((a.encode(), r) for a, r in roots.items()):
        digest.update(account_bytes)
        digest.update(b"\x00")
        digest.update(bytes.fromhex(root))
    return digest.hexdigest()
