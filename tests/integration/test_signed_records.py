"""Signed records on the real broker, under the secure profile: a forged, altered,
replayed, unknown-signer or out-of-mandate trade is rejected with its reason and
moves nothing, while the genuine trade beside them settles. Everything is written by
the principals allowed to write it (venue-a, bridge) and read back as ops."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas import CUSTODY, PAYMENTS, TRADES
from streams.kafka.admin import create_topics
from streams.kafka.auth import client_kwargs
from streams.security import signing
from streams.topics import TopicSpec
from tests.support.logs import Seen, collect, read_journal
from tests.support.profiles import Profile, SecureCluster
from tests.support.records import bond_deposit, cash_deposit, trade_time
from tests.support.workers import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOND = "JP1103551Q43"


def _trade(tid: str, buyer: str, seller: str, venue: str = "venue-a") -> dict[str, Any]:
    return {
        "trade_id": tid,
        "venue": venue,
        "isin": BOND,
        "buyer": buyer,
        "seller": seller,
        "quantity": 100_000,
        "price": "99.5",
        "currency": "JPYC",
        "accrued_interest": "0",
        "trade_time": trade_time(),
    }


async def test_only_the_genuine_trade_moves_money(
    secure_cluster: SecureCluster, tmp_path: Path
) -> None:
    profile: Profile = secure_cluster.profile()
    run = uuid.uuid4().hex[:6]
    alice, bob, carol = f"alice-{run}", f"bob-{run}", f"carol-{run}"  # carol: not venue-a's
    venue = profile.settings_of("venue-a")
    assert venue.signing_key_file is not None
    assert venue.deployment is not None
    venue_key = signing.SigningKey.load("venue-a", venue.signing_key_file, venue.deployment)
    with running_worker(tmp_path / "worker.log", profile.worker_env):
        try:
            await _fund(profile, run, alice, bob)
            for record in _trades(venue_key, run, alice, bob, carol):
                await profile.send_raw(TRADES, record["trade_id"], orjson.dumps(record))
            await _check_rejections(profile, run)
            good = await _check_only_the_genuine_trade_settles(profile, run, alice, bob)
            # An auditor, as ops, checks every settlement back to the venue that signed it.
            await _check_verify_settlements(secure_cluster, run, good)
        finally:
            await profile.close()


async def _fund(profile: Profile, run: str, alice: str, bob: str) -> None:
    """Cash for alice, bonds for bob, and an unsigned deposit that must mint nothing."""
    await profile.send(PAYMENTS, alice, cash_deposit(f"p-{run}", alice, "1000000"))
    await profile.send(CUSTODY, bob, bond_deposit(f"c-{run}", bob, BOND, 1_000_000))
    # An unsigned deposit by the bridge principal: refused, mints nothing.
    unsigned = cash_deposit(f"u-{run}", alice, "5000000")
    await profile.send_raw(PAYMENTS, alice, orjson.dumps(unsigned))


def _trades(
    venue_key: signing.SigningKey, run: str, alice: str, bob: str, carol: str
) -> tuple[dict[str, Any], ...]:
    """The genuine trade, each kind of bad one, and the genuine one again, in the order sent."""
    genuine = signing.sign(TRADES, _trade(f"venue-a:good-{run}", alice, bob), venue_key)
    forged = signing.sign(
        TRADES,
        _trade(f"venue-a:forged-{run}", alice, bob),
        signing.SigningKey.generate("venue-a", venue_key.deployment),
    )
    altered = signing.sign(TRADES, _trade(f"venue-a:altered-{run}", alice, bob), venue_key)
    altered["quantity"] = 900_000  # after signing: 9x the bonds for the same signature
    unknown = signing.sign(
        TRADES,
        _trade(f"venue-z:unknown-{run}", alice, bob, "venue-z"),
        signing.SigningKey.generate("venue-z", venue_key.deployment),
    )
    foreign = signing.sign(TRADES, _trade(f"venue-a:foreign-{run}", carol, bob), venue_key)
    # venue-a taking an id of venue-b's, which would block venue-b's genuine trade.
    squat = signing.sign(TRADES, _trade(f"venue-b:squat-{run}", alice, bob), venue_key)
    # Signed by venue-a's own key, but for another deployment (a staging cluster).
    staging = dataclasses.replace(venue_key, deployment="kessai-staging")
    elsewhere = signing.sign(TRADES, _trade(f"venue-a:staging-{run}", alice, bob), staging)
    # Signed two hours ago, valid for one: kept and sent late.
    stale = signing.sign(
        TRADES,
        _trade(f"venue-a:stale-{run}", alice, bob),
        venue_key,
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    # Checked and rejected (EURC is no configured token): its id is used up, so the
    # same signed bytes sent again are a duplicate, not a second chance.
    eurc = signing.sign(TRADES, _trade(f"venue-a:eurc-{run}", alice, bob) | {"currency": "EURC"},
                        venue_key)  # fmt: skip
    return (genuine, forged, altered, unknown, foreign, squat, elsewhere, stale, eurc, eurc,
            genuine)  # fmt: skip


async def _check_rejections(profile: Profile, run: str) -> None:
    """Every bad record rejected, with its reason."""
    want = {
        f"u-{run}": ["bad_signature"],
        f"venue-a:forged-{run}": ["bad_signature"],
        f"venue-a:altered-{run}": ["bad_signature"],
        f"venue-z:unknown-{run}": ["unknown_signer"],
        f"venue-a:foreign-{run}": ["not_authorized"],
        f"venue-b:squat-{run}": ["not_authorized"],
        f"venue-a:staging-{run}": ["bad_signature"],
        f"venue-a:stale-{run}": ["expired"],
        f"venue-a:eurc-{run}": ["unknown_token", "duplicate"],
        f"venue-a:good-{run}": ["duplicate"],
    }

    def reasons(seen: Seen) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for r in seen:
            rid = r.get("ref") if r.get("topic") == "rejections" else None
            if rid in want:
                found.setdefault(rid, []).append(r["reason"])
        return found

    def complete(seen: Seen) -> bool:
        found = reasons(seen)
        return all(len(found.get(rid, [])) >= len(w) for rid, w in want.items())

    rejected = await collect(profile.reader, ["rejections"], complete)
    assert reasons(rejected) == want


async def _check_only_the_genuine_trade_settles(
    profile: Profile, run: str, alice: str, bob: str
) -> dict[str, Any]:
    """The genuine trade settles and the journal moves for it alone; its settlement."""

    def settled(seen: Seen) -> list[tuple[str, str]]:
        return [
            (r["trade_id"], r["status"])
            for r in seen
            if r["topic"] == "settlements" and r["trade_id"].endswith(run)
        ]

    seen = await collect(
        profile.reader,
        ["settlements"],
        lambda s: (f"venue-a:good-{run}", "settled") in settled(s),
    )
    assert settled(seen) == [(f"venue-a:good-{run}", "settled")]
    # The journal moved for the genuine trade only: 99,500 JPYC and 100,000 face.
    journal = await read_journal(profile.reader, run)
    last = {(r["account"], r["asset"]): (r["available"], r["locked"]) for r in journal}
    assert last == {
        (alice, "JPYC"): ("900500", "0"),
        (alice, BOND): ("100000", "0"),
        (bob, BOND): ("900000", "0"),
        (bob, "JPYC"): ("99500", "0"),
    }
    assert all(r["cause"] != f"payment:u-{run}" for r in journal)
    [good] = [r for r in seen if r["topic"] == "settlements" and r["trade_id"].endswith(run)]
    return good


async def _check_verify_settlements(
    secure_cluster: SecureCluster, run: str, good: dict[str, Any]
) -> None:
    """``kessai verify-settlements`` passes the run's settlements, and catches a copy of
    ``good`` with its quantity changed."""
    verify = [sys.executable, "-m", "streams.cli", "verify-settlements"]
    ops_env = {**os.environ, **secure_cluster.env("ops")}
    done = subprocess.run(verify, env=ops_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 unsigned, 0 with problems" in done.stdout, done.stdout
    # A copy of the settlement with the quantity changed is caught.
    copy = f"t-settlements-copy-{run}"
    admin = secure_cluster.settings_of("admin")
    await create_topics(admin, [TopicSpec(name=copy, partitions=1)])
    forged = {k: v for k, v in good.items() if k != "topic"} | {"quantity": 900_000}
    producer = AIOKafkaProducer(bootstrap_servers=admin.bootstrap, **client_kwargs(admin))
    await producer.start()
    try:
        await producer.send_and_wait(copy, orjson.dumps(forged), key=b"k")
    finally:
        await producer.stop()
    done = subprocess.run(
        [*verify, "--topic-name", copy],
        env=ops_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "quantity is 900000 here, 100000 in the signed trade" in done.stdout, done.stdout


async def test_a_rotated_key_stops_verifying_in_a_running_worker_without_a_restart(
    secure_cluster: SecureCluster, tmp_path: Path
) -> None:
    """M10: the registry was read once at start, so a revocation or a rotation took a
    restart of every worker. Here venue-a's key is rotated while the worker runs: its
    old key's next record is refused, its new key's is taken, and the key is rotated
    back (the session's other tests sign with it)."""
    import io

    from streams.security import signers

    profile: Profile = secure_cluster.profile()
    run = uuid.uuid4().hex[:6]
    venue = profile.settings_of("venue-a")
    admin_file = secure_cluster.settings_of("admin").registry_admin_key_file
    registry = secure_cluster.settings_of("worker").signers_file
    assert venue.signing_key_file and venue.deployment and admin_file and registry
    old = signing.SigningKey.load("venue-a", venue.signing_key_file, venue.deployment)
    admin, out = signing.load_admin_key(admin_file), io.StringIO()
    buyer, seller = "alice-" + run, "bob-" + run
    with running_worker(tmp_path / "worker.log", profile.worker_env) as worker:
        try:
            await worker.ready()
            signers.rotate(registry, "venue-a", public_key=None, key_out=tmp_path / "new.pem",
                           admin=admin, out=out)  # fmt: skip
            new = signing.SigningKey.load("venue-a", tmp_path / "new.pem", venue.deployment)
            await asyncio.sleep(2 * signing.RELOAD_EVERY_S + 0.5)  # the worker looks again
            for name, key in (("old", old), ("new", new)):
                record = signing.sign(TRADES, _trade(f"venue-a:{name}-{run}", buyer, seller), key)
                await profile.send_raw(TRADES, record["trade_id"], orjson.dumps(record))
            seen = await collect(
                profile.reader, ["rejections", "settlements"],
                lambda s: {r.get("ref") or r.get("trade_id") for r in s} >= {
                    f"venue-a:old-{run}", f"venue-a:new-{run}"},
            )  # fmt: skip
            refused = [r["reason"] for r in seen if r.get("ref") == f"venue-a:old-{run}"]
            assert refused == ["bad_signature"], refused
            taken = [r["status"] for r in seen if r.get("trade_id") == f"venue-a:new-{run}"]
            assert taken and not [r for r in seen if r.get("ref") == f"venue-a:new-{run}"]
            assert "signer registry" in worker.log_path.read_text()  # it said it reloaded
        finally:
            signers.rotate(registry, "venue-a", public_key=old.public_text(), key_out=None,
                           admin=admin, out=out)  # fmt: skip
            await profile.close()
