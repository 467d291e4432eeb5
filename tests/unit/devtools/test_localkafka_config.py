"""streams.devtools.localkafka without a broker: config rendering, ids, ports, tool checks, jars."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from streams import topics
from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.localkafka import config, jars, jvm, probes, process, storage
from streams.devtools.localkafka import secure as kafkasecure
from streams.devtools.localkafka.layout import Paths
from streams.security import acl
from streams.topics import CATALOGUE
from tests.support import paths


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


# ---------------------------------------------------------------- server.properties


def test_server_properties_single_node_kraft_with_transactions(tmp_path: Path) -> None:
    settings = Settings(bootstrap="127.0.0.1:9092", partitions=6, state_dir=tmp_path)
    props = _props(config.render_server_properties(settings, tmp_path / "data"))

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path / "data")
    # Kafka's defaults (3, 3, 2) make groups and transactions fail on one broker.
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "6"
    assert int(props["transaction.abort.timed.out.transaction.cleanup.interval.ms"]) <= 1000
    assert int(props["log.segment.bytes"]) <= 64 * 1024 * 1024


def test_server_properties_follow_the_bootstrap_port(tmp_path: Path) -> None:
    settings = Settings(bootstrap="localhost:19092", state_dir=tmp_path)
    props = _props(config.render_server_properties(settings, tmp_path))

    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"


def test_server_properties_have_no_duplicate_keys(tmp_path: Path) -> None:
    text = config.render_server_properties(Settings(state_dir=tmp_path), tmp_path)
    keys = [line.split("=", 1)[0] for line in text.splitlines() if line and line[0] != "#"]
    assert len(keys) == len(set(keys))


def test_log4j_logs_to_one_file_and_not_to_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KESSAI_KAFKA_VERSION", "3.9.2")
    props = _props(config.render_log4j_properties())

    assert props["log4j.rootLogger"] == "INFO, file"
    assert props["log4j.appender.file.File"] == "${kafka.logs.dir}/server.log"
    assert props["log4j.logger.kafka.request.logger"] == "WARN"
    assert not any("ConsoleAppender" in value for value in props.values())


def test_kafka_4_logs_through_log4j2_to_the_same_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """4.x reads log4j 2's flag and format; reload4j's would be ignored, silently."""
    monkeypatch.setenv("KESSAI_KAFKA_VERSION", "4.1.1")
    props = {k.strip(): v.strip() for k, v in _props(config.render_log4j_properties()).items()}

    assert props["rootLogger.level"] == "INFO"
    assert props["appender.file.fileName"] == "${sys:kafka.logs.dir}/server.log"
    levels = {
        props[k]: props[k.replace(".name", ".level")]
        for k in props
        if k.startswith("logger.") and k.endswith(".name")
    }
    assert levels["kafka.request.logger"] == "WARN"
    assert not any(k.startswith("log4j.") for k in props)
    tools = _props(config.render_tools_log4j_properties())
    assert tools["appender.stderr.target "] == " SYSTEM_ERR"
    paths = Paths(tmp_path / "kafka")
    cmd = jvm.broker_command("/usr/bin/java", paths, "512M")
    assert f"-Dlog4j2.configurationFile={paths.log4j_properties}" in cmd
    assert not any(a.startswith("-Dlog4j.configuration=") for a in cmd)
    assert f"-Dlog4j2.configurationFile={paths.tools_log4j_properties}" in jvm.tool_java(
        "/usr/bin/java", paths
    )


def test_the_kafka_version_is_a_setting_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KESSAI_KAFKA_VERSION", raising=False)
    assert jars.kafka_version() == localkafka.KAFKA_VERSION
    monkeypatch.setenv("KESSAI_KAFKA_VERSION", "4.4.0")
    assert jars.kafka_version() == "4.4.0" and jars.log4j2("4.4.0")
    assert not jars.log4j2("3.9.2")
    for bad in ("latest", "4.1", "2.8.1", "4.1.1; rm -rf /"):
        monkeypatch.setenv("KESSAI_KAFKA_VERSION", bad)
        with pytest.raises(localkafka.BrokerError, match="KESSAI_KAFKA_VERSION"):
            jars.kafka_version()


def test_another_kafka_version_fetches_its_jars_with_its_logging(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    paths = Paths(tmp_path)
    calls: list[list[str]] = []
    _fake_mvn(monkeypatch, returncode=0, calls=calls)
    monkeypatch.setenv("KESSAI_KAFKA_VERSION", "3.9.2")
    jars.ensure_jars(paths, log=lambda line: None)
    monkeypatch.setenv("KESSAI_KAFKA_VERSION", "4.1.1")
    jars.ensure_jars(paths, log=lambda line: None)
    jars.ensure_jars(paths, log=lambda line: None)  # the same version: nothing to fetch

    assert len(calls) == 2
    assert "-Dkafka.version=3.9.2" in calls[0] and "-Dkessai.logging=reload4j" in calls[0]
    assert "-Dkafka.version=4.1.1" in calls[1] and "-Dkessai.logging=log4j2" in calls[1]
    assert (paths.libs / "kafka_2.13-4.1.1.jar").exists()


def test_broker_command_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KESSAI_KAFKA_VERSION", "3.9.2")
    paths = Paths(tmp_path / "kafka")
    cmd = jvm.broker_command("/usr/bin/java", paths, "512M")

    assert cmd[0] == "/usr/bin/java"
    assert "-Xmx512M" in cmd and "-Xms512M" in cmd
    assert "-XX:+UseG1GC" in cmd and "-Djava.awt.headless=true" in cmd
    assert f"-Dlog4j.configuration=file:{paths.log4j_properties}" in cmd
    assert f"-Dkafka.logs.dir={paths.logs}" in cmd
    # One argument, wildcard intact: java expands it, not a shell.
    assert cmd[cmd.index("-cp") + 1] == f"{paths.libs}/*"
    assert cmd[-2:] == ["kafka.Kafka", str(paths.server_properties)]


@pytest.mark.parametrize("heap", ["1G", "512M", "768m", "2097152k"])
def test_heap_accepts_jvm_sizes(heap: str) -> None:
    assert jvm.heap({"KESSAI_KAFKA_HEAP": heap}) == heap


def test_heap_defaults_to_1g() -> None:
    assert jvm.heap({}) == "1G"


@pytest.mark.parametrize("heap", ["", "lots", "1 G", "-1G", "0", "1G -XX:+Evil"])
def test_heap_rejects_other_text(heap: str) -> None:
    with pytest.raises(localkafka.LocalKafkaError, match="KESSAI_KAFKA_HEAP"):
        jvm.heap({"KESSAI_KAFKA_HEAP": heap})


# ---------------------------------------------------------------------- cluster id


def test_cluster_id_is_22_chars_of_urlsafe_base64_of_16_bytes() -> None:
    ids = {storage.new_cluster_id() for _ in range(500)}

    assert len(ids) == 500
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id), cluster_id
        assert not cluster_id.startswith("-")  # it would read as a flag
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


# --------------------------------------------------------------------------- ports


@pytest.mark.parametrize(
    ("bootstrap", "ports"),
    [
        ("127.0.0.1:9092", (9092, 9093)),
        ("localhost:19092", (19092, 19093)),
        ("localhost", (9092, 9093)),
        (" 127.0.0.1:29092 ", (29092, 29093)),
    ],
)
def test_ports_derive_controller_as_broker_plus_one(bootstrap: str, ports: tuple[int, int]) -> None:
    assert probes.ports(bootstrap) == ports


def test_ports_leave_room_for_the_controller() -> None:
    with pytest.raises(ValueError, match="controller"):
        probes.ports("127.0.0.1:65535")


@pytest.mark.parametrize("bootstrap", ["", ",", "127.0.0.1:", "127.0.0.1:x", ":9092", "h:70000"])
def test_bad_bootstrap_is_rejected(bootstrap: str) -> None:
    with pytest.raises(ValueError, match="KESSAI_BOOTSTRAP"):
        probes.split_hosts(bootstrap)


@pytest.mark.parametrize(
    ("bootstrap", "local"),
    [
        ("127.0.0.1:9092", True),
        ("localhost:29092", True),
        ("kafka.internal:9092", False),
        ("10.0.0.5:9092", False),
        ("127.0.0.1:9092,127.0.0.1:9094", False),
    ],
)
def test_only_one_loopback_address_is_ours_to_run(bootstrap: str, local: bool) -> None:
    assert probes.is_local(bootstrap) is local


# ---------------------------------------------------------------------- java, mvn


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('java version "1.8.0_292"', 8),
        ('openjdk version "21-ea" 2023-09-19', 21),
        ('openjdk version "11.0.2" 2019-01-15', 11),
        ("something else", None),
    ],
)
def test_java_major(output: str, major: int | None) -> None:
    assert jvm.java_major(output) == major


def test_missing_java_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(localkafka.MissingToolError) as caught:
        jvm.require_java({})
    assert "Java 17+" in str(caught.value)
    assert "apt-get install openjdk-17-jre-headless" in str(caught.value)


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/opt/old/bin/java")
    monkeypatch.setattr(
        jvm, "java_version_output", lambda java: 'openjdk version "11.0.2" 2019-01-15'
    )

    with pytest.raises(localkafka.MissingToolError, match=r"Java 11.*Java 17\+"):
        jvm.require_java({})


def test_java_home_wins_over_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    java = tmp_path / "bin" / "java"
    java.parent.mkdir()
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/java")
    monkeypatch.setattr(jvm, "java_version_output", lambda java: 'version "17.0.1"')

    assert jvm.require_java({"JAVA_HOME": str(tmp_path)}) == str(java)


def test_missing_mvn_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(
        localkafka.MissingToolError, match=r"Apache Maven \(apt-get install maven\)"
    ):
        jars.require_mvn()


# --------------------------------------------------------------------------- jars


def _fake_mvn(monkeypatch: pytest.MonkeyPatch, *, returncode: int, calls: list[list[str]]) -> None:
    """mvn that drops a Kafka jar into -DoutputDirectory, then exits with ``returncode``."""

    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        out = Path(next(a for a in cmd if a.startswith("-DoutputDirectory=")).split("=", 1)[1])
        (out / f"kafka_2.13-{jars.kafka_version()}.jar").write_bytes(b"jar")
        return subprocess.CompletedProcess(cmd, returncode, "[ERROR] no network", "")

    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(subprocess, "run", run)


def test_jars_are_fetched_once_per_pom(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    calls: list[list[str]] = []
    _fake_mvn(monkeypatch, returncode=0, calls=calls)

    jars.ensure_jars(paths, log=lambda line: None)
    jars.ensure_jars(paths, log=lambda line: None)

    assert len(calls) == 1
    assert "dependency:copy-dependencies" in calls[0]
    assert "-DincludeScope=runtime" in calls[0]
    assert (paths.libs / f"kafka_2.13-{jars.kafka_version()}.jar").exists()
    assert paths.pom_hash.read_text().strip() == jars.pom_digest()
    # No temp folder left; beside libs/, only the pom Maven ran on.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["libs", "pom.xml"]


def test_mvn_runs_on_a_copy_of_the_pom_beside_the_jars(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The packaged pom may sit in a read-only site-packages: Maven must not write there."""
    paths = Paths(tmp_path / "kafka")
    calls: list[list[str]] = []
    _fake_mvn(monkeypatch, returncode=0, calls=calls)

    jars.ensure_jars(paths, log=lambda line: None)

    [cmd] = calls
    pom = Path(cmd[cmd.index("-f") + 1])
    assert pom == paths.pom == tmp_path / "kafka" / "pom.xml"
    assert pom.read_bytes() == jars.POM_PATH.read_bytes()
    assert str(jars.POM_PATH) not in cmd


