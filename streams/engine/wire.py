"""The engine's output records, built as plain dicts without pydantic. Pure.

Every record the engine writes is built from values it already checked, so it is not
validated again on the way out (~140 µs a trade through the models: docs/adr/0031).
Each builder here writes exactly what ``encode(Model.model_validate(record))`` writes:
the same members in the same order, the same strings
(``tests/unit/engine/test_wire.py`` checks every kind against the models). The
``ledger-events`` records need no builder: :func:`streams.ledger.journal.balance_changed`
already builds their wire objects.

Also the engine's trade rows: an open saga as JSON and back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import orjson

from streams.money import from_units
from streams.settlement import saga as dvp
from streams.settlement.fails import Penalty
from streams.settlement.messages import Trade

__all__ = ["SAGA_ROW_START", "penalty", "saga_from_row", "saga_row", "settlement", "utc_text"]


def utc_text(at: datetime) -> str:
    """A UTC time as the models write it: ISO 8601, ``Z`` for ``+00:00``."""
    return at.isoformat().replace("+00:00", "Z")


def settlement(
    trade: Trade,
    status: str,
    reason: str | None,
    tokens: Mapping[str, int],
    at: str,
    part: dvp.Part | None = None,
) -> dict[str, Any]:
    """The ``settlements`` record (:class:`schemas.SettlementStatusChanged`) of one
    status change of ``trade``, stamped ``at`` (:func:`utc_text`); with the ``part``
    it settled, when it settles in parts."""
    record: dict[str, Any] = {
        "schema_version": 1,
        "trade_id": trade.trade_id,
        "status": status,
        "reason": reason,
        "isin": trade.isin,
        "buyer": trade.buyer,
        "seller": trade.seller,
        "quantity": trade.quantity,
        "cash_amount": format(from_units(trade.cash_units, tokens[trade.currency]), "f"),
        "currency": trade.currency,
        "at": at,
    }
    # A converted trade's terms are in whole yen, its cash in its token (fx_rate).
    terms_decimals = 0 if trade.fx_rate else tokens[trade.currency]
    if trade.trade_date:
        decimals = terms_decimals
        assert trade.principal_units is not None and trade.accrued_units is not None
        record["trade_date"] = trade.trade_date
        record["settlement_date"] = trade.settlement_date
        record["price"] = trade.price
        record["principal"] = format(from_units(trade.principal_units, decimals), "f")
        record["accrued"] = format(from_units(trade.accrued_units, decimals), "f")
        if trade.days_accrued is not None:
            record["days_accrued"] = trade.days_accrued
    if trade.fx_rate:
        record["fx_rate"] = trade.fx_rate
        record["fx_source"] = trade.fx_source
        record["fx_time"] = trade.fx_time
    if part is not None:
        decimals = tokens[trade.currency]
        record["part"] = part.number
        record["part_quantity"] = part.quantity
        record["part_cash_amount"] = format(from_units(part.cash_units, decimals), "f")
        if part.principal_units is not None and part.accrued_units is not None:
            principal, accrued = part.principal_units, part.accrued_units
            record["part_principal"] = format(from_units(principal, terms_decimals), "f")
            record["part_accrued"] = format(from_units(accrued, terms_decimals), "f")
    if trade.signed:
        record["signed_trade"] = trade.signed
    return record


#: How an open saga's row starts (:func:`saga_row`): a restore tells open from finished
#: trades without parsing every row.
SAGA_ROW_START = b'{"saga":'


def penalty(
    trade: Trade,
    p: Penalty,
    *,
    day: str,
    fail_day: int,
    policy: str,
    base_units: int,
    tokens: Mapping[str, int],
    at: str,
) -> dict[str, Any]:
    """The ``penalties`` record (:class:`schemas.FailPenalty`) of ``p``, one party's
    penalty for fail day ``fail_day`` (``day``, ISO) of ``trade``, on ``base_units``."""
    decimals = tokens[trade.currency]
    return {
        "schema_version": 1,
        "penalty_id": f"{trade.trade_id}:{day}:{p.side}",
        "trade_id": trade.trade_id,
        "day": day,
        "fail_day": fail_day,
        "side": p.side,
        "liable": p.liable,
        "counterparty": p.counterparty,
        "reason": p.reason,
        "policy": policy,
        "base": format(from_units(base_units, decimals), "f"),
        "rate": format(p.rate, "f"),
        "per": p.per,
        "amount": format(from_units(p.units, decimals), "f"),
        "currency": trade.currency,
        "isin": trade.isin,
        "at": at,
    }


#: The fields of a trade and of a saga, in their order: what ``dataclasses.asdict`` walks.
_TRADE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Trade))
_SAGA_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(dvp.Saga) if f.name != "trade"
)
#: Fields added after rows were first written (issue 21: a converted trade's rate, the
#: cash its parts paid), left out at their defaults: a row written before them and the
#: row a replay derives for the same saga are the same bytes, and a JPYC trade's row
#: carries nothing it does not use. :func:`saga_from_row` gives them their defaults.
_LATER_TRADE_FIELDS: Final = {"fx_rate": "", "fx_source": "", "fx_time": ""}
_LATER_SAGA_FIELDS: Final = {"cash_paid": 0}


def saga_row(saga: dvp.Saga) -> bytes:
    """The engine's trade row of an open saga: ``{"saga": dataclasses.asdict(saga)}``,
    built field by field (every value is a str, number, bool or None: nothing to copy;
    asdict's deep copies took a third of a failing trade's batches, cProfile of
    ``make bench-fails``). ``tests/unit/engine/test_wire.py`` checks they agree."""
    t = saga.trade
    trade = {name: getattr(t, name) for name in _TRADE_FIELDS}
    for name, default in _LATER_TRADE_FIELDS.items():
        if trade[name] == default:
            del trade[name]
    row: dict[str, Any] = {"trade": trade}
    for name in _SAGA_FIELDS:
        row[name] = getattr(saga, name)
    for later, zero in _LATER_SAGA_FIELDS.items():
        if row[later] == zero:
            del row[later]
    return orjson.dumps({"saga": row})


def saga_from_row(raw: Mapping[str, Any]) -> dvp.Saga:
    data = dict(raw)
    trade = Trade(**data.pop("trade"))
    return dvp.Saga(trade=trade, **data)
