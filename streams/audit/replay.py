"""``kessai replay``: re-run the engine (and the matcher inside it) over the committed
logs and reconcile.

Reads every committed record of kessai's topics (read_committed, nothing written) and
re-runs, in this process, the very code the workers run:

1. **the settlement engine** (:mod:`streams.engine.core`), batch by batch as its log
   (``{app_id}-engine-log``, :mod:`streams.engine.manifest`) recorded them: each
   batch's input segments of ``payments``, ``custody``, ``orders``, ``trades`` and the
   rest in the recorded order, at the recorded clock, under the recorded rules
   (tokens, deadline, rate limits). Nothing is re-supplied by the operator: a worker
   run with another deadline replays with that deadline. The engine matches the
   orders itself (issue 21, :mod:`streams.engine.orders`), so the books, their
   reservations and their trades are re-derived with everything else.

Why the engine's log and not only the inputs: which of two trades competing for the
same cash gets it depends on the order the engine applied them in, and which trades
fail depends on the engine's clock. Neither is in the inputs; both are in the log,
which the engine commits with each batch's outputs. The replay checks the log itself
(its batches numbered without a gap, its segments tiling every input partition from
its start: nothing skipped, nothing applied twice, nothing left unapplied) and its
clock against the time the broker appended each batch.

It then compares what it derived with what is committed, and reports each check:

- ``ledger-events``: every account's journal, record for record (hash included);
- ``settlements``: every trade's statuses, in order (``at`` included: it is the batch's
  recorded clock);
- ``order-events``: every book's events, in order;
- ``penalties``: every failing trade's penalties, in order;
- ``rejections``: every rejection, with its reason and detail (its ``at`` aside);
- the engine's state as committed (its changelogs): accounts, trades, applied ids,
  inflow, rate buckets, the security master, coupons, the books' order rows and
  their rate buckets, the archive;
- with ``--worker URL`` (one per worker), the live accounts over the workers' HTTP API
  (:mod:`streams.engine.views`; a standby's 503 is skipped).

Every check names its first difference: where it is on its topic, what was derived
and what was found. The exit code is 1 if any check differs.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from schemas import (
    CANCELLATIONS,
    CLOCK,
    CUSTODY,
    FX_RATES,
    INSTRUMENTS,
    LEDGER_EVENTS,
    ORDER_EVENTS,
    ORDERS,
    PAYMENTS,
    PENALTIES,
    REJECTIONS,
    RESERVES,
    SETTLEMENTS,
    TRADES,
    SchemaError,
    Source,
    encode,
    rejection_for,
)
from streams.config import Settings
from streams.engine import actions, wire
from streams.engine.core import DUST_ROW, FX_ROW, Batch, Engine, Rules
from streams.engine.manifest import Manifest
from streams.kafka.reader import Cut, cuts_for, read_batches, require_history
from streams.ledger import domain as ledger_core
from streams.ledger.documents import position_document
from streams.runtime.web.guard import web_auth_headers
from streams.security import signing
from streams.topics import (
    ENGINE_ACCOUNTS,
    ENGINE_ACTIONS,
    ENGINE_APPLIED,
    ENGINE_ARCHIVE,
    ENGINE_CHANGELOGS,
    ENGINE_INFLOW,
    ENGINE_INSTRUMENTS,
    ENGINE_LOG,
    ENGINE_ORDER_RATES,
    ENGINE_ORDERS,
    ENGINE_RATES,
    ENGINE_TRADES,
    INPUT_TOPICS,
    OUTPUT_TOPICS,
    engine_topic,
)

__all__ = ["Check", "Report", "replay"]

#: Every topic the replay reads, by the name it goes by here (the engine's log is
#: ``{app_id}-engine-log`` on the broker).
TOPICS: Final = (*INPUT_TOPICS, *OUTPUT_TOPICS, ENGINE_LOG)
#: What the engine reads.
ENGINE_INPUTS: Final = (
    PAYMENTS, CUSTODY, TRADES, INSTRUMENTS, RESERVES, CANCELLATIONS, ORDERS, FX_RATES, CLOCK
)  # fmt: skip
#: Tables compared through their changelogs: the engine's.
TABLES: Final = (*ENGINE_CHANGELOGS, ENGINE_ARCHIVE)
#: Differences described per check; all are counted.
EXAMPLES_MAX: Final = 3
#: Characters of a record quoted in a difference.
QUOTE_CHARS_MAX: Final = 400
#: How far a batch's clock may be from the time the broker appended its log record: the
#: engine commits within seconds of reading its clock, so anything near this is a
#: forged or replayed batch.
CLOCK_SKEW_S_MAX: Final = 30.0
#: Concurrent requests to a worker's HTTP API.
HTTP_CONCURRENCY_MAX: Final = 16

#: Where a record is: (topic, partition, offset).
Where = tuple[str, int, int]


@dataclass
class Check:
    """One comparison of derived against committed."""

    name: str
    compared: int = 0
    differences: int = 0
    examples: list[str] = field(default_factory=list)

    def differ(self, text: str) -> None:
        self.differences += 1
        if len(self.examples) < EXAMPLES_MAX:
            self.examples.append(text)

    @property
    def ok(self) -> bool:
        return self.differences == 0


@dataclass
class Report:
    checks: list[Check]
    records_read: int
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def render(self) -> str:
        width = max(len(c.name) for c in self.checks)
        lines = [f"{'check':<{width}}  {'compared':>10}  {'differences':>11}"]
        for c in self.checks:
            mark = "ok" if c.ok else "DIFFERS"
            lines.append(f"{c.name:<{width}}  {c.compared:>10,}  {c.differences:>11,}  {mark}")
        for c in self.checks:
            if c.ok:
                continue
            lines.append("")
            lines.append(f"{c.name}: first differences")
            lines.extend(f"  - {e}" for e in c.examples)
        lines.append("")
        verdict = "the logs and the state agree" if self.ok else "DIFFERENCES FOUND"
        lines.append(f"replayed {self.records_read:,} records in {self.seconds:.1f} s: {verdict}")
        return "\n".join(lines) + "\n"


def _quote(value: Any) -> str:
    text = (
        value
        if isinstance(value, str)
        else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    )
    return text if len(text) <= QUOTE_CHARS_MAX else text[:QUOTE_CHARS_MAX] + "..."


def _at(where: Where) -> str:
    return f"{where[0]}[{where[1]}]@{where[2]}"


def _json(value: bytes | None) -> dict[str, Any]:
    """A committed record's JSON object; anything else wrapped, so it compares unequal."""
    if value is None:
        return {"(tombstone)": None}
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {"(not JSON)": value[:QUOTE_CHARS_MAX].decode("utf-8", "backslashreplace")}
    return obj if isinstance(obj, dict) else {"(not an object)": obj}