def test_an_edited_pom_is_fetched_again_from_its_new_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    packaged = tmp_path / "site-packages" / "pom.xml"
    packaged.parent.mkdir()
    packaged.write_text("<project>one</project>\n")
    monkeypatch.setattr(jars, "POM_PATH", packaged)
    paths = Paths(tmp_path / "kafka")
    calls: list[list[str]] = []
    _fake_mvn(monkeypatch, returncode=0, calls=calls)

    jars.ensure_jars(paths, log=lambda line: None)
    jars.ensure_jars(paths, log=lambda line: None)  # the same pom: nothing to fetch
    packaged.write_text("<project>two</project>\n")
    jars.ensure_jars(paths, log=lambda line: None)

    assert len(calls) == 2
    assert paths.pom.read_text() == "<project>two</project>\n"
    two = hashlib.sha256(b"<project>two</project>\n" + jars.kafka_version().encode()).hexdigest()
    assert paths.pom_hash.read_text().strip() == two == jars.pom_digest()
    assert [p.name for p in packaged.parent.iterdir()] == ["pom.xml"]  # nothing beside it


def test_a_changed_pom_fetches_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    paths.libs.mkdir()
    (paths.libs / "stale-1.0.jar").write_bytes(b"old")
    paths.pom_hash.write_text("0" * 64)
    calls: list[list[str]] = []
    _fake_mvn(monkeypatch, returncode=0, calls=calls)

    jars.ensure_jars(paths, log=lambda line: None)

    assert len(calls) == 1
    assert not (paths.libs / "stale-1.0.jar").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["libs", "pom.xml"]


