"""What matching in the engine costs, with reservations (issue 21), pure, in one process.

``python -m kessai_bench.matching`` (``make bench-matching``): the engine's
:class:`Batch` (T+0 rules: a matched trade settles in the batch of its fill) on ¥10m
face of 10-year JGB #377 at 98.765, the variants interleaved round after round so
that a busy machine slows them alike:

- ``venue trade``: one ``trades`` record per trade, both sides funded (the fast path);
- ``order pair``: a resting sell, then the buy that fills all of it: two reservations,
  the book, the fill's locks taken from the reservations, the trade settled;
- ``unfunded order``: a buy from an account with no cash, rejected
  ``insufficient_funds`` (what a flood of them costs);
- ``pair, 1,000 resting``: the pairs again, with 1,000 bids resting below them;
- ``venue trade, USDC`` and ``order pair, USDC``: the same paid in USDC, priced in yen
  and converted at an FX rate (the venue's, checked against the ``fx-rates``
  reference; the reference for the fills: docs/fx.md).

Prints the median µs per trade (per order for the unfunded), all its batches, and the
runs behind it.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

import orjson

from schemas import CUSTODY, FX_RATES, INSTRUMENTS, ORDERS, PAYMENTS, TRADES
from streams.bonds.terms import start_of
from streams.cli.instruments import reference_file
from streams.engine.core import Batch, Engine, Rules
from streams.settlement.fx import FxRules

__all__ = ["main"]

BOND = "JP1103771Q62"
TOKENS = {"JPYC": 0, "USDC": 6}
RULES = Rules(tokens=TOKENS, deadline_s=3600.0, settlement_lag=0, instruments_required=True,
              any_fit=True, fx=FxRules(), onchain={"JPYC": 18, "USDC": 6})  # fmt: skip
NOW = start_of(date(2025, 11, 4)) + 10 * 3600
STAMP = datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
FACE = 10_000_000
Input = tuple[str, bytes, bytes]


def _instrument() -> Input:
    for line in reference_file().read_bytes().splitlines():
        if orjson.loads(line)["isin"] == BOND:
            return INSTRUMENTS, BOND.encode(), line
    raise AssertionError(BOND)


def _funding(n: int) -> list[Input]:
    cash = {"payment_id": f"p{n}", "account": f"b{n}", "token": "JPYC",
            "amount": "20000000", "kind": "deposit"}  # fmt: skip
    usdc = {"payment_id": f"u{n}", "account": f"b{n}", "token": "USDC",
            "amount": "200000", "kind": "deposit"}  # fmt: skip
    bonds = {"movement_id": f"m{n}", "account": f"s{n}", "isin": BOND, "quantity": FACE,
             "kind": "deposit"}  # fmt: skip
    return [(PAYMENTS, f"b{n}".encode(), orjson.dumps(cash)),
            (PAYMENTS, f"b{n}".encode(), orjson.dumps(usdc)),
            (CUSTODY, f"s{n}".encode(), orjson.dumps(bonds))]  # fmt: skip


#: USDC's reference rate, observed when the trades are.
REFERENCE: Input = (FX_RATES, b"USDC", orjson.dumps(
    {"currency": "USDC", "rate": "151.234", "source": "bench-fixing", "at": STAMP}))  # fmt: skip


def _order(order_id: str, account: str, side: str, price: str, face: int = FACE,
           currency: str = "JPYC") -> Input:  # fmt: skip
    value = {"order_id": order_id, "venue": "v", "account": account, "isin": BOND,
             "side": side, "quantity": face, "price": price, "currency": currency}  # fmt: skip
    return ORDERS, BOND.encode(), orjson.dumps(value)


def _trade(n: int, currency: str = "JPYC") -> Input:
    value = {"trade_id": f"t{n}", "venue": "v", "isin": BOND, "buyer": f"b{n}",
             "seller": f"s{n}", "quantity": FACE, "price": "98.765", "currency": currency,
             "trade_time": STAMP}  # fmt: skip
    if currency == "USDC":
        value.update(fx_rate="151.3", fx_source="venue-feed", fx_time=STAMP)
    return TRADES, f"t{n}".encode(), orjson.dumps(value)


def _batch(engine: Engine, records: Sequence[Input]) -> int:
    batch = Batch(engine, RULES, NOW)
    for offset, (topic, key, value) in enumerate(records):
        batch.record(topic, 0, offset, key, value, NOW)
    batch.expire()
    return batch.finish().fills


def _run(workload: str, count: int) -> float:
    """Seconds the workload's timed batch took (the set-up is not timed)."""
    engine = Engine()
    ns = range(count)
    setup = [_instrument(), REFERENCE, *(r for n in ns for r in _funding(n))]
    if workload == "pair, 1,000 resting":
        setup += _funding(-1)
        setup += [_order(f"rest{i}", "b-1", "buy", "98.000", 50_000) for i in range(1_000)]
    _batch(engine, setup)
    currency = "USDC" if workload.endswith("USDC") else "JPYC"
    if workload.startswith("venue trade"):
        timed = [_trade(n, currency) for n in ns]
    elif workload == "unfunded order":
        timed = [_order(f"u{n}", f"nobody{n}", "buy", "98.765") for n in ns]
    else:
        timed = [o for n in ns for o in (
            _order(f"s{n}", f"s{n}", "sell", "98.765", currency=currency),
            _order(f"b{n}", f"b{n}", "buy", "98.765", currency=currency))]  # fmt: skip
    started = time.perf_counter()
    fills = _batch(engine, timed)
    elapsed = time.perf_counter() - started
    assert not engine.open, f"{workload}: {len(engine.open)} trades still open"
    assert fills == (count if "pair" in workload else 0), (workload, fills)
    return elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kessai_bench.matching", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--trades", type=int, default=5_000, help="per run (default 5,000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    args = parser.parse_args(argv)
    workloads = ("venue trade", "venue trade, USDC", "order pair", "order pair, USDC",
                 "pair, 1,000 resting", "unfunded order")  # fmt: skip
    cases: dict[str, Callable[[], float]] = {
        w: functools.partial(_run, w, args.trades) for w in workloads
    }
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, case in cases.items():
            runs[name].append(case() / args.trades * 1e6)
    print(f"{args.trades:,} a run, {args.rounds} rounds; µs per trade (per order: unfunded)")
    for name, xs in runs.items():
        shown = ", ".join(f"{x:.0f}" for x in xs)
        print(f"{name:22s} median {statistics.median(xs):6.1f}  ({shown})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