def _key(obj: Any) -> bytes:
    """A canonical form for counting equal records."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


# -- reading ---------------------------------------------------------------------------


Log = dict[int, list[Any]]


async def _read(settings: Settings, topic: str, cuts: list[Cut]) -> Log:
    """Every committed record of ``topic`` within ``cuts``, per partition in offset order."""
    out: Log = defaultdict(list)
    async for partition, records in read_batches(settings, topic, cuts):
        out[partition].extend(records)
    return dict(out)


def _records(log: Log) -> Iterable[tuple[int, Any]]:
    for partition in sorted(log):
        for record in log[partition]:
            yield partition, record


# -- the derivation ----------------------------------------------------------------------


@dataclass
class Derived:
    """What the replay derived, each output with where its cause is."""

    rejections: dict[bytes, list[Where]] = field(default_factory=lambda: defaultdict(list))
    journal: dict[str, list[tuple[Where, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    statuses: dict[str, list[tuple[Where, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    order_events: dict[str, list[tuple[Where, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    penalties: dict[str, list[tuple[Where, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    #: The engine's state after the last batch of its log.
    engine: Engine = field(default_factory=Engine)
    #: Finished trades' rows that left the engine's window (ADR 0033), by trade id.
    archive: dict[str, bytes] = field(default_factory=dict)
    #: The checks of the engine's log itself.
    log_checks: list[Check] = field(default_factory=list)


def _rejection(source: Source, reason: str, detail: str) -> bytes:
    error = SchemaError(reason, detail)  # type: ignore[arg-type]
    record = rejection_for(source, error, at=datetime.now(UTC))
    return _key(_without_at(record.model_dump(mode="json")))


def derive(
    logs: Mapping[str, Log], settings: Settings, names: Mapping[str, str] | None = None
) -> Derived:
    """Run the engine over the logs, as :mod:`streams.audit.replay` explains.

    ``names``: the topic each log was read from, where it is not the usual one.
    """
    d = Derived()
    names = {t: (names or {}).get(t, t) for t in TOPICS}
    # The workers' own checks, with the registry they read.
    _derive_engine(d, logs, names, _registry(settings))
    return d


def _derive_engine(
    d: Derived,
    logs: Mapping[str, Log],
    names: Mapping[str, str],
    signers: signing.Registry | None,
) -> None:
    """1. The engine, batch by batch as its log recorded them."""
    inputs = {topic: _by_offset(logs[topic]) for topic in ENGINE_INPUTS}
    tiling = _Tiling({topic: logs[topic] for topic in ENGINE_INPUTS})
    numbering, clock = (
        Check("engine log: batches numbered from 1, no gap"),
        Check("engine log: batch clock vs broker time"),
    )
    for partition, r in _records(logs[ENGINE_LOG]):
        where_log = (names[ENGINE_LOG], partition, r.offset)
        manifest = Manifest.from_bytes(r.value)
        numbering.compared += 1
        if manifest.seq != numbering.compared:
            numbering.differ(f"batch at {_at(where_log)} is #{manifest.seq}, "
                             f"expected #{numbering.compared}")  # fmt: skip
            numbering.compared = manifest.seq
        clock.compared += 1
        # A simulated market's batch (KESSAI_CLOCK=ticks) says what the wall clock was.
        wall = manifest.now_s if manifest.wall_s is None else manifest.wall_s
        skew = wall - r.timestamp / 1000
        if abs(skew) > CLOCK_SKEW_S_MAX:
            clock.differ(f"batch #{manifest.seq} at {_at(where_log)}: its clock is "
                         f"{skew:+,.1f} s off the broker's")  # fmt: skip
        batch = Batch(d.engine, Rules.from_json(manifest.rules), manifest.now_s, signers=signers)
        for seg in manifest.segments:
            tiling.applied(seg, where_log)
            for record in inputs[seg.topic].get(seg.partition, {}).values():
                if seg.start <= record.offset < seg.end:
                    batch.record(seg.topic, seg.partition, record.offset, record.key,
                                 record.value, record.timestamp / 1000)  # fmt: skip
        batch.expire()
        out = batch.finish()
        _collect(d, out.records, where_log)
        d.archive.update((key.decode(), row) for key, row in out.archive)
    d.log_checks = [numbering, clock, tiling.check()]


def _by_offset(log: Log) -> dict[int, dict[int, Any]]:
    return {p: {r.offset: r for r in records} for p, records in log.items()}


def _collect(d: Derived, records: Iterable[tuple[str, bytes | None, bytes]], where: Where) -> None:
    """A batch's outputs, by what they are compared as."""
    for topic, _key_bytes, value in records:
        obj = orjson.loads(value)
        if topic == LEDGER_EVENTS:
            d.journal[obj["account"]].append((where, obj))
        elif topic == SETTLEMENTS:
            d.statuses[obj["trade_id"]].append((where, obj))
        elif topic == PENALTIES:
            d.penalties[obj["trade_id"]].append((where, obj))
        elif topic == ORDER_EVENTS:
            d.order_events[obj["isin"]].append((where, _order_event(obj)))
        else:
            assert topic == REJECTIONS, topic
            d.rejections[_key(_without_at(obj))].append(where)


