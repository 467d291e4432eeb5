"""``kessai replay``: re-run the pure cores over the committed logs and reconcile.

Reads every committed record of kessai's topics (read_committed, nothing written) and
re-runs, in this process, the very functions the agents run on each record:

1. **intakes** over the public inputs, each partition in offset order:
   ``payments`` and ``custody`` through :func:`streams.ledger.intake.intake_record`,
   ``trades`` through :func:`streams.settlement.intake.intake_record` (with its
   ``seen`` set);
2. **the ledger** over ``kessai-ledger-commands`` through
   :func:`streams.ledger.handler.handle_command` (balances, locks, the hash chain);
3. **the settlement sagas** over ``kessai-settlement-inbox`` through
   :func:`streams.settlement.handler.handle_inbox`;
4. **the matcher** over ``orders`` through :func:`streams.matching.handler.handle_record`.

Why the two internal logs and not only the inputs: which of two trades competing for
the same cash gets it depends on the order their lock requests reached the account's
ledger partition, and which trades fail depends on when the clock ticked. Neither is
in ``payments``, ``custody``, ``trades`` or ``orders``; both are recorded, in order, in
each stateful agent's single input log (docs/exactly-once.md, hole 9). The replay
checks that those logs hold exactly what the inputs and the other agents put there
(checks *intake* and *messages*), then re-derives every output from them.

It then compares what it derived with what is committed, and reports each check:

- ``ledger-events``: every account's journal, record for record (hash included);
- ``settlements``: every trade's statuses, in order (their ``at`` aside);
- ``order-events`` and the matcher's ``trades``;
- ``rejections``: every rejection, with its reason and detail (its ``at`` aside);
- the internal logs: moves and trades forwarded by the intakes, commands sent by the
  sagas, replies sent by the ledger;
- the tables as committed (their changelogs): ``accounts``, ``sagas``, ``outcomes``,
  ``inflow``, ``orders``;
- with ``--worker URL`` (one per worker), the live ``accounts`` table over the
  workers' HTTP API (:mod:`streams.ledger.views`).

Every check names its first difference: where it is on its topic, what was derived
and what was found. The exit code is 1 if any check differs.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from schemas import (
    CUSTODY,
    LEDGER_EVENTS,
    ORDER_EVENTS,
    ORDERS,
    PAYMENTS,
    REJECTIONS,
    SETTLEMENTS,
    TRADES,
    SchemaError,
    Source,
    rejection_for,
    source_of,
)
from streams import wire
from streams.config import Settings
from streams.kafka.reader import Cut, cuts_for, read_batches
from streams.ledger import domain as ledger_core
from streams.ledger import intake as ledger_intake
from streams.ledger.documents import position_document
from streams.ledger.handler import Ledger, handle_command
from streams.matching.handler import MATCHING_VENUE, handle_record
from streams.matching.matcher import Matcher
from streams.runtime.web.guard import web_auth_headers
from streams.security import signing
from streams.security.quota import Limit, Quota
from streams.settlement import handler as saga_handler
from streams.settlement import intake as trade_intake
from streams.settlement.messages import Tick
from streams.topics import (
    ACCOUNTS_TABLE,
    INFLOW_TABLE,
    INPUT_TOPICS,
    INTERNAL_TOPICS,
    LEDGER_COMMANDS,
    ORDERS_TABLE,
    OUTCOMES_TABLE,
    OUTPUT_TOPICS,
    SAGAS_TABLE,
    SETTLEMENT_INBOX,
    changelog,
)

__all__ = ["Check", "Report", "replay"]

#: Every topic the replay reads, by the name it goes by here.
TOPICS: Final = (*INPUT_TOPICS, *INTERNAL_TOPICS, *OUTPUT_TOPICS)
#: Tables compared through their changelogs.
TABLES: Final = (ACCOUNTS_TABLE, SAGAS_TABLE, OUTCOMES_TABLE, INFLOW_TABLE, ORDERS_TABLE)
#: Differences described per check; all are counted.
EXAMPLES_MAX: Final = 3
#: Characters of a record quoted in a difference.
QUOTE_CHARS_MAX: Final = 400
#: How far a clock tick's own time may be from its record's timestamp: the ticker
#: stamps both within one send, so anything near this is a forged or replayed tick.
TICK_SKEW_S_MAX: Final = 30.0
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

    moves: Counter[bytes] = field(default_factory=Counter)
    trades_in: Counter[bytes] = field(default_factory=Counter)
    rejections: dict[bytes, list[Where]] = field(default_factory=lambda: defaultdict(list))
    journal: dict[str, list[tuple[Where, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    replies: Counter[bytes] = field(default_factory=Counter)
    credits: Counter[bytes] = field(default_factory=Counter)
    commands: Counter[bytes] = field(default_factory=Counter)
    statuses: dict[str, list[tuple[Where, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    order_events: dict[str, list[tuple[Where, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    matched: dict[str, tuple[Where, dict[str, Any]]] = field(default_factory=dict)
    accounts: dict[str, bytes] = field(default_factory=dict)
    sagas: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, Any] = field(default_factory=dict)
    inflow: dict[str, Any] = field(default_factory=dict)
    order_rows: dict[str, bytes] = field(default_factory=dict)
    #: Each clock tick's ``now_s`` minus its record's timestamp, in seconds.
    tick_skews: list[tuple[Where, float]] = field(default_factory=list)


def _rejection(source: Source, reason: str, detail: str) -> bytes:
    error = SchemaError(reason, detail)  # type: ignore[arg-type]
    record = rejection_for(source, error, at=datetime.now(UTC))
    return _key(_without_at(record.model_dump(mode="json")))


def derive(
    logs: Mapping[str, Log], settings: Settings, names: Mapping[str, str] | None = None
) -> Derived:
    """Run every agent's handler over the logs, as :mod:`streams.audit.replay` explains.

    ``names``: the topic each log was read from, where it is not the usual one.
    """
    d = Derived()
    names = {t: (names or {}).get(t, t) for t in TOPICS}
    # The workers' own checks, with the registry they read. The matcher's private key
    # stays with the workers: its trades are compared without their signatures, and
    # the trade intake below checks those signatures like any venue's.
    signers = _registry(settings)
    _derive_intakes(d, logs, names, settings, signers)
    _derive_ledger(d, logs, names, settings)
    _derive_sagas(d, logs, names, settings)
    _derive_matcher(d, logs, names, settings, signers)
    return d


def _derive_intakes(
    d: Derived,
    logs: Mapping[str, Log],
    names: Mapping[str, str],
    settings: Settings,
    signers: signing.Registry | None,
) -> None:
    """1. The intakes: ``payments`` and ``custody`` into moves, ``trades`` into the inbox."""
    tokens = settings.tokens
    for topic in (PAYMENTS, CUSTODY):
        for partition, r in _records(logs[topic]):
            where = (partition, r.offset)
            move = ledger_intake.intake_record(
                topic, r.key, r.value, tokens, signers, where=where, arrived_s=r.timestamp / 1000
            )
            if isinstance(move, tuple):
                source = source_of(topic, *where, r.key, r.value)
                d.rejections[_rejection(source, *move)].append((names[topic], partition, r.offset))
            else:
                d.moves[wire.to_wire(move)] += 1
    seen: dict[str, bool] = {}
    quota = _quota(settings)
    for partition, r in _records(logs[TRADES]):
        trade = trade_intake.handle_trade(
            seen,
            r.key,
            r.value,
            (r.timestamp / 1000) or time.time(),
            tokens=tokens,
            deadline_s=settings.settlement_deadline_s,
            signers=signers,
            quota=quota,
            partition=partition,
        )
        if isinstance(trade, tuple):
            source = source_of(TRADES, partition, r.offset, r.key, r.value)
            d.rejections[_rejection(source, *trade)].append((names[TRADES], partition, r.offset))
        else:
            d.trades_in[wire.to_wire(trade)] += 1


def _derive_ledger(
    d: Derived, logs: Mapping[str, Log], names: Mapping[str, str], settings: Settings
) -> None:
    """2. The ledger, over its command log."""
    tokens = settings.tokens

    def decimals_of(asset: str) -> int:
        return tokens.get(asset, 0)

    ledger = Ledger(d.accounts, {}, d.inflow)
    for partition, r in _records(logs[LEDGER_COMMANDS]):
        where = (names[LEDGER_COMMANDS], partition, r.offset)
        out = handle_command(ledger, partition, wire.ledger_command(r.value), decimals_of)
        if out.rejection is not None:
            d.rejections[_rejection(*out.rejection)].append(where)
        for record in out.records:
            d.journal[record["account"]].append((where, record))
        for (kind, _to), sent in out.sends:
            (d.credits if kind == "account" else d.replies)[wire.to_wire(sent)] += 1


def _derive_sagas(
    d: Derived, logs: Mapping[str, Log], names: Mapping[str, str], settings: Settings
) -> None:
    """3. The settlement sagas, over their inbox."""
    for partition, r in _records(logs[SETTLEMENT_INBOX]):
        where = (names[SETTLEMENT_INBOX], partition, r.offset)
        message = wire.inbox_message(r.value)
        if isinstance(message, Tick):
            d.tick_skews.append((where, message.now_s - r.timestamp / 1000))
        handled = saga_handler.handle_inbox(d.sagas, partition, message, d.outcomes)
        for command in handled.commands:
            d.commands[wire.to_wire(command)] += 1
        for trade, status in handled.statuses:
            record = saga_handler.status_record(trade, status, settings.tokens, datetime.now(UTC))
            d.statuses[trade.trade_id].append((where, _without_at(record.model_dump(mode="json"))))


def _derive_matcher(
    d: Derived,
    logs: Mapping[str, Log],
    names: Mapping[str, str],
    settings: Settings,
    signers: signing.Registry | None,
) -> None:
    """4. The matcher, over ``orders``."""
    matcher = Matcher(d.order_rows, tokens=settings.tokens)
    quota = _quota(settings)
    for partition, r in _records(logs[ORDERS]):
        where = (names[ORDERS], partition, r.offset)
        timestamp_s = r.timestamp / 1000 if r.timestamp is not None else None
        result = handle_record(lambda: matcher, r.key, r.value, timestamp_s, signers=signers,
                               quota=quota, partition=partition)  # fmt: skip
        for t in result.trades:
            d.matched[t.trade_id] = (where, t.model_dump(mode="json"))
        for e in result.order_events:
            d.order_events[e.isin].append((where, _order_event(e.model_dump(mode="json"))))
        if result.rejection is not None:
            source = source_of(ORDERS, partition, r.offset, r.key, r.value)
            d.rejections[_rejection(source, *result.rejection)].append(where)


def _quota(settings: Settings) -> Quota:
    """Buckets of the replay's own, filled as the agents filled theirs (broker time)."""
    return Quota({}, Limit(settings.venue_rate_per_s, settings.venue_burst))


