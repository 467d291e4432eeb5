"""The secure Kafka profile on a real broker: who gets in, and what each may do.

One private broker of the secure profile (``up_private(..., secure=True)``: SASL/SCRAM
over TLS, the ACLs of streams/devtools/localkafka/secure.py) and one ``kessai worker`` on it as the
``worker`` principal, configured from the profile's own env file. The worker creates
kessai's topics; the tests then try each principal against the ACL table, and follow
a deposit from the bridge through the worker to the journal, read back as ops.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)
from aiokafka.helpers import create_ssl_context

from schemas import LEDGER_EVENTS, PAYMENTS, TRADES
from streams import topics
from streams.config import Settings
from streams.devtools import localkafka
from streams.kafka.auth import client_kwargs
from streams.kafka.publish import publish_records
from streams.kafka.reader import read_committed
from streams.security import signing
from streams.topics import CATALOGUE
from tests.support.profiles import SecureCluster
from tests.support.workers import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: The worker must have created its topics and joined its group within this.
WORKER_START_S_MAX = 90.0
#: A deposit reaches the journal within this once the worker runs.
FLOW_S_MAX = 60.0
#: One client call that is expected to fail; the broker is local.
REQUEST_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Secure:
    admin: Settings
    workdir: Path
    cluster: SecureCluster

    def as_(self, principal: str) -> Settings:
        return localkafka.principal_settings(self.admin, principal)


async def _topics_present(settings: Settings) -> set[str]:
    client = AIOKafkaClient(bootstrap_servers=settings.bootstrap, **client_kwargs(settings))
    await client.bootstrap()
    try:
        return set((await client.fetch_all_metadata()).topics())
    finally:
        await client.close()


@pytest.fixture(scope="module")
def secure(secure_cluster: SecureCluster) -> Iterator[Secure]:
    """The session's secure broker, with one worker (signature checks on) that has
    created kessai's topics."""
    admin, workdir = secure_cluster.admin, secure_cluster.workdir
    with running_worker(workdir / "worker.log", secure_cluster.env("worker")):
        wanted = {t.name for t in CATALOGUE}
        deadline = time.monotonic() + WORKER_START_S_MAX
        while not wanted <= localkafka.run_sync(_topics_present(admin)):
            log = (workdir / "worker.log").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, f"the worker made no topics:\n{log}"
            time.sleep(0.5)
        yield Secure(admin, workdir, secure_cluster)


async def _write(settings: Settings, topic: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        **client_kwargs(settings),
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _read_some(settings: Settings, topic: str) -> int:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap,
        group_id=None,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        **client_kwargs(settings),
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
        return sum(len(records) for records in batches.values())
    finally:
        await consumer.stop()


async def _bootstrap_with(bootstrap: str, **auth: Any) -> None:
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS, **auth
    )
    try:
        await client.bootstrap()
    finally:
        await client.close()


def _deposit(account: str) -> tuple[bytes, bytes]:
    value = {"payment_id": f"p-{account}", "account": account, "token": "JPYC",
             "amount": "1000", "kind": "deposit"}  # fmt: skip
    return account.encode(), orjson.dumps(value)


# ------------------------------------------------------------------ authentication


def test_a_plaintext_client_is_refused(secure: Secure) -> None:
    with pytest.raises(KafkaConnectionError):
        localkafka.run_sync(_bootstrap_with(secure.admin.bootstrap))


def test_tls_without_sasl_is_refused(secure: Secure) -> None:
    context = create_ssl_context(cafile=str(secure.admin.kafka_ca_file))
    with pytest.raises(KafkaConnectionError):
        localkafka.run_sync(
            _bootstrap_with(secure.admin.bootstrap, security_protocol="SSL", ssl_context=context)
        )


def test_a_wrong_password_is_refused(secure: Secure) -> None:
    right = client_kwargs(secure.as_("ops"))
    # The same client with the right password gets in: only the password differs.
    localkafka.run_sync(_bootstrap_with(secure.admin.bootstrap, **right))
    with pytest.raises(KafkaConnectionError):
        localkafka.run_sync(
            _bootstrap_with(
                secure.admin.bootstrap, **{**right, "sasl_plain_password": "not-the-password"}
            )
        )


