"""Bytes <-> kessai's internal messages, for its two internal topics. Pure.

``kessai-ledger-commands`` carries :data:`~streams.ledger.messages.LedgerCommand` s and
``kessai-settlement-inbox`` :data:`~streams.settlement.messages.InboxMessage` s (the
public topics' models live in :mod:`schemas`). Each record is a JSON object: the
message's fields and its class name as ``type``, encoded with orjson. A record that
does not decode is a bug in kessai, not bad input, so it raises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

import orjson

from streams.ledger.messages import LEDGER_COMMAND_TYPES, LedgerCommand, Move
from streams.settlement.messages import INBOX_TYPES, InboxMessage

__all__ = ["inbox_message", "ledger_command", "to_wire"]

#: orjson writes integers of 64 bits at most; units go up to ``UNITS_MAX`` (10**30).
_INT_MAX: Final = 2**63 - 1


def _fit(value: Any) -> Any:
    # An integer past 64 bits travels as its decimal string (_decode turns it back).
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT_MAX:
        return str(value)
    return value


def to_wire(message: LedgerCommand | InboxMessage) -> bytes:
    """The record value of any internal message."""
    fields = {k: _fit(v) for k, v in dataclasses.asdict(message).items()}
    return orjson.dumps({"type": type(message).__name__, **fields})


def ledger_command(raw: bytes) -> LedgerCommand:
    """A ``kessai-ledger-commands`` record's message."""
    message: LedgerCommand = _decode(raw, LEDGER_COMMAND_TYPES)
    return message


def inbox_message(raw: bytes) -> InboxMessage:
    """A ``kessai-settlement-inbox`` record's message."""
    message: InboxMessage = _decode(raw, INBOX_TYPES)
    return message


def _decode(raw: bytes, types: Mapping[str, type[Any]]) -> Any:
    data = orjson.loads(raw)
    cls = types[data.pop("type")]
    if cls is Move and data.get("source") is not None:
        data["source"] = tuple(data["source"])
    for f in dataclasses.fields(cls):
        if f.type == "int" and isinstance(data.get(f.name), str):
            data[f.name] = int(data[f.name])
    return cls(**data)
