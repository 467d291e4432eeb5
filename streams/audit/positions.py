"""Positions: one account's balance in one asset, how they print, and the reference fold.

What ``kessai positions`` prints (:func:`render`: a table, JSON or CSV) comes from the
journal fold of :mod:`streams.audit.fold`. :func:`positions_from_events` folds the same
journal the slow and obvious way, through the pydantic models: it is the reference the
fast fold is tested against (and what the demo and the crash tests check balances
with). Both refuse a journal whose ``seq`` or balances contradict themselves
(:class:`JournalError`): a position read from it would be a number nobody can stand
behind.

Pure: reading the topic is the caller's job (read_committed, so aborted transactions
never count).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from typing import Final, Literal, Protocol

from schemas import LEDGER_EVENTS, BalanceChanged, SchemaError, decode
from streams.errors import KessaiError

__all__ = [
    "FORMATS",
    "JournalError",
    "Position",
    "RawRecord",
    "decode_records",
    "positions_from_events",
    "render",
    "render_csv",
    "render_json",
    "render_table",
    "select",
]

Format = Literal["table", "json", "csv"]
FORMATS: Final[tuple[Format, ...]] = ("table", "json", "csv")

#: Digits kept when adding a balance and a delta. Wire decimals are at most 64
#: characters, so an exact sum needs fewer than 130 digits; the Inexact trap turns any
#: rounding (which would make a wrong sum look right) into an error instead.
_SUM_DIGITS_MAX: Final = 256
_EXACT: Final = Context(prec=_SUM_DIGITS_MAX, traps=[Inexact, InvalidOperation, Overflow])
#: How much of an undecodable record's key an error quotes.
_KEY_CHARS_MAX: Final = 80

_COLUMNS: Final = ("account", "asset", "available", "locked")


class JournalError(KessaiError):
    """The ledger journal contradicts itself; no balance read from it can be trusted.

    ``account`` and ``seq`` name the record at fault, when it could be read at all.
    """

    def __init__(self, account: str | None, seq: int | None, detail: str) -> None:
        # All as args, so that the error pickles intact.
        super().__init__(account, seq, detail)
        self.account = account
        self.seq = seq
        self.detail = detail

    def __str__(self) -> str:
        where = "" if self.account is None else f" at account {self.account!r} seq {self.seq}"
        return f"ledger journal is inconsistent{where}: {self.detail}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Position:
    """One account's balance in one asset, after the journal record numbered ``seq``."""

    account: str
    asset: str
    available: Decimal
    locked: Decimal
    #: The account's ``seq`` of the last record that changed this asset.
    seq: int


class RawRecord(Protocol):
    """What :func:`decode_records` needs of a consumed record (an aiokafka ConsumerRecord)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


def decode_records(records: Iterable[RawRecord]) -> Iterator[BalanceChanged]:
    """Each record's :class:`~schemas.BalanceChanged`, in the order given.

    kessai wrote every record on the journal, so one that does not decode is not bad
    input to reject but a journal that cannot be replayed: :class:`JournalError`.
    """
    for record in records:
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        if record.key is not None:
            key = record.key.decode("utf-8", "backslashreplace")[:_KEY_CHARS_MAX]
            where += f" (key {key!r})"
        if record.value is None:
            raise JournalError(None, None, f"{where}: no value (a tombstone)")
        try:
            yield decode(LEDGER_EVENTS, record.value)
        except SchemaError as err:
            raise JournalError(None, None, f"{where}: does not decode: {err}") from None


def positions_from_events(values: Iterable[BalanceChanged]) -> dict[tuple[str, str], Position]:
    """Replay balance changes into each ``(account, asset)``'s last position.

    Accounts may be interleaved, but each account's records must come in journal
    order, as Kafka keeps them (one key, one partition): seq 1, 2, 3, ... A seq that
    is not the account's previous one plus 1 (a gap, a repeat, a reordering), or a
    balance that is not the previous one plus the delta, raises :class:`JournalError`.
    An asset's first record starts from 0 available and 0 locked.
    """
    positions: dict[tuple[str, str], Position] = {}
    seq_last: dict[str, int] = {}
    for event in values:
        seq_expected = seq_last.get(event.account, 0) + 1
        if event.seq != seq_expected:
            what = "missing" if event.seq > seq_expected else "repeated or out of order"
            raise JournalError(
                event.account,
                event.seq,
                f"expected seq {seq_expected} next, got {event.seq} ({what})",
            )
        seq_last[event.account] = event.seq
        key = (event.account, event.asset)
        before = positions.get(key)
        available_before = Decimal(0) if before is None else before.available
        locked_before = Decimal(0) if before is None else before.locked
        for name, old, delta, new in (
            ("available", available_before, event.delta_available, event.available),
            ("locked", locked_before, event.delta_locked, event.locked),
        ):
            if _EXACT.add(old, delta) != new:
                raise JournalError(
                    event.account,
                    event.seq,
                    f"{event.asset} {name}: {_text(old)} + {_text(delta)} "
                    f"is not {_text(new)} (cause {event.cause})",
                )
        positions[key] = Position(
            account=event.account,
            asset=event.asset,
            available=event.available,
            locked=event.locked,
            seq=event.seq,
        )
    return positions


def select(
    positions: Iterable[Position], *, account: str | None = None, asset: str | None = None
) -> list[Position]:
    """The positions of ``account`` and in ``asset`` (None: any), by account then asset."""
    chosen = (
        p
        for p in positions
        if (account is None or p.account == account) and (asset is None or p.asset == asset)
    )
    return sorted(chosen, key=lambda p: (p.account, p.asset))


def render(positions: Iterable[Position], fmt: Format) -> str:
    """``positions`` as text in ``fmt``; see the ``render_*`` functions."""
    if fmt == "json":
        return render_json(positions)
    if fmt == "csv":
        return render_csv(positions)
    assert fmt == "table", fmt
    return render_table(positions)


def render_table(positions: Iterable[Position]) -> str:
    """Aligned columns for people: names left, amounts right. Ends with a newline."""
    rows = [_COLUMNS, *(_row(p) for p in _sorted(positions))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = [
        f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d:>{widths[3]}}"
        for a, b, c, d in rows
    ]
    return "\n".join(lines) + "\n"


def render_json(positions: Iterable[Position]) -> str:
    """A JSON array of ``{account, asset, available, locked}``, amounts as decimal strings.

    Strings, as on the wire: a JSON number may be read back through a float.
    """
    rows = [dict(zip(_COLUMNS, _row(p), strict=True)) for p in _sorted(positions)]
    return json.dumps(rows, indent=2) + "\n"


def render_csv(positions: Iterable[Position]) -> str:
    """CSV with the header ``account,asset,available,locked``.

    Lines end in ``\\n``, not RFC 4180's ``\\r\\n``: this goes to a terminal or a pipe.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_COLUMNS)
    writer.writerows(_row(p) for p in _sorted(positions))
    return out.getvalue()


def _sorted(positions: Iterable[Position]) -> list[Position]:
    return sorted(positions, key=lambda p: (p.account, p.asset))


def _row(position: Position) -> tuple[str, str, str, str]:
    return (position.account, position.asset, _text(position.available), _text(position.locked))


def _text(amount: Decimal) -> str:
    # As the codec writes it: "f" never uses exponent notation.
    return format(amount, "f")