def test_a_certificate_from_another_ca_is_refused(secure: Secure) -> None:
    # The system's CAs did not sign the local broker's certificate.
    settings = secure.as_("ops")
    auth = {**client_kwargs(settings), "ssl_context": ssl.create_default_context()}
    with pytest.raises(KafkaConnectionError):
        localkafka.run_sync(_bootstrap_with(settings.bootstrap, **auth))


# ----------------------------------------------------------------------------- ACLs


def test_a_venue_writes_trades_only_and_reads_nothing(secure: Secure) -> None:
    venue = secure.as_("venue-a")
    run = uuid.uuid4().hex[:8]
    localkafka.run_sync(_write(venue, TRADES, f"t-{run}".encode(), b"{}"))
    with pytest.raises(TopicAuthorizationFailedError):
        localkafka.run_sync(_write(venue, PAYMENTS, *_deposit(f"venue-{run}")))
    with pytest.raises(TopicAuthorizationFailedError):
        localkafka.run_sync(_read_some(venue, LEDGER_EVENTS))


def test_the_bridge_writes_payments_not_trades(secure: Secure) -> None:
    bridge = secure.as_("bridge")
    run = uuid.uuid4().hex[:8]
    # kessai publish's own idempotent producer, as the bridge.
    localkafka.run_sync(publish_records(bridge, PAYMENTS, [_deposit(f"bridge-{run}")]))
    with pytest.raises(TopicAuthorizationFailedError):
        localkafka.run_sync(_write(bridge, TRADES, f"t-{run}".encode(), b"{}"))


def test_ops_reads_the_journal_but_writes_nothing(secure: Secure) -> None:
    ops = secure.as_("ops")
    localkafka.run_sync(read_committed(ops, LEDGER_EVENTS))
    with pytest.raises(TopicAuthorizationFailedError):
        localkafka.run_sync(_write(ops, TRADES, b"t-ops", b"{}"))


@pytest.mark.parametrize("principal", ["venue-a", "bridge", "ops"])
def test_only_workers_write_the_engines_topics(secure: Secure, principal: str) -> None:
    # A forged account row would be restored as a balance at the next takeover; a
    # forged manifest would make a replay apply other records.
    settings = secure.as_(principal)
    app_id = secure.as_("worker").app_id
    for name in (*topics.ENGINE_CHANGELOGS, topics.ENGINE_LOG):
        with pytest.raises(TopicAuthorizationFailedError):
            localkafka.run_sync(
                _write(settings, topics.engine_topic(app_id, name), b"a", b'{"seq":1}')
            )


def test_a_venue_reads_no_settlements(secure: Secure) -> None:
    for topic in ("settlements", "order-events", "rejections"):
        with pytest.raises(TopicAuthorizationFailedError):
            localkafka.run_sync(_read_some(secure.as_("venue-a"), topic))


# ----------------------------------------------------------------------- the flow


def test_the_worker_posts_a_bridge_deposit_to_the_journal(secure: Secure) -> None:
    bridge, ops = secure.cluster.settings_of("bridge"), secure.as_("ops")
    account = f"secure-{uuid.uuid4().hex[:8]}"
    # The worker checks signatures (the secure profile's default): the bridge signs.
    assert bridge.signer_id is not None and bridge.signing_key_file is not None
    assert bridge.deployment is not None
    key = signing.SigningKey.load(bridge.signer_id, bridge.signing_key_file, bridge.deployment)
    record_key, value = _deposit(account)
    signed = orjson.dumps(signing.sign(PAYMENTS, orjson.loads(value), key))
    localkafka.run_sync(publish_records(bridge, PAYMENTS, [(record_key, signed)]))

    async def journal() -> list[dict[str, Any]]:
        records = await read_committed(ops, LEDGER_EVENTS)
        values = [orjson.loads(r.value) for r in records]
        return [v for v in values if isinstance(v, dict) and v.get("account") == account]

    deadline = time.monotonic() + FLOW_S_MAX
    while not (found := localkafka.run_sync(journal())):
        log = (secure.workdir / "worker.log").read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"no journal record for {account}:\n{log}"
        asyncio.run(asyncio.sleep(0.5))
    assert [(v["seq"], v["asset"], v["available"]) for v in found] == [(1, "JPYC", "1000")], found
