"""The broker's lifecycle, as the rest of kessai calls it: :func:`up`, :func:`down`,
:func:`status`, :func:`reset`, :func:`up_private`, and the :class:`Status` they report.

This is where the other modules' steps are put in order. :func:`up`, :func:`down` and
:func:`reset` hold the profile folder's lock
(:func:`streams.devtools.localkafka.process.locked`); :func:`up` adopts our broker if
it runs, uses another program's if one answers on the port, else fetches the jars,
writes the configuration, formats the storage, starts the JVM, waits until it answers
and installs the secure profile's ACLs.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streams.config import Settings
from streams.devtools.localkafka import config, jars, jvm, probes, process, profiles, storage
from streams.devtools.localkafka.errors import BrokerError, Log
from streams.devtools.localkafka.jars import kafka_version
from streams.devtools.localkafka.layout import Paths
from streams.devtools.localkafka.limits import PROBE_TIMEOUT_S
from streams.devtools.localkafka.probes import LISTEN_HOST
from streams.devtools.processes import free_port
from streams.security import acl

__all__ = ["Status", "down", "reset", "status", "up", "up_private"]


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


# ----------------------------------------------------------------------------------- up


@dataclass(frozen=True)
class _Wait:
    """When `up` gives up: one deadline for all its waits, and the timeout it came
    from (quoted in the error)."""

    deadline: float
    timeout_s: float


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
    wait = _Wait(time.monotonic() + timeout_s, timeout_s)
    paths = Paths.of(settings)
    if not probes.is_local(settings.bootstrap):
        log(f"KESSAI_BOOTSTRAP={settings.bootstrap} is not local: starting nothing, waiting")
        process.wait_ready(
            settings.bootstrap,
            wait.deadline,
            wait.timeout_s,
            alive=lambda: True,
            auth=profiles.auth(settings, paths),
        )
        return _external_status(settings, paths, running=True)

    with process.locked(paths):
        pid = process.our_pid(paths)
        if pid is not None:
            return _adopt(settings, paths, pid, wait, log)
        if _port_has_a_foreign_broker(settings, paths):
            return _foreign_status(settings, paths)
        return _start_fresh(settings, paths, wait, log)


def _adopt(settings: Settings, paths: Paths, pid: int, wait: _Wait, log: Log) -> Status:
    """Our broker's process is alive: use it once it answers."""
    if probes.answers_metadata(settings.bootstrap, PROBE_TIMEOUT_S, profiles.auth(settings, paths)):
        if paths.secure:  # an earlier `up` may have stopped before the ACLs
            profiles.install_acls(paths, settings, log)
        return _managed_status(settings, paths, pid, "already running")
    # Alive but silent: still starting (an interrupted `up`), or recovering logs
    # after a crash. Give it the same time a fresh start gets.
    log(f"Kafka (pid {pid}) is alive but not answering yet; waiting")
    _until_ready(settings, paths, wait, log, alive=lambda: process.pid_alive(pid), since={})
    return _managed_status(settings, paths, pid, "was starting; now answers")


def _port_has_a_foreign_broker(settings: Settings, paths: Paths) -> bool:
    """Whether another program's broker answers on our port; raises
    :class:`BrokerError` when something else holds the port or the controller's."""
    port, controller_port = probes.ports(settings.bootstrap)
    if probes.tcp_open(LISTEN_HOST, port):
        # Someone else's broker (docker compose, another checkout): use it, never fight
        # it for the port.
        if probes.answers_metadata(
            settings.bootstrap, PROBE_TIMEOUT_S, profiles.auth(settings, paths)
        ):
            return True
        raise BrokerError(
            f"port {port} on {LISTEN_HOST} is taken by a program that is not a Kafka "
            f"broker; free it or set KESSAI_BOOTSTRAP to another port"
        )
    if probes.tcp_open(LISTEN_HOST, controller_port):
        raise BrokerError(
            f"controller port {controller_port} (broker port + 1) on {LISTEN_HOST} is "
            f"taken; free it or set KESSAI_BOOTSTRAP to another port"
        )
    return False


def _start_fresh(settings: Settings, paths: Paths, wait: _Wait, log: Log) -> Status:
    """No broker of ours runs and the ports are free: prepare the folder, start the JVM."""
    java = jvm.require_java()
    heap = jvm.heap(os.environ)
    started_s = time.monotonic()
    _prepare(java, settings, paths, log)
    # Where the logs end now: a failure quotes only what this start wrote.
    log_sizes = process.log_sizes(paths)
    proc = process.start(java, paths, heap)
    log(f"Kafka {kafka_version()} starting (pid {proc.pid}, heap {heap}); log {paths.log_file}")
    _until_ready(settings, paths, wait, log, alive=lambda: proc.poll() is None, since=log_sizes)
    took_s = time.monotonic() - started_s
    return _managed_status(settings, paths, proc.pid, f"started in {took_s:.1f} s")


