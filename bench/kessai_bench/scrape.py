"""What a ``/metrics`` scrape costs the worker's event loop, and what keeping it cheap
costs a batch: ``python -m kessai_bench.scrape --accounts 1000000``.

Builds ``--accounts`` funded account rows (two assets each, as the memory bench's
funding leaves them), then times, interleaved in rounds:

- ``full_pass_ms``: summing every row, what each scrape did before the running sums
  (:func:`streams.runtime.metrics.state_sums`);
- ``scrape_ms``: a scrape now (:func:`streams.runtime.metrics.live_state_sums` over
  the running sums: O(assets));
- ``add_us``: adding one batch's balance changes (two assets) to the running sums, the
  engine's price for them after each batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from streams.ledger.domain import AccountState
from streams.runtime.livesums import LiveSums
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
    live = LiveSums()
    live.rebuild(table, {})
    batch = {"JPYC": [-99_500, 0], "JP1103551Q43": [0, 0]}

    def add() -> None:
        for _ in range(WRITES):
            live.add(batch, 0)

    ways: dict[str, tuple[Callable[[], object], float]] = {
        "full_pass_ms": (lambda: state_sums(table, {}), 1e3),
        "scrape_ms": (lambda: live_state_sums(live), 1e3),
        "add_us": (add, 1e6 / WRITES),
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
        description="Time a /metrics scrape (full pass vs running sums) and a batch's sums.",
    )
    parser.add_argument("--accounts", type=int, default=1_000_000, help="rows (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds (default {ROUNDS})")
    args = parser.parse_args(argv)
    print(f"building {args.accounts:,} account rows ...", file=sys.stderr, flush=True)
    got = measure(args.accounts, args.rounds)
    print(
        f"accounts={args.accounts:,}: a scrape summing every row {got['full_pass_ms']:.1f} ms; "
        f"a scrape over the running sums {got['scrape_ms']:.3f} ms; a batch's balance "
        f"changes added to the sums {got['add_us']:.2f} µs (median of {args.rounds} rounds)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
