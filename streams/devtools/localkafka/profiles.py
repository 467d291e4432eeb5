"""The two profiles, and what the secure one adds around the broker's start.

Settings name a profile through ``kafka_security``: ``plaintext``, the open dev broker,
or ``sasl_ssl``, the secure one (:func:`secure_profile`). This module is the secure
profile's orchestration; its files themselves (certificates, passwords, env files)
come from :mod:`streams.devtools.localkafka.secure`:

- :func:`prepare_secure`: before the start, the certificates, passwords and client
  files, and the SCRAM users for the StorageTool;
- :func:`install_acls`: once the broker answers, the ACL table, as the admin;
- :func:`auth`: whom the readiness probe connects as;
- :func:`principal_settings`, :func:`env_file`: how a client connects as a principal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

from streams.config import Settings
from streams.devtools.localkafka import jvm, probes, storage
from streams.devtools.localkafka import secure as kafkasecure
from streams.devtools.localkafka.errors import BrokerError, Log, tail_text
from streams.devtools.localkafka.jars import kafka_version, log4j2
from streams.devtools.localkafka.layout import Paths, is_secure, write_atomic
from streams.devtools.localkafka.limits import ACL_TIMEOUT_S
from streams.devtools.localkafka.probes import LISTEN_HOST
from streams.kafka.auth import client_kwargs
from streams.security import acl

#: Kafka's ACL tool's main class: moved into kafka-tools in 4.x (by log4j2(version)).
ACL_COMMAND = {False: "kafka.admin.AclCommand", True: "org.apache.kafka.tools.AclCommand"}

__all__ = [
    "auth",
    "env_file",
    "install_acls",
    "prepare_secure",
    "principal_settings",
    "secure_profile",
]


def secure_profile(settings: Settings) -> Settings:
    """The settings of the secure profile's broker (``kessai kafka up --secure``).

    Settings already for ``sasl_ssl`` are kept (their KESSAI_BOOTSTRAP names the
    secure broker, as the profile's env files set it); plaintext ones name the dev
    broker, so the secure one goes to its own default port.
    """
    if is_secure(settings):
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
    return Paths.of(secure_profile(settings)).secure_files.env(principal)


def principal_settings(settings: Settings, principal: str) -> Settings:
    """*settings* connecting to the local secure broker as *principal* (one of
    :data:`streams.security.acl.PRINCIPALS`), with the password and CA it made."""
    if principal not in acl.PRINCIPALS:
        raise ValueError(f"no principal {principal!r}; want one of {acl.PRINCIPALS}")
    files = Paths.of(secure_profile(settings)).secure_files
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


def auth(settings: Settings, paths: Paths) -> dict[str, Any]:
    """How the readiness probe connects: plaintext, or as the secure profile's admin.

    A cluster kessai does not run (KESSAI_BOOTSTRAP elsewhere) is asked as the user
    the settings name; the local secure broker as its admin, once the admin exists.
    """
    if not paths.secure:
        return {}
    files = paths.secure_files
    if probes.is_local(settings.bootstrap) and files.credentials(acl.ADMIN).exists():
        return client_kwargs(principal_settings(settings, acl.ADMIN))
    return client_kwargs(settings)


def prepare_secure(paths: Paths, settings: Settings, log: Log) -> list[str]:
    """Certificates, passwords and client files of the secure profile; the StorageTool
    arguments that create its SCRAM users (used only when the storage is formatted)."""
    files = paths.secure_files
    formatted = storage.is_formatted(paths)
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
    if kafkasecure.ensure_web_token(files):
        log(f"made the workers' web token {files.web_token}")
    kafkasecure.write_client_files(files, settings.bootstrap, settings.state_dir)
    kafkasecure.write_private(
        files.admin_client_properties,
        kafkasecure.admin_client_properties(files, passwords[acl.ADMIN]),
    )
    return [] if formatted else kafkasecure.scram_format_args(passwords)


def install_acls(paths: Paths, settings: Settings, log: Log) -> None:
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
    java = jvm.require_java()
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
            [*jvm.tool_java(java, paths), ACL_COMMAND[log4j2(kafka_version())], *connection, *args],
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
                failed.append(f"{' '.join(args)} (exit {proc.returncode}):\n{tail_text(out)}")
    except subprocess.TimeoutExpired as err:
        raise BrokerError(f"AclCommand did not finish within {ACL_TIMEOUT_S:.0f} s") from err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if failed:
        raise BrokerError("installing the ACLs failed: " + "\n".join(failed))
    write_atomic(files.acls_digest, digest + "\n")
