"""A local Kafka cluster of several brokers: ``kessai kafka up --brokers 3``.

A real deployment replicates every topic over three brokers or more; this is the same
on one machine, for development and the broker-failure tests. Under
``<state_dir>/kafka-cluster/``: one KRaft controller (``controller/``: a quorum of one,
in a JVM of its own, so that a broker's lost disk never holds controller metadata) and
N brokers (``broker-1/`` ... ``broker-N/``), each folder laid out like the single
broker's (:class:`~streams.devtools.localkafka.layout.Paths`), all on the dev profile's
jars. The brokers listen on loopback ports ``base``, ``base + 1``, ...; the controller
on ``base + N`` (base 9292 by default, away from the single broker's 9092 and the
secure one's 9192, so all three can run at once).

Every topic gets the cluster's replication (:func:`replication_for`: 3 from three
brokers on), with two in-sync replicas required from 3 on, internal topics included
(:func:`streams.devtools.localkafka.config.base_properties`).

The plain profile only (no TLS, no ACLs). A node can be stopped, killed, wiped and
started again on its own (:func:`kill_node`, :func:`start_node`): the crash tests
lose brokers and disks with them.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from streams.devtools.localkafka import config, jars, jvm, probes, process, storage
from streams.devtools.localkafka.errors import BrokerError, Log
from streams.devtools.localkafka.jars import kafka_version
from streams.devtools.localkafka.layout import Paths, write_atomic
from streams.devtools.localkafka.limits import POLL_INTERVAL_S, PROBE_TIMEOUT_S
from streams.devtools.localkafka.probes import LISTEN_HOST

__all__ = [
    "BASE_PORT",
    "Cluster",
    "NodeStatus",
    "down",
    "kill_node",
    "replication_for",
    "start_node",
    "status",
    "up",
]

CLUSTER_DIR_NAME: Final = "kafka-cluster"
#: The first broker's port; the others and the controller follow.
BASE_PORT: Final = 9292
#: The controller's node id (the brokers are 1..N).
CONTROLLER_ID: Final = 100
CONTROLLER: Final = "controller"
#: Each JVM's heap: four of them share this machine with the workers.
NODE_HEAP: Final = "512M"


def replication_for(brokers: int) -> int:
    """The replication factor of every topic on a cluster of ``brokers``: 3 at most."""
    assert brokers >= 1, brokers
    return min(3, brokers)


@dataclass(frozen=True)
class Cluster:
    """Where a local cluster's nodes live and listen."""

    state_dir: Path
    brokers: int = 3
    base_port: int = BASE_PORT

    def __post_init__(self) -> None:
        assert 1 <= self.brokers <= 9, self.brokers

    @property
    def root(self) -> Path:
        return self.state_dir / CLUSTER_DIR_NAME

    @property
    def names(self) -> list[str]:
        """The brokers' names, ``broker-1`` ... ``broker-N``."""
        return [f"broker-{i}" for i in range(1, self.brokers + 1)]

    def paths(self, name: str) -> Paths:
        """A node's folder (``controller`` or ``broker-i``), on the dev profile's jars."""
        assert name == CONTROLLER or name in self.names, name
        return Paths(self.root / name, libs_root=self.state_dir / "kafka")

    def port(self, name: str) -> int:
        if name == CONTROLLER:
            return self.base_port + self.brokers
        return self.base_port + self.names.index(name)

    @property
    def bootstrap(self) -> str:
        """Every broker, as a client's ``bootstrap.servers`` (``KESSAI_BOOTSTRAP``)."""
        return ",".join(f"{LISTEN_HOST}:{self.port(n)}" for n in self.names)

    @property
    def cluster_id_file(self) -> Path:
        return self.root / "cluster.id"

    @classmethod
    def found(cls, state_dir: Path, base_port: int = BASE_PORT) -> Cluster | None:
        """The cluster made under ``state_dir`` before, if any (its brokers counted)."""
        root = state_dir / CLUSTER_DIR_NAME
        brokers = len(list(root.glob("broker-*"))) if root.is_dir() else 0
        return cls(state_dir, brokers, base_port) if brokers else None


# ------------------------------------------------------------------------- configuration


def render_node_properties(cluster: Cluster, name: str, partitions: int) -> str:
    """A node's ``server.properties``: the controller's or a broker's."""
    paths = cluster.paths(name)
    voters = f"{CONTROLLER_ID}@{LISTEN_HOST}:{cluster.port(CONTROLLER)}"
    head = [
        "# Written by `kessai kafka up --brokers N` on every start: edits are overwritten.",
        f"# A node of a local cluster of {cluster.brokers} brokers and one controller.",
        f"controller.quorum.voters={voters}",
        "controller.listener.names=CONTROLLER",
        f"log.dirs={paths.data}",
    ]
    if name == CONTROLLER:
        return "\n".join(
            [
                *head,
                "process.roles=controller",
                f"node.id={CONTROLLER_ID}",
                f"listeners=CONTROLLER://{LISTEN_HOST}:{cluster.port(CONTROLLER)}",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT",
                "",
            ]
        )
    port = cluster.port(name)
    return "\n".join(
        [
            *head,
            "process.roles=broker",
            f"node.id={cluster.names.index(name) + 1}",
            f"listeners=PLAINTEXT://{LISTEN_HOST}:{port}",
            f"advertised.listeners=PLAINTEXT://{LISTEN_HOST}:{port}",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "",
            *config.base_properties(partitions, replication_for(cluster.brokers)),
        ]
    )


