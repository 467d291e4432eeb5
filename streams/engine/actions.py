"""Coupons and redemptions, paid by the settlement engine as its clock passes their
times (docs/bonds.md). Pure: functions of a :class:`~streams.engine.core.Batch`.

For each bond it pays (:func:`streams.bonds.coupons.pays`) the engine keeps its next
event (``schedule``): when the batch clock passes the event's record time,
:func:`due` takes the holders from the engine's own accounts at that instant (settled
positions, available and locked: what ``kessai positions --as-of`` the record time
shows) into a **run**; at maturity it first fails the bond's open trades
(``instrument_matured``), cancels the bond's open orders (their reservations go
back: streams/engine/orders.py), and burns every holding. When the clock passes the payment
time, the run is paid from the paying agent's JPYC account: one withdrawal of the
total (cause ``coupon:{isin}:{date}``, ``redemption:...`` at maturity) and one deposit
per holder (``...:{account}``), each id used once (a second run of the same coupon
pays nothing). A paying agent short of the total pays nothing, and the run waits,
reported every batch (``kessai_coupon_runs_unfunded``), until it is funded.

State: ``schedule`` and ``runs`` on the engine, rows in ``{app_id}-engine-actions``
(``next:{isin}`` and the run ids), so a restored engine and a replay pay the same.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from schemas import (
    RESERVES,
    Instrument,
    ReserveAttested,
)
from streams.bonds import coupons
from streams.bonds.coupons import Event
from streams.bonds.terms import YEN_TOKEN
from streams.engine import orders
from streams.ledger import domain
from streams.ledger.messages import Move
from streams.settlement import saga as dvp
from streams.settlement.messages import Trade

if TYPE_CHECKING:
    from streams.engine.core import Batch, Engine, Rules

__all__ = ["Event", "Run", "claim", "due", "holders_due", "on_instrument", "restore_row", "rows"]

#: The row key of a bond's next event, and of its attested reserve.
NEXT = "next:"
RESERVE = "reserve:"


def attested(
    batch: Batch, key: bytes | None, value: bytes | None, at_s: float, where: tuple[int, int]
) -> tuple[str, str] | None:
    """A ``reserves`` record: the custodian's attested holding replaces the last one;
    or why it is refused."""
    record = batch.signed_record(RESERVES, "isin", key, value, at_s, where)
    if isinstance(record, tuple):
        return record
    assert isinstance(record, ReserveAttested)
    # Prefixed, as payment and custody ids are: a raw id could use up another's
    # (a coupon run's withdrawal, a claim's credit).
    attestation = f"attestation:{record.attestation_id}"
    if attestation in batch.engine.applied:
        return "duplicate", f"attestation {record.attestation_id} was applied before"
    batch.use(attestation)
    batch.engine.reserves[record.isin] = record.face
    batch.actions_touched.add(RESERVE + record.isin)
    return None


def breaches(engine: Engine) -> list[tuple[str, int, int]]:
    """(isin, face minted, face attested) of each bond whose minted supply (custody
    deposits less withdrawals and burns: the engine's inflow) exceeds the custodian's
    last attested holding."""
    return [
        (isin, engine.inflow.get(isin, 0), face)
        for isin, face in sorted(engine.reserves.items())
        if engine.inflow.get(isin, 0) > face
    ]


@dataclass(frozen=True, slots=True)
class Run:
    """An event whose record time passed: who is paid what face, not yet paid."""

    event: Event
    #: (account, face held at the record time), by account.
    holders: tuple[tuple[str, int], ...]

    def to_bytes(self) -> bytes:
        return orjson.dumps({**_event_json(self.event), "holders": self.holders})


def _event_json(event: Event) -> dict[str, Any]:
    return {"isin": event.isin, "date": event.date.isoformat(), "redemption": event.redemption}


def _event(raw: dict[str, Any]) -> Event:
    return Event(raw["isin"], dt.date.fromisoformat(raw["date"]), bool(raw["redemption"]))


def restore_row(engine: Engine, key: str, value: bytes | None) -> None:
    """Apply one ``engine-actions`` row read back at a restore."""
    schedule, runs = engine.schedule, engine.runs
    if key.startswith(RESERVE):
        isin = key[len(RESERVE) :]
        if value is None:
            engine.reserves.pop(isin, None)
        else:
            engine.reserves[isin] = int(value)
    elif key.startswith(NEXT):
        isin = key[len(NEXT) :]
        if value is None:
            schedule.pop(isin, None)
        else:
            schedule[isin] = _event(orjson.loads(value))
    elif value is None:
        runs.pop(key, None)
    else:
        raw = orjson.loads(value)
        runs[key] = Run(_event(raw), tuple((a, int(f)) for a, f in raw["holders"]))


def rows(engine: Engine, keys: set[str]) -> list[tuple[str, bytes | None]]:
    """The rows of ``keys`` as they stand (None: deleted)."""
    schedule, runs = engine.schedule, engine.runs
    out: list[tuple[str, bytes | None]] = []
    for key in sorted(keys):
        if key.startswith(RESERVE):
            face = engine.reserves.get(key[len(RESERVE) :])
            out.append((key, None if face is None else b"%d" % face))
        elif key.startswith(NEXT):
            event = schedule.get(key[len(NEXT) :])
            out.append((key, None if event is None else orjson.dumps(_event_json(event))))
        else:
            run = runs.get(key)
            out.append((key, None if run is None else run.to_bytes()))
    return out


def on_instrument(batch: Batch, instrument: Instrument) -> None:
    """A bond published: its first event after the clock is scheduled (those before
    were paid before kessai knew it). A bond published again keeps its schedule."""
    engine = batch.engine
    if instrument.isin in engine.schedule or not coupons.pays(instrument):
        return
    event = coupons.first_event_after(instrument, batch.now_s)
    if event is not None:
        engine.schedule[instrument.isin] = event
        batch.actions_touched.add(NEXT + instrument.isin)


def holders_due(engine: Engine, rules: Rules, now_s: float) -> bool:
    """Whether a coupon's or redemption's record time has passed and its holders are
    not yet taken: the service then commits a batch of no inputs first, so that the
    holders are what the journal says as of the record time, and no input read in the
    batch that crosses it counts (docs/bonds.md)."""
    if rules.paying_agent is None or YEN_TOKEN not in rules.tokens:
        return False
    return any(e.record_s <= now_s for e in engine.schedule.values())


def due(batch: Batch) -> None:
    """Record the events whose record time passed, then pay the runs due."""
    engine, now = batch.engine, batch.now_s
    if batch.rules.paying_agent is None or YEN_TOKEN not in batch.rules.tokens:
        return
    for isin in sorted(engine.schedule):
        event: Event | None = engine.schedule[isin]
        while event is not None and event.record_s <= now:
            _record(batch, event)
            event = coupons.next_event(engine.instruments[isin], event.date)
        if event is not engine.schedule[isin]:
            batch.actions_touched.add(NEXT + isin)
            if event is None:
                del engine.schedule[isin]
            else:
                engine.schedule[isin] = event
    for run_id in sorted(engine.runs):
        run = engine.runs[run_id]
        if run.event.pay_s <= now:
            _pay(batch, run)


def claim(batch: Batch, trade: Trade, part: dvp.Part | None = None) -> None:
    """``trade`` settled now (or ``part`` of it): for each coupon whose record time
    passed after its settlement date began, the seller (the holder of record) pays the
    buyer that coupon on the face delivered, a **market claim** (cause
    ``claim:{trade_id}:{date}``, a part's ``claim:{trade_id}:{date}:p{n}``, the buyer's
    credit ``.../credit``). JPYC trades of bonds kessai pays only; the seller was just
    paid the cash, so it can."""
    engine = batch.engine
    instrument = engine.instruments.get(trade.isin)
    if (
        instrument is None
        or not coupons.pays(instrument)
        or trade.currency != YEN_TOKEN
        or not trade.settlement_date
    ):
        return
    scale = 10 ** batch.rules.tokens[YEN_TOKEN]
    pending = engine.schedule.get(trade.isin)
    event = coupons.next_event(instrument, dt.date.fromisoformat(trade.settlement_date))
    # Only the events whose holders were recorded: one whose record time passed in this
    # batch is recorded at its end, with this trade's buyer as the holder.
    while event is not None and not event.redemption and _recorded(event, pending):
        face = trade.quantity if part is None else part.quantity
        units = coupons.coupon_jpy(face, instrument.coupon_rate) * scale
        claim_id = f"claim:{trade.trade_id}:{event.date.isoformat()}"
        if part is not None:
            claim_id += f":p{part.number}"
        available = batch.peek(trade.seller).balances.get(YEN_TOKEN, [0, 0])[0]
        if units and claim_id not in engine.applied:
            if available >= units:
                batch.command(Move(claim_id, trade.seller, YEN_TOKEN, units, "withdrawal"))
                batch.command(Move(f"{claim_id}/credit", trade.buyer, YEN_TOKEN, units, "deposit"))
                batch.out.claims.append((trade.trade_id, event.date.isoformat(), units // scale))
            else:
                batch.out.claims_unpaid.append(
                    (trade.trade_id, event.date.isoformat(), units // scale)
                )
        event = coupons.next_event(instrument, event.date)


def _recorded(event: Event, pending: Event | None) -> bool:
    """Whether ``event``'s holders were taken: the bond's next event is a later one."""
    return pending is None or pending.date > event.date


def _record(batch: Batch, event: Event) -> None:
    engine = batch.engine
    if event.redemption:
        if batch.rules.starts_before_redemption:
            # A trade whose settlement date began before the record time settles (or
            # starts locking) first: one batch may cross both, after a stop.
            batch.start_due(event.record_s, before=True)
        for trade_id in sorted(t for t, s in engine.open.items() if s.trade.isin == event.isin):
            batch.saga_step(trade_id, engine.open[trade_id], dvp.on_matured(engine.open[trade_id]))
        batch.run()
        # Its orders end first: their reservations go back, so the holdings burnt
        # below are whole (streams/engine/orders.py).
        orders.close_books(batch, event.isin)
    holders = tuple(_holders(batch, event.isin))
    run = Run(event, holders)
    engine.runs[event.id] = run
    batch.actions_touched.add(event.id)
    if event.redemption:
        for account, face in holders:
            batch.move(Move(f"{event.id}:{account}/burn", account, event.isin, face, "withdrawal"))
        matured = engine.instruments[event.isin].model_copy(update={"status": "matured"})
        batch.instrument_changed(matured)


def _holders(batch: Batch, isin: str) -> list[tuple[str, int]]:
    """Every account holding ``isin`` now (available + locked), by account. Rows not
    touched in this batch are searched as bytes first: a coupon run reads every
    account, and few hold one bond."""
    engine, touched = batch.engine, batch.touched_accounts()
    needle = f'"{isin}"'.encode()
    out = []
    for account in sorted(set(engine.accounts) | set(touched)):
        state = touched.get(account)
        if state is None:
            raw = engine.accounts[account]
            if needle not in raw:
                continue
            state = domain.AccountState.from_bytes(raw)
        balance = state.balances.get(isin)
        if balance is not None and balance[0] + balance[1] > 0:
            out.append((account, balance[0] + balance[1]))
    return out


def _pay(batch: Batch, run: Run) -> None:
    engine, event = batch.engine, run.event
    instrument = engine.instruments[event.isin]
    scale = 10 ** batch.rules.tokens[YEN_TOKEN]
    amounts = [
        (
            account,
            (coupons.coupon_jpy(face, instrument.coupon_rate) + (face if event.redemption else 0))
            * scale,
        )
        for account, face in run.holders
    ]
    total = sum(units for _, units in amounts)
    agent = batch.rules.paying_agent
    assert agent is not None
    available = batch.peek(agent).balances.get(YEN_TOKEN, [0, 0])[0]
    if total > available:
        if all(u[0] != event.id for u in batch.out.unfunded):  # once a batch
            batch.out.unfunded.append((event.id, total, available))
        return
    if total:
        batch.move(Move(event.id, agent, YEN_TOKEN, total, "withdrawal"))
    for account, units in amounts:
        if units:
            batch.move(Move(f"{event.id}:{account}", account, YEN_TOKEN, units, "deposit"))
    del engine.runs[event.id]
    batch.actions_touched.add(event.id)
    batch.out.paid.append((event.id, len(amounts), total // scale))
