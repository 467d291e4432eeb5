"""Settlement agents: trades in, DvP sagas and ``settlements`` out.

Two agents, so that each trade partition has exactly one writer
(docs/adr/0001-one-input-topic-per-stateful-agent.md):

- ``trade_intake`` reads ``trades`` and hands each record to
  :func:`streams.settlement.intake.handle_trade`: what does not decode or validate, and
  any ``trade_id`` seen before (table ``seen-trades``), is rejected; each new trade,
  its deadline fixed from the record's timestamp, goes onto the sagas' inbox.
- ``settlement`` reads only ``kessai-settlement-inbox`` (key trade_id): new trades,
  the ledger's replies and clock ticks. It owns the ``sagas`` and ``outcomes`` tables,
  hands each message to :func:`streams.settlement.handler.handle_inbox`, and emits
  lock, post and void commands to the accounts' ledger partitions and status records
  to ``settlements``.

Deadlines are ticks: records in the same exactly-once flow, never bare timers
(docs/adr/0005-deadlines-as-tick-records.md). A ticker task publishes one per inbox
partition with a plain producer; a tick is only a time signal, so a repeated one is
harmless.
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

from schemas import REJECTIONS, SETTLEMENTS, TRADES, encode, source_of
from streams import topics, wire
from streams.config import Settings
from streams.kafka import auth
from streams.runtime.agentkit import raw_topic, rejection
from streams.runtime.livesums import SummedTable
from streams.runtime.metrics import Metrics
from streams.security import signing
from streams.security.quota import Limit, Quota
from streams.settlement import handler, views
from streams.settlement import intake as trade_rules
from streams.settlement.messages import Tick

logger = logging.getLogger(__name__)


def register(app: faust.App, settings: Settings, metrics: Metrics) -> dict[str, Any]:
    n = settings.partitions
    trades = raw_topic(app, TRADES, partitions=n)
    inbox = raw_topic(app, topics.SETTLEMENT_INBOX, partitions=n)
    sagas = app.Table(topics.SAGAS_TABLE, default=dict, partitions=n, key_type=str)
    seen = app.Table(topics.SEEN_TRADES_TABLE, default=bool, partitions=n, key_type=str)
    outcomes = app.Table(topics.OUTCOMES_TABLE, default=dict, partitions=n, key_type=str)
    views.register(app, sagas, outcomes, settings.tokens)
    # Writes keep the metrics' running sums (a scrape no longer walks every saga).
    summed = SummedTable(sagas, metrics.live.saga)
    emit = _emitter(app, settings, metrics)
    signers, _ = signing.for_worker(settings)
    rejections = raw_topic(app, REJECTIONS, partitions=n)
    rates = app.Table(topics.TRADE_RATES_TABLE, partitions=n, key_type=str, value_type=bytes)
    quota = Quota(rates, Limit(settings.venue_rate_per_s, settings.venue_burst))

    @app.agent(trades, concurrency=1)
    async def trade_intake(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            key, value = msg.key, event.value
            trade = trade_rules.handle_trade(
                seen,
                key,
                value,
                msg.timestamp or time.time(),  # faust: seconds
                tokens=settings.tokens,
                deadline_s=settings.settlement_deadline_s,
                signers=signing.current(signers),
                quota=quota,
                partition=msg.partition,
            )
            if isinstance(trade, tuple):
                source = source_of(TRADES, msg.partition, msg.offset, key, value)
                out_key, out_value = rejection(source, *trade)
                await rejections.send(key=out_key, value=out_value)
                metrics.rejected(TRADES, trade[0])
                continue
            await inbox.send(key=trade.trade_id.encode(), value=wire.to_wire(trade))
            metrics.trade_received()

    @app.agent(inbox, concurrency=1)
    async def settlement(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = wire.inbox_message(event.value)
            out = handler.handle_inbox(summed, event.message.partition, message, outcomes)
            if out.repeated is not None:
                logger.warning("trade %s reached the sagas twice: ignored", out.repeated)
                metrics.rejected(topics.SETTLEMENT_INBOX, "repeated_trade")
            await emit(out)

    return {
        "trade_intake": trade_intake,
        "settlement": settlement,
        "sagas": sagas,
        "seen": seen,
        "outcomes": outcomes,
        "ticker": _ticker(app, settings),
    }


def _emitter(app: faust.App, settings: Settings, metrics: Metrics) -> Any:
    """What the sagas' outputs become: ledger commands and ``settlements`` records."""
    n, tokens = settings.partitions, settings.tokens
    commands = raw_topic(app, topics.LEDGER_COMMANDS, partitions=n)
    settlements = raw_topic(app, SETTLEMENTS, partitions=n)

    async def emit(out: handler.InboxOutputs) -> None:
        for command in out.commands:
            await commands.send(key=command.account.encode(), value=wire.to_wire(command))
        for trade, status in out.statuses:
            record = handler.status_record(trade, status, tokens, datetime.now(UTC))
            await settlements.send(key=trade.trade_id.encode(), value=encode(record))
            metrics.settlement(status.status, status.reason)
            metrics.recent_settlements.append(record.model_dump(mode="json"))
            if status.status == "settled":
                metrics.settled(trade.trade_time_s, trade.arrived_s, time.time())

    return emit


def _ticker(app: faust.App, settings: Settings) -> Any:
    """The task that publishes a clock tick per inbox partition every tick interval."""

    @app.task  # type: ignore[untyped-decorator]  # faust's task decorator is untyped
    async def ticker() -> None:
        # A plain producer: ticks are time signals, not outputs of an event.
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap, **auth.client_kwargs(settings)
        )
        await producer.start()
        try:
            while True:
                raw = wire.to_wire(Tick(time.time()))
                for p in range(settings.partitions):
                    await producer.send(topics.SETTLEMENT_INBOX, raw, partition=p)
                await asyncio.sleep(settings.tick_interval_s)
        finally:
            await producer.stop()

    return ticker