def _prepare(java: str, settings: Settings, paths: Paths, log: Log) -> None:
    """Jars, the secure profile's files, the configuration, and the storage formatted."""
    if paths.secure:
        # The jars are the dev profile's: fetched under its lock, never twice at once.
        with process.locked(Paths(paths.libs_home)):
            jars.ensure_jars(paths, log)
    else:
        jars.ensure_jars(paths, log)
    scram_args = profiles.prepare_secure(paths, settings, log) if paths.secure else []
    config.write_config(paths, settings)
    if storage.format_storage(java, paths, log, scram_args):
        # A fresh metadata log holds no ACLs, whatever was installed before.
        paths.secure_files.acls_digest.unlink(missing_ok=True)


def _until_ready(
    settings: Settings,
    paths: Paths,
    wait: _Wait,
    log: Log,
    *,
    alive: Callable[[], bool],
    since: dict[Path, int],
) -> None:
    """Wait until our broker answers, then install the secure profile's ACLs.

    ``alive``: whether its process still runs; ``since``: the log sizes before it
    started. A broker that died leaves no pid file behind.
    """
    try:
        process.wait_ready(
            settings.bootstrap,
            wait.deadline,
            wait.timeout_s,
            alive=alive,
            logs=(paths, since),
            auth=profiles.auth(settings, paths),
        )
        if paths.secure:
            profiles.install_acls(paths, settings, log)
    except BrokerError:
        if not alive():
            paths.pid_file.unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------- the other commands


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
    return profiles.principal_settings(settings, acl.ADMIN) if secure else settings


def down(settings: Settings, *, timeout_s: float = 60.0) -> bool:
    """Stop the broker kessai started: SIGTERM (controlled shutdown), then SIGKILL.

    Returns whether a running broker was stopped. Safe to call when none runs.
    """
    assert timeout_s > 0, timeout_s
    paths = Paths.of(settings)
    if not paths.root.is_dir():
        return False
    with process.locked(paths):
        return process.stop(paths, timeout_s)


def status(settings: Settings) -> Status:
    """Whether a broker runs for ``settings``, its pid, and where its data and log are."""
    paths = Paths.of(settings)
    auth = profiles.auth(settings, paths)
    if not probes.is_local(settings.bootstrap):
        return _external_status(
            settings,
            paths,
            running=probes.answers_metadata(settings.bootstrap, PROBE_TIMEOUT_S, auth),
        )
    pid = process.our_pid(paths)
    answers = probes.answers_metadata(settings.bootstrap, PROBE_TIMEOUT_S, auth)
    if pid is not None:
        if answers:
            return _managed_status(settings, paths, pid, "running")
        return _status(
            settings,
            paths,
            running=False,
            pid=pid,
            managed=True,
            message=(
                f"Kafka process {pid} is alive but does not answer on {settings.bootstrap} "
                f"(starting, or stuck: see {paths.log_file})"
            ),
        )
    if answers:
        return _foreign_status(settings, paths)
    return _status(
        settings,
        paths,
        running=False,
        pid=None,
        managed=True,
        message=(
            f"not running (start it with `kessai kafka up{' --secure' if paths.secure else ''}`);"
            f" data {paths.data}"
        ),
    )


def reset(settings: Settings, *, timeout_s: float = 60.0) -> None:
    """Stop the broker and delete its data for a clean slate; the jars stay."""
    paths = Paths.of(settings)
    if not paths.root.is_dir():
        return
    with process.locked(paths):
        process.stop(paths, timeout_s)
        if paths.data.exists():
            shutil.rmtree(paths.data)
        if paths.secure:
            paths.secure_files.acls_digest.unlink(missing_ok=True)


# ---------------------------------------------------------------------- status helpers


def _status(
    settings: Settings, paths: Paths, *, running: bool, pid: int | None, managed: bool, message: str
) -> Status:
    return Status(
        running=running,
        pid=pid,
        bootstrap=settings.bootstrap,
        state_dir=settings.state_dir,
        log_file=paths.log_file,
        managed=managed,
        message=message,
        data_dir=paths.data,
    )


def _managed_status(settings: Settings, paths: Paths, pid: int, what: str) -> Status:
    return _status(
        settings,
        paths,
        running=True,
        pid=pid,
        managed=True,
        message=(
            f"Kafka {kafka_version()} {what} (pid {pid}) on {settings.bootstrap}; "
            f"data {paths.data}; log {paths.log_file}"
        ),
    )


def _foreign_status(settings: Settings, paths: Paths) -> Status:
    return _status(
        settings,
        paths,
        running=True,
        pid=None,
        managed=False,
        message=(
            f"a broker kessai did not start answers on {settings.bootstrap}; using it "
            f"(kessai will not stop it)"
        ),
    )


def _external_status(settings: Settings, paths: Paths, *, running: bool) -> Status:
    answers = "answers" if running else "does not answer"
    message = f"KESSAI_BOOTSTRAP={settings.bootstrap} {answers}; kessai starts nothing for it"
    pid = process.our_pid(paths)
    if pid is not None:
        message += f" (a kessai-started local broker, pid {pid}, also runs: `down` stops it)"
    return _status(settings, paths, running=running, pid=None, managed=False, message=message)