class _Tiling:
    """The engine's segments must cover each input partition from its start to its end,
    each committed record once: nothing skipped, nothing applied twice, nothing left."""

    def __init__(self, inputs: Mapping[str, Log]) -> None:
        self.inputs = inputs
        self.ends: dict[tuple[str, int], int] = {}
        self.offsets: dict[tuple[str, int], list[int]] = {}
        self.result = Check("engine log: segments tile every input partition")

    def applied(self, seg: Any, where: Where) -> None:
        self.result.compared += 1
        first = self.inputs[seg.topic].get(seg.partition, [])
        start = self.ends.get((seg.topic, seg.partition))
        if start is None:
            start = first[0].offset if first else 0
            if seg.start > start:
                self.result.differ(f"{seg.topic}[{seg.partition}] {start}..{seg.start} "
                                   f"skipped before the batch at {_at(where)}")  # fmt: skip
        elif seg.start < start:
            self.result.differ(f"{seg.topic}[{seg.partition}] from {seg.start} to {start} "
                               f"applied twice at {_at(where)}")  # fmt: skip
        elif self._committed(seg.topic, seg.partition, start, seg.start):
            # A gap of aborted records and transaction markers is no gap: a batch's
            # segment starts at its first committed record.
            self.result.differ(f"{seg.topic}[{seg.partition}] from {start} to {seg.start} "
                               f"skipped at {_at(where)}")  # fmt: skip
        self.ends[(seg.topic, seg.partition)] = seg.end

    def _committed(self, topic: str, partition: int, start: int, end: int) -> int:
        """How many committed records of a partition lie in offsets ``[start, end)``."""
        offsets = self.offsets.get((topic, partition))
        if offsets is None:
            records = self.inputs[topic].get(partition, [])
            offsets = self.offsets[(topic, partition)] = [r.offset for r in records]
        return bisect.bisect_left(offsets, end) - bisect.bisect_left(offsets, start)

    def check(self) -> Check:
        for topic, log in self.inputs.items():
            for partition, records in log.items():
                if not records:
                    continue
                end = self.ends.get((topic, partition), records[0].offset)
                left = sum(1 for r in records if r.offset >= end)
                if left:
                    self.result.differ(
                        f"{topic}[{partition}]: {left} committed record(s) from offset "
                        f"{end} never applied by the engine"
                    )
        return self.result


