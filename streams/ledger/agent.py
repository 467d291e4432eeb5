"""Ledger agent: an account's partition in, its balance changes out.

It reads ``payments`` and ``custody`` (deposits and withdrawals from the bridges)
and the internal ``kessai-ledger-commands`` (locks, posts, voids and credits from
the settlement saga). All three are keyed by account and co-partitioned with the
``accounts`` table, so one worker owns an account's whole state. Each record goes
through :func:`streams.settlement.steps.account_step`; the agent only decodes,
stores and emits: ``ledger-events``, replies to the saga, credits to counterparties,
and ``rejections`` for bad input. It never raises on a record.
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
    MoveBonds,
    MoveCash,
    SchemaError,
    decode,
    encode,
    rejection_for,
)
from streams.config import Settings
from streams.ledger import core
from streams.settlement import steps, wire

LEDGER_COMMANDS = "kessai-ledger-commands"
SETTLEMENT_REPLIES = "kessai-settlement-replies"


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


def register(app: faust.App, settings: Settings) -> dict[str, Any]:
    """Define the ledger's topics, tables and agent on ``app``."""
    n = settings.partitions
    inputs = raw_topic(app, PAYMENTS, CUSTODY, LEDGER_COMMANDS, partitions=n)
    commands = raw_topic(app, LEDGER_COMMANDS, partitions=n)
    replies = raw_topic(app, SETTLEMENT_REPLIES, partitions=n)
    ledger_events = raw_topic(app, LEDGER_EVENTS, partitions=n)
    rejections = raw_topic(app, REJECTIONS, partitions=n)
    accounts = app.Table("accounts", default=dict, partitions=n, key_type=str)
    applied = app.Table("applied", default=bool, partitions=n, key_type=str)
    tokens = settings.tokens

    def to_move(command: MoveCash | MoveBonds) -> steps.Move | core.LedgerRejection:
        if isinstance(command, MoveBonds):
            return steps.Move(
                f"custody:{command.movement_id}",
                command.account,
                command.isin,
                command.quantity,
                command.kind,
            )
        if command.token not in tokens:
            known = ", ".join(sorted(tokens))
            return core.LedgerRejection(
                "unknown_token", f"token {command.token!r} is not configured ({known})"
            )
        units = core.to_units(command.amount, tokens[command.token])
        if units is None or units <= 0:
            return core.LedgerRejection(
                "invalid_amount",
                f"{command.amount} {command.token} has more than {tokens[command.token]} decimals",
            )
        return steps.Move(
            f"payment:{command.payment_id}", command.account, command.token, units, command.kind
        )

    @app.agent(inputs, concurrency=1)
    async def ledger(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            topic, key, value = event.message.topic, event.message.key, event.value
            message: Any
            if topic == LEDGER_COMMANDS:
                message = wire.from_wire(value)
                account = message.account
            else:
                try:
                    decoded = decode(topic, value)
                except SchemaError as err:
                    await rejections.send(
                        key=key, value=rejection(topic, key, value, err.reason, err.detail)
                    )
                    continue
                assert isinstance(decoded, MoveCash | MoveBonds), type(decoded)
                message = to_move(decoded)
                if isinstance(message, core.LedgerRejection):
                    await rejections.send(
                        key=key, value=rejection(topic, key, value, message.reason, message.detail)
                    )
                    continue
                account = message.account
            command_id = (
                message.command_id
                if isinstance(message, steps.Move)
                else getattr(message, "cause", None)
            )
            fx = steps.account_step(
                core.AccountState.from_json(accounts[account]),
                account,
                message,
                already_applied=bool(command_id and applied[command_id]),
            )
            if fx.rejection is not None:
                if topic != LEDGER_COMMANDS:
                    await rejections.send(
                        key=key,
                        value=rejection(
                            topic, key, value, fx.rejection.reason, fx.rejection.detail
                        ),
                    )
                continue
            accounts[account] = fx.state.to_json()
            for command_id in fx.applied:
                applied[command_id] = True
            for posting in fx.postings:
                decimals = tokens.get(posting.asset, 0)
                await ledger_events.send(
                    key=posting.account.encode(),
                    value=encode(
                        BalanceChanged(
                            account=posting.account,
                            asset=posting.asset,
                            delta_available=core.from_units(posting.delta_available, decimals),
                            delta_locked=core.from_units(posting.delta_locked, decimals),
                            available=core.from_units(posting.available, decimals),
                            locked=core.from_units(posting.locked, decimals),
                            cause=posting.cause,
                            seq=posting.seq,
                        )
                    ),
                )
            for (kind, to), out in fx.sends:
                topic_out = commands if kind == "account" else replies
                await topic_out.send(key=to.encode(), value=wire.to_wire(out))

    return {"ledger": ledger, "accounts": accounts, "applied": applied}
