"""`make run`'s demo, end to end on the real broker: the README's first command works.

It runs ``kessai demo`` as `make run` does, and stops it with a SIGTERM once it says
its worker keeps running (the worker must stop with it): a real worker process (with
the demo's short settlement deadline), deposits on ``payments`` and ``custody``, a
venue's trades on ``trades``, late deposits, two venues' orders on ``orders`` matched
into trades that settle, and every expected settlement status, order event, matched
trade, rejection, book level and balance read back with read_committed. The demo
exits non-zero if any is missing or wrong; on top of that, this test reads the
summary and tables it prints.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from streams.bonds.accrued import Accrued, accrued
from streams.bonds.terms import jst_date
from streams.devtools.processes import free_port
from streams.money import from_units
from streams.settlement.fx import convert

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Worker start (~12 s on a busy machine), the 30 s deadline, commits: about a minute.
DEMO_TIMEOUT_S = 420
#: The story's bonds (the reference security master): 10-year #384 (1.8 %) and 20-year
#: #198 (2.5 %), both issued 1 October 2026, coupons 20 March and 20 September.
BOND_10Y, BOND_20Y = "JP1103841Q68", "JP1201981Q60"
RATES = {BOND_10Y: Decimal("1.8"), BOND_20Y: Decimal("2.5")}
ISSUED = dt.date(2026, 10, 1)


def _accrued(isin: str, face: int) -> Accrued:
    """kessai's accrued interest for settlement today (the demo settles at lag 0)."""
    return accrued(face, RATES[isin], jst_date(time.time()), ((3, 20), (9, 20)), ISSUED)


def _ai(isin: str, face: int) -> int:
    return _accrued(isin, face).jpy


def _days() -> int:
    """Days of accrued interest today: since the last coupon date, or the issue."""
    return _accrued(BOND_10Y, 100_000).days


def _cash(isin: str, face: int, price: str) -> int:
    return int(face * Decimal(price) / 100) + _ai(isin, face)


def _t2_usdc() -> int:
    """t2's cash: 300,000 face of BOND_20Y at 99.52 plus today's accrued, in yen,
    converted once at 151.234 JPY per USD (docs/fx.md). Asked when the lines are
    checked, as the other amounts are: computed at import, before a run that crossed
    midnight in Japan, it took the day before's accrued."""
    return convert(298_560 + _ai(BOND_20Y, 300_000), Decimal("151.234"), 6)


def _usdc(units: int) -> str:
    return re.escape(format(from_units(units, 6), "f"))


def _line(out: str, pattern: str) -> None:
    assert re.search(pattern, out, re.MULTILINE), f"no line matching {pattern!r} in:\n{out}"


def test_demo_settles_pends_fails_rejects_and_matches(bootstrap: str) -> None:
    port = free_port()
    out = _run_demo(bootstrap, port)
    run = re.search(r"^run ([0-9a-f]{6}):", out, re.MULTILINE)
    assert run is not None, out
    r = run[1]
    _assert_summary(out)
    _assert_trades_and_rejections(out, r)
    _assert_orders_and_matches(out, r)
    _assert_book(out)
    _assert_positions(out, r)
    # Act 5: the JGBs' dates, accrued, coupon, claim and redemption, each checked.
    assert "Act 5: JGBs on a simulated clock" in out, out
    assert out.count("  [ok]") == 22 and "EXPECTED" not in out, out
    _line(out, r"^    accrued, 180 days from 20 Sep 2026, 0\.4438356 per 100: 44383  \[ok\]$")
    _line(out, r"^    dave repaid face \+ last coupon: 100450000  \[ok\]$")
    # Act 6: a fail, three days of penalties, a partial delivery, the rest (docs/fails.md).
    _line(out, r"^    failing, the buyer liable: insufficient_cash  \[ok\]$")
    _line(out, r"^    2028-12-07: erin's penalty, 0\.10 bp of 98,952,397: 989  \[ok\]$")
    _line(out, r"^    part 1: cash: 59371438  \[ok\]$")
    _line(out, r"^    parts 1 \+ 2 = the trade: 98952397  \[ok\]$")
    _line(out, r"^    2028-12 erin-[0-9a-f]{6} +frank-[0-9a-f]{6} +JPYC +4 +1 +3362$")
    assert "Where to look:" in out, out
    _line(out, rf"^  order book +kessai book {BOND_10Y} ")
    assert "demo OK" in out, out