def _registry(settings: Settings) -> signing.Registry | None:
    if not settings.verify_signatures:
        return None
    # A replay checks signatures as the workers did, with their registry: each record
    # with the key valid when the broker appended it.
    return signing.registry_for(settings, what="a replay")


def _unsigned(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("signer", "signature")}


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


ByType = dict[str | None, dict[bytes, list[Where]]]


def _by_type(log: Log, topic: str) -> ByType:
    """An internal log's records by their ``type``, each parsed once (None: not JSON)."""
    out: ByType = defaultdict(lambda: defaultdict(list))
    for partition, r in _records(log):
        out[_json(r.value).get("type")][r.value or b""].append((topic, partition, r.offset))
    return out


def _of_types(index: ByType, *types: str) -> dict[bytes, list[Where]]:
    """The records of ``types``; a record that is not JSON counts under every type: it
    can match nothing derived."""
    out: dict[bytes, list[Where]] = {}
    for kind in (*types, None):
        out.update(index.get(kind, {}))
    return out


def _grouped(
    log: Log, topic: str, key: str, shape: Callable[[dict[str, Any]], Any]
) -> dict[str, list[tuple[Where, Any]]]:
    """A public output's records, each passed through ``shape``, per value of ``key``."""
    out: dict[str, list[tuple[Where, Any]]] = defaultdict(list)
    for partition, r in _records(log):
        value = shape(_json(r.value))
        out[str(value.get(key))].append(((topic, partition, r.offset), value))
    return out


