"""What one ``trades`` record becomes: its checks, and the saga's trade. Pure.

:func:`check_record` decodes the record, checks its key and (when signatures are
checked) the venue's signature; :func:`to_trade` turns a checked trade into the saga's
:class:`~streams.settlement.messages.Trade` (cash leg in units, deadline fixed from the
record's broker time), or says why it is rejected. The engine
(:mod:`streams.engine.core`) calls both, and looks the trade id up in between: a
repeated id is a ``duplicate``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final, Protocol

from schemas import TRADES, FxRate, Instrument, SchemaError, TradeExecuted, check_key, decode
from streams.bonds import terms
from streams.money import (
    TRADE_TOKENS_MAX,
    TRADE_UNITS_MAX,
    cash_units,
    from_units,
    trade_units_max,
)
from streams.security import signing
from streams.settlement import fx
from streams.settlement.messages import Trade

__all__ = ["Checked", "Master", "Rejected", "check_record", "deadline_at", "to_trade"]

#: Why a record was rejected: (reason code, detail).
Rejected = tuple[str, str]


@dataclass(frozen=True)
class Master:
    """The engine's JGB rules (issue 20): its settlement lag in business days, and its
    security master (None: ISINs are not looked up, as before it existed)."""

    lag: int
    instruments: Mapping[str, Instrument] | None


class Executed(Protocol):
    """What :func:`to_trade` reads of a trade: a decoded ``TradeExecuted``, or a fill the
    engine made itself (streams/engine/orders.py), whose values its checks made."""

    @property
    def trade_id(self) -> str: ...
    @property
    def venue(self) -> str: ...
    @property
    def isin(self) -> str: ...
    @property
    def buyer(self) -> str: ...
    @property
    def seller(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def currency(self) -> str: ...
    @property
    def trade_time(self) -> datetime: ...
    @property
    def trade_date(self) -> date | None: ...
    @property
    def settlement_date(self) -> date | None: ...
    @property
    def accrued_interest(self) -> Decimal | None: ...
    @property
    def partial(self) -> str | None: ...
    @property
    def fx_rate(self) -> Decimal | None: ...
    @property
    def fx_source(self) -> str | None: ...
    @property
    def fx_time(self) -> datetime | None: ...


def to_trade(
    t: Executed,
    arrived_s: float,
    *,
    tokens: dict[str, int],
    deadline_s: float,
    signed: str = "",
    master: Master | None = None,
    cutoff_s: float | None = None,
    ahead_s: float | None = None,
    memo: DatedMemo | None = None,
    fx_rules: fx.FxRules | None = None,
    references: Mapping[str, FxRate] | None = None,
    token_limit: bool = False,
) -> Trade | Rejected:
    """The saga's trade for a decoded one that arrived at ``arrived_s`` (broker time).

    Its deadline is ``deadline_s`` after the venue's signed ``trade_time``, bounded by
    the arrival: a trade stamped ahead of its arrival counts from its arrival (a venue
    cannot buy itself time), one that arrives more than ``deadline_s`` after its
    ``trade_time`` has until its arrival (it settles in its own batch or fails)
    (docs/security.md, M1). With a ``master`` (issue 20): the instrument's checks, the
    trade and settlement dates, kessai's accrued interest (streams/bonds/terms.py), and
    a deadline counted from the settlement date's start when that is later. Without
    one, the trade is taken as before dates existed (an old batch's replay).

    ``cutoff_s`` (the recycle mode, streams/settlement/fails.py): a dated trade's
    deadline is its settlement date's cut-off, this long after the date's 00:00 JST.
    ``ahead_s``: a ``trade_time`` more than this after the arrival is refused,
    ``invalid_trade_time``. ``memo``: the dated terms of trades already taken, reused
    for another of the same terms (:func:`_dated_memo`). ``fx_rules`` (with a
    ``master``): a trade in a token other than JPYC is priced in yen and converted once
    at its ``fx_rate``, checked against ``references`` (streams/settlement/fx.py).
    ``token_limit``: a cash leg is at most :data:`~streams.money.TRADE_TOKENS_MAX`
    whole tokens (issue 21); False: at most 64 bits of units, as before."""
    if t.currency not in tokens:
        known = ", ".join(sorted(tokens))
        return "unknown_token", f"currency {t.currency!r} is not configured ({known})"
    decimals = tokens[t.currency]
    trade_time_s = t.trade_time.timestamp()
    if ahead_s is not None and trade_time_s > arrived_s + ahead_s:
        return _ahead(t, arrived_s, ahead_s)
    deadline = deadline_at(trade_time_s, arrived_s, deadline_s)
    extra: dict[str, Any] = {}
    if master is None:
        # Exact (streams/money.py); the schema's decimals never make it raise.
        units = cash_units(t.quantity, t.price, t.accrued_interest or Decimal(0), decimals)
    else:
        taken = _terms(t, master, decimals, trade_time_s, memo, fx_rules, references or {})
        if isinstance(taken, tuple):
            return taken
        units, extra = taken.units, taken.fields
        if cutoff_s is None:
            deadline = max(deadline, taken.starts_at_s + deadline_s)
        else:
            deadline = taken.starts_at_s + cutoff_s
    if units <= 0:
        return "invalid_price", f"cash leg of {t.trade_id} truncates to 0 {t.currency}"
    if units > (trade_units_max(decimals) if token_limit else TRADE_UNITS_MAX):
        most = f"{TRADE_TOKENS_MAX:,} {t.currency}" if token_limit else f"{TRADE_UNITS_MAX} units"
        return "invalid_price", f"cash leg of {t.trade_id} is more than {most}"
    return Trade(
        t.trade_id, t.isin, t.buyer, t.seller, t.quantity, t.currency, units, deadline,
        trade_time_s=trade_time_s, arrived_s=arrived_s, signed=signed,
        partial=t.partial == "allowed", venue=t.venue, **extra,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Terms:
    """A dated trade's cash in units, the start of its settlement date, and the fields
    of :class:`Trade` its terms fill."""

    units: int
    starts_at_s: float
    fields: dict[str, Any]


def _terms(
    t: Executed,
    master: Master,
    decimals: int,
    trade_time_s: float,
    memo: DatedMemo | None,
    fx_rules: fx.FxRules | None,
    references: Mapping[str, FxRate],
) -> _Terms | Rejected:
    """A dated trade's terms (:func:`to_trade`): in its token, or in yen converted once
    at its FX rate."""
    instrument = None if master.instruments is None else master.instruments.get(t.isin)
    quote = _quote(t, fx_rules, references)
    if isinstance(quote, tuple):
        return quote
    # Converted: its terms are in yen (whole yen, as JPYC's), its cash in the token.
    priced, priced_decimals = (t.currency, decimals) if quote is None else (YEN, 0)
    dated = _dated_memo(t, instrument, master, priced, priced_decimals, trade_time_s, memo)
    if isinstance(dated, tuple):
        return dated
    units = dated.principal_units + dated.accrued_units
    # By hand: dataclasses.asdict deep-copies, and took a third of a dated trade's
    # intake (cProfile; docs/performance.md).
    fields = {name: getattr(dated, name) for name in _DATED_FIELDS}
    if quote is not None:
        units = fx.convert(units, quote.rate, decimals)
        fields.update(fx_rate=format(quote.rate, "f"), fx_source=quote.source,
                      fx_time=quote.at.isoformat().replace("+00:00", "Z"))  # fmt: skip
    return _Terms(units, dated.starts_at_s, fields)


#: The token prices are in: a trade in any other converts (streams/settlement/fx.py).
YEN: Final = terms.YEN_TOKEN


def _quote(
    t: Executed, rules: fx.FxRules | None, references: Mapping[str, FxRate]
) -> fx.Quote | Rejected | None:
    """The rate ``t`` converts at (None: it does not: a JPYC trade, or no FX rules, as
    before they existed), or why it is refused."""
    if rules is None:
        return None
    if t.currency == YEN:
        if t.fx_rate is not None:
            return "invalid_fx_rate", f"{t.trade_id} is paid in {YEN}: it carries no fx_rate"
        return None
    if t.fx_rate is None or t.fx_source is None or t.fx_time is None:
        return (
            "fx_rate_required",
            f"{t.trade_id} is paid in {t.currency}: it needs fx_rate (yen per "
            f"{t.currency}), fx_source and fx_time",
        )
    quote = fx.Quote(t.fx_rate, t.fx_source, t.fx_time)
    refused = fx.check(quote, t.trade_time, t.currency, references.get(t.currency), rules)
    return quote if refused is None else refused


def _ahead(t: Executed, arrived_s: float, ahead_s: float) -> Rejected:
    arrived = datetime.fromtimestamp(arrived_s, UTC).isoformat()
    return (
        "invalid_trade_time",
        f"trade_time {t.trade_time.isoformat()} of {t.trade_id} is more than {ahead_s:g} s "
        f"ahead of its arrival {arrived}",
    )


@dataclass(frozen=True)
class _Dated:
    """The fields of :class:`Trade` that issue 20 added."""

    price: str
    trade_date: str
    settlement_date: str
    principal_units: int
    accrued_units: int
    days_accrued: int | None
    starts_at_s: float


_DATED_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(_Dated))


#: Dated terms by what they depend on (:func:`_dated_memo`), with the instrument they
#: were computed from.
DatedMemo = dict[tuple[Any, ...], tuple[Instrument | None, _Dated]]
#: Entries a memo keeps before it starts again.
DATED_MEMO_MAX: Final = 4_096


def _dated_memo(
    t: Executed,
    instrument: Instrument | None,
    master: Master,
    priced: str,
    decimals: int,
    trade_time_s: float,
    memo: DatedMemo | None,
) -> _Dated | Rejected:
    """:func:`_dated`, reused from ``memo`` for a trade of the same terms: the same
    instrument (the very object: a new version of the security master is another),
    bond, currency priced in, face, price as written, trade date in Japan, dates and
    accrued sent, lag. A refusal is never kept (its detail names the trade)."""
    if memo is None:
        return _dated(t, instrument, master, priced, decimals)
    key = (
        t.isin, priced, t.quantity, str(t.price), terms.jst_date(trade_time_s),
        t.trade_date, t.settlement_date, t.accrued_interest, master.lag,
        master.instruments is None, decimals,
    )  # fmt: skip
    found = memo.get(key)
    if found is not None and found[0] is instrument:
        return found[1]
    dated = _dated(t, instrument, master, priced, decimals)
    if not isinstance(dated, tuple):
        if len(memo) >= DATED_MEMO_MAX:
            memo.clear()
        memo[key] = (instrument, dated)
    return dated


def _dated(
    t: Executed, instrument: Instrument | None, master: Master, priced: str, decimals: int
) -> _Dated | Rejected:
    """The dated terms of ``t`` in ``priced`` (its currency, or yen when it converts)."""
    if master.instruments is not None:
        refused = terms.check_trade(instrument, t.isin, t.quantity, t.price, priced)
        if refused is not None:
            return refused
    dates = terms.trade_dates(
        t.trade_time.timestamp(),
        t.trade_date,
        t.settlement_date,
        lag=master.lag,
        maturity=None if instrument is None else instrument.maturity_date,
    )
    if isinstance(dates, tuple):
        return dates
    computed = terms.trade_accrued(instrument, priced, t.quantity, dates.settlement_date)
    if computed is None:  # the venue's, as sent (0 if none)
        accrued_units = cash_units(0, Decimal(1), t.accrued_interest or Decimal(0), decimals)
        days = None
    else:
        expected = from_units(computed.jpy * 10**decimals, decimals)
        if t.accrued_interest is not None and t.accrued_interest != expected:
            return (
                "accrued_mismatch",
                f"accrued_interest of {t.trade_id}: expected {expected} {priced} "
                f"({computed.days} days from {computed.last_coupon}), got {t.accrued_interest}",
            )
        accrued_units = computed.jpy * 10**decimals
        days = None if instrument is not None and instrument.kind == "discount" else computed.days
    return _Dated(
        price=format(t.price, "f"),
        trade_date=dates.trade_date.isoformat(),
        settlement_date=dates.settlement_date.isoformat(),
        principal_units=cash_units(t.quantity, t.price, Decimal(0), decimals),
        accrued_units=accrued_units,
        days_accrued=days,
        starts_at_s=dates.starts_s,
    )


def deadline_at(trade_time_s: float, arrived_s: float, deadline_s: float) -> float:
    """``trade_time_s`` + ``deadline_s``, with ``trade_time_s`` bounded to
    [``arrived_s`` - ``deadline_s``, ``arrived_s``]: see :func:`to_trade`."""
    return min(max(trade_time_s, arrived_s - deadline_s), arrived_s) + deadline_s


@dataclass(frozen=True)
class Checked:
    """A trade that decoded, is keyed by its id, and (when checked) is signed by a
    signer who may: from here on its id is used up, whatever follows."""

    trade: TradeExecuted
    #: The signed record, as settlements carry it ("" when signatures are off).
    signed: str


def check_record(
    key: bytes | None,
    value: bytes | None,
    *,
    signers: signing.Registry | None = None,
    arrived_s: float = 0.0,
    verified: dict[str, Any] | Rejected | None = None,
) -> Checked | Rejected:
    """Decode, check the key and (with ``signers``) the venue's signature
    (streams/security/signing.py). ``verified``: what :func:`signing.verify` answered
    for these bytes with ``signers``, already (:mod:`streams.engine.signatures`).

    A trade must be keyed by its ``trade_id``: every copy of an id then reaches the
    one partition whose ``seen`` state can tell it is a repeat, whichever worker owns
    it (and ``kessai replay`` decides as the agents did).
    """
    try:
        check_key(key)
        decoded = decode(TRADES, value)
    except SchemaError as err:
        return err.reason, err.detail
    assert isinstance(decoded, TradeExecuted)
    assert value is not None  # decode refuses a tombstone
    signed = ""
    if key != decoded.trade_id.encode():
        return "wrong_key", f"a trade is keyed by its trade_id {decoded.trade_id!r}, not {key!r}"
    if signers is not None:
        record = (
            verified
            if verified is not None
            else signing.verify(signers, TRADES, key, value, signing.broker_time(arrived_s))
        )
        if isinstance(record, tuple):
            return record
        signed = signing.evidence(record)
    return Checked(decoded, signed)