def _registry(settings: Settings) -> signing.Registry | None:
    if not settings.verify_signatures:
        return None
    # A replay checks signatures as the workers did, with their registry: each record
    # with the key valid when the broker appended it.
    return signing.registry_for(settings, what="a replay")


def _same(obj: dict[str, Any]) -> dict[str, Any]:
    return obj


def _without_at(obj: dict[str, Any]) -> dict[str, Any]:
    # Stamped with the worker's clock when written: no replay can derive it.
    return {k: v for k, v in obj.items() if k != "at"}


def _order_event(obj: dict[str, Any]) -> dict[str, Any]:
    # A rejected record's time may be the worker's clock (its own was not a time).
    return _without_at(obj) if obj.get("event") == "rejected" else obj


# -- the comparisons ---------------------------------------------------------------------


def _compare_sequences(
    check: Check,
    what: str,
    derived: Mapping[str, list[tuple[Where, Any]]],
    committed: Mapping[str, list[tuple[Where, Any]]],
) -> None:
    """Per key, the derived and committed records must be equal, in order."""
    firsts = []
    for key in sorted(set(derived) | set(committed)):
        want, got = derived.get(key, []), committed.get(key, [])
        check.compared += max(len(want), len(got))
        n = next(
            (i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a[1] != b[1]),
            min(len(want), len(got)),
        )
        if n == len(want) == len(got):
            continue
        check.differences += abs(len(want) - len(got)) + sum(
            1 for a, b in zip(want[n:], got[n:], strict=False) if a[1] != b[1]
        )
        cause = f"derived from {_at(want[n][0])}" if n < len(want) else "derived: nothing"
        found = (
            f"found at {_at(got[n][0])}: {_quote(got[n][1])}"
            if n < len(got)
            else ("found: nothing (missing)")
        )
        expected = _quote(want[n][1]) if n < len(want) else ""
        order = want[n][0] if n < len(want) else got[n][0]
        firsts.append((order, f"{what} {key!r} #{n + 1}: {cause}: {expected}; {found}"))
    for _, text in sorted(firsts)[:EXAMPLES_MAX]:
        check.examples.append(text)


