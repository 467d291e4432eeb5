"""The demo's report: what was seen, printed section by section (trades, orders,
matched trades, the book, rejections, positions, a summary), each compared with what
the story expected; then where to look.

:func:`print_report` prints and returns the problems, one line each: whatever is missing
or differs from the story. An empty list means the demo went as told.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from schemas import TRADES
from streams.audit.positions import JournalError
from streams.audit.positions import render_table as render_positions
from streams.config import Settings
from streams.devtools.demo.seen import Seen, balances
from streams.devtools.demo.story import (
    BOND_10Y,
    DEMO_DEADLINE_S,
    VENUES,
    Depth,
    OrderStep,
    Status,
    Story,
)
from streams.matching.depth import LEVELS_DEFAULT, depth_table
from streams.matching.handler import MATCHING_VENUE


def print_report(story: Story, seen: Seen) -> list[str]:
    """Print what was seen; return how it differs from *story* (nothing: as expected)."""
    problems: list[str] = []
    _report_trades(story, seen, problems)
    bound = _report_orders(story, seen, problems)
    _report_matches(story, seen, bound, problems)
    _report_book(story, seen, problems)
    _report_rejections(story, seen, problems)
    _report_positions(story, seen, problems)
    _report_summary(story, seen)
    return problems


def _show(statuses: list[Status]) -> str:
    return " -> ".join(s if r is None else f"{s} ({r})" for s, r in statuses) or "(none)"


def _report_trades(story: Story, seen: Seen, problems: list[str]) -> None:
    print(
        "\nTrades (committed settlements; cash = face x price / 100 + accrued, kessai's from "
        "the security master,\n  counted in days since the last coupon date or the issue; the USDC "
        "trade's, in yen, converted once at its fx_rate):"
    )
    print(
        f"  {'trade':<10} {'buyer':<13} {'seller':<12} {'face':>9}  {'isin':<12} "
        f"{'accrued':>14} {'cash':>17}  statuses"
    )
    for trade_id, want in story.statuses.items():
        t = story.trade_records[trade_id]
        got = seen.statuses.get(trade_id, [])
        print(
            f"  {trade_id:<10} {t.buyer:<13} {t.seller:<12} {t.quantity:>9}  {t.isin:<12} "
            f"{seen.accrued.get(trade_id, '-'):>14} {seen.cash.get(trade_id, '-'):>17}  "
            f"{_show(got)}"
        )
        if got != want:
            problems.append(f"trade {trade_id}: statuses {_show(got)}, want {_show(want)}")
    _report_fx(story, seen, problems)


def _report_fx(story: Story, seen: Seen, problems: list[str]) -> None:
    """How each trade paid in USDC converted, as its settlement records it."""
    for trade_id, t in story.trade_records.items():
        if t.fx_rate is None:
            continue
        fx = seen.fx.get(trade_id)
        if fx is None:
            problems.append(f"trade {trade_id}: no settlement with its fx_rate")
            continue
        print(
            f"  {trade_id}: paid in {t.currency}: ({fx['principal']} + {fx['accrued']}) JPY "
            f"/ {fx['fx_rate']} JPY per USD ({fx['fx_source']}, {fx['fx_time']}) = "
            f"{fx['cash_amount']} {t.currency}, truncated to 6 decimals"
        )
        if fx["fx_rate"] != format(t.fx_rate, "f"):
            problems.append(f"trade {trade_id}: fx_rate {fx['fx_rate']}, want {t.fx_rate}")


def _step_of(event: Mapping[str, Any]) -> OrderStep:
    return (
        event["event"],
        event["reason"],
        event["filled_quantity"],
        event["remaining_quantity"],
        event["price"],
    )


def _show_step(step: OrderStep, match: str | None) -> str:
    """``filled 100000 @ 99.60 #2``, ``cancelled (self_match, 100000 left)``, ..."""
    event, reason, filled, remaining, price = step
    if event in ("filled", "partially_filled"):
        return f"{event} {filled} @ {price} {match or '#?'}"
    if event == "cancelled":
        return f"{event} ({reason}, {remaining} left)"
    return event if reason is None else f"{event} ({reason})"


def _show_steps(steps: list[OrderStep], matches: list[str | None]) -> str:
    return " -> ".join(_show_step(s, m) for s, m in zip(steps, matches, strict=True)) or "(none)"


def _bind(story: Story, seen: Seen) -> tuple[dict[int, str], list[str]]:
    """The trade id each of the story's matches got, read off the fill events of
    the orders whose events came as expected (a fill's two orders must agree);
    and the disagreements."""
    found: dict[int, set[str]] = defaultdict(set)
    for order_id, order in story.order_steps.items():
        got = seen.orders.get(order_id, [])
        if [_step_of(e) for e in got] != [s.key() for s in order.steps]:
            continue
        for step, event in zip(order.steps, got, strict=True):
            if step.match is not None:
                found[step.match].add(event["trade_id"])
    bound = {n: next(iter(ids)) for n, ids in found.items() if len(ids) == 1}
    problems = [
        f"matched trade #{n}: its two orders' fill events name {' and '.join(sorted(ids))}"
        for n, ids in sorted(found.items())
        if len(ids) > 1
    ]
    return bound, problems


