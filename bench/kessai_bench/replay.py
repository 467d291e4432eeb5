"""The auditors' reads: ``kessai positions`` and ``kessai verify`` over a big journal (issue 6).

On a broker of its own (:func:`streams.devtools.localkafka.up_private`):

1. a ``ledger-events`` topic is written with ``--records`` journal records (default
   1,000,000) over ``--accounts`` accounts (:func:`journal`): the records come from
   the ledger's own pure functions (deposits, locks, posts with the counterparty's
   leg, voids) and are chained with :func:`streams.ledger.journal.chain`, so the
   journal is consistent by construction. They are written in transactions of
   :data:`TXN_RECORDS` (a worker commits every 0.1 s), so the read skips commit
   markers as it would on a real journal, and stamped one millisecond apart, so
   ``--as-of`` the middle cuts every partition near its middle. The stamps start a
   little ahead of the clock (:func:`journal_start_ms`), never at a fixed date: see
   :func:`prefill` for why;
2. each command runs as its own process, as a user runs it (``python -m streams.cli
   ...``, stdout to /dev/null), timed whole and with its peak RSS (``wait4``):
   - ``positions`` at the head, in one process (``--jobs 1``) and in the default
     reader processes; ``positions --as-of`` the middle; ``verify`` at the head;
3. side by side in the same run, the path ``kessai positions`` took before this
   (pydantic decode per record, :func:`streams.audit.positions.positions_from_events`),
   in-process over the first ``--baseline-records`` records.

Records per second = records folded / the command's own read-and-fold time (it
prints it on stderr); the whole-process time includes Python's start-up and the
imports (~1 s).

    python -m kessai_bench.replay --records 1000000 --accounts 10000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaProducer

from kessai_bench import CHECKOUT, RESULTS
from kessai_bench.report import machine
from streams.audit.positions import decode_records, positions_from_events
from streams.config import DEFAULT_TOKENS, Settings
from streams.devtools import localkafka
from streams.errors import KessaiError
from streams.kafka.admin import create_topics
from streams.ledger import domain as core
from streams.ledger.journal import chain as journal_chain
from streams.runtime.batches import partition_of as partition_of_key
from streams.topics import TopicSpec

ISIN: Final = "JP1103551Q43"
CASH: Final = "JPYC"
RECORDS_DEFAULT: Final = 1_000_000
ACCOUNTS_DEFAULT: Final = 10_000
BASELINE_RECORDS_DEFAULT: Final = 100_000
PARTITIONS: Final = 4
#: Records per producer transaction (a worker at ~5,000 records/s commits every 0.1 s).
TXN_RECORDS: Final = 2_000
#: How far ahead of the clock the journal's first stamp is, at least; records are
#: 1 ms apart from it. A longer journal gets a longer lead: it takes longer to write,
#: and it must be written in full before its first stamp comes (see :func:`prefill`).
STAMP_LEAD_S_MIN: Final = 60.0
#: The slowest prefill the lead allows for (the prefill writes about 35,000 records/s
#: on two cores shared with the broker).
PREFILL_RECORDS_PER_S_MIN: Final = 5_000
PRODUCE_BATCH_BYTES_MAX: Final = 1_048_576
SEED: Final = 20261126
_SUMMARY_RE: Final = re.compile(r"(?P<records>[\d,]+) records, .* in (?P<s>[\d.]+) s \(")
_MEMORY_RE: Final = re.compile(
    r"peak memory: (?P<own>[\d,]+) MiB in this process"
    r"(?:; (?P<n>\d+) reader processes [\d, ]+ MiB \(sum (?P<sum>[\d,]+) MiB)?"
)


class ReplayBenchError(KessaiError):
    """The journal could not be written as the measurement needs it."""


def journal(records: int, accounts: int, *, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """``records`` chained ``ledger-events`` records (wire objects) over ``accounts`` accounts.

    Each account is funded first (cash, then bonds); after that a random account either
    locks some of an asset, posts its oldest lock (with the other leg credited, as a
    settlement's post does) or voids it. Every record comes from :mod:`streams.ledger.domain`
    and is chained by :func:`streams.ledger.journal.chain`.
    """
    assert records > 0 and accounts > 0, (records, accounts)
    rng = random.Random(seed)
    names = [f"acct-{i:07d}" for i in range(accounts)]
    chain = _Chain()
    steps = itertools.chain(_fundings(chain, names), _activity(chain, names, rng))
    yield from itertools.islice((record for step in steps for record in step), records)


def _decimals_of(asset: str) -> int:
    return DEFAULT_TOKENS.get(asset, 0)


class _Chain:
    """Every account's state so far; each step's records chained onto its account's."""

    def __init__(self) -> None:
        self.states: dict[str, core.AccountState] = {}

    def step(
        self, account: str, after: core.AccountState, postings: list[core.Posting]
    ) -> list[dict[str, Any]]:
        before = self.states.get(account) or core.AccountState()
        out = journal_chain(before, after, postings, _decimals_of)
        self.states[account] = after
        return out


def _fundings(chain: _Chain, names: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
    """Each account's two deposits, cash then bonds, account by account."""
    for account in names:
        for asset, units in ((CASH, 100_000_000), (ISIN, 1_000_000_000)):
            state = chain.states.get(account) or core.AccountState()
            moved = core.move_units(
                state,
                command_id=f"fund:{account}:{asset}",
                account=account,
                asset=asset,
                units=units,
                kind="deposit",
                duplicate=False,
            )
            assert not isinstance(moved, core.LedgerRejection), moved
            yield chain.step(account, *moved)


def _activity(
    chain: _Chain, names: Sequence[str], rng: random.Random
) -> Iterator[list[dict[str, Any]]]:
    """Endless random steps: a lock, or a post or void of an account's oldest lock."""
    lock_no = 0
    while True:
        account = names[rng.randrange(len(names))]
        state = chain.states[account]
        roll = rng.random()
        if state.locks and roll < 0.5:
            yield _post_or_void(chain, rng, account, state, roll)
            continue
        asset = CASH if rng.random() < 0.5 else ISIN
        available = state.balances.get(asset, [0, 0])[0]
        if available < 2:
            continue
        lock_no += 1
        locked = core.request_lock(
            state,
            lock_id=f"t{lock_no}/{'cash' if asset == CASH else 'bonds'}",
            account=account,
            asset=asset,
            units=rng.randrange(1, available // 2 + 1),
        )
        assert isinstance(locked, core.Locked), locked
        yield chain.step(account, locked.state, locked.postings)


def _post_or_void(
    chain: _Chain, rng: random.Random, account: str, state: core.AccountState, roll: float
) -> list[dict[str, Any]]:
    """Post the account's oldest lock (the other leg credited) or, less often, void it."""
    lock_id = next(iter(state.locks))
    if roll < 0.35:
        posted = core.post_lock(state, lock_id=lock_id, account=account)
        other = ISIN if posted.asset == CASH else CASH
        after, credit = core.credit(
            posted.state,
            cause=f"credit:{lock_id}",
            account=account,
            asset=other,
            units=rng.randrange(1, 1_000_000),
        )
        return chain.step(account, after, [*posted.postings, *credit])
    voided = core.void_lock(state, lock_id=lock_id, account=account)
    return chain.step(account, voided.state, voided.postings)


def journal_start_ms(now_ms: int, records: int) -> int:
    """The first stamp of a journal of *records* records whose writing starts at *now_ms*:
    ahead of it by :data:`STAMP_LEAD_S_MIN`, or by the time the slowest prefill allowed
    for (:data:`PREFILL_RECORDS_PER_S_MIN`) takes, whichever is longer."""
    assert records > 0, records
    lead_s = max(STAMP_LEAD_S_MIN, records / PREFILL_RECORDS_PER_S_MIN)
    return now_ms + round(lead_s * 1000)


def as_of_middle(start_ms: int, records: int) -> str:
    """``--as-of`` the stamp of the journal's middle record (``records // 2``), as given
    to ``kessai positions``: that record and every one before it count."""
    middle = datetime.fromtimestamp((start_ms + records // 2) / 1000, UTC)
    return middle.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_written_before(start_ms: int, now_ms: int) -> None:
    """Raise unless the journal was written in full (*now_ms*) before its first stamp."""
    if now_ms >= start_ms:
        late_s = (now_ms - start_ms) / 1000
        raise ReplayBenchError(
            f"writing the journal took {late_s:,.1f} s longer than its stamps allow: its "
            "commit markers are stamped later than some of its records, so --as-of would "
            "cut it at a marker; write fewer records or on a less busy machine"
        )


async def prefill(
    bootstrap: str, topic: str, records: int, accounts: int, *, start_ms: int
) -> float:
    """Write the journal on ``topic`` (created with :data:`PARTITIONS`), record *i*
    stamped ``start_ms + i``; return seconds.

    The broker stamps each commit marker with its own clock when the transaction
    commits, whatever the records' stamps, and ``--as-of T`` cuts a partition at the
    first offset stamped later than T, markers included (``offsets_for_times``). In a
    journal a worker writes, the markers come right after their records, in time as in
    offsets. Records stamped earlier than their markers (a fixed date in the past)
    would be cut at the first marker; stamped days back, they also fall to the
    broker's retention by time. So the stamps start ahead of the clock
    (:func:`journal_start_ms`) and the journal must be written before they begin:
    every marker is then stamped earlier than every record. Raises
    :class:`ReplayBenchError` if it was not (a prefill slower than allowed for). The
    broker's clock is taken to be this machine's (a broker elsewhere: keep it in sync).
    """
    started = time.perf_counter()
    spec = TopicSpec(name=topic, partitions=PARTITIONS)
    await create_topics(Settings(bootstrap=bootstrap), [spec])
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"kessai-bench-replay-{os.getpid()}",
        acks="all",
        max_batch_size=PRODUCE_BATCH_BYTES_MAX,
        max_request_size=PRODUCE_BATCH_BYTES_MAX * 2,
    )
    await producer.start()
    try:
        builders: dict[int, Any] = {}
        in_txn = 0
        await producer.begin_transaction()
        partition_of: dict[str, int] = {}
        for i, record in enumerate(journal(records, accounts)):
            account = record["account"]
            partition = partition_of.get(account)
            if partition is None:
                partition = partition_of[account] = partition_of_key(account.encode(), PARTITIONS)
            builder = builders.get(partition)
            if builder is None:
                builder = builders[partition] = producer.create_batch()
            key, value = account.encode(), orjson.dumps(record)
            while builder.append(key=key, value=value, timestamp=start_ms + i) is None:
                await producer.send_batch(builders.pop(partition), topic, partition=partition)
                builder = builders[partition] = producer.create_batch()
            in_txn += 1
            if in_txn == TXN_RECORDS:
                for p, b in builders.items():
                    await producer.send_batch(b, topic, partition=p)
                builders.clear()
                await producer.commit_transaction()
                await producer.begin_transaction()
                in_txn = 0
        for p, b in builders.items():
            await producer.send_batch(b, topic, partition=p)
        await producer.commit_transaction()
    finally:
        await producer.stop()
    check_written_before(start_ms, time.time_ns() // 1_000_000)
    return time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    command: list[str]
    wall_s: float
    max_rss_kib: int
    #: What the command printed on stderr as its own read-and-fold time, and records.
    records: int
    fold_s: float
    exit_code: int
    #: Peak RSS the command reported: its own, and the sum over its reader processes.
    own_peak_mib: int = 0
    readers: int = 0
    readers_peak_mib_sum: int = 0

    @property
    def records_per_s(self) -> float:
        return self.records / self.fold_s if self.fold_s > 0 else 0.0


def run_command(name: str, args: list[str], bootstrap: str) -> Run:
    """Run ``python -m streams.cli ARGS`` as a child; its time, peak RSS and summary line."""
    command = [sys.executable, "-m", "streams.cli", *args]
    env = {**os.environ, "KESSAI_BOOTSTRAP": bootstrap}
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=CHECKOUT
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    match = _SUMMARY_RE.search(text)
    memory = _MEMORY_RE.search(text)
    if child.returncode != 0 or match is None or memory is None:
        raise RuntimeError(f"{' '.join(args)} exited {child.returncode}:\n{text[-2000:]}")
    return Run(
        name=name,
        command=["kessai", *args],
        wall_s=wall,
        max_rss_kib=usage.ru_maxrss,
        records=int(match["records"].replace(",", "")),
        fold_s=float(match["s"]),
        exit_code=child.returncode,
        own_peak_mib=int(memory["own"].replace(",", "")),
        readers=int(memory["n"] or 0),
        readers_peak_mib_sum=int((memory["sum"] or "0").replace(",", "")),
    )


def baseline(bootstrap: str, topic: str, records_max: int) -> tuple[int, float]:
    """The old path in-process: read_committed into a list, pydantic decode, fold."""
    from streams.kafka.reader import read_committed

    started = time.perf_counter()
    records = asyncio.run(read_committed(Settings(bootstrap=bootstrap), topic, timeout_s=600))
    # A prefix per partition keeps each account's records whole and in order.
    per_partition = max(1, records_max // PARTITIONS)
    taken: list[Any] = []
    seen: dict[int, int] = {}
    for r in records:
        if seen.get(r.partition, 0) < per_partition:
            taken.append(r)
            seen[r.partition] = seen.get(r.partition, 0) + 1
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    positions_from_events(decode_records(taken))
    fold_s = time.perf_counter() - started
    share = len(taken) / max(1, len(records))
    return len(taken), fold_s + read_s * share


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        f"# Replay bench, {doc['started']}",
        "",
        f"`{doc['command'].strip()}`. Machine: {m['cores']} cores, {m['cpu_model']}, "
        f"{m['ram_gib']} GiB; Python {m['python']}, Kafka {m['kafka']}, aiokafka "
        f"{m['aiokafka']}; load average at start {m['load_average_at_start']}. The broker "
        "runs on the same cores.",
        "",
        f"Journal: {doc['records']:,} `ledger-events` records over {doc['accounts']:,} "
        f"accounts, {PARTITIONS} partitions, transactions of {TXN_RECORDS:,}; written in "
        f"{doc['prefill_s']:.1f} s.",
        "",
        "| command | records | read + fold | records/s | whole process "
        "| peak RSS: command | peak RSS: readers (sum) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["runs"]:
        shown = " ".join("T" if a.startswith("bench-ledger-events") else a for a in r["command"])
        lines.append(
            f"| `{shown}` | {r['records']:,} | {r['fold_s']:.2f} s | "
            f"{r['records_per_s']:,.0f} | {r['wall_s']:.2f} s | {r['own_peak_mib']:,} MiB | "
            f"{r['readers']} x, {r['readers_peak_mib_sum']:,} MiB |"
        )
    b = doc["baseline"]
    lines += [
        f"| before (pydantic decode + fold, one process, in-process) | {b['records']:,} | "
        f"{b['s']:.2f} s | {b['records_per_s']:,.0f} | | | |",
        "",
        "Records/s: records folded / the command's own read-and-fold time (it prints it). "
        "Reader RSS counts the pages each forked reader shares with its parent in each "
        "reader, so the sum overstates what the machine gives up.",
        "",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(
        prog="python -m kessai_bench.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--records", type=int, default=RECORDS_DEFAULT, help="journal records")
    parser.add_argument("--accounts", type=int, default=ACCOUNTS_DEFAULT, help="accounts")
    parser.add_argument(
        "--baseline-records",
        type=int,
        default=BASELINE_RECORDS_DEFAULT,
        help="records the old pydantic path folds (0: skip it)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results directory (default bench/results/<UTC time>-replay)",
    )
    parser.add_argument(
        "--bootstrap",
        default=None,
        help="use this broker instead of starting one (the topic gets a fresh name)",
    )
    return parser


@dataclass(frozen=True, slots=True)
class _Measured:
    prefill_s: float
    #: ``--as-of`` the middle of the journal, as given to the command.
    as_of: str
    runs: list[Run]
    baseline_records: int
    baseline_s: float


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = datetime.now(UTC)
    out: Path = args.out or (RESULTS / f"{started:%Y-%m-%dT%H%M%SZ}-replay")
    topic = f"bench-ledger-events-{started:%H%M%S}-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="kessai-bench-replay-") as tmp:
        broker: Settings | None = None
        if args.bootstrap is None:
            print("starting a private broker ...", file=sys.stderr)
            broker = localkafka.up_private(Path(tmp), log=lambda line: None)
            bootstrap = broker.bootstrap
        else:
            bootstrap = args.bootstrap
        try:
            measured = _measure(bootstrap, topic, args)
        finally:
            if broker is not None:
                localkafka.down(broker)
    doc = _document(started, argv, args, measured)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    text = markdown(doc)
    (out / "results.md").write_text(text)
    print(text)
    print(f"results in {out}", file=sys.stderr)
    return 0


def _measure(bootstrap: str, topic: str, args: argparse.Namespace) -> _Measured:
    """Write the journal on *topic*, then run each command over it, then the baseline."""
    print(f"writing {args.records:,} journal records ...", file=sys.stderr)
    start_ms = journal_start_ms(time.time_ns() // 1_000_000, args.records)
    prefill_s = asyncio.run(
        prefill(bootstrap, topic, args.records, args.accounts, start_ms=start_ms)
    )
    print(f"  written in {prefill_s:.1f} s", file=sys.stderr)
    as_of = as_of_middle(start_ms, args.records)
    base = ["--topic-name", topic, "--no-progress"]
    runs = []
    for name, extra in (
        ("positions-1-process", ["positions", "--format", "csv", "--jobs", "1"]),
        ("positions", ["positions", "--format", "csv"]),
        ("positions-as-of", ["positions", "--format", "csv", "--as-of", as_of]),
        ("verify", ["verify", "--format", "csv"]),
    ):
        print(f"running {name} ...", file=sys.stderr)
        run = run_command(name, [*extra, *base], bootstrap)
        runs.append(run)
        print(
            f"  {run.records:,} records in {run.fold_s:.2f} s "
            f"({run.records_per_s:,.0f}/s), whole {run.wall_s:.2f} s, "
            f"peak RSS {run.max_rss_kib / 1024:,.0f} MiB",
            file=sys.stderr,
        )
    b_records, b_s = (0, 0.0)
    if args.baseline_records:
        print("running the pydantic baseline ...", file=sys.stderr)
        b_records, b_s = baseline(bootstrap, topic, args.baseline_records)
    return _Measured(prefill_s, as_of, runs, b_records, b_s)


def _document(
    started: datetime,
    argv: Sequence[str] | None,
    args: argparse.Namespace,
    measured: _Measured,
) -> dict[str, Any]:
    """``results.json``: the run, the machine, each command's figures, the baseline."""
    b_records, b_s = measured.baseline_records, measured.baseline_s
    return {
        "started": started.isoformat(timespec="seconds"),
        "command": "python -m kessai_bench.replay " + " ".join(argv or sys.argv[1:]),
        "machine": machine(localkafka.kafka_version()),
        "records": args.records,
        "accounts": args.accounts,
        "prefill_s": measured.prefill_s,
        "as_of": measured.as_of,
        "runs": [
            {
                "name": r.name,
                "command": r.command,
                "wall_s": r.wall_s,
                "max_rss_kib": r.max_rss_kib,
                "records": r.records,
                "fold_s": r.fold_s,
                "records_per_s": r.records_per_s,
                "own_peak_mib": r.own_peak_mib,
                "readers": r.readers,
                "readers_peak_mib_sum": r.readers_peak_mib_sum,
            }
            for r in measured.runs
        ],
        "baseline": {
            "records": b_records,
            "s": b_s,
            "records_per_s": b_records / b_s if b_s else 0.0,
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
