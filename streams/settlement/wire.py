"""Bytes <-> kessai's internal messages (ledger commands, moves, trades, replies, ticks).

Internal topics only; the public topics' models live in :mod:`schemas`. JSON with a
``type`` field, encoded with orjson. A record that does not decode is a bug in
kessai, not bad input, so it raises.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from streams.settlement.core import LockCmd, PostCmd, Reply, Trade, VoidCmd
from streams.settlement.steps import Credit, Move, Tick

_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (LockCmd, PostCmd, VoidCmd, Credit, Reply, Tick, Trade, Move)
}


def to_wire(message: Any) -> bytes:
    return orjson.dumps({"type": type(message).__name__, **dataclasses.asdict(message)})


def from_wire(raw: bytes) -> Any:
    data = orjson.loads(raw)
    cls = _TYPES[data.pop("type")]
    if cls is Move and data.get("source") is not None:
        data["source"] = tuple(data["source"])
    return cls(**data)
