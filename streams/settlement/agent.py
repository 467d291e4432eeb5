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
import logging
import time
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from faust.types import StreamT

from schemas import REJECTIONS, SETTLEMENTS, encode
from streams import wire
from streams.config import Settings
from streams.kafka import auth as kafkaauth
from streams.ledger.agent import LEDGER_COMMANDS, SETTLEMENT_INBOX, raw_topic, rejection
from streams.runtime.metrics import Metrics
from streams.security import signing
from streams.settlement import handler, steps, views
from streams.settlement import intake as trade_rules
from streams.settlement import saga as core

# Re-exported: the crash tests and the memory bench read saga rows as the agent writes them.
from streams.settlement.handler import saga_from_json, saga_to_json  # noqa: F401

logger = logging.getLogger(__name__)

TRADES = "trades"


def register(app: faust.App, settings: Settings, metrics: Metrics) -> dict[str, Any]:
    n = settings.partitions
    trades = raw_topic(app, TRADES, partitions=n)
    inbox = raw_topic(app, SETTLEMENT_INBOX, partitions=n)
    commands = raw_topic(app, LEDGER_COMMANDS, partitions=n)
    settlements = raw_topic(app, SETTLEMENTS, partitions=n)
    rejections = raw_topic(app, REJECTIONS, partitions=n)
    sagas = app.Table("sagas", default=dict, partitions=n, key_type=str)
    seen = app.Table("seen-trades", default=bool, partitions=n, key_type=str)
    outcomes = app.Table("outcomes", default=dict, partitions=n, key_type=str)
    tokens = settings.tokens
    signers, _ = signing.for_worker(settings)
    views.register(app, sagas, outcomes, tokens)

    async def emit(out: handler.InboxOutputs) -> None:
        for account, command in out.commands:
            await commands.send(key=account.encode(), value=wire.to_wire(command))
        for trade, status in out.statuses:
            record = handler.status_record(trade, status, tokens, datetime.now(UTC))
            await settlements.send(key=trade.trade_id.encode(), value=encode(record))
            metrics.settlement(status.status, status.reason)
            metrics.recent_settlements.append(record.model_dump(mode="json"))
            if status.status == "settled":
                metrics.settled(trade.trade_time_s, trade.arrived_s, time.time())

    @app.agent(trades, concurrency=1)
    async def trade_intake(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            key, value = msg.key, event.value
            trade = trade_rules.intake_record(
                key,
                value,
                msg.timestamp or time.time(),  # faust: seconds
                tokens=tokens,
                deadline_s=settings.settlement_deadline_s,
                signers=signers,
            )
            if isinstance(trade, core.Trade) and seen[trade.trade_id]:
                trade = trade_rules.duplicate(trade)
            if isinstance(trade, tuple):
                await rejections.send(key=key, value=rejection(TRADES, key, value, *trade))
                metrics.rejected(TRADES, trade[0])
                continue
            seen[trade.trade_id] = True
            await inbox.send(key=trade.trade_id.encode(), value=wire.to_wire(trade))
            metrics.trade_received()

    @app.agent(inbox, concurrency=1)
    async def settlement(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = wire.from_wire(event.value)
            out = handler.handle_inbox(sagas, event.message.partition, message, outcomes)
            if out.repeated is not None:
                logger.warning("trade %s reached the sagas twice: ignored", out.repeated)
                metrics.rejected(SETTLEMENT_INBOX, "repeated_trade")
            await emit(out)

    @app.task  # type: ignore[untyped-decorator]  # faust's task decorator is untyped
    async def ticker() -> None:
        # A plain producer: ticks are time signals, not outputs of an event.
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap, **kafkaauth.client_kwargs(settings)
        )
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
        "outcomes": outcomes,
        "ticker": ticker,
    }
