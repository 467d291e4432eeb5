"""USDC at an explicit FX rate, and the bridge's dust, on the real broker through a
worker process (issue 21: docs/fx.md, docs/tokens.md). Under the secure profile the
reference rate is the registrar's, signed by its ``instruments`` signer, and the
worker checks it. Read back with read_committed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.kafka.admin import ensure_public_topics
from streams.money import from_units
from streams.settlement.fx import convert
from tests.support.logs import collect, read_journal
from tests.support.profiles import Profile
from tests.support.records import bond_deposit, cash_deposit
from tests.support.workers import running_worker

pytestmark = pytest.mark.integration

BOND = "JP1103551Q43"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def test_a_usdc_trade_converts_once_at_its_rate_and_dust_stays_the_bridges(
    profile: Profile, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    buyer, seller, venue = f"buyer-fx{run}", f"seller-fx{run}", profile.venue
    reader = profile.reader
    await ensure_public_topics(profile.settings_of("admin"))
    with running_worker(tmp_path / "worker.log", profile.worker_env):
        now = _now()
        await profile.send("fx-rates", "USDC", {"currency": "USDC", "rate": "151.234",
                                                "source": "test-fixing", "at": now})  # fmt: skip
        await profile.send("payments", buyer, cash_deposit(f"pu-{run}", buyer, "1000", "USDC"))
        await profile.send("custody", seller, bond_deposit(f"cb-{run}", seller, BOND, 100_000))
        # JPYC is 18 decimals on-chain, whole yen in the ledger (the default tokens).
        await profile.send("payments", seller, cash_deposit(f"pj1-{run}", seller, "1000.5"))
        await profile.send("payments", seller, cash_deposit(f"pj2-{run}", seller, "0.5"))
        funded = {f"payment:pu-{run}", f"custody:cb-{run}", f"payment:pj1-{run}"}
        await collect(reader, ["ledger-events"],
                      lambda s: funded <= {r.get("cause") for r in s})  # fmt: skip
        trades = [
            (f"{venue}:fx1-{run}", "151.3"),  # within 0.5 % of the reference: settles
            (f"{venue}:fx2-{run}", "153"),  # 1.2 % off: fx_rate_out_of_band
        ]
        for trade_id, rate in trades:
            await profile.send(
                "trades", trade_id, _usdc_trade(trade_id, venue, buyer, seller, rate)
            )
        seen = await collect(reader, ["settlements", "rejections"], lambda s: _done(s, trades))
    mine = [r for r in seen if r.get("trade_id") == trades[0][0] or r.get("ref") in
            (trades[0][0], trades[1][0], "USDC")]  # fmt: skip
    assert len([r for r in mine if r.get("status") == "settled"]) == 1, [
        (r.get("ref"), r.get("reason"), r.get("detail")) for r in mine
    ]
    [settled] = [r for r in mine if r.get("status") == "settled"]
    # 100,000 face at 99.5 = 99,500 JPY plus the venue's 12 yen accrued (no security
    # master here), converted once at the trade's own rate.
    usdc = convert(99_512, Decimal("151.3"), 6)
    assert (settled["status"], settled["cash_amount"]) == ("settled", f"{from_units(usdc, 6)}")
    assert (settled["fx_rate"], settled["fx_source"]) == ("151.3", "venue-feed")
    [refused] = [r for r in seen if r.get("ref") == trades[1][0]]
    assert refused["reason"] == "fx_rate_out_of_band"
    journal = await read_journal(reader, run)
    credits = [(r["account"], r["delta_available"], r["cause"]) for r in journal
               if r["asset"] == "JPYC"]  # fmt: skip
    assert (seller, "1000", f"payment:pj1-{run}") in credits
    # 0.5 + 0.5: one whole yen more for the bridge's dust account, credited by the
    # deposit that completes it (pj2 on a fresh broker; pj1 if earlier runs on this
    # broker left half a yen or more of dust), and the dust below a yen as it was.
    causes = {f"dust:payment:pj1-{run}", f"dust:payment:pj2-{run}"}
    dust = await collect(reader, ["ledger-events"],
                         lambda s: any(r.get("cause") in causes for r in s))  # fmt: skip
    to_dust = [r for r in dust if r.get("cause") in causes]
    assert {r["account"] for r in to_dust} == {"bridge-dust:JPYC"}
    assert sum(int(r["delta_available"]) for r in to_dust) == 1


def _usdc_trade(trade_id: str, venue: str, buyer: str, seller: str, rate: str) -> dict[str, Any]:
    now = _now()
    return {"trade_id": trade_id, "venue": venue, "isin": BOND, "buyer": buyer,
            "seller": seller, "quantity": 100_000, "price": "99.5", "currency": "USDC",
            "accrued_interest": "12", "trade_time": now, "fx_rate": rate,
            "fx_source": "venue-feed", "fx_time": now}  # fmt: skip


def _done(seen: list[dict[str, Any]], trades: list[tuple[str, str]]) -> bool:
    settled = any(r.get("trade_id") == trades[0][0] and r.get("status") == "settled" for r in seen)
    return settled and any(r.get("ref") == trades[1][0] for r in seen)
