"""The ledger journal folded into positions, checked as it goes. Pure: no Kafka.

:class:`JournalFold` takes the committed ``ledger-events`` records of each partition
in offset order (as :func:`streams.kafka.reader.read_batches` hands them over) and
keeps, per account, the last ``seq``, the chain's tip, and each asset's available
and locked balance. Every record is checked:

- ``gap``: its ``seq`` is beyond the account's previous seq + 1 (a record is missing);
- ``out_of_order``: its ``seq`` is at or below the previous one (repeated or moved);
- ``broken_link``: its ``prev_hash`` is not the ``hash`` of the account's record before;
- ``altered``: its ``hash`` is not the SHA-256 of its canonical bytes
  (:mod:`streams.ledger.journal`); checked only with ``hashes=True`` (``kessai
  verify``), as it is the one costly check;
- ``bad_balance``: a balance is not the previous one plus its delta;
- ``wrong_key``: the Kafka key is not the record's account;
- ``unchained``: a ``schema_version`` 1 record (written before the chain existed);
- ``undecodable``: not a JSON object with the journal's fields.

A problem does not stop the fold: the record is taken as written (its seq, hash and
balances become the account's), so one removed record is reported once, not at every
record after it. Problems are kept up to :data:`PROBLEMS_MAX` of each kind; all are
counted, by kind (``kinds``).

Speed: one ``orjson.loads`` per record, dict look-ups, and :class:`~decimal.Decimal`
sums in an exact context. No pydantic (20 µs a record); the schema's rules that
matter for a balance are re-checked here instead.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow, localcontext
from typing import Any, Final

import orjson

from streams.audit.positions import Position, RawRecord
from streams.ledger.journal import CHAINED_SCHEMA_VERSION, GENESIS_HASH, journal_root

__all__ = ["PROBLEMS_MAX", "JournalFold", "Problem"]

#: Problems kept for the report, per kind (all are counted): a flood of one kind
#: (a long unchained history) never hides the first of another.
PROBLEMS_MAX: Final = 1_000
#: Exact sums: wire decimals are at most 64 characters, so a sum needs < 130 digits;
#: the Inexact trap turns any rounding (a wrong sum that looks right) into an error.
_EXACT: Final = Context(prec=256, traps=[Inexact, InvalidOperation, Overflow])
_ZERO: Final = Decimal(0)
_FIELDS: Final = ("account", "asset", "delta_available", "delta_locked", "available", "locked")
#: The members of a record, by schema_version (version 1 may leave the version out).
_V1_IMPLICIT: Final = frozenset((*_FIELDS, "cause", "seq"))
_MEMBERS: Final = {
    1: _V1_IMPLICIT | {"schema_version"},
    CHAINED_SCHEMA_VERSION: _V1_IMPLICIT | {"schema_version", "prev_hash", "hash"},
}
#: How many members each version's record has (version 1 may leave the version out).
_MEMBER_COUNTS: Final = {
    1: (len(_V1_IMPLICIT), len(_MEMBERS[1])),
    CHAINED_SCHEMA_VERSION: (len(_MEMBERS[CHAINED_SCHEMA_VERSION]),),
}
#: Four amounts in schemas.models' plain decimal notation, joined by NULs.
_AMOUNT: Final = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
_AMOUNTS_RE: Final = re.compile(rf"{_AMOUNT}\x00{_AMOUNT}\x00{_AMOUNT}\x00{_AMOUNT}")
_HASH_RE: Final = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one journal record."""

    partition: int
    offset: int
    kind: str
    detail: str
    account: str | None = None
    seq: int | None = None

    def where(self) -> str:
        at = f"partition {self.partition} offset {self.offset}"
        if self.account is not None:
            at += f" (account {self.account!r} seq {self.seq})"
        return at

    def __str__(self) -> str:
        return f"{self.kind} at {self.where()}: {self.detail}"


class _Account:
    __slots__ = ("balances", "first", "partition", "seq", "tip")

    def __init__(self, partition: int) -> None:
        self.seq = 0
        self.tip = GENESIS_HASH
        #: asset -> [available, locked, seq of the last record that changed it]
        self.balances: dict[str, list[Any]] = {}
        self.partition = partition