def _compare_counts(
    check: Check, derived: Counter[bytes], committed: Mapping[bytes, list[Where]]
) -> None:
    """Two multisets of records: what is missing, what is extra."""
    got = Counter({k: len(v) for k, v in committed.items()})
    check.compared += max(sum(derived.values()), sum(got.values()))
    missing = derived - got
    extra = got - derived
    for value, n in sorted(missing.items())[:EXAMPLES_MAX]:
        check.examples.append(f"derived but not committed (x{n}): {_quote(value.decode())}")
    for value, n in sorted(extra.items(), key=lambda kv: committed[kv[0]][0])[:EXAMPLES_MAX]:
        where = _at(committed[value][0])
        check.examples.append(
            f"committed at {where} but not derived (x{n}): {_quote(value.decode())}"
        )
    check.differences += sum(missing.values()) + sum(extra.values())
    check.examples[:] = check.examples[:EXAMPLES_MAX]


def _grouped(
    log: Log, topic: str, key: str, shape: Callable[[dict[str, Any]], Any]
) -> dict[str, list[tuple[Where, Any]]]:
    """A public output's records, each passed through ``shape``, per value of ``key``."""
    out: dict[str, list[tuple[Where, Any]]] = defaultdict(list)
    for partition, r in _records(log):
        value = shape(_json(r.value))
        out[str(value.get(key))].append(((topic, partition, r.offset), value))
    return out


def compare(
    d: Derived,
    logs: Mapping[str, Log],
    tables: Mapping[str, Log],
    *,
    tokens: Mapping[str, int],
    live: Mapping[str, Any] | None = None,
    names: Mapping[str, str] | None = None,
) -> list[Check]:
    """Every check of derived against committed (and live), in the report's order."""
    names = {t: (names or {}).get(t, t) for t in TOPICS}
    checks = [
        *d.log_checks,
        *_compare_outputs(d, logs, names),
        *_compare_tables(d, tables),
    ]
    if live is not None:
        checks.append(_compare_live(d, live, tokens))
    return checks


def _compare_outputs(d: Derived, logs: Mapping[str, Log], names: Mapping[str, str]) -> list[Check]:
    """The public outputs: each in order per key, and the rejections."""
    out = []
    for name, topic, key, shape, what, derived in (
        ("ledger-events", LEDGER_EVENTS, "account", _same, "account", d.journal),
        ("settlements", SETTLEMENTS, "trade_id", _same, "trade", d.statuses),
        ("order-events", ORDER_EVENTS, "isin", _order_event, "book", d.order_events),
        ("penalties", PENALTIES, "trade_id", _same, "trade", d.penalties),
    ):
        check = Check(name)
        committed = _grouped(logs[topic], names[topic], key, shape)
        _compare_sequences(check, what, derived, committed)
        out.append(check)

    rejected: dict[bytes, list[Where]] = defaultdict(list)
    for partition, r in _records(logs[REJECTIONS]):
        rejected[_key(_without_at(_json(r.value)))].append((names[REJECTIONS], partition, r.offset))
    check = Check("rejections")
    _compare_counts(check, Counter({k: len(v) for k, v in d.rejections.items()}), rejected)
    out.append(check)
    return out


