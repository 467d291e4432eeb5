"""Bytes <-> kessai's internal messages (ledger commands, moves, trades, replies, ticks).

Internal topics only; the public topics' models live in :mod:`schemas`. JSON with a
``type`` field, encoded with orjson. A record that does not decode is a bug in
kessai, not bad input, so it raises.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from streams.settlement.saga import LockCmd, PostCmd, Reply, Trade, VoidCmd
from streams.settlement.steps import Credit, Move, Tick

_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (LockCmd, PostCmd, VoidCmd, Credit, Reply, Tick, Trade, Move)
}


#: orjson writes integers of 64 bits at most; units go up to ``UNITS_MAX`` (10**30).
_INT_MAX = 2**63 - 1


def _fit(value: Any) -> Any:
    # An integer past 64 bits travels as its decimal string (from_wire turns it back).
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT_MAX:
        return str(value)
    return value


def to_wire(message: Any) -> bytes:
    fields = {k: _fit(v) for k, v in dataclasses.asdict(message).items()}
    return orjson.dumps({"type": type(message).__name__, **fields})


def from_wire(raw: bytes) -> Any:
    data = orjson.loads(raw)
    cls = _TYPES[data.pop("type")]
    if cls is Move and data.get("source") is not None:
        data["source"] = tuple(data["source"])
    for f in dataclasses.fields(cls):
        if f.type == "int" and isinstance(data.get(f.name), str):
            data[f.name] = int(data[f.name])
    return cls(**data)