class JournalFold:
    """Feed it each partition's records in offset order; read positions, roots, problems."""

    def __init__(self, *, hashes: bool = False, problems_max: int = PROBLEMS_MAX) -> None:
        self.hashes = hashes
        self.problems_max = problems_max
        self.problems: list[Problem] = []
        self.problems_total = 0
        #: Problems by kind, all counted (``problems`` keeps only the first ones).
        self.kinds: Counter[str] = Counter()
        self.records = 0
        self._accounts: dict[str, _Account] = {}

    # -- folding ------------------------------------------------------------------------

    def feed(self, partition: int, records: Iterable[RawRecord]) -> None:
        """Fold one partition's records (``.offset``, ``.key``, ``.value``), in offset order."""
        accounts = self._accounts
        loads = orjson.loads
        hashes = self.hashes
        count = 0
        with localcontext(_EXACT):
            count = self._feed(partition, records, accounts, loads, hashes)
        self.records += count

    def _feed(
        self,
        partition: int,
        records: Iterable[RawRecord],
        accounts: dict[str, _Account],
        loads: Any,
        hashes: bool,
    ) -> int:
        count = 0
        for r in records:
            count += 1
            try:
                rec, amounts = _decode(loads(r.value))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, InvalidOperation):
                self._problem(partition, r.offset, "undecodable", _undecodable(r.value, r.key))
                continue
            account, seq = rec["account"], rec["seq"]
            state = accounts.get(account)
            if state is None:
                state = accounts[account] = _Account(partition)
            where = (partition, r.offset, account, seq)
            self._check_place(state, where, r.key)
            if "hash" in rec:
                self._check_link(state, where, rec, hashes)
            else:
                self._problem(
                    partition,
                    r.offset,
                    "unchained",
                    "schema_version 1 carries no hash: nothing proves it unaltered",
                    account,
                    seq,
                )
            self._check_balance(state, where, rec, amounts)
        return count

    def _check_place(
        self, state: _Account, where: tuple[int, int, str, int], key: bytes | None
    ) -> None:
        """The record's partition, seq and key, against the account's records before."""
        partition, offset, account, seq = where
        if state.partition != partition:
            # An account's records must all be on one partition (key ``account``).
            detail = f"account is on partitions {state.partition} and {partition}"
            self._problem(partition, offset, "wrong_key", detail, account, seq)
        expected = state.seq + 1
        if seq != expected:
            kind = "gap" if seq > expected else "out_of_order"
            detail = f"expected seq {expected} next, got {seq}"
            self._problem(partition, offset, kind, detail, account, seq)
        state.seq = seq
        if key != account.encode():
            shown = "no key" if key is None else f"key {key[:80]!r}"
            self._problem(partition, offset, "wrong_key", shown, account, seq)

    def _check_link(
        self, state: _Account, where: tuple[int, int, str, int], rec: dict[str, Any], hashes: bool
    ) -> None:
        """A chained record: it links to the account's record before and, with
        ``hashes``, its hash is its canonical bytes'. Moves the account's tip."""
        partition, offset, account, seq = where
        prev_hash = rec["prev_hash"]
        record_hash = rec.pop("hash")
        if prev_hash != state.tip:
            detail = (
                f"prev_hash {str(prev_hash)[:16]}... is not the hash of the "
                f"account's record before ({state.tip[:16]}...)"
            )
            self._problem(partition, offset, "broken_link", detail, account, seq)
        if hashes:
            actual = hashlib.sha256(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)).hexdigest()
            if actual != record_hash:
                detail = (
                    f"hash {str(record_hash)[:16]}... but its canonical bytes "
                    f"hash to {actual[:16]}..."
                )
                self._problem(partition, offset, "altered", detail, account, seq)
                if _HASH_RE.fullmatch(record_hash) is None:
                    # Not even a hash: the account's root is what it should be.
                    record_hash = actual
        # 64 characters; hex when verified (a fold without hashes prints no root).
        state.tip = record_hash

    def _check_balance(
        self,
        state: _Account,
        where: tuple[int, int, str, int],
        rec: dict[str, Any],
        amounts: tuple[Any, Any, Any, Any],
    ) -> None:
        """The record's balances are the account's before plus its deltas."""
        partition, offset, account, seq = where
        asset = rec["asset"]
        d_avail, d_locked, avail, locked = amounts
        before = state.balances.get(asset)
        if before is None:
            before_avail = before_locked = 0
        else:
            before_avail, before_locked = before[0], before[1]
        try:
            # Exact: under _EXACT (set around the loop) a Decimal sum that would
            # round raises instead; ints never round.
            ok = before_avail + d_avail == avail and before_locked + d_locked == locked
        except ArithmeticError:
            ok = False
        if not ok or avail < 0 or locked < 0:
            detail = (
                f"{asset}: {before_avail} + {d_avail} available / {before_locked} + "
                f"{d_locked} locked is not {avail} / {locked} (cause {rec.get('cause')})"
            )
            self._problem(partition, offset, "bad_balance", detail, account, seq)
        state.balances[asset] = [avail, locked, seq]

    def _problem(
        self,
        partition: int,
        offset: int,
        kind: str,
        detail: str,
        account: str | None = None,
        seq: int | None = None,
    ) -> None:
        self.problems_total += 1
        self.kinds[kind] += 1
        if self.kinds[kind] <= self.problems_max:  # the first ones of each kind
            self.problems.append(Problem(partition, offset, kind, detail, account, seq))

    def merge(self, other: JournalFold) -> None:
        """Take in the fold of other partitions (done in another process).

        Every account lives on one partition, so the two folds share no account; one
        that is in both was written to two partitions, and is reported ``wrong_key``.
        """
        for account, state in other._accounts.items():
            mine = self._accounts.get(account)
            if mine is not None:
                self._problem(
                    state.partition,
                    -1,
                    "wrong_key",
                    f"account is on partitions {mine.partition} and {state.partition}",
                    account,
                    state.seq,
                )
                continue
            self._accounts[account] = state
        self.records += other.records
        self.problems_total += other.problems_total
        self.kinds.update(other.kinds)
        kept = Counter(p.kind for p in self.problems)
        for problem in other.problems:
            if kept[problem.kind] < self.problems_max:
                kept[problem.kind] += 1
                self.problems.append(problem)
        self.problems.sort(key=lambda p: (p.partition, p.offset))

    # -- results ------------------------------------------------------------------------

    def positions(self) -> dict[tuple[str, str], Position]:
        """Each ``(account, asset)``'s balances after the last record folded."""
        return {
            (account, asset): Position(
                account=account,
                asset=asset,
                available=Decimal(b[0]),  # exact, from an int or a Decimal
                locked=Decimal(b[1]),
                seq=b[2],
            )
            for account, state in self._accounts.items()
            for asset, b in state.balances.items()
        }

    def roots(self) -> dict[str, str]:
        """Each account's root: the ``hash`` of its last record folded."""
        return {account: state.tip for account, state in self._accounts.items()}

    def seqs(self) -> dict[str, int]:
        return {account: state.seq for account, state in self._accounts.items()}

    def journal_root(self) -> str:
        return journal_root(self.roots())


