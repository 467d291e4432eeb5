"""A single-node Apache Kafka broker for development and tests, run from Maven jars.

kessai's flows need a real broker with working transactions. This module fetches the
official Kafka 3.9.2 jars with Maven (``deploy/kafka/pom.xml``), writes a one-node KRaft
configuration (broker and controller in one JVM) under ``<state_dir>/kafka``, formats
its storage once, and starts it detached so that it outlives the command that started
it. Tests and engineers share that one broker: :func:`up` is idempotent and cheap when
it already runs. When ``KESSAI_BOOTSTRAP`` names a cluster that is not on this machine,
nothing is started; :func:`up` only waits for that cluster to answer.

Layout under ``<state_dir>/kafka``: ``libs/`` (jars, with the pom's hash beside them),
``data/`` (log dirs and KRaft metadata), ``logs/server.log``, ``server.properties``,
``log4j.properties``, ``kafka.pid``.

Two profiles, chosen by ``settings.kafka_security``. ``plaintext`` is the open
development broker above: no authentication, no ACLs. ``sasl_ssl`` is the secure
profile (``kessai kafka up --secure``): the same broker with SASL/SCRAM-SHA-512 over
TLS and Kafka ACLs (:mod:`streams.devtools.localkafka.secure`), under ``<state_dir>/kafka-secure``
on port 9192 by default, so that both can run side by side; it uses the dev
profile's jars. kessai manages it as the admin principal, whatever user the settings
name.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from streams.config import Settings
from streams.devtools.localkafka import secure as kafkasecure
from streams.devtools.processes import free_port
from streams.errors import ConfigError, KessaiError
from streams.kafka.auth import client_kwargs
from streams.security import acl

__all__ = [
    "BrokerError",
    "LocalKafkaError",
    "MissingToolError",
    "Status",
    "down",
    "env_file",
    "free_port",
    "principal_settings",
    "reset",
    "secure_profile",
    "status",
    "up",
    "up_private",
]

KAFKA_VERSION = "3.9.2"
POM_PATH = Path(__file__).with_name("pom.xml")

#: Kafka 4.x needs 17; asking for it now means no second upgrade when we move.
JAVA_MAJOR_MIN = 17
JAVA_INSTALL_HINT = "Java 17+ (e.g. apt-get install openjdk-17-jre-headless)"
MVN_INSTALL_HINT = "Apache Maven (apt-get install maven)"
HEAP_DEFAULT = "1G"

# Limits, in one place.
#: The first run downloads about 46 MB of jars; a slow mirror must not hang us forever.
MVN_TIMEOUT_S = 900.0
JAVA_VERSION_TIMEOUT_S = 30.0
FORMAT_TIMEOUT_S = 120.0
#: Installing the secure profile's ACLs: a few short JVMs, run side by side.
ACL_TIMEOUT_S = 180.0
#: Waiting for another `up`/`down` that holds the lock; covers a first-run download.
LOCK_WAIT_S_MAX = MVN_TIMEOUT_S + 120.0
#: After SIGKILL the kernel frees the process quickly; more means something is wrong.
KILL_WAIT_S = 10.0
POLL_INTERVAL_S = 0.25
#: One metadata probe; the broker is local, so a healthy one answers in milliseconds.
PROBE_TIMEOUT_S = 5.0
TCP_CONNECT_TIMEOUT_S = 1.0
LOG_TAIL_LINES = 20
#: A local listener binds here only: nothing outside this machine should reach it.
LISTEN_HOST = "127.0.0.1"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
NODE_ID = 1

POM_HASH_NAME = ".pom.sha256"
LIBS_TMP_PREFIX = "libs.tmp-"
LIBS_OLD_PREFIX = "libs.old-"

Log = Callable[[str], None]
T = TypeVar("T")


class LocalKafkaError(KessaiError):
    """Base of every error this module raises."""


class MissingToolError(LocalKafkaError):
    """``java`` or ``mvn`` is missing, or too old."""


class BrokerError(LocalKafkaError):
    """The broker could not be started, stopped or reached."""


@dataclass(frozen=True, kw_only=True)
class Status:
    """Where the broker is and whether it answers."""

    #: The process is alive (when managed) and the bootstrap answers metadata requests.
    running: bool
    #: The JVM's pid when kessai started it, else None.
    pid: int | None
    bootstrap: str
    state_dir: Path
    #: The broker's own log (``server.log``); the first place to look when it fails.
    log_file: Path
    #: False when the broker is not ours to start or stop (KESSAI_BOOTSTRAP elsewhere,
    #: or another program's broker already on the port).
    managed: bool
    message: str
    #: Kafka's log dirs and KRaft metadata; :func:`reset` deletes it.
    data_dir: Path


@dataclass(frozen=True)
class _Paths:
    root: Path
    #: Where ``libs/`` is: the dev profile's folder (None: ``root``, the dev profile).
    libs_root: Path | None = None
    secure: bool = False

    @classmethod
    def of(cls, settings: Settings) -> _Paths:
        plain = settings.state_dir / "kafka"
        if _is_secure(settings):
            return cls(settings.state_dir / kafkasecure.PROFILE_DIR_NAME, plain, secure=True)
        return cls(plain)

    @property
    def libs_home(self) -> Path:
        return self.root if self.libs_root is None else self.libs_root

    @property
    def libs(self) -> Path:
        return self.libs_home / "libs"

    @property
    def secure_files(self) -> kafkasecure.SecureFiles:
        return kafkasecure.SecureFiles(self.root / "secure")

    @property
    def tools_log4j_properties(self) -> Path:
        return self.root / "tools-log4j.properties"

    @property
    def pom_hash(self) -> Path:
        # Inside libs/, so the jars and the hash that vouches for them appear in one rename.
        return self.libs / POM_HASH_NAME

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.logs / "kafka.out"

    @property
    def server_properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j_properties(self) -> Path:
        return self.root / "log4j.properties"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka.pid"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"


# --------------------------------------------------------------------------- public API


def up(settings: Settings, *, timeout_s: float = 120.0, log: Log = print) -> Status:
    """Make sure a broker answers on ``settings.bootstrap``; start one if it is ours to start.

    Returns once the broker answers metadata requests. Raises :class:`MissingToolError`
    when java or mvn is needed but missing, :class:`BrokerError` when the broker dies or
    does not answer within ``timeout_s`` (a broker still starting is left running).

    A broker that already runs is kept as it is, even if the pom changed since: ``down``
    then ``up`` picks up new jars. A broker on the port that kessai did not start
    (docker compose) is used, never fought: the status then says ``managed=False``.
    """
    assert timeout_s > 0, timeout_s
    deadline = time.monotonic() + timeout_s
    paths = _Paths.of(settings)
    if not _is_local(settings.bootstrap):
        log(f"KESSAI_BOOTSTRAP={settings.bootstrap} is not local: starting nothing, waiting")
        _wait_ready(
            settings.bootstrap, deadline, timeout_s, alive=lambda: True, auth=_auth(settings, paths)
        )
        return _external_status(settings, paths, running=True)

    with _locked(paths):
        pid = _our_pid(paths)
        if pid is not None:
            if _answers_metadata(settings.bootstrap, PROBE_TIMEOUT_S, _auth(settings, paths)):
                if paths.secure:  # an earlier `up` may have stopped before the ACLs
                    _install_acls(paths, settings, log)
                return _managed_status(settings, paths, pid, "already running")
            # Alive but silent: still starting (an interrupted `up`), or recovering logs
            # after a crash. Give it the same time a fresh start gets.
            log(f"Kafka (pid {pid}) is alive but not answering yet; waiting")
            try:
                _wait_ready(
                    settings.bootstrap,
                    deadline,
                    timeout_s,
                    alive=lambda: _pid_alive(pid),
                    logs=(paths, {}),
                    auth=_auth(settings, paths),
                )
                if paths.secure:
                    _install_acls(paths, settings, log)
            except BrokerError:
                if not _pid_alive(pid):
                    paths.pid_file.unlink(missing_ok=True)
                raise
            return _managed_status(settings, paths, pid, "was starting; now answers")

        port, controller_port = _ports(settings.bootstrap)
        if _tcp_open(LISTEN_HOST, port):
            # Someone else's broker (docker compose, another checkout): use it, never fight
            # it for the port.
            if _answers_metadata(settings.bootstrap, PROBE_TIMEOUT_S, _auth(settings, paths)):
                return _foreign_status(settings, paths)
            raise BrokerError(
                f"port {port} on {LISTEN_HOST} is taken by a program that is not a Kafka "
                f"broker; free it or set KESSAI_BOOTSTRAP to another port"
            )
        if _tcp_open(LISTEN_HOST, controller_port):
            raise BrokerError(
                f"controller port {controller_port} (broker port + 1) on {LISTEN_HOST} is "
                f"taken; free it or set KESSAI_BOOTSTRAP to another port"
            )

        java = _require_java()
        heap = _heap(os.environ)
        started_s = time.monotonic()
        if paths.secure:
            # The jars are the dev profile's: fetched under its lock, never twice at once.
            with _locked(_Paths(paths.libs_home)):
                _ensure_jars(paths, log)
        else:
            _ensure_jars(paths, log)
        scram_args = _prepare_secure(paths, settings, log) if paths.secure else []
        _write_config(paths, settings)
        if _format_storage(java, paths, log, scram_args):
            # A fresh metadata log holds no ACLs, whatever was installed before.
            paths.secure_files.acls_digest.unlink(missing_ok=True)
        # Where the logs end now: a failure quotes only what this start wrote.
        log_sizes = _log_sizes(paths)
        proc = _start(java, paths, heap)
        log(f"Kafka {KAFKA_VERSION} starting (pid {proc.pid}, heap {heap}); log {paths.log_file}")
        try:
            _wait_ready(
                settings.bootstrap,
                deadline,
                timeout_s,
                alive=lambda: proc.poll() is None,
                logs=(paths, log_sizes),
                auth=_auth(settings, paths),
            )
            if paths.secure:
                _install_acls(paths, settings, log)
        except BrokerError:
            if proc.poll() is not None:
                paths.pid_file.unlink(missing_ok=True)
            raise
        took_s = time.monotonic() - started_s
        return _managed_status(settings, paths, proc.pid, f"started in {took_s:.1f} s")


def _is_secure(settings: Settings) -> bool:
    return settings.kafka_security == "sasl_ssl"


def _auth(settings: Settings, paths: _Paths) -> dict[str, Any]:
    """How the readiness probe connects: plaintext, or as the secure profile's admin.

    A cluster kessai does not run (KESSAI_BOOTSTRAP elsewhere) is asked as the user
    the settings name; the local secure broker as its admin, once the admin exists.
    """
    if not paths.secure:
        return {}
    files = paths.secure_files
    if _is_local(settings.bootstrap) and files.credentials(acl.ADMIN).exists():
        return client_kwargs(principal_settings(settings, acl.ADMIN))
    return client_kwargs(settings)


def _prepare_secure(paths: _Paths, settings: Settings, log: Log) -> list[str]:
    """Certificates, passwords and client files of the secure profile; the StorageTool
    arguments that create its SCRAM users (used only when the storage is formatted)."""
    files = paths.secure_files
    formatted = (paths.data / "meta.properties").exists()
    missing = [p for p in acl.PRINCIPALS if not files.credentials(p).exists()]
    if formatted and missing:
        # Their SCRAM credentials are in the metadata log with passwords nobody knows.
        raise BrokerError(
            f"the secure broker's storage {paths.data} exists but the credentials of "
            f"{missing} in {files.root} do not; `kessai kafka reset --secure --yes` "
            f"starts over"
        )
    if kafkasecure.ensure_certificates(files):
        log(f"made a local CA and broker certificate in {files.root}")
    passwords = kafkasecure.ensure_credentials(files)
    if kafkasecure.ensure_signers(files):
        log(f"made the local signers' keys and registry in {files.signers.parent}")
    kafkasecure.write_client_files(files, settings.bootstrap, settings.state_dir)
    kafkasecure.write_private(
        files.admin_client_properties,
        kafkasecure.admin_client_properties(files, passwords[acl.ADMIN]),
    )
    return [] if formatted else kafkasecure.scram_format_args(passwords)


def _install_acls(paths: _Paths, settings: Settings, log: Log) -> None:
    """Add the ACL table as the admin, unless this very table is installed already.

    A few AclCommand JVMs, all at once (each spends seconds starting). Adding
    is idempotent; a rule removed from the table stays on the broker until a reset.
    """
    files = paths.secure_files
    rules = acl.acl_table(settings.app_id)
    digest = acl.table_digest(rules)
    with contextlib.suppress(OSError):
        if files.acls_digest.read_text(encoding="ascii").strip() == digest:
            return
    java = _require_java()
    log(f"installing {len(rules)} ACL rules ({', '.join(r.name for r in rules)})")
    connection = [
        "--bootstrap-server",
        settings.bootstrap,
        "--command-config",
        str(files.admin_client_properties),
    ]
    calls = acl.acl_command_args(rules)
    procs = [
        subprocess.Popen(
            [*_tool_java(java, paths), "kafka.admin.AclCommand", *connection, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for args in calls
    ]
    failed = []
    try:
        for args, proc in zip(calls, procs, strict=True):
            out, _ = proc.communicate(timeout=ACL_TIMEOUT_S)
            if proc.returncode != 0:
                failed.append(f"{' '.join(args)} (exit {proc.returncode}):\n{_tail_text(out)}")
    except subprocess.TimeoutExpired as err:
        raise BrokerError(f"AclCommand did not finish within {ACL_TIMEOUT_S:.0f} s") from err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if failed:
        raise BrokerError("installing the ACLs failed: " + "\n".join(failed))
    _write_atomic(files.acls_digest, digest + "\n")


def _tool_java(java: str, paths: _Paths) -> list[str]:
    """java and its flags for a short-lived Kafka tool: small heap, fast start."""
    return [
        java,
        "-Xmx256M",
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{paths.tools_log4j_properties}",
        "-cp",
        _classpath(paths),
    ]


def up_private(
    workdir: Path,
    *,
    tokens: dict[str, int] | None = None,
    log: Log = print,
    secure: bool = False,
) -> Settings:
    """A fresh single-node cluster of its own under *workdir*, on free ports.

    For the tests and benchmarks that need a broker nobody else writes to (crash tests,
    pipeline benchmarks: kessai's topic names are fixed). The jars of the project's
    broker are copied when present, so only the first broker on a machine runs Maven.
    Stop it with :func:`down` on the settings returned.

    With ``secure``, the secure profile; the settings returned connect as the admin
    (a super user): :func:`principal_settings` gives any other principal's.
    """
    settings = Settings(
        bootstrap=f"{LISTEN_HOST}:{free_port(pair=True)}",
        state_dir=workdir / "state",
        kafka_security="sasl_ssl" if secure else "plaintext",
    )
    if tokens is not None:
        settings = dataclasses.replace(settings, tokens=dict(tokens))
    shared_libs = Settings.from_env().state_dir / "kafka" / "libs"
    if shared_libs.is_dir():
        shutil.copytree(shared_libs, settings.state_dir / "kafka" / "libs")
    up(settings, log=log)
    return principal_settings(settings, acl.ADMIN) if secure else settings


def secure_profile(settings: Settings) -> Settings:
    """The settings of the secure profile's broker (``kessai kafka up --secure``).

    Settings already for ``sasl_ssl`` are kept (their KESSAI_BOOTSTRAP names the
    secure broker, as the profile's env files set it); plaintext ones name the dev
    broker, so the secure one goes to its own default port.
    """
    if _is_secure(settings):
        return settings
    return dataclasses.replace(
        settings,
        bootstrap=f"{LISTEN_HOST}:{kafkasecure.SECURE_PORT_DEFAULT}",
        kafka_security="sasl_ssl",
        kafka_username=None,
        kafka_password=None,
        kafka_ca_file=None,
    )


def env_file(settings: Settings, principal: str) -> Path:
    """The secure profile's env file for *principal* (``set -a; . FILE; set +a``)."""
    return _Paths.of(secure_profile(settings)).secure_files.env(principal)


def principal_settings(settings: Settings, principal: str) -> Settings:
    """*settings* connecting to the local secure broker as *principal* (one of
    :data:`streams.security.acl.PRINCIPALS`), with the password and CA it made."""
    if principal not in acl.PRINCIPALS:
        raise ValueError(f"no principal {principal!r}; want one of {acl.PRINCIPALS}")
    files = _Paths.of(secure_profile(settings)).secure_files
    try:
        document = json.loads(files.credentials(principal).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BrokerError(
            f"no credentials for {principal} in {files.root} ({err}); "
            f"start the secure profile first (`kessai kafka up --secure`)"
        ) from err
    return dataclasses.replace(
        secure_profile(settings),
        kafka_username=principal,
        kafka_password=document["password"],
        kafka_ca_file=files.ca,
    )


def down(settings: Settings, *, timeout_s: float = 60.0) -> bool:
    """Stop the broker kessai started: SIGTERM (controlled shutdown), then SIGKILL.

    Returns whether a running broker was stopped. Safe to call when none runs.
    """
    assert timeout_s > 0, timeout_s
    paths = _Paths.of(settings)
    if not paths.root.is_dir():
        return False
    with _locked(paths):
        return _stop(paths, timeout_s)


def status(settings: Settings) -> Status:
    """Whether a broker runs for ``settings``, its pid, and where its data and log are."""
    paths = _Paths.of(settings)
    auth = _auth(settings, paths)
    if not _is_local(settings.bootstrap):
        return _external_status(
            settings, paths, running=_answers_metadata(settings.bootstrap, PROBE_TIMEOUT_S, auth)
        )
    pid = _our_pid(paths)
    answers = _answers_metadata(settings.bootstrap, PROBE_TIMEOUT_S, auth)
    if pid is not None:
        if answers:
            return _managed_status(settings, paths, pid, "running")
        return Status(
            running=False,
            pid=pid,
            bootstrap=settings.bootstrap,
            state_dir=settings.state_dir,
            log_file=paths.log_file,
            managed=True,
            message=(
                f"Kafka process {pid} is alive but does not answer on {settings.bootstrap} "
                f"(starting, or stuck: see {paths.log_file})"
            ),
            data_dir=paths.data,
        )
    if answers:
        return _foreign_status(settings, paths)
    return Status(
        running=False,
        pid=None,
        bootstrap=settings.bootstrap,
        state_dir=settings.state_dir,
        log_file=paths.log_file,
        managed=True,
        message=(
            f"not running (start it with `kessai kafka up{' --secure' if paths.secure else ''}`);"
            f" data {paths.data}"
        ),
        data_dir=paths.data,
    )


def reset(settings: Settings, *, timeout_s: float = 60.0) -> None:
    """Stop the broker and delete its data for a clean slate; the jars stay."""
    paths = _Paths.of(settings)
    if not paths.root.is_dir():
        return
    with _locked(paths):
        _stop(paths, timeout_s)
        if paths.data.exists():
            shutil.rmtree(paths.data)
        if paths.secure:
            paths.secure_files.acls_digest.unlink(missing_ok=True)


# ------------------------------------------------------------------------ status helpers


def _managed_status(settings: Settings, paths: _Paths, pid: int, what: str) -> Status:
    return Status(
        running=True,
        pid=pid,
        bootstrap=settings.bootstrap,
        state_dir=settings.state_dir,
        log_file=paths.log_file,
        managed=True,
        message=(
            f"Kafka {KAFKA_VERSION} {what} (pid {pid}) on {settings.bootstrap}; "
            f"data {paths.data}; log {paths.log_file}"
        ),
        data_dir=paths.data,
    )


def _foreign_status(settings: Settings, paths: _Paths) -> Status:
    return Status(
        running=True,
        pid=None,
        bootstrap=settings.bootstrap,
        state_dir=settings.state_dir,
        log_file=paths.log_file,
        managed=False,
        message=(
            f"a broker kessai did not start answers on {settings.bootstrap}; using it "
            f"(kessai will not stop it)"
        ),
        data_dir=paths.data,
    )


def _external_status(settings: Settings, paths: _Paths, *, running: bool) -> Status:
    answers = "answers" if running else "does not answer"
    message = f"KESSAI_BOOTSTRAP={settings.bootstrap} {answers}; kessai starts nothing for it"
    pid = _our_pid(paths)
    if pid is not None:
        message += f" (a kessai-started local broker, pid {pid}, also runs: `down` stops it)"
    return Status(
        running=running,
        pid=None,
        bootstrap=settings.bootstrap,
        state_dir=settings.state_dir,
        log_file=paths.log_file,
        managed=False,
        message=message,
        data_dir=paths.data,
    )


# ------------------------------------------------------------------ bootstrap and ports


def _split_hosts(bootstrap: str) -> list[tuple[str, int]]:
    """``"a:1,b"`` -> ``[("a", 1), ("b", 9092)]``; Kafka's default port when none is given."""
    hosts: list[tuple[str, int]] = []
    for item in bootstrap.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port_text = item.rpartition(":")
        if not sep:
            host, port_text = item, "9092"
        host = host.strip("[]")
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(f"KESSAI_BOOTSTRAP: bad entry {item!r}, want host:port")
        hosts.append((host, int(port_text)))
    if not hosts:
        raise ConfigError("KESSAI_BOOTSTRAP: empty")
    return hosts


def _is_local(bootstrap: str) -> bool:
    """Whether kessai may run the broker itself: one loopback address we can listen on."""
    hosts = _split_hosts(bootstrap)
    return len(hosts) == 1 and hosts[0][0] in LOCAL_HOSTS


def _ports(bootstrap: str) -> tuple[int, int]:
    """(broker port, controller port); the controller takes the next port up."""
    hosts = _split_hosts(bootstrap)
    assert len(hosts) == 1, bootstrap
    port = hosts[0][1]
    if port + 1 > 65535:
        raise ConfigError(f"KESSAI_BOOTSTRAP: port {port} leaves no room for the controller")
    return port, port + 1


# ------------------------------------------------------------------------ configuration


def _new_cluster_id() -> str:
    """22 characters of URL-safe base64 from 16 random bytes, as Kafka's ``Uuid`` prints."""
    while True:
        raw = secrets.token_bytes(16)
        text = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        # Kafka's Uuid.randomUuid rejects these too: a leading "-" reads as a flag on a
        # command line, and the all-zero id is reserved.
        if not text.startswith("-") and any(raw):
            assert len(text) == 22, text
            return text


def _render_server_properties(
    settings: Settings, data_dir: Path, *, secure: tuple[kafkasecure.SecureFiles, str] | None = None
) -> str:
    """The broker's configuration; ``secure``: the secure profile's files and admin
    password (SASL_SSL listeners, ACLs)."""
    port, controller_port = _ports(settings.bootstrap)
    assert settings.partitions > 0, settings.partitions
    if secure is None:
        listeners = [
            "# The open development profile: no authentication, no ACLs.",
            f"listeners=PLAINTEXT://{LISTEN_HOST}:{port},"
            f"CONTROLLER://{LISTEN_HOST}:{controller_port}",
            f"advertised.listeners=PLAINTEXT://{LISTEN_HOST}:{port}",
            "inter.broker.listener.name=PLAINTEXT",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ]
    else:
        files, admin_password = secure
        listeners = kafkasecure.listener_properties(
            host=LISTEN_HOST,
            port=port,
            controller_port=controller_port,
            files=files,
            admin_password=admin_password,
        )
    lines = [
        "# Written by `kessai kafka up` on every start: edits here are overwritten.",
        "# One JVM is both broker and controller (KRaft, no ZooKeeper).",
        "process.roles=broker,controller",
        f"node.id={NODE_ID}",
        # Static voters: formatted without --standalone (kraft.version 0).
        f"controller.quorum.voters={NODE_ID}@{LISTEN_HOST}:{controller_port}",
        *listeners,
        "",
        f"log.dirs={data_dir}",
        "",
        *base_properties(settings.partitions),
    ]
    return "\n".join(lines)


def base_properties(partitions: int) -> list[str]:
    """The lines of ``server.properties`` that every one-node kessai broker shares
    (this module's, both profiles, and deploy/compose.yaml's: localkafka/compose.py)."""
    return [
        "# Kafka's defaults assume three brokers; on one they make groups and transactions",
        "# fail. Internal topics take these values when first created, so they must be",
        "# right before the first start.",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "default.replication.factor=1",
        "min.insync.replicas=1",
        "",
        "# kessai creates its topics itself, co-partitioned; a typo must fail, not create.",
        "auto.create.topics.enable=false",
        f"num.partitions={partitions}",
        "",
        "# Faster tests on one node.",
        "# No 3 s wait for more members before the first rebalance.",
        "group.initial.rebalance.delay.ms=0",
        "# Lets crash tests pick short consumer session timeouts.",
        "group.min.session.timeout.ms=1000",
        "# 50 partitions each by default: slow to create on first use, pointless on one node.",
        "offsets.topic.num.partitions=8",
        "transaction.state.log.num.partitions=8",
        "# Timed-out transactions are aborted within a second, not ten.",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000",
        "transaction.remove.expired.transaction.cleanup.interval.ms=60000",
        "# Small segments roll often, so compaction and retention act within a test.",
        "log.segment.bytes=16777216",
        "log.cleaner.backoff.ms=1000",
        "# The 128 MiB default would take a large share of a small heap (KESSAI_KAFKA_HEAP).",
        "log.cleaner.dedupe.buffer.size=33554432",
        "",
    ]


def _render_log4j_properties() -> str:
    # reload4j (log4j 1.2 API). One file for everything, so that a failed start can be
    # explained by the tail of one log; nothing on stdout, which goes to kafka.out.
    return "\n".join(
        [
            "# Written by `kessai kafka up` on every start: edits here are overwritten.",
            "log4j.rootLogger=INFO, file",
            "log4j.appender.file=org.apache.log4j.RollingFileAppender",
            "log4j.appender.file.File=${kafka.logs.dir}/server.log",
            "log4j.appender.file.Append=true",
            "log4j.appender.file.MaxFileSize=20MB",
            "log4j.appender.file.MaxBackupIndex=5",
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout",
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n",
            "# As in Kafka's shipped config: one line per request is far too chatty.",
            "log4j.logger.kafka.request.logger=WARN",
            "log4j.logger.kafka.network.RequestChannel$=WARN",
            "# Kafka ships these at TRACE into their own files; INFO is enough here.",
            "log4j.logger.kafka.controller=INFO",
            "log4j.logger.org.apache.kafka.controller=INFO",
            "log4j.logger.state.change.logger=INFO",
            "",
        ]
    )


def _render_tools_log4j_properties() -> str:
    # Kafka's tools (AclCommand): warnings and errors on stderr, which kessai captures.
    return "\n".join(
        [
            "# Written by `kessai kafka up` on every start: edits here are overwritten.",
            "log4j.rootLogger=WARN, stderr",
            "log4j.appender.stderr=org.apache.log4j.ConsoleAppender",
            "log4j.appender.stderr.Target=System.err",
            "log4j.appender.stderr.layout=org.apache.log4j.PatternLayout",
            "log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n",
            "",
        ]
    )


def _write_config(paths: _Paths, settings: Settings) -> None:
    for folder in (paths.root, paths.data, paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    if paths.secure:
        files = paths.secure_files
        password = kafkasecure.ensure_credentials(files)[acl.ADMIN]
        # It holds the admin's password (the broker's own JAAS login): owner only.
        kafkasecure.write_private(
            paths.server_properties,
            _render_server_properties(settings, paths.data, secure=(files, password)),
        )
        _write_atomic(paths.tools_log4j_properties, _render_tools_log4j_properties())
    else:
        _write_atomic(paths.server_properties, _render_server_properties(settings, paths.data))
    _write_atomic(paths.log4j_properties, _render_log4j_properties())


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _heap(env: Mapping[str, str]) -> str:
    heap = env.get("KESSAI_KAFKA_HEAP", HEAP_DEFAULT).strip()
    if not re.fullmatch(r"[1-9][0-9]*[kKmMgG]?", heap):
        raise LocalKafkaError(f"KESSAI_KAFKA_HEAP={heap!r}: want a JVM size such as 512M or 1G")
    return heap


# ---------------------------------------------------------------------------- the tools


def _require_java(env: Mapping[str, str] | None = None) -> str:
    """Path of a Java 17+ ``java``: JAVA_HOME's first, as Kafka's scripts do, else PATH's."""
    e = os.environ if env is None else env
    java: str | None = None
    java_home = e.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        java = str(Path(java_home) / "bin" / "java")
    if java is None:
        java = shutil.which("java")
    if java is None:
        raise MissingToolError(f"java not found on PATH: install {JAVA_INSTALL_HINT}")
    major = _java_major(_java_version_output(java))
    if major is None:
        raise MissingToolError(f"cannot tell the version of {java}: install {JAVA_INSTALL_HINT}")
    if major < JAVA_MAJOR_MIN:
        raise MissingToolError(
            f"{java} is Java {major}; Kafka here needs {JAVA_INSTALL_HINT}, "
            f"first on PATH or in JAVA_HOME"
        )
    return java


def _java_version_output(java: str) -> str:
    try:
        done = subprocess.run(
            [java, "-version"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=JAVA_VERSION_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise MissingToolError(
            f"cannot run {java} -version ({err}): install {JAVA_INSTALL_HINT}"
        ) from err
    # `java -version` prints on stderr.
    return done.stderr + done.stdout


def _java_major(version_output: str) -> int | None:
    """``openjdk version "17.0.15"`` -> 17; the old ``"1.8.0_292"`` scheme -> 8."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        major = int(match.group(2))
    return major


def _require_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingToolError(
            f"mvn not found on PATH: install {MVN_INSTALL_HINT}; it fetches the Kafka jars once"
        )
    return mvn


# ------------------------------------------------------------------------------- jars


def _pom_digest() -> str:
    return hashlib.sha256(POM_PATH.read_bytes()).hexdigest()


def _ensure_jars(paths: _Paths, log: Log) -> None:
    """Fetch the jars unless ``libs/`` holds those of the current pom."""
    want = _pom_digest()
    with contextlib.suppress(OSError):
        if paths.pom_hash.read_text(encoding="ascii").strip() == want:
            return
    mvn = _require_mvn()
    home = paths.libs_home
    home.mkdir(parents=True, exist_ok=True)
    # Leftovers of an interrupted fetch: never trusted, never reused.
    for stale in [*home.glob(LIBS_TMP_PREFIX + "*"), *home.glob(LIBS_OLD_PREFIX + "*")]:
        shutil.rmtree(stale, ignore_errors=True)
    log(f"fetching Kafka {KAFKA_VERSION} jars with Maven into {paths.libs} (first run downloads)")
    # A fresh folder renamed into place: an interrupted download never leaves a half libs/.
    tmp = Path(tempfile.mkdtemp(prefix=LIBS_TMP_PREFIX, dir=home))
    try:
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM_PATH),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
        ]
        try:
            done = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=MVN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise BrokerError(f"mvn did not finish within {MVN_TIMEOUT_S:.0f} s") from err
        if done.returncode != 0:
            raise BrokerError(
                f"mvn copy-dependencies failed (exit {done.returncode}):\n"
                + _tail_text(done.stdout + done.stderr)
            )
        if not any(tmp.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
            raise BrokerError(f"mvn ran but {tmp} holds no kafka_2.13-{KAFKA_VERSION}.jar")
        (tmp / POM_HASH_NAME).write_text(want + "\n", encoding="ascii")
        tmp.chmod(0o755)  # mkdtemp makes it private; the jars are not secret.
        old: Path | None = None
        if paths.libs.exists():
            old = home / f"{LIBS_OLD_PREFIX}{os.getpid()}"
            paths.libs.rename(old)
        tmp.rename(paths.libs)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------- storage and JVM


def _format_storage(java: str, paths: _Paths, log: Log, extra_args: list[str]) -> bool:
    """Format the log dir once; a formatted one keeps its cluster id and data.

    ``extra_args``: more ``format`` arguments (the secure profile's SCRAM users).
    Returns whether it formatted.
    """
    if (paths.data / "meta.properties").exists():
        return False
    cluster_id = _new_cluster_id()
    log(f"formatting {paths.data} (cluster id {cluster_id})")
    tool_args = [
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(paths.server_properties),
        # No --standalone: this config names its voter statically.
        "--ignore-formatted",
        *extra_args,
    ]
    # The SCRAM arguments hold salted passwords, as good as the passwords for a SCRAM
    # login: they go in a 0600 argument file, never on the command line (/proc, ps).
    # The main class is in it too: java expands @files only before the main class.
    argfile = paths.root / "format.args"
    kafkasecure.write_private(argfile, java_argfile(tool_args))
    cmd = [
        java,
        "-Xmx256M",  # kafka-storage.sh's heap; the tool needs little.
        *_log_flags(paths),
        "-cp",
        _classpath(paths),
        f"@{argfile}",
    ]
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,  # only quoted on failure, never parsed
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=FORMAT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise BrokerError(f"kafka StorageTool format took over {FORMAT_TIMEOUT_S:.0f} s") from err
    finally:
        argfile.unlink(missing_ok=True)
    if done.returncode != 0:
        raise BrokerError(
            f"kafka StorageTool format failed (exit {done.returncode}):\n"
            + _tail_text(done.stdout + done.stderr)
        )
    return True


def java_argfile(args: list[str]) -> str:
    """A java ``@argfile`` holding ``args``: each in single quotes, one per line (java
    keeps double quotes inside single quotes; kessai's arguments hold no single quote
    or backslash)."""
    for arg in args:
        assert "'" not in arg and "\\" not in arg and "\n" not in arg, arg
    return "".join(f"'{arg}'\n" for arg in args)


def _classpath(paths: _Paths) -> str:
    # The wildcard must reach java unexpanded (no shell here, so it does).
    return f"{paths.libs}/*"


def _log_flags(paths: _Paths) -> list[str]:
    return [
        f"-Dlog4j.configuration=file:{paths.log4j_properties}",
        f"-Dkafka.logs.dir={paths.logs}",
    ]


def _broker_command(java: str, paths: _Paths, heap: str) -> list[str]:
    # The JVM flags of Kafka's kafka-server-start.sh / kafka-run-class.sh.
    return [
        java,
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-server",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
        *_log_flags(paths),
        "-cp",
        _classpath(paths),
        "kafka.Kafka",
        str(paths.server_properties),
    ]


def _start(java: str, paths: _Paths, heap: str) -> subprocess.Popen[bytes]:
    paths.logs.mkdir(parents=True, exist_ok=True)
    with paths.stdout_file.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} kessai starts Kafka\n".encode())
        out.flush()
        # A session of its own: Ctrl-C in the terminal, or the end of a test run, must not
        # take the shared broker down. Only `down` stops it.
        proc = subprocess.Popen(
            _broker_command(java, paths, heap),
            cwd=paths.root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _write_atomic(paths.pid_file, f"{proc.pid}\n")
    return proc


def _wait_ready(
    bootstrap: str,
    deadline: float,
    timeout_s: float,
    *,
    alive: Callable[[], bool],
    logs: tuple[_Paths, dict[Path, int]] | None = None,
    auth: Mapping[str, Any],
) -> None:
    """Poll until ``bootstrap`` answers metadata; fail at once if the process died.

    ``logs``: our broker's paths and the log sizes before it started, for the error.
    """
    while True:
        if not alive():
            assert logs is not None
            raise BrokerError(f"Kafka exited while starting.\n{_log_tails(*logs)}")
        remaining_s = deadline - time.monotonic()
        if _answers_metadata(bootstrap, max(0.5, min(PROBE_TIMEOUT_S, remaining_s)), auth):
            return
        if time.monotonic() >= deadline:
            where = f"; it is left running, see {logs[0].log_file}" if logs else ""
            raise BrokerError(
                f"{bootstrap} did not answer metadata requests within {timeout_s:.0f} s{where}"
            )
        time.sleep(POLL_INTERVAL_S)


def _log_sizes(paths: _Paths) -> dict[Path, int]:
    sizes: dict[Path, int] = {}
    for path in (paths.stdout_file, paths.log_file):
        with contextlib.suppress(OSError):
            sizes[path] = path.stat().st_size
    return sizes


def _log_tails(paths: _Paths, since: dict[Path, int]) -> str:
    """The last lines each log gained after ``since`` (byte sizes; absent: from the start)."""
    parts = []
    for path in (paths.stdout_file, paths.log_file):
        with contextlib.suppress(OSError), path.open("rb") as handle:
            start = since.get(path, 0)
            # A smaller file than before was rolled over: all of it is new.
            handle.seek(start if start <= path.stat().st_size else 0)
            text = handle.read().decode("utf-8", errors="replace")
            if text.strip():
                parts.append(f"--- last lines of {path}:\n{_tail_text(text)}")
    return "\n".join(parts) or f"(no log output in {paths.logs})"


def _tail_text(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# ---------------------------------------------------------------------------- processes


def _read_pid(paths: _Paths) -> int | None:
    try:
        text = paths.pid_file.read_text(encoding="ascii").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _our_pid(paths: _Paths) -> int | None:
    """The pid in the pid file, if that process is alive and is our broker."""
    pid = _read_pid(paths)
    if pid is None or not _pid_alive(pid):
        return None
    cmdline = _cmdline(pid)
    # A recycled pid belongs to some other program: its command line gives it away.
    if cmdline is not None and (
        "kafka.Kafka" not in cmdline or str(paths.server_properties) not in cmdline
    ):
        return None
    return pid


def _cmdline(pid: int) -> str | None:
    """The process's command line (Linux /proc); None where we cannot tell."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _pid_alive(pid: int) -> bool:
    # A broker that died while the process that started it still runs (a pytest session)
    # stays a zombie until reaped; reap it, so it does not pass for alive.
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rpartition(")")[2].split()[0] == "Z":
            return False
    return True


def _stop(paths: _Paths, timeout_s: float) -> bool:
    pid = _our_pid(paths)
    if pid is None:
        paths.pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_exit(pid, timeout_s):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_exit(pid, KILL_WAIT_S):
            raise BrokerError(f"Kafka (pid {pid}) survived SIGKILL for {KILL_WAIT_S:.0f} s")
    paths.pid_file.unlink(missing_ok=True)
    return True


def _wait_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True


@contextlib.contextmanager
def _locked(paths: _Paths) -> Iterator[None]:
    """One `up`/`down`/`reset` at a time per state dir (parallel test workers, two shells)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    # Python opens files non-inheritable, so the broker never holds this lock.
    with paths.lock_file.open("a") as handle:
        deadline = time.monotonic() + LOCK_WAIT_S_MAX
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BrokerError(
                        f"another kessai process holds {paths.lock_file} "
                        f"for over {LOCK_WAIT_S_MAX:.0f} s"
                    ) from None
                time.sleep(POLL_INTERVAL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------- probing


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=TCP_CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


def _answers_metadata(bootstrap: str, timeout_s: float, auth: Mapping[str, Any]) -> bool:
    """``auth``: :func:`streams.kafka.auth.client_kwargs` of whom the probe connects as."""
    # A plain connect first: while nothing listens it fails at once, and aiokafka is
    # spared logging an error per poll.
    if not any(_tcp_open(host, port) for host, port in _split_hosts(bootstrap)):
        return False
    return run_sync(_metadata_brokers(bootstrap, timeout_s, auth)) > 0


async def _metadata_brokers(bootstrap: str, timeout_s: float, auth: Mapping[str, Any]) -> int:
    """How many brokers the cluster's metadata lists; 0 when it does not answer in time."""
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        client_id="kessai-localkafka",
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
        **auth,
    )
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
            # Also reaches the broker through its advertised listener, as real clients do.
            cluster = await client.fetch_all_metadata()
        return len(cluster.brokers())
    except (KafkaError, OSError, TimeoutError):
        return 0
    finally:
        await client.close()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from inside a running loop (an async test or a faust app)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


# -------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """``python -m streams.devtools.localkafka up|down|status|reset``."""
    parser = argparse.ArgumentParser(
        prog="python -m streams.devtools.localkafka", description=__doc__
    )
    parser.add_argument("command", choices=["up", "down", "status", "reset"])
    parser.add_argument("--timeout-s", type=float, default=None)
    parser.add_argument("--secure", action="store_true", help="the secure profile")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.secure:
        settings = secure_profile(settings)
    try:
        if args.command == "up":
            print(up(settings, timeout_s=args.timeout_s or 120.0).message)
        elif args.command == "down":
            stopped = down(settings, timeout_s=args.timeout_s or 60.0)
            print("stopped" if stopped else "nothing to stop")
        elif args.command == "reset":
            reset(settings, timeout_s=args.timeout_s or 60.0)
            print(f"stopped and deleted {_Paths.of(settings).data}")
        else:
            current = status(settings)
            print(current.message)
            return 0 if current.running else 1
    except LocalKafkaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
