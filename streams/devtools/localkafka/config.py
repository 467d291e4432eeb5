"""The broker's configuration files, rendered from settings.

- :func:`render_server_properties`: ``server.properties`` of the one-node KRaft broker,
  the open dev profile's or the secure profile's (SASL_SSL listeners, ACLs), on top of
  :func:`base_properties`, the lines every one-node kessai broker shares (deploy/compose.yaml's
  too, through :mod:`streams.devtools.localkafka.compose`);
- :func:`render_log4j_properties`, :func:`render_tools_log4j_properties`: where the
  broker and the Kafka tools log;
- :func:`write_config`: all of them into a profile's folder, on every start.

The renderers are pure: settings in, text out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from streams.config import Settings
from streams.devtools.localkafka import secure as kafkasecure
from streams.devtools.localkafka.jars import kafka_version, log4j2
from streams.devtools.localkafka.layout import Paths, write_atomic
from streams.devtools.localkafka.probes import LISTEN_HOST, ports
from streams.security import acl

__all__ = [
    "NODE_ID",
    "base_properties",
    "render_log4j_properties",
    "render_server_properties",
    "render_tools_log4j_properties",
    "write_config",
]

#: The one node, broker and controller at once.
NODE_ID = 1


def render_server_properties(
    settings: Settings, data_dir: Path, *, secure: tuple[kafkasecure.SecureFiles, str] | None = None
) -> str:
    """The broker's configuration; ``secure``: the secure profile's files and admin
    password (SASL_SSL listeners, ACLs)."""
    port, controller_port = ports(settings.bootstrap)
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


def base_properties(partitions: int, replication: int = 1) -> list[str]:
    """The lines of ``server.properties`` that every kessai broker shares (localkafka's,
    both profiles, deploy/compose.yaml's through localkafka/compose.py, and each broker
    of a local cluster, :mod:`streams.devtools.localkafka.cluster`).

    ``replication``: the cluster's replication factor for every topic, internal ones
    included; from 3 on, a write needs two in-sync replicas (``min.insync.replicas``
    2), so that one broker lost loses nothing acknowledged."""
    assert replication >= 1, replication
    min_isr = 2 if replication >= 3 else 1
    return [
        "# Kafka's defaults assume three brokers; on one they make groups and transactions",
        "# fail. Internal topics take these values when first created, so they must be",
        "# right before the first start.",
        f"offsets.topic.replication.factor={replication}",
        f"transaction.state.log.replication.factor={replication}",
        f"transaction.state.log.min.isr={min_isr}",
        f"default.replication.factor={replication}",
        f"min.insync.replicas={min_isr}",
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


#: The loggers Kafka's shipped config quiets or raises, and to what.
_LOGGER_LEVELS: Final = (
    # One line per request is far too chatty.
    ("kafka.request.logger", "WARN"),
    ("kafka.network.RequestChannel$", "WARN"),
    # Kafka ships these at TRACE into their own files; INFO is enough here.
    ("kafka.controller", "INFO"),
    ("org.apache.kafka.controller", "INFO"),
    ("state.change.logger", "INFO"),
)
_PATTERN: Final = "[%d] %p %m (%c)%n"
_HEAD: Final = "# Written by `kessai kafka up` on every start: edits here are overwritten."


def render_log4j_properties() -> str:
    """The broker's logging: one file for everything (``logs/server.log``, rolled at
    20 MB, 5 kept), so that a failed start is explained by the tail of one log; nothing
    on stdout, which goes to kafka.out. reload4j's format for Kafka 3.x, log4j 2's for
    4.x (:func:`~streams.devtools.localkafka.jars.log4j2`)."""
    if log4j2(kafka_version()):
        return "\n".join(
            [
                _HEAD,
                "status = warn",
                "appender.file.type = RollingFile",
                "appender.file.name = file",
                "appender.file.fileName = ${sys:kafka.logs.dir}/server.log",
                "appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i",
                "appender.file.layout.type = PatternLayout",
                f"appender.file.layout.pattern = {_PATTERN}",
                "appender.file.policies.type = Policies",
                "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
                "appender.file.policies.size.size = 20MB",
                "appender.file.strategy.type = DefaultRolloverStrategy",
                "appender.file.strategy.max = 5",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.file.ref = file",
                *(
                    line
                    for i, (name, level) in enumerate(_LOGGER_LEVELS)
                    for line in (f"logger.l{i}.name = {name}", f"logger.l{i}.level = {level}")
                ),
                "",
            ]
        )
    return "\n".join(
        [
            _HEAD,
            "log4j.rootLogger=INFO, file",
            "log4j.appender.file=org.apache.log4j.RollingFileAppender",
            "log4j.appender.file.File=${kafka.logs.dir}/server.log",
            "log4j.appender.file.Append=true",
            "log4j.appender.file.MaxFileSize=20MB",
            "log4j.appender.file.MaxBackupIndex=5",
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout",
            f"log4j.appender.file.layout.ConversionPattern={_PATTERN}",
            *(f"log4j.logger.{name}={level}" for name, level in _LOGGER_LEVELS),
            "",
        ]
    )


def render_tools_log4j_properties() -> str:
    """Kafka's tools (AclCommand): warnings and errors on stderr, which kessai captures."""
    if log4j2(kafka_version()):
        return "\n".join(
            [
                _HEAD,
                "status = warn",
                "appender.stderr.type = Console",
                "appender.stderr.name = stderr",
                "appender.stderr.target = SYSTEM_ERR",
                "appender.stderr.layout.type = PatternLayout",
                f"appender.stderr.layout.pattern = {_PATTERN}",
                "rootLogger.level = WARN",
                "rootLogger.appenderRef.stderr.ref = stderr",
                "",
            ]
        )
    return "\n".join(
        [
            _HEAD,
            "log4j.rootLogger=WARN, stderr",
            "log4j.appender.stderr=org.apache.log4j.ConsoleAppender",
            "log4j.appender.stderr.Target=System.err",
            "log4j.appender.stderr.layout=org.apache.log4j.PatternLayout",
            f"log4j.appender.stderr.layout.ConversionPattern={_PATTERN}",
            "",
        ]
    )


def write_config(paths: Paths, settings: Settings) -> None:
    """The profile's configuration files, and its data and log folders."""
    for folder in (paths.root, paths.data, paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    if paths.secure:
        files = paths.secure_files
        password = kafkasecure.ensure_credentials(files)[acl.ADMIN]
        # It holds the admin's password (the broker's own JAAS login): owner only.
        kafkasecure.write_private(
            paths.server_properties,
            render_server_properties(settings, paths.data, secure=(files, password)),
        )
        write_atomic(paths.tools_log4j_properties, render_tools_log4j_properties())
    else:
        write_atomic(paths.server_properties, render_server_properties(settings, paths.data))
    write_atomic(paths.log4j_properties, render_log4j_properties())