def _decode(rec: Any) -> tuple[dict[str, Any], tuple[Any, Any, Any, Any]]:
    """A parsed record checked member by member, and its four amounts; raises
    ``TypeError`` or ``KeyError`` (or ``ValueError``) for anything not a journal record of
    a known version. A chained record keeps ``hash``; a version 1 record has none."""
    if type(rec) is not dict:
        raise TypeError
    version = rec.get("schema_version", 1)
    # Exactly the version's members: their count here, and each one read by name
    # below (a missing one is a KeyError).
    if type(version) is not int or len(rec) not in _MEMBER_COUNTS.get(version, ()):
        raise TypeError
    texts = (rec["delta_available"], rec["delta_locked"], rec["available"], rec["locked"])
    chained = version >= CHAINED_SCHEMA_VERSION
    if (
        type(rec["seq"]) is not int
        or type(rec["account"]) is not str
        or type(rec["asset"]) is not str
        or type(rec["cause"]) is not str
        # The wire's plain decimals only: int() and Decimal() would also take " 5_0",
        # "5e3", "Infinity" or non-ASCII digits. (join raises TypeError if one is not
        # a string.)
        or _AMOUNTS_RE.fullmatch("\x00".join(texts)) is None
        or (chained and (type(rec["hash"]) is not str or len(rec["hash"]) != 64))
        or (chained and type(rec["prev_hash"]) is not str)
    ):
        raise TypeError
    if not chained:
        rec.pop("hash", None)
    try:
        # Whole numbers (cash at 0 decimals, bond face) as ints: twice as fast as
        # Decimal, and as exact.
        d_avail, d_locked, avail, locked = map(int, texts)
        return rec, (d_avail, d_locked, avail, locked)
    except ValueError:
        d_avail_d, d_locked_d, avail_d, locked_d = map(Decimal, texts)
        return rec, (d_avail_d, d_locked_d, avail_d, locked_d)


def _undecodable(value: bytes | None, key: bytes | None) -> str:
    if value is None:
        return "no value (a tombstone)"
    head = value[:120].decode("utf-8", "backslashreplace")
    missing = ""
    try:
        obj = orjson.loads(value)
        if isinstance(obj, dict):
            version = obj.get("schema_version", 1)
            want = _MEMBERS.get(version) if type(version) is int else None
            if want is None:
                missing = f"; schema_version {version!r} is not 1 or 2"
            else:
                absent = sorted(want - obj.keys() - ({"schema_version"} if version == 1 else set()))
                extra = sorted(obj.keys() - want)
                missing = (
                    f"; missing {absent}" if absent
                    else f"; unknown members {extra}" if extra
                    else "; a member has the wrong type or form"
                )  # fmt: skip
        else:
            missing = "; not a JSON object"
    except orjson.JSONDecodeError:
        missing = "; not JSON"
    return f"{head!r}{missing}" + (f" (key {key[:80]!r})" if key is not None else "")