def _report_orders(story: Story, seen: Seen, problems: list[str]) -> dict[int, str]:
    """Print each order's events; return the trade id of each expected match."""
    bound, disagreements = _bind(story, seen)
    problems.extend(disagreements)
    number = {trade_id: f"#{n}" for n, trade_id in bound.items()}
    print(f"\nOrders (committed order-events of {BOND_10Y}; #n: the matched trade below):")
    print(f"  {'order':<11} {'venue':<12} {'account':<13} {'submitted':<23} events")
    for order_id, order in story.order_steps.items():
        events = seen.orders.get(order_id, [])
        got = [_step_of(e) for e in events]
        shown = _show_steps(got, [number.get(e["trade_id"]) for e in events])
        print(f"  {order_id:<11} {order.venue:<12} {order.account:<13} {order.what:<23} {shown}")
        want = [s.key() for s in order.steps]
        if got != want:
            labels = [None if s.match is None else f"#{s.match}" for s in order.steps]
            problems.append(f"order {order_id}: {shown}, want {_show_steps(want, labels)}")
    return bound


def _report_matches(story: Story, seen: Seen, bound: dict[int, str], problems: list[str]) -> None:
    print(f"\nMatched trades (venue {MATCHING_VENUE}: made by the engine, settled from the orders' "
          "reservations):")  # fmt: skip
    print(
        f"  {'#':<2} {'trade':<34} {'buyer':<13} {'seller':<13} {'face':>7} {'price':>6} "
        f"{'accrued':>12} {'cash':>12}  statuses"
    )
    for n, want in enumerate(story.matches, 1):
        trade_id = bound.get(n)
        name = f"#{n} ({want.buyer} buys {want.quantity} at {want.price} from {want.seller})"
        if trade_id is None:
            print(f"  {n:<2} {'(no fill event names it)':<34}")
            problems.append(f"matched trade {name}: no order event names it")
            continue
        got = seen.statuses.get(trade_id, [])
        trade = seen.matched.get(trade_id)
        if trade is None:
            problems.append(f"matched trade {name} {trade_id}: no settlement")
            trade = {"buyer": "-", "seller": "-", "quantity": "-", "price": "-"}
        print(
            f"  {n:<2} {trade_id:<34} {trade['buyer']:<13} {trade['seller']:<13} "
            f"{trade['quantity']:>7} {trade['price']:>6} {seen.accrued.get(trade_id, '-'):>12} "
            f"{seen.cash.get(trade_id, '-'):>12}  {_show(got)}"
        )
        if trade_id in seen.matched:
            made = tuple(trade[k] for k in ("buyer", "seller", "quantity", "price"))
            if made != (want.buyer, want.seller, want.quantity, want.price):
                problems.append(
                    f"matched trade {name} {trade_id}: {trade['buyer']} buys "
                    f"{trade['quantity']} at {trade['price']} from {trade['seller']}"
                )
        if got != [("settled", None)] or seen.cash.get(trade_id) != want.cash:
            problems.append(
                f"matched trade {name} {trade_id}: {_show(got)} "
                f"({seen.cash.get(trade_id, 'no cash leg')}), want settled ({want.cash})"
            )
    expected = set(bound.values())
    for trade_id in dict.fromkeys([*seen.fill_ids(), *seen.matched]):
        if trade_id not in expected:
            problems.append(f"unexpected matched trade {trade_id}: {seen.matched.get(trade_id)}")


def _report_book(story: Story, seen: Seen, problems: list[str]) -> None:
    print(f"\nBook (kessai book {BOND_10Y}: the engine's committed order rows):")
    if seen.books is None:
        problems.append(f"book of {BOND_10Y}: {seen.books_error}")
        return
    table = depth_table(BOND_10Y, seen.books, LEVELS_DEFAULT)
    print("  " + table.rstrip("\n").replace("\n", "\n  "))
    book = seen.books.get("JPYC")
    got = book.depth(LEVELS_DEFAULT) if book is not None else ([], [])
    if got != story.depth:
        problems.append(
            f"book of {BOND_10Y} in JPYC: {_show_depth(got)}, want {_show_depth(story.depth)}"
        )


def _show_depth(depth: tuple[Depth, ...]) -> str:
    """``bids 50000 @ 99.40 (1 order), ...; asks none``"""
    bids, asks = (
        ", ".join(f"{face} @ {price} ({n} order{'s' * (n != 1)})" for price, face, n in side)
        or "none"
        for side in depth
    )
    return f"bids {bids}; asks {asks}"


