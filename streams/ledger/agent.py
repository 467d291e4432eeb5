"""Ledger agents: deposits and withdrawals in, an account's balance changes out.

Two agents, so that each account partition has exactly one writer:

- ``intake`` (stateless) reads ``payments`` and ``custody``, rejects what does not
  decode or validate, and forwards each good record as a ``Move`` command onto
  ``kessai-ledger-commands`` (key account).
- ``ledger`` reads only ``kessai-ledger-commands``: moves from the intake and locks,
  posts, voids and credits from the settlement saga. It owns the ``accounts``,
  ``applied`` and ``inflow`` tables and runs each command through
  :func:`streams.settlement.steps.account_step`, emitting ``ledger-events``, replies
  to the saga's inbox, credits to counterparties, and ``rejections``.

Why one input topic: faust gives every source partition its own transactional
producer, so outputs caused by records of *different* input topics reach Kafka in
whichever order their transactions commit. An account's journal and its changelog
row would then be written out of order (``seq`` 1, 3, 2; and a stale row winning the
changelog). With one input, one producer writes everything about an account, in
processing order (docs/exactly-once.md, hole 9). Neither agent raises on a record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import StreamT, TopicT

from schemas import (
    CUSTODY,
    LEDGER_EVENTS,
    PAYMENTS,
    REJECTIONS,
    BalanceChanged,
    SchemaError,
    encode,
    rejection_for,
)
from streams import wire
from streams.config import Settings
from streams.ledger import intake as intake_rules
from streams.ledger import views
from streams.ledger.handler import add_inflow, handle_command
from streams.runtime.metrics import Metrics
from streams.security import signing
from streams.settlement import steps

LEDGER_COMMANDS = "kessai-ledger-commands"
#: The settlement saga's single input: trades, the ledger's replies, clock ticks.
SETTLEMENT_INBOX = "kessai-settlement-inbox"


def raw_topic(app: faust.App, *names: str, partitions: int) -> TopicT:
    # Bytes in, bytes out: schemas.codec and settlement.wire own bytes <-> model.
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


def rejection(source_topic: str, key: bytes | None, raw: bytes, reason: str, detail: str) -> bytes:
    error = SchemaError(reason, detail)  # type: ignore[arg-type]
    return encode(rejection_for(source_topic, key, raw, error, at=datetime.now(UTC)))


def register(app: faust.App, settings: Settings, metrics: Metrics) -> dict[str, Any]:
    """Define the ledger's topics, tables and agents on ``app``."""
    n = settings.partitions
    bridges = raw_topic(app, PAYMENTS, CUSTODY, partitions=n)
    commands = raw_topic(app, LEDGER_COMMANDS, partitions=n)
    inbox = raw_topic(app, SETTLEMENT_INBOX, partitions=n)
    ledger_events = raw_topic(app, LEDGER_EVENTS, partitions=n)
    rejections = raw_topic(app, REJECTIONS, partitions=n)
    # Values kept as their JSON bytes, decoded on each use (~1 µs with orjson): a dict
    # per account cost 688 bytes of memory where its bytes take 126 (the memory bench,
    # notes/2026-11-25-bench-part2.md). The changelog holds the same JSON as before, so
    # either form recovers from the other's changelog.
    accounts = app.Table(  # value_type=bytes: faust's "raw" codec
        "accounts", default=bytes, partitions=n, key_type=str, value_type=bytes
    )
    applied = app.Table("applied", default=bool, partitions=n, key_type=str)
    # Net external inflow per asset (deposits - withdrawals applied, smallest units as
    # decimal strings), one row per command partition, written only while handling
    # that partition: the conservation gauge compares it with the balances.
    inflow = app.Table("inflow", default=dict, partitions=n, key_type=str)
    tokens = settings.tokens
    signers, _ = signing.for_worker(settings)

    def decimals_of(asset: str) -> int:
        return tokens.get(asset, 0)  # bonds count whole yen of face value

    @app.agent(bridges, concurrency=1)
    async def intake(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            topic, key, value = event.message.topic, event.message.key, event.value
            move = intake_rules.intake_record(topic, key, value, tokens, signers)
            if isinstance(move, tuple):
                await rejections.send(key=key, value=rejection(topic, key, value, *move))
                metrics.rejected(topic, move[0])
                continue
            await commands.send(key=move.account.encode(), value=wire.to_wire(move))

    @app.agent(commands, concurrency=1)
    async def ledger(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            command = wire.from_wire(event.value)
            out = handle_command(accounts, applied, command, decimals_of)
            if isinstance(command, steps.Move) and out.records:  # applied, not refused
                row = str(event.message.partition)
                inflow[row] = add_inflow(inflow.get(row), command)
            if out.rejection is not None:
                topic, text_key, raw, reason, detail = out.rejection
                key = text_key.encode() if text_key is not None else None
                await rejections.send(
                    key=key, value=rejection(topic, key, raw.encode(), reason, detail)
                )
                metrics.rejected(topic, reason)
            for record in out.records:
                # Validated by the model (and so encoded through the codec) like every
                # record kessai writes; the hash was taken over these same strings.
                await ledger_events.send(
                    key=record["account"].encode(),
                    value=encode(BalanceChanged.model_validate(record)),
                )
            for (kind, to), sent in out.sends:
                topic_out = commands if kind == "account" else inbox
                await topic_out.send(key=to.encode(), value=wire.to_wire(sent))
            metrics.ledger_events(len(out.records))

    views.register(app, accounts, tokens)
    return {
        "intake": intake,
        "ledger": ledger,
        "accounts": accounts,
        "applied": applied,
        "inflow": inflow,
    }
