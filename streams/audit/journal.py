"""``kessai positions`` and ``kessai verify``: the ledger journal read back, as of any moment.

Both read ``ledger-events`` with :func:`streams.kafka.reader.read_batches` and fold it
with :class:`streams.audit.fold.JournalFold`. What they print:

- ``positions``: each account's available and locked balance per asset, as a table,
  JSON or CSV, on stdout. A journal that breaks its seq or balance rules prints its
  problems instead and exits 1: a position read from an inconsistent journal is a
  number nobody can stand behind.
- ``verify``: also recomputes every record's hash; prints each account's root (the
  hash of its last record as of the cut-off) and the journal root, then every problem
  found; exits 1 if there is one.

A summary (records, accounts, seconds, records per second) goes to stderr, so that
stdout stays the answer alone.
"""

from __future__ import annotations

import asyncio
import csv
import io
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from streams.audit import positions
from streams.audit.fold import JournalFold, Problem
from streams.config import Settings
from streams.errors import KessaiError
from streams.kafka.reader import (
    AsOf,
    AsOfError,
    Cut,
    cuts_for,
    parse_as_of,
    read_batches,
    require_history,
)

__all__ = ["FoldResult", "ReaderFailed", "fold_journal", "positions_main", "verify_main"]

#: Below this many records a fold stays in one process (forking costs ~0.1 s).
PARALLEL_RECORDS_MIN: Final = 50_000
#: Problems printed on stderr; the rest are counted.
PROBLEMS_SHOWN_MAX: Final = 20
PROG: Final = "kessai"
#: Problems that do not make a position wrong, only unproven (``verify`` reports them).
_PROOF_ONLY: Final = frozenset({"unchained", "altered", "broken_link"})


class ReaderFailed(KessaiError):
    """A reader process stopped without a fold: its error, or its exit code."""


@dataclass(frozen=True, slots=True)
class FoldResult:
    fold: JournalFold
    as_of: AsOf | None
    seconds: float
    #: Each reader process's peak RSS (KiB); empty when the fold ran in this process.
    readers_peak_rss_kib: tuple[int, ...] = ()

    def memory(self) -> str:
        """Peak RSS of this process and of the reader processes, for stderr."""
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        line = f"peak memory: {own:,} MiB in this process"
        if self.readers_peak_rss_kib:
            each = ", ".join(f"{k // 1024:,}" for k in self.readers_peak_rss_kib)
            total = sum(self.readers_peak_rss_kib) // 1024
            line += (
                f"; {len(self.readers_peak_rss_kib)} reader processes {each} MiB "
                f"(sum {total:,} MiB, pages shared since the fork counted in each)"
            )
        return line

    def summary(self, topic: str) -> str:
        rate = self.fold.records / self.seconds if self.seconds > 0 else 0.0
        where = "the head of the log" if self.as_of is None else self.as_of.describe()
        return (
            f"{topic} as of {where}: {self.fold.records:,} records, "
            f"{len(self.fold.roots()):,} accounts, read and folded in {self.seconds:.2f} s "
            f"({rate:,.0f} records/s)"
        )


def fold_journal(
    settings: Settings,
    topic: str,
    *,
    as_of: AsOf | None = None,
    hashes: bool = False,
    progress: bool | None = None,
    jobs: int | None = None,
) -> FoldResult:
    """Read ``topic`` up to ``as_of`` and fold it (``hashes``: recompute every hash).

    With ``jobs`` > 1 (default: one per core, at most one per partition) the partitions
    are shared out among that many forked processes, each reading and folding its own
    with a consumer of its own; their folds are merged. Accounts never span
    partitions, so nothing is lost by folding them apart. A journal under
    :data:`PARALLEL_RECORDS_MIN` records is folded in this process.
    """
    # Imported here: nothing else of kessai needs tqdm.
    from tqdm import tqdm

    started = time.perf_counter()
    found = asyncio.run(cuts_for(settings, topic, as_of))
    require_history({topic: found})
    cuts = [c for c in found if c.records_max > 0]
    total = sum(c.records_max for c in cuts)
    # Two per core by default: a reader waits on the broker part of the time (4 readers
    # on 2 cores beat 2 by ~15 %: docs/performance.md).
    wanted = jobs if jobs is not None else 2 * (os.cpu_count() or 1)
    jobs = max(1, min(wanted, len(cuts))) if total >= PARALLEL_RECORDS_MIN else 1
    bar = tqdm(
        total=total,
        unit="rec",
        unit_scale=True,
        desc=topic,
        file=sys.stderr,
        disable=None if progress is None else not progress,
        leave=False,
    )
    readers: tuple[int, ...] = ()
    try:
        if jobs == 1:
            fold = asyncio.run(_fold_cuts(settings, topic, cuts, hashes, bar.update))
        else:
            fold, readers = _fold_in_processes(settings, topic, _share(cuts, jobs), hashes, bar)
    finally:
        bar.close()
    return FoldResult(fold, as_of, time.perf_counter() - started, readers)