def _cluster_id(cluster: Cluster) -> str:
    """The cluster's id, made once and kept beside the nodes (a wiped node is
    formatted with it again, as a replaced machine would be)."""
    if cluster.cluster_id_file.exists():
        return cluster.cluster_id_file.read_text(encoding="ascii").strip()
    cluster.root.mkdir(parents=True, exist_ok=True)
    made = storage.new_cluster_id()
    write_atomic(cluster.cluster_id_file, made + "\n")
    return made


def _prepare(java: str, cluster: Cluster, name: str, partitions: int, log: Log) -> Paths:
    paths = cluster.paths(name)
    for folder in (paths.root, paths.data, paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    write_atomic(paths.server_properties, render_node_properties(cluster, name, partitions))
    write_atomic(paths.log4j_properties, config.render_log4j_properties())
    storage.format_storage(java, paths, log, [], cluster_id=_cluster_id(cluster))
    return paths


# ------------------------------------------------------------------------ the commands


@dataclass(frozen=True)
class NodeStatus:
    name: str
    #: Where clients reach it (a broker) or where the brokers reach it (the controller).
    address: str
    pid: int | None
    #: Its process runs (kessai started it and it is alive).
    alive: bool
    #: Something listens on its port.
    answers: bool
    data_dir: Path
    log_file: Path


def up(
    cluster: Cluster, *, partitions: int, timeout_s: float = 180.0, log: Log = print
) -> list[NodeStatus]:
    """Start every node that does not run (the controller first), then wait until the
    cluster's metadata lists all the brokers. Idempotent: running nodes are kept."""
    java = jvm.require_java()
    with process.locked(Paths(cluster.state_dir / "kafka")):
        jars.ensure_jars(Paths(cluster.state_dir / "kafka"), log)
    with process.locked(Paths(cluster.root)):
        for name in [CONTROLLER, *cluster.names]:
            if not _alive(cluster, name):
                _start(java, cluster, name, partitions, log)
    wait_brokers(cluster, cluster.brokers, timeout_s)
    return status(cluster)


def start_node(cluster: Cluster, name: str, *, partitions: int, log: Log = print) -> int:
    """Start one node (a lost broker coming back); its pid. Formats an empty data
    directory with the cluster's id first."""
    java = jvm.require_java()
    with process.locked(Paths(cluster.root)):
        return _start(java, cluster, name, partitions, log)


def _start(java: str, cluster: Cluster, name: str, partitions: int, log: Log) -> int:
    paths = _prepare(java, cluster, name, partitions, log)
    proc = process.start(java, paths, os.environ.get("KESSAI_KAFKA_NODE_HEAP", NODE_HEAP))
    log(f"Kafka {kafka_version()} {name} starting (pid {proc.pid}) on "
        f"{LISTEN_HOST}:{cluster.port(name)}; log {paths.log_file}")  # fmt: skip
    return proc.pid


def wait_brokers(cluster: Cluster, count: int, timeout_s: float) -> None:
    """Wait until the metadata lists ``count`` brokers and as many take connections;
    raise :class:`BrokerError` naming the nodes that died, or the time waited.

    Both: a broker is listed once the controller unfences it, a moment before its
    listener takes connections (a client sent there meanwhile is refused; seen once in
    CI, `NodeNotReadyError` on the first request to the cluster)."""
    deadline = time.monotonic() + timeout_s
    while True:
        # A plain connect first: aiokafka logs an error for each refused connection.
        listening = sum(probes.tcp_open(LISTEN_HOST, cluster.port(n)) for n in cluster.names)
        seen = (
            probes.run_sync(probes.metadata_brokers(cluster.bootstrap, PROBE_TIMEOUT_S, {}))
            if listening
            else 0
        )
        if seen >= count and listening >= count:
            return
        dead = [n for n in [CONTROLLER, *cluster.names] if not _alive(cluster, n)]
        if time.monotonic() >= deadline:
            raise BrokerError(
                f"the cluster on {cluster.bootstrap} listed {seen} of {count} brokers after "
                f"{timeout_s:.0f} s" + (f"; not running: {', '.join(dead)}" if dead else "")
            )
        time.sleep(POLL_INTERVAL_S)


def kill_node(cluster: Cluster, name: str, *, wipe: bool = False) -> None:
    """SIGKILL one node (a crash: no controlled shutdown); with ``wipe``, delete its
    data directory too (a lost machine: it comes back empty)."""
    paths = cluster.paths(name)
    process.stop(paths, 0.0, crash=True)
    if wipe and paths.data.exists():
        shutil.rmtree(paths.data)


def down(cluster: Cluster, *, timeout_s: float = 60.0) -> list[str]:
    """Stop every node kessai started, the brokers first (controlled shutdown), then the
    controller; the names of those that ran."""
    stopped: list[str] = []
    if not cluster.root.is_dir():
        return stopped
    with process.locked(Paths(cluster.root)):
        for name in [*cluster.names, CONTROLLER]:
            if process.stop(cluster.paths(name), timeout_s):
                stopped.append(name)
    return stopped


def status(cluster: Cluster) -> list[NodeStatus]:
    """Each node: its address, pid, whether it runs, its data and log."""
    out = []
    for name in [*cluster.names, CONTROLLER]:
        paths = cluster.paths(name)
        pid = process.our_pid(paths)
        out.append(
            NodeStatus(
                name=name,
                address=f"{LISTEN_HOST}:{cluster.port(name)}",
                pid=pid,
                alive=pid is not None,
                answers=probes.tcp_open(LISTEN_HOST, cluster.port(name)),
                data_dir=paths.data,
                log_file=paths.log_file,
            )
        )
    return out


def _alive(cluster: Cluster, name: str) -> bool:
    return process.our_pid(cluster.paths(name)) is not None
