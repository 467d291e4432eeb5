"""Settlement agents: trades in, DvP sagas and ``settlements`` out.

Two agents, so that each trade partition has exactly one writer (see
:mod:`streams.ledger.agent` for why that matters under faust's per-partition
transactions):

- ``trade_intake`` reads ``trades``; it rejects what does not decode or validate and
  any ``trade_id`` seen before (table ``seen-trades``), and forwards each new trade,
  with its deadline fixed from the record's timestamp, onto the saga's inbox.
- ``settlement`` reads only ``kessai-settlement-inbox`` (key trade_id): new trades,
  the ledger's replies and clock ticks. It owns the ``sagas`` table, runs each
  message through :func:`streams.settlement.steps.trade_step`, and emits lock, post
  and void commands to the accounts' ledger partitions and status records to
  ``settlements``.

Deadlines are ticks: records in the same exactly-once flow, never bare timers. A
ticker task publishes one per inbox partition with a plain producer; a tick is only
a time signal, so a repeated one is harmless.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from faust.types import StreamT

from schemas import (
    REJECTIONS,
    SETTLEMENTS,
    SchemaError,
    SettlementStatusChanged,
    TradeExecuted,
    decode,
    encode,
)
from streams.config import Settings
from streams.ledger import core as ledger_core
from streams.ledger.agent import LEDGER_COMMANDS, SETTLEMENT_INBOX, raw_topic, rejection
from streams.settlement import core, steps, wire

logger = logging.getLogger(__name__)

TRADES = "trades"


def saga_to_json(saga: core.Saga, partition: int) -> dict[str, Any]:
    return {"p": partition, **dataclasses.asdict(saga)}


def saga_from_json(raw: dict[str, Any]) -> tuple[core.Saga, int]:
    data = dict(raw)
    partition = data.pop("p")
    trade = core.Trade(**data.pop("trade"))
    return core.Saga(trade=trade, **data), partition


def register(app: faust.App, settings: Settings) -> dict[str, Any]:
    n = settings.partitions
    trades = raw_topic(app, TRADES, partitions=n)
    inbox = raw_topic(app, SETTLEMENT_INBOX, partitions=n)
    commands = raw_topic(app, LEDGER_COMMANDS, partitions=n)
    settlements = raw_topic(app, SETTLEMENTS, partitions=n)
    rejections = raw_topic(app, REJECTIONS, partitions=n)
    sagas = app.Table("sagas", default=dict, partitions=n, key_type=str)
    seen = app.Table("seen-trades", default=bool, partitions=n, key_type=str)
    tokens = settings.tokens

    def to_trade(t: TradeExecuted, arrived_s: float) -> core.Trade | tuple[str, str]:
        if t.currency not in tokens:
            known = ", ".join(sorted(tokens))
            return "unknown_token", f"currency {t.currency!r} is not configured ({known})"
        try:
            units = core.cash_units(t.quantity, t.price, t.accrued_interest, tokens[t.currency])
        except ArithmeticError:  # past the cash arithmetic's precision: a raise would stop us
            return "invalid_price", f"cash leg of {t.trade_id} is too large to compute exactly"
        if units <= 0:
            return "invalid_price", f"cash leg of {t.trade_id} truncates to 0 {t.currency}"
        return core.Trade(
            t.trade_id,
            t.isin,
            t.buyer,
            t.seller,
            t.quantity,
            t.currency,
            units,
            arrived_s + settings.settlement_deadline_s,
        )

    async def emit(fx: steps.TradeEffects, trade: core.Trade) -> None:
        for (_, account), command in fx.sends:
            await commands.send(key=account.encode(), value=wire.to_wire(command))
        for status in fx.statuses:
            record = SettlementStatusChanged(
                trade_id=trade.trade_id,
                status=status.status,
                reason=status.reason,
                isin=trade.isin,
                buyer=trade.buyer,
                seller=trade.seller,
                quantity=trade.quantity,
                currency=trade.currency,
                cash_amount=ledger_core.from_units(trade.cash_units, tokens[trade.currency]),
                at=datetime.now(UTC),
            )
            await settlements.send(key=trade.trade_id.encode(), value=encode(record))

    def store(trade_id: str, saga: core.Saga | None, partition: int) -> None:
        if saga is None or saga.terminal:
            if trade_id in sagas:
                del sagas[trade_id]  # finished: only ``seen`` remembers it
        else:
            sagas[trade_id] = saga_to_json(saga, partition)

    @app.agent(trades, concurrency=1)
    async def trade_intake(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            key, value = msg.key, event.value
            try:
                decoded = decode(TRADES, value)
            except SchemaError as err:
                await rejections.send(
                    key=key, value=rejection(TRADES, key, value, err.reason, err.detail)
                )
                continue
            assert isinstance(decoded, TradeExecuted)
            trade = to_trade(decoded, msg.timestamp or time.time())  # faust: seconds
            if isinstance(trade, tuple):
                await rejections.send(key=key, value=rejection(TRADES, key, value, *trade))
                continue
            if seen[trade.trade_id]:
                detail = f"trade {trade.trade_id} was seen before"
                await rejections.send(
                    key=key, value=rejection(TRADES, key, value, "duplicate", detail)
                )
                continue
            seen[trade.trade_id] = True
            await inbox.send(key=trade.trade_id.encode(), value=wire.to_wire(trade))

    @app.agent(inbox, concurrency=1)
    async def settlement(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = wire.from_wire(event.value)
            partition = event.message.partition
            if isinstance(message, steps.Tick):
                for trade_id, raw in list(sagas.items()):
                    # Cheap filter first: a tick only fails sagas of its own
                    # partition past their deadline (core.on_deadline decides).
                    if raw["p"] != partition or raw["trade"]["deadline_at_s"] > message.now_s:
                        continue
                    saga, home = saga_from_json(raw)
                    fx = steps.trade_step(saga, message, seen=True)
                    if fx.saga != saga:
                        await emit(fx, saga.trade)
                        store(trade_id, fx.saga, home)
                continue
            if isinstance(message, core.Trade):
                # New: trade_intake forwards each trade_id once.
                fx = steps.trade_step(None, message, seen=False)
                await emit(fx, message)
                store(message.trade_id, fx.saga, partition)
                continue
            raw = sagas.get(message.trade_id)
            if not raw:
                # The trade finished. A grant that raced its failure is voided by
                # the VoidCmd the failure sent, which the ledger handles after it.
                continue
            saga, home = saga_from_json(raw)
            fx = steps.trade_step(saga, message, seen=True)
            await emit(fx, saga.trade)
            store(message.trade_id, fx.saga, home)

    @app.task  # type: ignore[untyped-decorator]  # faust's task decorator is untyped
    async def ticker() -> None:
        # A plain producer: ticks are time signals, not outputs of an event.
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
        await producer.start()
        try:
            while True:
                raw = wire.to_wire(steps.Tick(time.time()))
                for p in range(n):
                    await producer.send(SETTLEMENT_INBOX, raw, partition=p)
                await asyncio.sleep(settings.tick_interval_s)
        finally:
            await producer.stop()

    return {
        "trade_intake": trade_intake,
        "settlement": settlement,
        "sagas": sagas,
        "seen": seen,
        "ticker": ticker,
    }
