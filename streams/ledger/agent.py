"""Ledger agents: deposits and withdrawals in, an account's balance changes out.

Two agents, so that each account partition has exactly one writer:

- ``intake`` (stateless) reads ``payments`` and ``custody``, rejects what does not
  decode or validate, and forwards each good record as a ``Move`` command onto
  ``kessai-ledger-commands`` (key account).
- ``ledger`` reads only ``kessai-ledger-commands``: moves from the intake and locks,
  posts, voids and credits from the settlement saga. It owns the ``accounts``,
  ``applied`` and ``inflow`` tables and hands each command to
  :func:`streams.ledger.handler.handle_command`, then emits ``ledger-events``, replies
  to the saga's inbox, credits to counterparties, and ``rejections``.

Why one input topic: docs/adr/0001-one-input-topic-per-stateful-agent.md. Neither
agent raises on a record.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import StreamT

from schemas import (
    CUSTODY,
    LEDGER_EVENTS,
    PAYMENTS,
    REJECTIONS,
    BalanceChanged,
    encode,
    source_of,
)
from streams import topics, wire
from streams.config import Settings
from streams.ledger import intake as intake_rules
from streams.ledger import views
from streams.ledger.handler import Ledger, handle_command
from streams.runtime.agentkit import raw_topic, rejection
from streams.runtime.metrics import Metrics
from streams.security import signing


def register(app: faust.App, settings: Settings, metrics: Metrics) -> dict[str, Any]:
    """Define the ledger's topics, tables and agents on ``app``."""
    n = settings.partitions
    bridges = raw_topic(app, PAYMENTS, CUSTODY, partitions=n)
    commands = raw_topic(app, topics.LEDGER_COMMANDS, partitions=n)
    inbox = raw_topic(app, topics.SETTLEMENT_INBOX, partitions=n)
    ledger_events = raw_topic(app, LEDGER_EVENTS, partitions=n)
    rejections = raw_topic(app, REJECTIONS, partitions=n)
    # Values kept as their JSON bytes, decoded on each use (~1 µs with orjson):
    # docs/adr/0003-table-rows-as-bytes.md.
    accounts = app.Table(  # value_type=bytes: faust's "raw" codec
        topics.ACCOUNTS_TABLE, default=bytes, partitions=n, key_type=str, value_type=bytes
    )
    applied = app.Table(topics.APPLIED_TABLE, default=bool, partitions=n, key_type=str)
    # One row per command partition, written only while handling that partition.
    inflow = app.Table(topics.INFLOW_TABLE, default=dict, partitions=n, key_type=str)
    ledger_state = Ledger(accounts, applied, inflow)
    tokens = settings.tokens
    signers, _ = signing.for_worker(settings)

    def decimals_of(asset: str) -> int:
        return tokens.get(asset, 0)  # bonds count whole yen of face value

    @app.agent(bridges, concurrency=1)
    async def intake(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            where = (msg.partition, msg.offset)
            move = intake_rules.intake_record(msg.topic, msg.key, event.value, tokens,
                signing.current(signers), where=where, arrived_s=msg.timestamp)  # fmt: skip
            if isinstance(move, tuple):
                source = source_of(msg.topic, *where, msg.key, event.value)
                key, value = rejection(source, *move)
                await rejections.send(key=key, value=value)
                metrics.rejected(msg.topic, move[0])
                continue
            await commands.send(key=move.account.encode(), value=wire.to_wire(move))

    @app.agent(commands, concurrency=1)
    async def ledger(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            command = wire.ledger_command(event.value)
            out = handle_command(ledger_state, event.message.partition, command, decimals_of)
            # The metrics' running sums (a scrape no longer walks every account).
            metrics.live.apply(out.postings, out.locks_delta)
            if out.rejection is not None:
                key, value = rejection(*out.rejection)
                await rejections.send(key=key, value=value)
                metrics.rejected(out.rejection[0][0], out.rejection[1])
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
