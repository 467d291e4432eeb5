"""Ledger agent: ``payments`` and ``custody`` in, ``ledger-events`` and ``rejections`` out.

Thin on purpose: decode, look up the account, call :mod:`streams.ledger.core`, store
and emit. Both input topics are keyed by account and co-partitioned with the
``accounts`` table, so one worker owns an account's whole state. Bad input becomes a
``rejections`` record and the agent moves on: it never raises on a record.
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


def _rejection(source_topic: str, key: bytes | None, raw: bytes, reason: str, detail: str) -> bytes:
    error = SchemaError(reason, detail)  # type: ignore[arg-type]
    return encode(rejection_for(source_topic, key, raw, error, at=datetime.now(UTC)))


def _raw_topic(app: faust.App, *names: str, partitions: int) -> TopicT:
    # Bytes in, bytes out: schemas.codec owns bytes <-> model, not faust.
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


def register(app: faust.App, settings: Settings) -> dict[str, Any]:
    """Define the ledger's topics, tables and agent on ``app``."""
    inputs = _raw_topic(app, PAYMENTS, CUSTODY, partitions=settings.partitions)
    ledger_events = _raw_topic(app, LEDGER_EVENTS, partitions=settings.partitions)
    rejections = _raw_topic(app, REJECTIONS, partitions=settings.partitions)
    accounts = app.Table(
        "accounts", default=dict, partitions=settings.partitions, key_type=str, value_type=dict
    )
    applied = app.Table(
        "applied", default=bool, partitions=settings.partitions, key_type=str, value_type=bool
    )
    token_decimals = settings.tokens

    @app.agent(inputs, concurrency=1)
    async def ledger(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            topic, key, value = event.message.topic, event.message.key, event.value
            try:
                command = decode(topic, value)
            except SchemaError as err:
                await rejections.send(
                    key=key, value=_rejection(topic, key, value, err.reason, err.detail)
                )
                continue
            if isinstance(command, MoveCash):
                account = command.account
                state = core.AccountState.from_json(accounts[account])
                command_id = f"payment:{command.payment_id}"
                result = core.move_cash(
                    state,
                    command_id=command_id,
                    account=command.account,
                    token=command.token,
                    amount=command.amount,
                    kind=command.kind,
                    tokens=token_decimals,
                    duplicate=applied[command_id],
                )
            else:
                assert isinstance(command, MoveBonds), type(command)
                account = command.account
                state = core.AccountState.from_json(accounts[account])
                command_id = f"custody:{command.movement_id}"
                result = core.move_bonds(
                    state,
                    command_id=command_id,
                    account=command.account,
                    isin=command.isin,
                    quantity=command.quantity,
                    kind=command.kind,
                    duplicate=applied[command_id],
                )
            if isinstance(result, core.LedgerRejection):
                await rejections.send(
                    key=key, value=_rejection(topic, key, value, result.reason, result.detail)
                )
                continue
            new_state, postings = result
            accounts[account] = new_state.to_json()
            applied[command_id] = True
            for posting in postings:
                decimals = token_decimals.get(posting.asset, 0)
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

    return {"ledger": ledger, "accounts": accounts, "applied": applied}