def _compare_tables(d: Derived, tables: Mapping[str, Log]) -> list[Check]:
    """The state as committed: the last value of each key on each changelog."""
    engine = d.engine
    check = Check("engine accounts (changelog)")
    committed_accounts = _last_rows(tables[ENGINE_ACCOUNTS])
    for account in sorted(set(committed_accounts) | set(engine.accounts)):
        check.compared += 1
        want = ledger_core.AccountState.from_bytes(engine.accounts.get(account))
        got_raw = committed_accounts.get(account)
        got = ledger_core.AccountState.from_bytes(got_raw) if got_raw else None
        if got != want:
            check.differ(f"account {account!r}: derived {_quote(want.to_json())}; "
                         f"committed {_quote(got.to_json() if got else None)}")  # fmt: skip
    out = [check]
    trades = {tid: wire.saga_row(saga) for tid, saga in engine.open.items()}
    trades.update(engine.finished)
    inflow = {asset: b"%d" % units for asset, units in engine.inflow.items()}
    inflow.update({DUST_ROW + token: b"%d" % units for token, units in engine.dust.items()})
    instruments = {isin: encode(i) for isin, i in engine.instruments.items()}
    instruments.update({FX_ROW + c: encode(rate) for c, rate in engine.fx_rates.items()})
    keys = {actions.NEXT + isin for isin in engine.schedule} | set(engine.runs)
    keys |= {actions.RESERVE + isin for isin in engine.reserves}
    scheduled = {k: v for k, v in actions.rows(engine, keys) if v}
    for name, table, derived_rows in (
        ("engine trades (changelog)", ENGINE_TRADES, trades),
        ("engine applied ids (changelog)", ENGINE_APPLIED, dict.fromkeys(engine.applied, b"1")),
        ("engine inflow (changelog)", ENGINE_INFLOW, inflow),
        ("engine rate buckets (changelog)", ENGINE_RATES, engine.rates),
        ("engine security master (changelog)", ENGINE_INSTRUMENTS, instruments),
        ("engine coupons and redemptions (changelog)", ENGINE_ACTIONS, scheduled),
        ("engine orders (changelog)", ENGINE_ORDERS, dict(engine.orders.rows)),
        ("engine order rate buckets (changelog)", ENGINE_ORDER_RATES, engine.order_rates),
        ("engine archive (trades past the window)", ENGINE_ARCHIVE, d.archive),
    ):
        check = Check(name)
        committed_rows = _last_rows(tables.get(table, {}))
        for key in sorted(set(committed_rows) | set(derived_rows)):
            check.compared += 1
            want_row, got_row = derived_rows.get(key), committed_rows.get(key)
            if _json_or_none(want_row) != _json_or_none(got_row):
                check.differ(f"{key!r}: derived {_quote(_json_or_none(want_row))}; "
                             f"committed {_quote(_json_or_none(got_row))}")  # fmt: skip
        out.append(check)
    return out


def _json_or_none(raw: bytes | None) -> Any:
    return None if raw is None else _json(raw)


def _last_rows(log: Log) -> dict[str, bytes]:
    """A changelog's rows as they stand: each key's last value, deletes dropped (a key
    that is a JSON string, as faust wrote them, taken as that string)."""
    out: dict[str, bytes | None] = {}
    for _, r in _records(log):
        raw = r.key or b""
        try:
            key = orjson.loads(raw)
        except orjson.JSONDecodeError:
            key = None
        out[key if isinstance(key, str) else raw.decode("utf-8", "backslashreplace")] = r.value
    return {k: v for k, v in out.items() if v is not None}


