"""deploy/compose.yaml's three Kafka nodes, run without Docker (issue 19).

`kessai kafka compose-secrets` writes each node's server.properties, the format
arguments (the cluster id and every principal's SCRAM credential) and the ACL table.
Here the same renderings (:func:`streams.devtools.localkafka.compose.server_properties`,
with loopback ports instead of the containers' names) run as three JVMs from the
project's Maven jars: the three form one quorum over SASL_SSL (their controllers'
listener included), the admin installs the ACLs, kessai's topics come out with three
replicas, a venue's record is written and read back by ops under the ACLs, and the
same still holds with one node SIGKILLed.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas import TRADES
from streams.config import Settings
from streams.devtools.localkafka import compose, config, jars, jvm, process, storage
from streams.devtools.localkafka import secure as kafkasecure
from streams.devtools.localkafka.layout import Paths, write_atomic
from streams.devtools.localkafka.profiles import ACL_COMMAND
from streams.devtools.processes import free_port
from streams.kafka.admin import admin_client, ensure_public_topics
from streams.kafka.auth import client_kwargs
from streams.security import acl
from tests.support.profiles import env_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # three secure JVMs start

#: How long the three nodes may take to list each other as brokers.
UP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Stack:
    """The three nodes, their secrets, and each principal's client settings."""

    nodes: list[Paths]
    out: Path
    addresses: compose.Addresses

    def settings(self, principal: str) -> Settings:
        return Settings.from_env(env_of(self.out / "env" / f"{principal}.env"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("compose")
    libs = root / "kafka"
    shared = Settings.from_env().state_dir / "kafka" / "libs"
    if shared.is_dir():  # the project broker's jars: no second Maven run
        shutil.copytree(shared, libs / "libs")
    jars.ensure_jars(Paths(libs), print)
    out = root / "secrets"
    files = kafkasecure.SecureFiles(out)
    kafkasecure.ensure_certificates(files, dns_names=compose.NODES)
    passwords = kafkasecure.ensure_credentials(files)
    kafkasecure.ensure_signers(files)
    base = free_port(run=9)
    addresses = compose.loopback(list(range(base, base + 9)))
    kafkasecure.write_client_files(files, addresses.bootstrap, root / "state")
    admin_properties = out / "admin-client.properties"
    kafkasecure.write_private(
        admin_properties, kafkasecure.admin_client_properties(files, passwords[acl.ADMIN])
    )
    nodes = [Paths(root / name, libs_root=libs) for name in compose.NODES]
    java = jvm.require_java()
    cluster_id = compose.ensure_cluster_id(out)
    try:
        for i, paths in enumerate(nodes):
            _start(java, i, paths, files, passwords, addresses, cluster_id)
        stack = Stack(nodes, out, addresses)
        asyncio.run(_until_brokers(stack.settings(acl.ADMIN), 3))
        _install_acls(java, nodes[0], addresses.bootstrap, admin_properties)
        yield stack
    finally:
        for paths in nodes:
            process.stop(paths, 0.0, crash=True)


def _start(
    java: str,
    i: int,
    paths: Paths,
    files: kafkasecure.SecureFiles,
    passwords: dict[str, str],
    addresses: compose.Addresses,
    cluster_id: str,
) -> None:
    for folder in (paths.root, paths.data, paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    properties = compose.server_properties(
        i, files, passwords[acl.ADMIN], 4, addresses=addresses, data_dir=str(paths.data)
    )
    kafkasecure.write_private(paths.server_properties, properties)
    write_atomic(paths.log4j_properties, config.render_log4j_properties())
    write_atomic(paths.tools_log4j_properties, config.render_tools_log4j_properties())
    scram = kafkasecure.scram_format_args(passwords)
    storage.format_storage(java, paths, print, scram, cluster_id=cluster_id)
    process.start(java, paths, "384M")


async def _until_brokers(admin: Settings, count: int) -> None:
    deadline = time.monotonic() + UP_TIMEOUT_S
    last: Exception | None = None
    while True:
        try:
            async with admin_client(admin) as client:
                if len((await client.describe_cluster())["brokers"]) >= count:
                    return
        except Exception as err:  # starting nodes refuse in many ways
            last = err
        if time.monotonic() > deadline:
            raise AssertionError(f"the nodes did not list {count} brokers: {last!r}")
        await asyncio.sleep(1.0)


def _install_acls(java: str, paths: Paths, bootstrap: str, admin_properties: Path) -> None:
    """What the stack's acls.sh does, with the same arguments, through AclCommand."""
    connection = ["--bootstrap-server", bootstrap, "--command-config", str(admin_properties)]
    command = ACL_COMMAND[jars.log4j2(jars.kafka_version())]
    for args in acl.acl_command_args(acl.ACLS):
        done = subprocess.run(
            [*jvm.tool_java(java, paths), command, *connection, *args],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr


async def _write_and_read(stack: Stack, trade_id: str) -> list[str]:
    """venue-a writes a trade (acks=all); ops reads ``trades`` back: the trade ids."""
    venue, ops = stack.settings("venue-a"), stack.settings("ops")
    producer = AIOKafkaProducer(
        bootstrap_servers=venue.bootstrap, acks="all", enable_idempotence=True,
        **client_kwargs(venue),
    )  # fmt: skip
    await producer.start()
    try:
        await producer.send_and_wait(
            TRADES, orjson.dumps({"trade_id": trade_id}), key=trade_id.encode(), partition=0
        )
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=ops.bootstrap, isolation_level="read_committed", **client_kwargs(ops)
    )
    await consumer.start()
    try:
        tp = TopicPartition(TRADES, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        seen: list[str] = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                seen += [orjson.loads(r.value)["trade_id"] for r in records]
        return seen
    finally:
        await consumer.stop()


async def test_the_three_nodes_replicate_every_topic_and_keep_the_acls(stack: Stack) -> None:
    admin = stack.settings(acl.ADMIN)
    await ensure_public_topics(admin)
    async with admin_client(admin) as client:
        described = await client.describe_topics(["ledger-events", "trades"])
    for topic in described:
        assert {len(p["replicas"]) for p in topic["partitions"]} == {3}, topic
    assert await _write_and_read(stack, "compose-1") == ["compose-1"]


async def test_one_node_lost_the_cluster_still_writes_and_reads(stack: Stack) -> None:
    admin = stack.settings(acl.ADMIN)
    await ensure_public_topics(admin)
    process.stop(stack.nodes[2], 0.0, crash=True)  # SIGKILL kafka-3: a broker and a voter
    seen = await asyncio.wait_for(_write_and_read(stack, "compose-2"), 120)
    assert "compose-2" in seen, seen