def test_a_failed_fetch_leaves_no_half_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    paths = Paths(tmp_path)
    _fake_mvn(monkeypatch, returncode=1, calls=[])

    with pytest.raises(localkafka.BrokerError, match="no network"):
        jars.ensure_jars(paths, log=lambda line: None)

    # Neither libs/ nor a temp folder: only the pom Maven ran on.
    assert [p.name for p in tmp_path.iterdir()] == ["pom.xml"]


def test_missing_mvn_is_reported_only_when_jars_are_needed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    paths = Paths(tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(localkafka.MissingToolError, match="mvn not found"):
        jars.ensure_jars(paths, log=lambda line: None)

    paths.libs.mkdir()
    paths.pom_hash.write_text(jars.pom_digest() + "\n")
    jars.ensure_jars(paths, log=lambda line: None)  # current jars: no mvn needed


# ------------------------------------------------------------------ state, no broker


def test_nothing_runs_in_a_fresh_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(probes, "answers_metadata", lambda bootstrap, timeout_s, auth: False)
    settings = Settings(bootstrap="127.0.0.1:9092", state_dir=tmp_path)

    current = localkafka.status(settings)

    assert (current.running, current.pid, current.managed) == (False, None, True)
    assert current.log_file == tmp_path / "kafka" / "logs" / "server.log"
    assert localkafka.down(settings) is False


def test_a_recycled_pid_is_not_our_broker(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.pid_file.write_text(f"{os.getpid()}\n")  # alive, but pytest, not Kafka

    if process.cmdline(os.getpid()) is None:
        # Linux always has /proc; only another OS may lack it.
        assert not sys.platform.startswith("linux"), "no /proc on Linux"
        pytest.skip("no /proc: cannot tell processes apart here")
    assert process.our_pid(paths) is None
    assert process.stop(paths, timeout_s=1.0) is False
    assert not paths.pid_file.exists()


def test_external_bootstrap_starts_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_popen(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not start a process for an external cluster")

    monkeypatch.setattr(subprocess, "Popen", no_popen)
    monkeypatch.setattr(probes, "answers_metadata", lambda bootstrap, timeout_s, auth: False)
    settings = Settings(bootstrap="kafka.example:9092", state_dir=tmp_path)

    with pytest.raises(localkafka.BrokerError, match=re.escape("kafka.example:9092")):
        localkafka.up(settings, timeout_s=0.3, log=lambda line: None)

    monkeypatch.setattr(probes, "answers_metadata", lambda bootstrap, timeout_s, auth: True)
    current = localkafka.up(settings, timeout_s=0.3, log=lambda line: None)
    assert (current.running, current.managed, current.pid) == (True, False, None)
    assert not (tmp_path / "kafka").exists()


def test_log_tails_quote_only_what_this_start_wrote(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    paths.logs.mkdir(parents=True)
    paths.log_file.write_text("old line\n")
    before = process.log_sizes(paths)
    with paths.log_file.open("a") as log:
        log.writelines(f"new line {i}\n" for i in range(30))

    tails = process.log_tails(paths, before)

    assert "old line" not in tails
    assert "new line 29" in tails and "new line 10" in tails and "new line 9\n" not in tails


# ----------------------------------------------------------------- docker compose


def test_compose_file_keeps_in_step_with_the_local_broker(tmp_path: Path) -> None:
    """deploy/compose.yaml's broker (untestable here: no Docker) runs the configuration
    `kessai kafka compose-secrets` writes, which must set what the local secure broker
    sets, addresses and listener names aside."""
    from streams.devtools.localkafka import compose as deploysecure

    files = kafkasecure.SecureFiles(tmp_path)
    compose = _props(deploysecure.server_properties(0, files, "pw", 4))
    local = _props(
        config.render_server_properties(
            Settings(state_dir=tmp_path, kafka_security="sasl_ssl"), tmp_path, secure=(files, "pw")
        )
    )
    # Addresses and paths differ by design: a container hostname, a volume, two
    # client listeners (the stack's and the host's) instead of one.
    where = {
        "listeners",
        "advertised.listeners",
        "listener.security.protocol.map",
        "controller.quorum.voters",
        "inter.broker.listener.name",
        "log.dirs",
    }

    # Replication: three nodes, three replicas and two in sync (one node, one).
    replication = {
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "default.replication.factor",
        "min.insync.replicas",
    }

    def same(props: dict[str, str]) -> dict[str, str]:
        return {
            k: v
            for k, v in props.items()
            if k not in where | replication and not k.startswith("listener.name.")
        }

    assert same(compose) == same(local)
    assert compose["default.replication.factor"] == "3" and compose["min.insync.replicas"] == "2"
    text = (paths.DEPLOY / "compose.yaml").read_text()
    assert re.search(r"image: apache/kafka:" + re.escape(localkafka.KAFKA_VERSION) + r"\n", text)


# ------------------------------------------------------------------ the secure profile


def _secure_props(tmp_path: Path, bootstrap: str = "127.0.0.1:9192") -> dict[str, str]:
    settings = Settings(bootstrap=bootstrap, state_dir=tmp_path, kafka_security="sasl_ssl")
    files = kafkasecure.SecureFiles(tmp_path / "secure")
    text = config.render_server_properties(settings, tmp_path, secure=(files, "pw-admin"))
    keys = [line.split("=", 1)[0] for line in text.splitlines() if line and line[0] != "#"]
    assert len(keys) == len(set(keys)), "a key given twice: Kafka would keep the last silently"
    return _props(text)


def test_secure_server_properties_listen_with_sasl_ssl_only(tmp_path: Path) -> None:
    props = _secure_props(tmp_path)

    assert props["listeners"] == "SASL_SSL://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:9192"
    # No PLAINTEXT listener a client could use; the controller's is loopback SASL/PLAIN.
    assert props["listener.security.protocol.map"] == "CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
    assert "PLAINTEXT://" not in props["listeners"]
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9193"


def test_secure_server_properties_deny_what_no_acl_allows(tmp_path: Path) -> None:
    props = _secure_props(tmp_path)

    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["super.users"] == "User:admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"


def test_secure_server_properties_use_the_pem_files(tmp_path: Path) -> None:
    props = _secure_props(tmp_path)

    assert props["ssl.keystore.type"] == "PEM"
    assert props["ssl.keystore.location"] == str(tmp_path / "secure" / "broker.pem")
    assert props["ssl.truststore.type"] == "PEM"
    assert props["ssl.truststore.location"] == str(tmp_path / "secure" / "ca.pem")


def test_secure_jaas_lines_log_the_broker_in_as_the_admin(tmp_path: Path) -> None:
    props = _secure_props(tmp_path)

    scram = props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert scram.startswith("org.apache.kafka.common.security.scram.ScramLoginModule required ")
    assert 'username="admin" password="pw-admin";' in scram
    plain = props["listener.name.controller.plain.sasl.jaas.config"]
    assert plain.startswith("org.apache.kafka.common.security.plain.PlainLoginModule required ")
    # The controller's only user is the admin.
    assert re.findall(r'user_(\S+)="([^"]*)"', plain) == [("admin", "pw-admin")]


def test_the_secure_profile_has_its_own_folder_and_port(tmp_path: Path) -> None:
    plain = Settings(state_dir=tmp_path)
    secure = localkafka.secure_profile(plain)

    assert secure.bootstrap == "127.0.0.1:9192"
    assert secure.kafka_security == "sasl_ssl"
    paths = Paths.of(secure)
    assert paths.root == tmp_path / "kafka-secure"
    assert paths.libs == tmp_path / "kafka" / "libs"  # the dev profile's jars
    assert paths.pom == tmp_path / "kafka" / "pom.xml"
    assert Paths.of(plain).root == tmp_path / "kafka"
    # Settings already for sasl_ssl name the secure broker themselves.
    given = Settings(bootstrap="127.0.0.1:19192", state_dir=tmp_path, kafka_security="sasl_ssl")
    assert localkafka.secure_profile(given) is given


def test_scram_format_args_carry_salted_passwords_not_passwords() -> None:
    salt = b"s" * 32
    args = kafkasecure.scram_format_args({"ops": "hunter2"}, salt_of={"ops": salt})

    assert args[0] == "--add-scram"
    assert "hunter2" not in " ".join(args)
    # RFC 5802's SaltedPassword for SCRAM-SHA-512: PBKDF2-HMAC-SHA-512.
    salted = hashlib.pbkdf2_hmac("sha512", b"hunter2", salt, kafkasecure.SCRAM_ITERATIONS)
    assert args[1] == (
        f"SCRAM-SHA-512=[name=ops,iterations={kafkasecure.SCRAM_ITERATIONS},"
        f'salt="{base64.b64encode(salt).decode()}",'
        f'saltedpassword="{base64.b64encode(salted).decode()}"]'
    )


def test_credentials_are_private_and_kept(tmp_path: Path) -> None:
    files = kafkasecure.SecureFiles(tmp_path / "secure")

    first = kafkasecure.ensure_credentials(files)
    again = kafkasecure.ensure_credentials(files)

    assert first == again
    assert set(first) == set(acl.PRINCIPALS)
    assert len(set(first.values())) == len(first), "each principal its own password"
    for principal in acl.PRINCIPALS:
        path = files.credentials(principal)
        assert path.stat().st_mode & 0o777 == 0o600
        assert json.loads(path.read_text()) == {"username": principal, "password": first[principal]}


def test_env_files_name_what_a_client_needs(tmp_path: Path) -> None:
    files = kafkasecure.SecureFiles(tmp_path / "secure")
    assert kafkasecure.ensure_signers(files) is True
    kafkasecure.write_client_files(files, "127.0.0.1:9192", tmp_path)

    def env_of(principal: str) -> dict[str, str]:
        text = files.env(principal).read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))

    env = env_of("venue-a")
    assert env["KESSAI_BOOTSTRAP"] == "127.0.0.1:9192"
    assert env["KESSAI_KAFKA_SECURITY"] == "sasl_ssl"
    assert env["KESSAI_KAFKA_CREDENTIALS_FILE"] == str(files.credentials("venue-a"))
    assert env["KESSAI_KAFKA_CA_FILE"] == str(files.ca)
    assert files.env("venue-a").stat().st_mode & 0o777 == 0o600
    # Signers sign for the deployment; the workers and ops trust the admin-signed
    # registry; only the admin holds the admin key.
    deployment, registry_key = kafkasecure.registry_identity(files)
    assert deployment.startswith("kessai-") and env["KESSAI_DEPLOYMENT"] == deployment
    assert "KESSAI_REGISTRY_KEY" not in env
    for principal in ("worker", "ops", "admin"):
        assert env_of(principal)["KESSAI_REGISTRY_KEY"] == registry_key
    assert env_of("admin")["KESSAI_REGISTRY_ADMIN_KEY_FILE"] == str(files.registry_admin_key)
    assert "KESSAI_REGISTRY_ADMIN_KEY_FILE" not in env_of("worker")
    assert files.registry_admin_key.stat().st_mode & 0o777 == 0o600


def test_certificates_name_the_loopback_broker_and_chain_to_the_ca(tmp_path: Path) -> None:
    files = kafkasecure.SecureFiles(tmp_path / "secure")

    assert kafkasecure.ensure_certificates(files) is True
    assert kafkasecure.ensure_certificates(files) is False  # still valid: kept

    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    pem = files.broker_pem.read_text()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Kafka's PEM store wants
    broker, chained_ca = x509.load_pem_x509_certificates(pem.encode())
    assert chained_ca == ca
    broker.verify_directly_issued_by(ca)
    san = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert files.broker_pem.stat().st_mode & 0o777 == 0o600


def test_certificates_near_their_end_are_made_anew(tmp_path: Path) -> None:
    files = kafkasecure.SecureFiles(tmp_path / "secure")
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
        days=kafkasecure.CERT_VALID_DAYS - kafkasecure.CERT_RENEW_DAYS_MIN + 1
    )
    kafkasecure.ensure_certificates(files, now=long_ago)

    assert kafkasecure.ensure_certificates(files) is True


# ------------------------------------------------------------------------ the ACLs


def _allowed(principal: str, operation: str, kind: str, name: str) -> bool:
    """Whether the ACL table lets *principal* do *operation* on a resource, as Kafka
    decides it (All covers every operation; Read, Write imply Describe)."""
    implied = {"Describe": {"Read", "Write", "Describe", "All"}}.get(operation, {operation, "All"})
    for rule in acl.ACLS:
        if principal not in rule.principals or rule.kind != kind:
            continue
        if not implied & set(rule.operations):
            continue
        if rule.pattern == "prefixed" and any(name.startswith(r) for r in rule.resources):
            return True
        if rule.pattern == "literal" and (name in rule.resources or "*" in rule.resources):
            return True
    return False


@pytest.mark.parametrize("venue", ["venue-a", "venue-b"])
def test_venues_write_trades_and_orders_and_read_nothing(venue: str) -> None:
    for topic in ("trades", "orders"):
        assert _allowed(venue, "Write", "topic", topic)
    for topic in ("payments", "custody", "settlements", "ledger-events", "order-events"):
        assert not _allowed(venue, "Write", "topic", topic)
    for topic in CATALOGUE_NAMES:
        assert not _allowed(venue, "Read", "topic", topic)


def test_the_bridge_writes_payments_custody_and_reserves_only() -> None:
    assert {t for t in CATALOGUE_NAMES if _allowed("bridge", "Write", "topic", t)} == {
        "payments",
        "custody",
        "reserves",
    }
    assert not any(_allowed("bridge", "Read", "topic", t) for t in CATALOGUE_NAMES)


def test_the_registrar_writes_the_security_master_and_fx_rates_only() -> None:
    writes = {t for t in CATALOGUE_NAMES if _allowed("registrar", "Write", "topic", t)}
    assert writes == {"instruments", "fx-rates"}
    assert not any(_allowed("registrar", "Read", "topic", t) for t in CATALOGUE_NAMES)


def test_ops_reads_everything_and_writes_nothing() -> None:
    assert all(_allowed("ops", "Read", "topic", t) for t in [*CATALOGUE_NAMES, "kessai-x"])
    assert not any(_allowed("ops", "Write", "topic", t) for t in CATALOGUE_NAMES)
    assert not _allowed("ops", "Read", "group", "kessai")


def test_the_worker_owns_its_prefix_and_reads_the_inputs() -> None:
    for topic in (
        "kessai-accounts-changelog",
        "kessai-ledger-commands",
        "kessai-__assignor-__leader",
    ):
        assert _allowed("worker", "Write", "topic", topic)
        assert _allowed("worker", "Read", "topic", topic)
    assert _allowed("worker", "Read", "group", "kessai")
    assert _allowed("worker", "Write", "transactional-id", "kessai-0-1")
    for topic in ("trades", "orders", "payments", "custody"):
        assert _allowed("worker", "Read", "topic", topic)
    for topic in ("settlements", "ledger-events", "order-events", "rejections", "penalties"):
        assert _allowed("worker", "Write", "topic", topic)
    # The engine matches the orders (issue 21): it writes neither trades nor orders.
    for topic in ("payments", "trades", "orders"):
        assert not _allowed("worker", "Write", "topic", topic)
    assert not _allowed("worker", "Read", "topic", "other-app-changelog")


def test_acl_calls_add_exactly_the_table() -> None:
    added = set()
    for call in acl.acl_command_args(acl.ACLS):
        principals = [call[i + 1] for i, a in enumerate(call) if a == "--allow-principal"]
        operations = [call[i + 1] for i, a in enumerate(call) if a == "--operation"]
        flags = {"--topic": "topic", "--group": "group", "--transactional-id": "transactional-id"}
        resources = [(flags[a], call[i + 1]) for i, a in enumerate(call) if a in flags]
        pattern = call[call.index("--resource-pattern-type") + 1]
        for p in principals:
            for o in operations:
                for kind, name in resources:
                    added.add((p.removeprefix("User:"), o, kind, name, pattern))
    wanted = {
        (p, o, r.kind, n, r.pattern)
        for r in acl.ACLS
        for p in r.principals
        for o in r.operations
        for n in r.resources
    }
    assert added == wanted


CATALOGUE_NAMES = tuple(t.name for t in CATALOGUE)


@pytest.mark.parametrize("app_id", ["kessai", "acme"])
def test_only_workers_use_the_engines_topics_whatever_the_app_id(app_id: str) -> None:
    rules = acl.acl_table(app_id)
    names = [topics.engine_topic(app_id, n) for n in (*topics.ENGINE_CHANGELOGS, topics.ENGINE_LOG)]
    for topic in names:
        for principal in ("worker", "venue-a", "bridge", "ops"):
            writes = any(
                principal in r.principals
                and r.kind == "topic"
                and ("All" in r.operations or "Write" in r.operations)
                and (
                    topic in r.resources
                    or (r.pattern == "prefixed" and topic.startswith(r.resources))
                )
                for r in rules
            )
            assert writes == (principal == "worker"), (principal, topic)
