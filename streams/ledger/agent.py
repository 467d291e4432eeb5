"""Ledger agents: deposits and withdrawals in, an account's balance changes out.

Two agents, so that each account partition has exactly one writer:

- ``intake`` (stateless) reads ``payments`` and ``custody``, rejects what does not
  decode or validate, and forwards each good record as a ``Move`` command onto
  ``kessai-ledger-commands`` (key account).
- ``ledger`` reads only ``kessai-ledger-commands``: moves from the intake and locks,
  posts, voids and credits from the settlement saga. It owns the ``accounts`` and
  ``applied`` tables and runs each command through
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
    MoveBonds,
    MoveCash,
    SchemaError,
    decode,
    encode,
    rejection_for,
)
from streams.config import Settings
from streams.ledger import core, journal
from streams.settlement import steps, wire

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


def register(app: faust.App, settings: Settings) -> dict[str, Any]:
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
    tokens = settings.tokens

    def decimals_of(asset: str) -> int:
        return tokens.get(asset, 0)  # bonds count whole yen of face value

    def to_move(
        command: MoveCash | MoveBonds, source: tuple[str, str | None, str]
    ) -> steps.Move | core.LedgerRejection:
        if isinstance(command, MoveBonds):
            return steps.Move(
                f"custody:{command.movement_id}",
                command.account,
                command.isin,
                command.quantity,
                command.kind,
                source,
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
            f"payment:{command.payment_id}",
            command.account,
            command.token,
            units,
            command.kind,
            source,
        )

    @app.agent(bridges, concurrency=1)
    async def intake(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            topic, key, value = event.message.topic, event.message.key, event.value
            try:
                decoded = decode(topic, value)
            except SchemaError as err:
                await rejections.send(
                    key=key, value=rejection(topic, key, value, err.reason, err.detail)
                )
                continue
            assert isinstance(decoded, MoveCash | MoveBonds), type(decoded)
            text_key = key.decode("utf-8", "replace") if key is not None else None
            move = to_move(decoded, (topic, text_key, value.decode()))
            if isinstance(move, core.LedgerRejection):
                await rejections.send(
                    key=key, value=rejection(topic, key, value, move.reason, move.detail)
                )
                continue
            await commands.send(key=move.account.encode(), value=wire.to_wire(move))

    @app.agent(commands, concurrency=1)
    async def ledger(stream: StreamT[bytes]) -> None:
        async for message in stream:
            command = wire.from_wire(message)
            account = command.account
            command_id = (
                command.command_id
                if isinstance(command, steps.Move)
                else getattr(command, "cause", None)
            )
            before = core.AccountState.from_bytes(accounts[account])
            fx = steps.account_step(
                before,
                account,
                command,
                already_applied=bool(command_id and applied[command_id]),
            )
            if fx.rejection is not None:
                if isinstance(command, steps.Move) and command.source is not None:
                    topic, text_key, raw = command.source
                    key = text_key.encode() if text_key is not None else None
                    await rejections.send(
                        key=key,
                        value=rejection(
                            topic, key, raw.encode(), fx.rejection.reason, fx.rejection.detail
                        ),
                    )
                continue
            # The chain's tip goes into the state, so it commits with the records.
            records = journal.chain(before, fx.state, fx.postings, decimals_of)
            accounts[account] = fx.state.to_bytes()
            for command_id in fx.applied:
                applied[command_id] = True
            for record in records:
                # Validated by the model (and so encoded through the codec) like every
                # record kessai writes; the hash was taken over these same strings.
                await ledger_events.send(
                    key=record["account"].encode(),
                    value=encode(BalanceChanged.model_validate(record)),
                )
            for (kind, to), out in fx.sends:
                topic_out = commands if kind == "account" else inbox
                await topic_out.send(key=to.encode(), value=wire.to_wire(out))

    return {"intake": intake, "ledger": ledger, "accounts": accounts, "applied": applied}