def _last_values(log: Log) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for _, r in _records(log):
        try:
            key = orjson.loads(r.key) if r.key is not None else None
        except orjson.JSONDecodeError:
            key = None
        out[key if isinstance(key, str) else repr(r.key)] = r.value
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
        *_compare_internal_logs(d, logs, names),
        _compare_ticks(d),
        *_compare_outputs(d, logs, names),
        *_compare_tables(d, tables),
    ]
    if live is not None:
        checks.append(_compare_live(d, live, tokens))
    return checks


def _compare_internal_logs(
    d: Derived, logs: Mapping[str, Log], names: Mapping[str, str]
) -> list[Check]:
    """The internal logs hold what the intakes and the agents sent, no more, no less."""
    commands = _by_type(logs[LEDGER_COMMANDS], names[LEDGER_COMMANDS])
    inbox = _by_type(logs[SETTLEMENT_INBOX], names[SETTLEMENT_INBOX])
    replies_and_credits = {**_of_types(inbox, "Reply"), **_of_types(commands, "Credit")}
    out = []
    for name, derived, committed in (
        ("intake: payments, custody -> moves", d.moves, _of_types(commands, "Move")),
        ("intake: trades -> settlement inbox", d.trades_in, _of_types(inbox, "Trade")),
        (
            "messages: sagas -> ledger commands",
            d.commands,
            _of_types(commands, "LockCmd", "PostCmd", "VoidCmd"),
        ),
        ("messages: ledger -> replies, credits", d.replies + d.credits, replies_and_credits),
    ):
        check = Check(name)
        _compare_counts(check, derived, committed)
        out.append(check)
    return out