async def _fold_cuts(
    settings: Settings,
    topic: str,
    cuts: list[Cut],
    hashes: bool,
    advanced: Callable[[int], object] | None,
) -> JournalFold:
    fold = JournalFold(hashes=hashes)
    async for partition, records in read_batches(settings, topic, cuts, advanced=advanced):
        fold.feed(partition, records)
    return fold


def _share(cuts: list[Cut], jobs: int) -> list[list[Cut]]:
    """Cuts in ``jobs`` groups of about equal size, biggest first to the lightest group."""
    groups: list[list[Cut]] = [[] for _ in range(jobs)]
    sizes = [0] * jobs
    for cut in sorted(cuts, key=lambda c: -c.records_max):
        lightest = sizes.index(min(sizes))
        groups[lightest].append(cut)
        sizes[lightest] += cut.records_max
    return [g for g in groups if g]


def _fold_in_processes(
    settings: Settings,
    topic: str,
    groups: list[list[Cut]],
    hashes: bool,
    bar: Any,
) -> tuple[JournalFold, tuple[int, ...]]:
    context = multiprocessing.get_context("fork")  # no asyncio loop runs here: safe
    counters = context.Array("q", len(groups), lock=False)
    children = []
    for index, group in enumerate(groups):
        receive, send = context.Pipe(duplex=False)
        child = context.Process(
            target=_fold_child,
            args=(send, counters, index, settings, topic, group, hashes),
            daemon=True,
        )
        child.start()
        send.close()
        children.append((child, receive))
    try:
        results: dict[int, tuple[JournalFold, int]] = {}
        shown = 0
        while len(results) < len(children):
            for index, (child, receive) in enumerate(children):
                if index in results:
                    continue
                # Read before join: a big result would fill the pipe and block the child.
                if receive.poll(0.05):
                    outcome, payload, peak_rss_kib = receive.recv()
                    if outcome == "error":
                        raise ReaderFailed(f"a reader process failed: {payload}")
                    results[index] = (payload, peak_rss_kib)
                elif not child.is_alive() and not receive.poll(0):
                    # (polled once more: it may have sent its result and exited since)
                    raise ReaderFailed(f"a reader process died (exit code {child.exitcode})")
            now = sum(counters)
            bar.update(now - shown)
            shown = now
        fold = results[0][0]
        for index in range(1, len(children)):
            fold.merge(results[index][0])
        return fold, tuple(results[i][1] for i in range(len(children)))
    finally:
        for child, receive in children:
            receive.close()
            if child.is_alive():
                child.terminate()
            child.join()