def _report_rejections(story: Story, seen: Seen, problems: list[str]) -> None:
    print("\nRejections (nothing changed):")
    for marker, reason in story.rejections.items():
        rejected = seen.rejections.get(marker)
        if rejected is None:
            problems.append(f"no rejection for {marker} (want {reason})")
            continue
        print(
            f"  {marker:<10} {rejected['source_topic']:<9} {rejected['reason']:<19} "
            f"{rejected['detail']}"
        )
        if rejected["reason"] != reason:
            problems.append(f"{marker}: rejected as {rejected['reason']}, want {reason}")


def _report_positions(story: Story, seen: Seen, problems: list[str]) -> None:
    print("\nPositions (this run's accounts, replayed from committed ledger-events):")
    try:
        positions = seen.positions()
    except JournalError as err:
        problems.append(str(err))
        positions = {}
    print("  " + render_positions(positions.values()).rstrip("\n").replace("\n", "\n  "))
    got_balances = balances(positions)
    for key in sorted(story.positions.keys() | got_balances.keys()):
        if got_balances.get(key) != story.positions.get(key):
            problems.append(
                f"position {key[0]} {key[1]}: {_pair(got_balances.get(key))} "
                f"(available, locked), want {_pair(story.positions.get(key))}"
            )


def _pair(balance: tuple[Decimal, Decimal] | None) -> str:
    return "nothing" if balance is None else f"{balance[0]}, {balance[1]}"


def _report_summary(story: Story, seen: Seen) -> None:
    last = [s[-1] for s in (seen.statuses.get(t, []) for t in story.statuses) if s]
    counts = Counter(status for status, _ in last)
    failed = Counter(reason or "?" for status, reason in last if status == "failed")
    rejected = Counter(r["reason"] for r in seen.rejections.values())
    trades_rejected = sum(1 for r in seen.rejections.values() if r["source_topic"] == TRADES)
    after_pending = sum(
        1
        for t in story.statuses
        if [s for s, _ in seen.statuses.get(t, [])][-2:] == ["pending", "settled"]
    )
    print(f"\nSummary (run {story.run}, settlement deadline {DEMO_DEADLINE_S} s):")
    print(
        f"  trades     {len(story.trades)} published by the venue: {len(last)} accepted, "
        f"{trades_rejected} rejected"
    )
    print(f"  settled    {counts['settled']} ({after_pending} of them pending first)")
    print(f"  pending    {counts['pending']}")
    print(f"  failed     {counts['failed']}{_by_reason(failed)}")
    print(f"  rejected   {sum(rejected.values())} records{_by_reason(rejected)}")
    events = [e for order_id in story.order_steps for e in seen.orders.get(order_id, [])]
    cancels = len(story.orders) - len(story.order_steps)  # the rest are orders
    cancelled = Counter(e["reason"] for e in events if e["event"] == "cancelled")
    made = seen.fill_ids()
    made_last = Counter(seen.statuses[t][-1][0] for t in made if seen.statuses.get(t))
    print(
        f"  orders     {len(story.orders)} published by {len(VENUES)} venues "
        f"({len(story.orders) - cancels} orders, {cancels} cancel): "
        f"{sum(1 for e in events if e['event'] == 'accepted')} accepted, "
        f"{sum(1 for e in events if e['event'] == 'rejected')} rejected"
    )
    print(f"  cancelled  {cancelled.total()} orders{_by_reason(cancelled)}")
    print(
        f"  matched    {len(made)} trades by the matcher: {made_last['settled']} settled, "
        f"{made_last['pending']} pending, {made_last['failed']} failed"
    )


def _by_reason(counts: Mapping[str, int]) -> str:
    """`` (a 2, b 1)``, or nothing."""
    if not counts:
        return ""
    return " (" + ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) + ")"


def where_to_look(settings: Settings, worker_log: Path) -> None:
    print("\nWhere to look:")
    print(f"  worker log        {worker_log}")
    print(f"  broker            {settings.bootstrap}  (kessai kafka status)")
    web = f"http://127.0.0.1:{settings.web_port}"
    print(f"  dashboard         {web}/  (refreshes itself)")
    print(f"  metrics           {web}/metrics  (Prometheus: deploy/prometheus/local.yml)")
    print(f"  health, queries   {web}/health, {web}/positions/ACCOUNT, {web}/trades/TRADE_ID")
    print(
        "  journal           kessai topics list; settlements, ledger-events, order-events, "
        "rejections, penalties (read_committed); kessai penalties --month YYYY-MM"
    )
    print(f"  order book        kessai book {BOND_10Y}  (any ISIN; --format json)")
    print("  publish your own  kessai publish payments examples/payments.jsonl")
