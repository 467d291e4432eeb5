"""What the fails lifecycle costs the settlement engine (issue 21), pure, in one process.

``python -m kessai_bench.fails`` (``make bench-fails``): the engine's :class:`Batch` on
T+1 trades of 10-year JGB #377, under two sets of rules, the variants interleaved
round after round so that a busy machine slows them alike:

- ``atomic, strict FIFO``: the batches written before issue 21 (a replay repeats them);
- ``recycle, any fit, csdr``: the default since: cut-offs, fail days, penalties.

Three workloads, each a fresh engine per round, ``--trades`` trades between accounts of
their own:

- ``funded``: both sides hold what they owe; every trade settles in its own batch on
  the fast path (the rules should cost nothing here);
- ``fail, then settle``: the sellers hold nothing; the trades start with their date
  (pending), pass their cut-off (recycle: failing, a fail-day probe and a penalty
  record each; atomic: nothing yet) and settle when the bonds come;
- ``partial`` (recycle only): the sellers hold 60 % at the cut-off, which settles that
  part (a split, a lock, two posts, a penalty on the rest); the rest comes and settles.

Prints the median µs per trade over the workload's batches, and the runs behind it.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

import orjson

from schemas import CUSTODY, INSTRUMENTS, PAYMENTS, TRADES
from streams.bonds.terms import start_of
from streams.cli.instruments import reference_file
from streams.engine.core import Batch, Engine, Rules
from streams.settlement.fails import FailRules, PenaltyRules

__all__ = ["main"]

BOND = "JP1103771Q62"
TOKENS = {"JPYC": 0, "USDC": 6}
ATOMIC = Rules(tokens=TOKENS, deadline_s=3600.0, settlement_lag=1, instruments_required=True)
RECYCLE = dataclasses.replace(
    ATOMIC,
    fails=FailRules(14 * 3600.0, 60, business_days=True, penalties=PenaltyRules("csdr")),
    any_fit=True,
)
Input = tuple[str, bytes, bytes]


def _jst(day: str, hour: float = 0) -> float:
    return start_of(date.fromisoformat(day)) + hour * 3600


TRADED, STARTS, CUTOFF, LATER = (
    _jst("2025-11-04", 10), _jst("2025-11-05"), _jst("2025-11-05", 14), _jst("2025-11-06", 9)
)  # fmt: skip


def _instrument() -> Input:
    for line in reference_file().read_bytes().splitlines():
        if orjson.loads(line)["isin"] == BOND:
            return INSTRUMENTS, BOND.encode(), line
    raise AssertionError(BOND)


def _trade(n: int, partial: bool) -> Input:
    stamp = datetime.fromtimestamp(TRADED, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    value = {"trade_id": f"t{n}", "venue": "v", "isin": BOND, "buyer": f"b{n}",
             "seller": f"s{n}", "quantity": 100_000_000, "price": "98.765",
             "currency": "JPYC", "trade_time": stamp}  # fmt: skip
    if partial:
        value["partial"] = "allowed"
    return TRADES, f"t{n}".encode(), orjson.dumps(value)


def _bonds(n: int, face: int, tag: str) -> Input:
    value = {"movement_id": f"m{tag}{n}", "account": f"s{n}", "isin": BOND, "quantity": face,
             "kind": "deposit"}  # fmt: skip
    return CUSTODY, f"s{n}".encode(), orjson.dumps(value)


def _cash(n: int) -> Input:
    value = {"payment_id": f"p{n}", "account": f"b{n}", "token": "JPYC",
             "amount": "200000000", "kind": "deposit"}  # fmt: skip
    return PAYMENTS, f"b{n}".encode(), orjson.dumps(value)


def _batch(engine: Engine, rules: Rules, now_s: float, records: Sequence[Input]) -> None:
    batch = Batch(engine, rules, now_s)
    for offset, (topic, key, value) in enumerate(records):
        batch.record(topic, 0, offset, key, value, now_s)
    batch.expire()
    batch.finish()


def _run(rules: Rules, count: int, workload: str) -> float:
    """Seconds the workload's timed batches took (the set-up is not timed)."""
    engine = Engine()
    ns = range(count)
    partial = workload == "partial"
    setup = [_instrument(), *(_cash(n) for n in ns)]
    if workload == "funded":
        setup += [_bonds(n, 100_000_000, "a") for n in ns]
    _batch(engine, rules, TRADED, setup)
    started = time.perf_counter()
    _batch(engine, rules, TRADED, [_trade(n, partial) for n in ns])
    if workload == "funded":
        _batch(engine, rules, STARTS, [])
        return time.perf_counter() - started
    _batch(engine, rules, STARTS, [_bonds(n, 60_000_000, "a") for n in ns] if partial else [])
    _batch(engine, rules, CUTOFF, [])
    rest = 40_000_000 if partial else 100_000_000
    _batch(engine, rules, LATER, [_bonds(n, rest, "b") for n in ns])
    elapsed = time.perf_counter() - started
    assert not engine.open, f"{workload}: {len(engine.open)} trades still open"
    return elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kessai_bench.fails", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--trades", type=int, default=5_000, help="per run (default 5,000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    args = parser.parse_args(argv)
    cases: dict[str, Callable[[], float]] = {}
    for workload in ("funded", "fail, then settle", "partial"):
        for name, rules in (("atomic, strict FIFO", ATOMIC), ("recycle, any fit, csdr", RECYCLE)):
            if workload == "partial" and rules is ATOMIC:
                continue
            cases[f"{workload:18s} {name}"] = (
                lambda r=rules, w=workload: _run(r, args.trades, w)  # type: ignore[misc]
            )
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, case in cases.items():
            runs[name].append(case() / args.trades * 1e6)
    print(f"{args.trades:,} trades a run, {args.rounds} rounds; µs per trade, all its batches")
    for name, xs in runs.items():
        shown = ", ".join(f"{x:.0f}" for x in xs)
        print(f"{name:44s} median {statistics.median(xs):6.1f}  ({shown})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