def _fold_child(
    send: Any,
    counters: Any,
    index: int,
    settings: Settings,
    topic: str,
    cuts: list[Cut],
    hashes: bool,
) -> None:
    def advanced(n: int) -> None:
        counters[index] += n

    try:
        fold = asyncio.run(_fold_cuts(settings, topic, cuts, hashes, advanced))
        send.send(("ok", fold, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
    except BaseException as err:
        send.send(("error", f"{type(err).__name__}: {err}", 0))
    finally:
        send.close()


def _fold_and_say(
    settings: Settings,
    topic: str,
    as_of: str | None,
    *,
    hashes: bool,
    progress: bool | None,
    jobs: int | None,
) -> FoldResult | None:
    """Fold the journal, saying on stderr how it went; None (the error said) on failure."""
    try:
        cut = None if as_of is None else parse_as_of(as_of)
        result = fold_journal(
            settings,
            topic,
            as_of=cut,
            hashes=hashes,
            progress=progress,
            jobs=jobs,
        )
    except (AsOfError, TimeoutError, ReaderFailed) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return None
    print(result.summary(topic), file=sys.stderr)
    print(result.memory(), file=sys.stderr)
    return result


def _say_problems(problems: list[Problem], total: int) -> None:
    for problem in problems[:PROBLEMS_SHOWN_MAX]:
        print(f"  {problem}", file=sys.stderr)
    if total > PROBLEMS_SHOWN_MAX:
        print(f"  ... and {total - PROBLEMS_SHOWN_MAX:,} more", file=sys.stderr)


def positions_main(
    settings: Settings,
    *,
    topic: str,
    as_of: str | None,
    account: str | None,
    asset: str | None,
    fmt: positions.Format,
    progress: bool | None,
    jobs: int | None = None,
) -> int:
    result = _fold_and_say(settings, topic, as_of, hashes=False, progress=progress, jobs=jobs)
    if result is None:
        return 1
    fold = result.fold
    if fold.records == 0:
        # An empty journal is normal on a new system; a mistyped --topic-name looks the same.
        print(
            f"{PROG}: note: no committed records on topic {topic!r} up to the cut-off "
            f"(does it exist? `kessai topics list`)",
            file=sys.stderr,
        )
    # Decided on the counts of every kind, not on the problems kept: a long unchained
    # (version 1) history must not push a real gap out of the list.
    wrong_total = sum(n for kind, n in fold.kinds.items() if kind not in _PROOF_ONLY)
    if wrong_total:
        print(
            f"{PROG}: error: ledger journal is inconsistent, no position shown "
            f"({wrong_total:,} problems; `kessai verify` lists them all):",
            file=sys.stderr,
        )
        _say_problems([p for p in fold.problems if p.kind not in _PROOF_ONLY], wrong_total)
        return 1
    unproven = sum(n for kind, n in fold.kinds.items() if kind in _PROOF_ONLY)
    if unproven:
        print(
            f"{PROG}: note: {unproven:,} records fail the hash chain; run `kessai verify`",
            file=sys.stderr,
        )
    chosen = positions.select(fold.positions().values(), account=account, asset=asset)
    sys.stdout.write(positions.render(chosen, fmt))
    return 0


VerifyFormat = Literal["table", "json", "csv"]


def verify_main(
    settings: Settings,
    *,
    topic: str,
    as_of: str | None,
    account: str | None,
    fmt: VerifyFormat,
    progress: bool | None,
    jobs: int | None = None,
) -> int:
    result = _fold_and_say(settings, topic, as_of, hashes=True, progress=progress, jobs=jobs)
    if result is None:
        return 1
    fold = result.fold
    sys.stdout.write(render_roots(result, account=account, fmt=fmt))
    if fold.problems_total:
        print(f"{PROG}: error: {fold.problems_total:,} problems in the journal:", file=sys.stderr)
        _say_problems(fold.problems, fold.problems_total)
        return 1
    print(f"verified: every chain is whole; journal root {fold.journal_root()}", file=sys.stderr)
    return 0


def render_roots(result: FoldResult, *, account: str | None, fmt: VerifyFormat) -> str:
    """Per-account roots (filtered by ``account``) and the journal root (always over all)."""
    fold = result.fold
    seqs = fold.seqs()
    roots = sorted(
        (a, seqs[a], r) for a, r in fold.roots().items() if account is None or a == account
    )
    journal = fold.journal_root()
    if fmt == "json":
        doc = {
            "as_of": None if result.as_of is None else result.as_of.describe(),
            "records": fold.records,
            "journal_root": journal,
            "accounts": {a: {"seq": s, "root": r} for a, s, r in roots},
            "problems_total": fold.problems_total,
            "problems": [
                {
                    "kind": p.kind,
                    "partition": p.partition,
                    "offset": p.offset,
                    "account": p.account,
                    "seq": p.seq,
                    "detail": p.detail,
                }
                for p in fold.problems
            ],
        }
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("account", "seq", "root"))
        writer.writerows(roots)
        writer.writerow(("*journal*", fold.records, journal))
        return out.getvalue()
    width = max([len("account"), *(len(a) for a, _, _ in roots)])
    lines = [f"{'account':<{width}}  {'seq':>10}  root"]
    lines += [f"{a:<{width}}  {s:>10}  {r}" for a, s, r in roots]
    lines.append(f"{'(journal)':<{width}}  {'':>10}  {journal}")
    return "\n".join(lines) + "\n"