def _run_demo(bootstrap: str, port: int) -> str:
    """``kessai demo`` against *bootstrap*, the dashboard on *port*, as `make run` runs it
    (no ``--once``: its worker keeps running), until it says so; then a SIGTERM, which
    must end it with its worker. What it printed, once its exit code and first lines
    are checked."""
    env = {**os.environ, "KESSAI_BOOTSTRAP": bootstrap, "KESSAI_WEB_PORT": str(port)}
    demo = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    lines = []
    for line in demo.stdout:  # the suite's timeout bounds it
        lines.append(line)
        if line.startswith("the worker keeps running"):
            break
    demo.send_signal(signal.SIGTERM)
    out = "".join(lines) + demo.communicate(timeout=DEMO_TIMEOUT_S)[0]
    assert demo.returncode == 0, out
    assert "DEMO FAILED" not in out, out
    # Its worker stopped with it: nothing answers on the dashboard's port.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    _line(out, r"KESSAI_SETTLEMENT_DEADLINE_S=30\b")
    # The dashboard's address, first thing, and again under "Where to look".
    _line(out, rf"^dashboard: http://127\.0\.0\.1:{port}/ ")
    _line(out, rf"^  dashboard +http://127\.0\.0\.1:{port}/ ")
    return out


def _assert_summary(out: str) -> None:
    """The summary: what arrived, counted."""
    _line(out, r"^  trades +10 published by the venue: 5 accepted, 5 rejected$")
    _line(out, r"^  settled +4 \(2 of them pending first\)$")
    _line(out, r"^  pending +0$")
    _line(out, r"^  failed +1 \(insufficient_securities 1\)$")
    _line(
        out,
        r"^  rejected +11 records \(duplicate 2, insufficient_funds 2, invalid_isin 1, "
        r"invalid_quantity 1, malformed 2, same_account 1, unknown_token 2\)$",
    )
    _line(
        out,
        r"^  orders +15 published by 2 venues \(14 orders, 1 cancel\): 12 accepted, 2 rejected$",
    )
    _line(out, r"^  cancelled +3 orders \(immediate_or_cancel 1, requested 1, self_match 1\)$")
    _line(out, r"^  matched +5 trades by the matcher: 5 settled, 0 pending, 0 failed$")


def _assert_trades_and_rejections(out: str, r: str) -> None:
    """Each trade's path, and each bad record's reason."""
    t1 = _cash(BOND_10Y, 1_000_000, "99.5")
    _line(out, rf"^  t1-{r} .* {_ai(BOND_10Y, 1_000_000)} \({_days()} d\) +{t1} JPYC  settled$")
    _line(out, rf"^  t2-{r} .* {_usdc(_t2_usdc())} USDC  settled$")
    # The rate on the settlement: (principal + accrued) in yen / fx_rate, truncated.
    yen = (298_560, _ai(BOND_20Y, 300_000))
    _line(out, rf"^  t2-{r}: paid in USDC: \({yen[0]} \+ {yen[1]}\) JPY / 151\.234 JPY per USD "
               rf"\(demo-venue-feed, [0-9T:Z-]+\) = {_usdc(_t2_usdc())} USDC")  # fmt: skip
    _line(out, rf"^  t3-{r} .*  pending \(insufficient_cash\) -> settled$")
    _line(out, rf"^  t4-{r} .*  pending \(insufficient_securities\) -> settled$")
    _line(
        out,
        rf"^  t5-{r} .*  pending \(insufficient_securities\) "
        r"-> failed \(insufficient_securities\)$",
    )
    for marker, topic, reason in (
        ("p6", "payments", "insufficient_funds"),
        ("p3", "payments", "duplicate"),
        ("p7", "payments", "unknown_token"),
        ("p8", "payments", "malformed"),
        ("t6", "trades", "invalid_isin"),
        ("t7", "trades", "same_account"),
        ("t8", "trades", "unknown_token"),
        ("t1", "trades", "duplicate"),
        ("t9", "trades", "malformed"),
        ("o13", "orders", "invalid_quantity"),
        ("o14", "orders", "insufficient_funds"),
    ):
        _line(out, rf"^  {marker}-{r} +{topic} +{reason} ")