def _compare_ticks(d: Derived) -> Check:
    """A tick decides deadlines: its clock must be the time it was written at."""
    check = Check("ticks: clock vs record time")
    for where, skew in d.tick_skews:
        check.compared += 1
        if abs(skew) > TICK_SKEW_S_MAX:
            check.differ(f"tick at {_at(where)}: now_s is {skew:+,.1f} s off its record's time")
    return check


def _compare_outputs(d: Derived, logs: Mapping[str, Log], names: Mapping[str, str]) -> list[Check]:
    """The public outputs: each in order per key, the matcher's trades, the rejections."""
    out = []
    for name, topic, key, shape, what, derived in (
        ("ledger-events", LEDGER_EVENTS, "account", _same, "account", d.journal),
        ("settlements", SETTLEMENTS, "trade_id", _without_at, "trade", d.statuses),
        ("order-events", ORDER_EVENTS, "isin", _order_event, "book", d.order_events),
    ):
        check = Check(name)
        committed = _grouped(logs[topic], names[topic], key, shape)
        _compare_sequences(check, what, derived, committed)
        out.append(check)

    matched: dict[bytes, list[Where]] = defaultdict(list)
    for partition, r in _records(logs[TRADES]):
        value = _json(r.value)
        if value.get("venue") == MATCHING_VENUE:
            matched[_key(_unsigned(value))].append((names[TRADES], partition, r.offset))
    check = Check("trades made by the matcher")
    derived_matched = Counter(_key(_unsigned(v)) for _, v in d.matched.values())
    _compare_counts(check, derived_matched, matched)
    out.append(check)

    rejected: dict[bytes, list[Where]] = defaultdict(list)
    for partition, r in _records(logs[REJECTIONS]):
        rejected[_key(_without_at(_json(r.value)))].append((names[REJECTIONS], partition, r.offset))
    check = Check("rejections")
    _compare_counts(check, Counter({k: len(v) for k, v in d.rejections.items()}), rejected)
    out.append(check)
    return out


