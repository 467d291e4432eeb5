"""DvP on the real broker, end to end through a worker process: a funded trade
settles, a short buyer is pending then settles when cash arrives, a seller who
never delivers fails at the deadline with the locks released, and a bad trade is
rejected. Read back with read_committed.

Each test runs twice (the ``profile`` fixture): on the open dev broker, and under the
secure profile: SASL/SCRAM over TLS with ACLs, every record written by the principal
allowed to and signed by its signer, the worker checking each signature, and the
outputs read as ops (tests/support/profiles.py)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.config import Settings
from streams.devtools.processes import WorkerProcess
from streams.kafka.admin import ensure_public_topics
from streams.security import signing
from tests.support.logs import Seen, collect, read_journal
from tests.support.profiles import Profile
from tests.support.records import bond_deposit, cash_deposit
from tests.support.workers import running_worker

pytestmark = pytest.mark.integration

BOND = "JP1103551Q43"


@dataclass(frozen=True)
class _Venue:
    """The venue's trades of this run: ``tid(n)`` is trade n's id."""

    name: str
    run: str

    def tid(self, n: int) -> str:
        # A venue's trade ids start with its id (streams/security/signing.py): under the secure
        # profile, another's would be refused.
        return f"{self.name}:t{n}-{self.run}"

    def trade(self, tid: str, buyer: str, seller: str) -> dict[str, Any]:
        return {
            "trade_id": tid,
            "venue": self.name,
            "isin": BOND,
            "buyer": buyer,
            "seller": seller,
            "quantity": 100_000,
            "price": "99.5",
            "currency": "JPYC",
            "accrued_interest": "12",
            # Now: its deadline counts from it (docs/security.md, M1).
            "trade_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }


def _status(seen: Seen, tid: str) -> list[tuple[str, str | None]]:
    """The statuses of trade ``tid`` in ``seen``, with their reasons, in order."""
    return [
        (r["status"], r["reason"])
        for r in seen
        if r["topic"] == "settlements" and r["trade_id"] == tid
    ]


async def test_trades_settle_pend_fail_and_reject(profile: Profile, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    b1, b2, s1, s3 = (f"{x}-{run}" for x in ("buyer1", "buyer2", "seller1", "seller3"))
    venue = _Venue(profile.venue, run)
    tid = venue.tid
    reader = profile.reader
    await ensure_public_topics(profile.settings_of("admin"))
    env = {**profile.worker_env, "KESSAI_SETTLEMENT_DEADLINE_S": "25", "KESSAI_FAIL_MODE": "atomic"}
    with running_worker(tmp_path / "worker.log", env):
        await profile.send("payments", b1, cash_deposit(f"p1-{run}", b1, "200000"))
        await profile.send("custody", s1, bond_deposit(f"c-{s1}", s1, BOND, 200_000))
        # Kafka orders nothing across partitions: a deposit sent before a trade may be
        # fetched after it (its partition's fetch still buffered older records), and the
        # trade would then pend first. t1 is the funded case: wait for the deposits.
        causes = {f"payment:p1-{run}", f"custody:c-{s1}"}
        await collect(
            reader,
            ["ledger-events"],
            lambda seen: causes <= {r.get("cause") for r in seen},
        )
        await profile.send("trades", tid(1), venue.trade(tid(1), b1, s1))  # funded
        await profile.send("trades", tid(2), venue.trade(tid(2), b2, s1))  # buyer short
        await profile.send("trades", tid(3), venue.trade(tid(3), b1, s3))  # seller short
        await profile.send("trades", tid(4), venue.trade(tid(4), b1, b1))  # same account
        seen = await collect(reader, ["settlements"], lambda s: _status(s, tid(2)) != [])
        assert _status(seen, tid(2)) == [("pending", "insufficient_cash")], seen[-5:]
        # Cash arrives late: t2 settles (99.5% of 100,000 + 12 accrued = 99,512 JPYC).
        await profile.send("payments", b2, cash_deposit(f"p2-{run}", b2, "99512"))
        seen = await _check_statuses(reader, venue)
        rejected = await collect(
            reader, ["rejections"], lambda s: any(r.get("ref") == tid(4) for r in s)
        )
        assert any(r.get("ref") == tid(4) and r["key"] == tid(4) for r in rejected)
        # Balances from the journal: b1 paid 99,512 and holds 100,000 face; s1 was paid
        # twice; s3 never had bonds, and t3's cash request left b1 nothing locked.
        journal = await read_journal(reader, run)
        last = {(r["account"], r["asset"]): (r["available"], r["locked"]) for r in journal}
        assert last[(b1, "JPYC")] == ("100488", "0")
        assert last[(b1, BOND)] == ("100000", "0")
        assert last[(s1, "JPYC")] == ("199024", "0")
        assert last[(s1, BOND)] == ("0", "0")
        assert last[(b2, BOND)] == ("100000", "0")
        _check_signed_trades(profile, seen, run)


async def _check_statuses(reader: Settings, venue: _Venue) -> Seen:
    """t1 settles, t2 settles after pending, t3 fails at the deadline, t4 has none."""
    tid = venue.tid

    def finished(s: Seen) -> bool:
        return all(
            _status(s, tid(i))[-1:] and _status(s, tid(i))[-1][0] in ("settled", "failed")
            for i in (1, 2, 3)
        )

    seen = await collect(reader, ["settlements"], finished)
    assert _status(seen, tid(1)) == [("settled", None)]
    assert _status(seen, tid(2)) == [("pending", "insufficient_cash"), ("settled", None)]
    assert _status(seen, tid(3)) == [
        ("pending", "insufficient_securities"),
        ("failed", "insufficient_securities"),
    ]
    assert _status(seen, tid(4)) == []
    settled = next(r for r in seen if r["topic"] == "settlements" and r["trade_id"] == tid(1))
    assert settled["cash_amount"] == "99512"
    return seen


def _check_signed_trades(profile: Profile, seen: Seen, run: str) -> None:
    if profile.secure:
        # Every settlement carries the venue's signed trade: an auditor checks it
        # back to the venue with the registry alone.
        worker_settings = Settings.from_env(profile.worker_env)
        registry = signing.registry_for(worker_settings)
        ours = [r for r in seen if r["topic"] == "settlements" and r["trade_id"].endswith(run)]
        assert len(ours) == 5, ours
        for record in ours:
            signed = orjson.loads(record["signed_trade"])
            assert signed["trade_id"] == record["trade_id"]
            assert signed["signer"] == "venue-a"
            # No broker time here: the key valid in the record's window (as an auditor).
            assert registry.check("trades", record["trade_id"].encode(), signed, None) is None
    else:
        assert all("signed_trade" not in r for r in seen if r["topic"] == "settlements")


async def test_a_restarted_worker_keeps_the_balances(profile: Profile, tmp_path: Path) -> None:
    """SIGTERM, restart: the tables rebuild from their changelogs, so an account can
    withdraw exactly what it holds and not a unit more. (Caught two bugs: tables
    declared with value_type=dict, and faust's cached high watermarks, hole 8 in
    docs/exactly-once.md.)"""
    run = uuid.uuid4().hex[:6]
    acct = f"keeper-{run}"
    reader = profile.reader
    await ensure_public_topics(profile.settings_of("admin"))
    log_path = tmp_path / "worker.log"

    async def pay(pid: str, amount: str, kind: str) -> None:
        value = {
            "payment_id": pid,
            "account": acct,
            "token": "JPYC",
            "amount": amount,
            "kind": kind,
        }
        await profile.send("payments", acct, value)

    def caused(seen: list[dict], pid: str) -> list[dict]:  # type: ignore[type-arg]
        return [
            r
            for r in seen
            if r.get("cause") == f"payment:{pid}"
            or (r["topic"] == "rejections" and r.get("ref") == pid)
        ]

    worker = WorkerProcess(log_path, env=profile.worker_env)
    try:
        await pay(f"d-{run}", "5000", "deposit")
        await collect(reader, ["ledger-events"], lambda s: caused(s, f"d-{run}") != [])
        assert await asyncio.to_thread(worker.stop, 60) == 0
        worker = WorkerProcess(log_path, env=profile.worker_env)
        await pay(f"w1-{run}", "5001", "withdrawal")
        await pay(f"w2-{run}", "5000", "withdrawal")
        seen = await collect(
            reader, ["ledger-events", "rejections"], lambda s: caused(s, f"w2-{run}") != []
        )
        w1, w2 = caused(seen, f"w1-{run}"), caused(seen, f"w2-{run}")
        assert w1 and w1[0]["reason"] == "insufficient_funds", w1
        assert w2 and w2[0].get("available") == "0", w2
    finally:
        worker.stop()
