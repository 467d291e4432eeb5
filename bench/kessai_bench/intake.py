"""A trade's intake cost with and without the security master and dates (issue 20).

``python -m kessai_bench.intake`` (``make bench-intake``): the settlement engine's
``to_trade`` on one decoded JPYC trade of 10-year JGB #377, in one process, the
variants interleaved round after round so that a busy machine slows them alike:

- ``no dates``: an engine whose rules have no settlement lag (the batches written
  before issue 20, which a replay repeats);
- ``dates, lag 0, master off``: trade and settlement dates, the 24/7 market;
- ``dates, lag 1, master required``: the security master's checks, T+1 on the
  Japanese calendar and kessai's accrued interest.

Prints the median µs per trade of each and the runs behind it. Pure: no broker.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import orjson

from schemas import INSTRUMENTS, TRADES, Instrument, TradeExecuted, decode
from streams.cli.instruments import reference_file
from streams.settlement.intake import Master, to_trade

__all__ = ["main"]

TOKENS = {"JPYC": 0, "USDC": 6}
#: 2026-12-04 10:00 JST, the trade's arrival.
ARRIVED_S = 1_796_000_000.0


def _master() -> dict[str, Instrument]:
    bonds = {}
    for line in reference_file().read_bytes().splitlines():
        bond = decode(INSTRUMENTS, line)
        assert isinstance(bond, Instrument)
        bonds[bond.isin] = bond
    return bonds


def _trade() -> TradeExecuted:
    record = {"trade_id": "t1", "venue": "v", "isin": "JP1103771Q62", "buyer": "b",
              "seller": "s", "quantity": 100_000_000, "price": "98.765", "currency": "JPYC",
              "trade_time": "2026-12-04T01:00:00Z"}  # fmt: skip
    trade = decode(TRADES, orjson.dumps(record))
    assert isinstance(trade, TradeExecuted)
    return trade


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kessai_bench.intake", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--trades", type=int, default=20_000, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    args = parser.parse_args(argv)
    trade = _trade()
    variants = {
        "no dates": None,
        "dates, lag 0, master off": Master(0, None),
        "dates, lag 1, master required": Master(1, _master()),
    }
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, master in variants.items():
            started = time.perf_counter()
            for _ in range(args.trades):
                to_trade(trade, ARRIVED_S, tokens=TOKENS, deadline_s=3600.0, master=master)
            runs[name].append((time.perf_counter() - started) / args.trades * 1e6)
    for name, xs in runs.items():
        shown = ", ".join(f"{x:.1f}" for x in xs)
        print(f"{name:32s} median {statistics.median(xs):5.1f} µs/trade  ({shown})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
