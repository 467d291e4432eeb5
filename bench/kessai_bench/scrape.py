"""What a ``/metrics`` scrape costs the worker's event loop, and what a write costs to
keep it cheap: ``python -m kessai_bench.scrape --accounts 1000000``.

Builds ``--accounts`` funded account rows (two assets each, as the memory bench's
funding leaves them) and a thousand open sagas, then times, interleaved in rounds:

- ``full_pass_ms``: summing every row, what each scrape did before the running sums
  (:func:`streams.runtime.metrics.state_sums`);
- ``scrape_ms``: a scrape now (:func:`streams.runtime.metrics.live_state_sums` over
  the running sums: O(assets));
- ``apply_us``: adding one ledger command's postings (two balance changes) to the
  running sums, and ``saga_write_us`` against ``plain_write_us``: a saga row written
  through :class:`streams.runtime.livesums.SummedTable` or straight into a dict: the
  running sums' price on the hot path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

from streams.ledger.domain import AccountState, Posting
from streams.runtime.livesums import LiveSums, SummedTable
from streams.runtime.metrics import live_state_sums, state_sums

ROUNDS = 5
#: Account writes timed per round.
WRITES = 20_000


def _row(n: int) -> bytes:
    state = AccountState()
    state.balances["JPYC"] = [1_000_000 + n, 0]
    state.balances["JP1103551Q43"] = [100_000, 0]
    return state.to_bytes()


def measure(accounts: int, rounds: int = ROUNDS) -> dict[str, float]:
    table = {f"acct-{i:07d}": _row(i) for i in range(accounts)}
    sagas = {
        f"t{i}": {"stage": "locking", "bonds": "queued", "pending_reason": "insufficient_cash",
                  "trade": {"arrived_s": 1_000.0 + i}}
        for i in range(1_000)
    }  # fmt: skip
    live = LiveSums()
    live.rebuild(table, sagas, 0)
    summed = SummedTable(dict(sagas), live.saga)
    plain = dict(sagas)
    keys = [f"t{i % 1_000}" for i in range(WRITES)]
    row = sagas["t0"]
    postings = [
        Posting("acct-0000001", "JPYC", -99_500, 99_500, 0, 99_500, "t/cash", 2),
        Posting("acct-0000001", "JPYC", 0, -99_500, 0, 0, "t/cash", 3),
    ]

    def write(target: MutableMapping[str, Any]) -> None:
        for key in keys:
            target[key] = row

    def apply() -> None:
        for _ in range(WRITES):
            live.apply(postings, 0)

    ways: dict[str, tuple[Callable[[], object], float]] = {
        "full_pass_ms": (lambda: state_sums(table, {}, sagas), 1e3),
        "scrape_ms": (lambda: live_state_sums(live, {}), 1e3),
        "apply_us": (apply, 1e6 / WRITES),
        "saga_write_us": (lambda: write(summed), 1e6 / WRITES),
        "plain_write_us": (lambda: write(plain), 1e6 / WRITES),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, (way, scale) in ways.items():
            started = time.perf_counter()
            way()
            times[name].append((time.perf_counter() - started) * scale)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kessai_bench.scrape",
        description="Time a /metrics scrape (full pass vs running sums) and a summed write.",
    )
    parser.add_argument("--accounts", type=int, default=1_000_000, help="rows (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds (default {ROUNDS})")
    args = parser.parse_args(argv)
    print(f"building {args.accounts:,} account rows ...", file=sys.stderr, flush=True)
    got = measure(args.accounts, args.rounds)
    print(
        f"accounts={args.accounts:,}: a scrape summing every row {got['full_pass_ms']:.1f} ms; "
        f"a scrape over the running sums {got['scrape_ms']:.3f} ms; per write: a ledger "
        f"command's postings {got['apply_us']:.2f} µs, a saga row {got['saga_write_us']:.2f} "
        f"µs through the sums vs {got['plain_write_us']:.2f} µs plain "
        f"(median of {args.rounds} rounds)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