def _compare_tables(d: Derived, tables: Mapping[str, Log]) -> list[Check]:
    """The tables as committed: the last value of each key on each changelog."""
    check = Check("accounts table (changelog)")
    committed_accounts = _last_values(tables[ACCOUNTS_TABLE])
    for account in sorted(set(committed_accounts) | set(d.accounts)):
        check.compared += 1
        want = ledger_core.AccountState.from_bytes(d.accounts.get(account))
        got_raw = committed_accounts.get(account)
        got = ledger_core.AccountState.from_bytes(got_raw) if got_raw else None
        if got != want:
            check.differ(f"account {account!r}: derived {_quote(want.to_json())}; "
                         f"committed {_quote(got.to_json() if got else None)}")  # fmt: skip
    out = [check]

    for table, derived_rows in (
        (SAGAS_TABLE, d.sagas), (OUTCOMES_TABLE, d.outcomes), (INFLOW_TABLE, d.inflow)
    ):  # fmt: skip
        check = Check(f"{table} table (changelog)")
        committed_rows = {
            k: orjson.loads(v) for k, v in _last_values(tables[table]).items() if v is not None
        }
        for trade_id in sorted(set(committed_rows) | set(derived_rows)):
            check.compared += 1
            if committed_rows.get(trade_id) != derived_rows.get(trade_id):
                check.differ(f"{table} {trade_id!r}: derived {_quote(derived_rows.get(trade_id))}; "
                             f"committed {_quote(committed_rows.get(trade_id))}")  # fmt: skip
        out.append(check)

    check = Check("orders table (changelog)")
    committed_rows = {k: v for k, v in _last_values(tables[ORDERS_TABLE]).items() if v is not None}
    for key in sorted(set(committed_rows) | set(d.order_rows)):
        check.compared += 1
        if committed_rows.get(key) != d.order_rows.get(key):
            check.differ(f"order {key!r}: derived {_quote(_json(d.order_rows.get(key)))}; "
                         f"committed {_quote(_json(committed_rows.get(key)))}")  # fmt: skip
    out.append(check)
    return out


def _compare_live(d: Derived, live: Mapping[str, Any], tokens: Mapping[str, int]) -> Check:
    """The live ``accounts`` table (``GET /positions/{account}``) against the derived one."""
    check = Check("accounts, live (worker HTTP)")
    for account in sorted(set(d.accounts) | set(live)):
        check.compared += 1
        want = ledger_core.AccountState.from_bytes(d.accounts.get(account))
        # Any account with a row (a queued request alone makes one) is served.
        held = account in d.accounts and d.accounts[account]
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
    tables = {t: changelog(settings.app_id, t) for t in TABLES}

    async def read_all() -> tuple[dict[str, Log], dict[str, Log]]:
        # Every cut-off first, one after the other (milliseconds apart), then the
        # reads: the snapshot is as close to one moment as Kafka allows. Run it on a
        # quiet pipeline (every input consumed): records written between two
        # cut-offs would show as differences.
        every = [*names.values(), *tables.values()]
        cuts = [await cuts_for(settings, topic) for topic in every]
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
        live = asyncio.run(_fetch_live(workers, sorted(derived.accounts), headers))
        log(f"asked {len(workers)} worker(s) for {len(derived.accounts):,} accounts")
    checks = compare(derived, logs, changelogs, tokens=settings.tokens, live=live, names=names)
    return Report(checks, count, time.perf_counter() - started)


async def _fetch_live(
    workers: Sequence[str], accounts: list[str], headers: Mapping[str, str]
) -> dict[str, Any]:
    """``GET {worker}/positions/{account}`` of each worker for each account.

    A worker answers 404 for an account on a partition it does not own; an account
    that more than one worker answers for must get the same answer from each, or it
    is kept as a conflict (and so differs from anything derived).
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
                if response.status == 404:
                    return
                response.raise_for_status()
                answer = await response.json()
            if account in out and out[account] != answer:
                answer = {"conflict": [out[account], answer]}
            out[account] = answer

        await asyncio.gather(*(one(w, a) for w in workers for a in accounts))
    return out