def _compare_live(d: Derived, live: Mapping[str, Any], tokens: Mapping[str, int]) -> Check:
    """The live accounts (``GET /positions/{account}``) against the derived ones."""
    check = Check("accounts, live (worker HTTP)")
    accounts = d.engine.accounts
    for account in sorted(set(accounts) | set(live)):
        check.compared += 1
        want = ledger_core.AccountState.from_bytes(accounts.get(account))
        # Any account with a row (a queued request alone makes one) is served.
        held = account in accounts and accounts[account]
        expected = position_document(account, want, dict(tokens)) if held else None
        got = live.get(account)
        if expected != got:
            check.differ(f"account {account!r}: derived {_quote(expected)}; live {_quote(got)}")
    return check


# -- the command ---------------------------------------------------------------------------


def replay(
    settings: Settings,
    *,
    topics: Mapping[str, str] | None = None,
    workers: Sequence[str] = (),
    log: Callable[[str], None] = lambda line: None,
) -> Report:
    """Read, derive, compare. ``topics``: a name here -> the topic to read instead."""
    started = time.perf_counter()
    names = {t: (topics or {}).get(t, t) for t in TOPICS}
    if ENGINE_LOG not in (topics or {}):
        names[ENGINE_LOG] = engine_topic(settings.app_id, ENGINE_LOG)
    tables = {t: engine_topic(settings.app_id, t) for t in TABLES}

    async def read_all() -> tuple[dict[str, Log], dict[str, Log]]:
        # Every cut-off first, one after the other (milliseconds apart), then the
        # reads: the snapshot is as close to one moment as Kafka allows. Run it on a
        # quiet pipeline (every input consumed): records written between two
        # cut-offs would show as differences.
        every = [*names.values(), *tables.values()]
        cuts = [await cuts_for(settings, topic) for topic in every]
        require_history(dict(zip(every, cuts, strict=True)))
        read = await asyncio.gather(
            *(_read(settings, topic, c) for topic, c in zip(every, cuts, strict=True))
        )
        return (
            dict(zip(names, read[: len(names)], strict=True)),
            dict(zip(tables, read[len(names) :], strict=True)),
        )

    logs, changelogs = asyncio.run(read_all())
    count = sum(len(v) for log_ in (*logs.values(), *changelogs.values()) for v in log_.values())
    log(f"read {count:,} committed records from {len(names) + len(tables)} topics")
    derived = derive(logs, settings, names)
    live = None
    if workers:
        headers = web_auth_headers(settings)
        accounts = sorted(derived.engine.accounts)
        live = asyncio.run(_fetch_live(workers, accounts, headers))
        log(f"asked {len(workers)} worker(s) for {len(accounts):,} accounts")
    checks = compare(derived, logs, changelogs, tokens=settings.tokens, live=live, names=names)
    return Report(checks, count, time.perf_counter() - started)


async def _fetch_live(
    workers: Sequence[str], accounts: list[str], headers: Mapping[str, str]
) -> dict[str, Any]:
    """``GET {worker}/positions/{account}`` of each worker for each account.

    A standby answers 503 (the engine runs elsewhere) and is skipped; an account that
    more than one worker answers for must get the same answer from each, or it is kept
    as a conflict (and so differs from anything derived).
    """
    import urllib.parse

    import aiohttp

    out: dict[str, Any] = {}
    limit = asyncio.Semaphore(HTTP_CONCURRENCY_MAX)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:

        async def one(worker: str, account: str) -> None:
            url = f"{worker.rstrip('/')}/positions/{urllib.parse.quote(account, safe='')}"
            async with limit, session.get(url) as response:
                if response.status in (404, 503):
                    return
                response.raise_for_status()
                answer = await response.json()
            if account in out and out[account] != answer:
                answer = {"conflict": [out[account], answer]}
            out[account] = answer

        await asyncio.gather(*(one(w, a) for w in workers for a in accounts))
    return out