def _assert_orders_and_matches(out: str, r: str) -> None:
    """Each order's events (act 4), as the order-events topic committed them."""
    for order, events in (
        ("o1", r"accepted -> partially_filled 100000 @ 99\.60 #2 -> filled 100000 @ 99\.60 #5"),
        ("o6", r"accepted -> partially_filled 50000 @ 99\.40 #4"),  # time priority at 99.40
        ("o8", r"accepted -> cancelled \(requested, 100000 left\)"),
        # A limit buy across two ask levels; a market sell; an IOC filling in part.
        ("o9", r"accepted -> partially_filled 300000 @ 99\.55 #1 -> filled 100000 @ 99\.60 #2"),
        ("o10", r"accepted -> partially_filled 200000 @ 99\.40 #3 -> filled 50000 @ 99\.40 #4"),
        (
            "o11",
            r"accepted -> partially_filled 100000 @ 99\.60 #5 "
            r"-> cancelled \(immediate_or_cancel, 200000 left\)",
        ),
        ("o12", r"accepted -> cancelled \(self_match, 100000 left\)"),
        ("o13", r"rejected \(invalid_quantity\)"),
        # erin's bid could not reserve its cash: refused before it could rest.
        ("o14", r"rejected \(insufficient_funds\)"),
    ):
        _line(out, rf"^  {order}-{r} +venue-(tokyo|osaka) .*  {events}$")
    # The matched trades: venue kessai, ids the engine's matcher made, each settled.
    for n, buyer, seller, face, price in MATCHES:
        cash, days = _cash(BOND_10Y, face, price), _days()
        _line(
            out,
            rf"^  {n}  m-[0-9a-f]{{32}} {buyer}-{r} +{seller}-{r} +{face} "
            rf"+{re.escape(price)} +{_ai(BOND_10Y, face)} \({days} d\) +{cash} JPYC  settled$",
        )


#: The matched trades: #, buyer, seller, face, price (each cash leg with kessai's accrued).
MATCHES = (
    (1, "alice", "carol", 300_000, "99.55"),
    (2, "alice", "bob", 100_000, "99.60"),
    (3, "alice", "bob", 200_000, "99.40"),
    (4, "dave", "bob", 50_000, "99.40"),
    (5, "alice", "bob", 100_000, "99.60"),
)


def _assert_book(out: str) -> None:
    """The book left, as `kessai book` prints it."""
    _line(out, rf"^  {BOND_10Y} in JPYC: 4 resting orders$")
    _line(out, r"^ +1 +50,000 +99\.40 \| 99\.70 +500,000 +1$")
    _line(out, r"^ +1 +300,000 +99\.30 \| 99\.80 +200,000 +1$")


def _assert_positions(out: str, r: str) -> None:
    """Positions replayed from the journal: each JPYC trade paid principal + accrued."""
    t1, t3 = _cash(BOND_10Y, 1_000_000, "99.5"), _cash(BOND_10Y, 500_000, "99.5")
    t4 = _cash(BOND_20Y, 200_000, "99.8")
    paid = {name: 0 for name in ("alice", "bob", "carol", "dave")}
    for _, buyer, seller, face, price in MATCHES:
        paid[buyer] += _cash(BOND_10Y, face, price)
        paid[seller] -= _cash(BOND_10Y, face, price)
    # What the orders resting at the end still reserve (locked): alice's o7 bid of
    # 300,000 @ 99.30, what dave's o6 has left after its 50,000 fill, bob's o3 and
    # carol's o4 asks.
    o7 = _cash(BOND_10Y, 300_000, "99.30")
    o6 = _cash(BOND_10Y, 100_000, "99.40") - _cash(BOND_10Y, 50_000, "99.40")
    # alice: 5,000,000 less 1,200,000 withdrawn, t1 and t4, then 700,000 face of
    # BOND_10Y from the matched trades (#1, #2, #3, #5).
    alice = 5_000_000 - 1_200_000 - t1 - t4 - paid["alice"]
    _line(out, rf"^  alice-{r} +JPYC +{alice - o7} +{o7}$")
    _line(out, rf"^  alice-{r} +USDC +{_usdc(2_500_125_000 - _t2_usdc())} +0\.000000$")
    _line(out, rf"^  alice-{r} +{BOND_10Y} +1700000 +0$")
    _line(out, rf"^  alice-{r} +{BOND_20Y} +500000 +0$")
    # bob sold 450,000 face through the matcher (#2 to #5); 500,000 rest in o3.
    _line(out, rf"^  bob-{r} +{BOND_10Y} +7550000 +500000$")
    _line(out, rf"^  bob-{r} +JPYC +{1_000_000 + t1 + t3 - paid['bob']} +0$")
    # carol: what t3 left of her 505,000, then #1's cash for 300,000 face; o4 holds
    # the 200,000 face she has left.
    _line(out, rf"^  carol-{r} +JPYC +{505_000 - t3 - paid['carol']} +0$")
    _line(out, rf"^  carol-{r} +{BOND_10Y} +0 +200000$")
    _line(out, rf"^  dave-{r} +{BOND_20Y} +0 +0$")
    _line(out, rf"^  dave-{r} +{BOND_10Y} +50000 +0$")
    _line(out, rf"^  dave-{r} +JPYC +{t4 - paid['dave'] - o6} +{o6}$")
    # erin never received anything: no position of hers.
    assert not re.search(rf"^  erin-{r} ", out, re.MULTILINE), out
