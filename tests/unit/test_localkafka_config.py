"""streams.localkafka without a broker: config rendering, ids, ports, tool checks, jars."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streams import localkafka
from streams.config import PROJECT_ROOT, Settings


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


# ---------------------------------------------------------------- server.properties


def test_server_properties_single_node_kraft_with_transactions(tmp_path: Path) -> None:
    settings = Settings(bootstrap="127.0.0.1:9092", partitions=6, state_dir=tmp_path)
    props = _props(localkafka._render_server_properties(settings, tmp_path / "data"))

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
    props = _props(localkafka._render_server_properties(settings, tmp_path))

    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"


def test_server_properties_have_no_duplicate_keys(tmp_path: Path) -> None:
    text = localkafka._render_server_properties(Settings(state_dir=tmp_path), tmp_path)
    keys = [line.split("=", 1)[0] for line in text.splitlines() if line and line[0] != "#"]
    assert len(keys) == len(set(keys))


def test_log4j_logs_to_one_file_and_not_to_stdout() -> None:
    props = _props(localkafka._render_log4j_properties())

    assert props["log4j.rootLogger"] == "INFO, file"
    assert props["log4j.appender.file.File"] == "${kafka.logs.dir}/server.log"
    assert not any("ConsoleAppender" in value for value in props.values())


def test_broker_command_flags(tmp_path: Path) -> None:
    paths = localkafka._Paths(tmp_path / "kafka")
    cmd = localkafka._broker_command("/usr/bin/java", paths, "512M")

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
    assert localkafka._heap({"KESSAI_KAFKA_HEAP": heap}) == heap


def test_heap_defaults_to_1g() -> None:
    assert localkafka._heap({}) == "1G"


@pytest.mark.parametrize("heap", ["", "lots", "1 G", "-1G", "0", "1G -XX:+Evil"])
def test_heap_rejects_other_text(heap: str) -> None:
    with pytest.raises(localkafka.LocalKafkaError, match="KESSAI_KAFKA_HEAP"):
        localkafka._heap({"KESSAI_KAFKA_HEAP": heap})


# ---------------------------------------------------------------------- cluster id


def test_cluster_id_is_22_chars_of_urlsafe_base64_of_16_bytes() -> None:
    ids = {localkafka._new_cluster_id() for _ in range(500)}

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
    assert localkafka._ports(bootstrap) == ports


def test_ports_leave_room_for_the_controller() -> None:
    with pytest.raises(ValueError, match="controller"):
        localkafka._ports("127.0.0.1:65535")


@pytest.mark.parametrize("bootstrap", ["", ",", "127.0.0.1:", "127.0.0.1:x", ":9092", "h:70000"])
def test_bad_bootstrap_is_rejected(bootstrap: str) -> None:
    with pytest.raises(ValueError, match="KESSAI_BOOTSTRAP"):
        localkafka._split_hosts(bootstrap)


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
    assert localkafka._is_local(bootstrap) is local


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
    assert localkafka._java_major(output) == major


def test_missing_java_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(localkafka.MissingToolError) as caught:
        localkafka._require_java({})
    assert "Java 17+" in str(caught.value)
    assert "apt-get install openjdk-17-jre-headless" in str(caught.value)


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/opt/old/bin/java")
    monkeypatch.setattr(
        localkafka, "_java_version_output", lambda java: 'openjdk version "11.0.2" 2019-01-15'
    )

    with pytest.raises(localkafka.MissingToolError, match=r"Java 11.*Java 17\+"):
        localkafka._require_java({})


def test_java_home_wins_over_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    java = tmp_path / "bin" / "java"
    java.parent.mkdir()
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/java")
    monkeypatch.setattr(localkafka, "_java_version_output", lambda java: 'version "17.0.1"')

    assert localkafka._require_java({"JAVA_HOME": str(tmp_path)}) == str(java)


def test_missing_mvn_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(
        localkafka.MissingToolError, match=r"Apache Maven \(apt-get install maven\)"
    ):
        localkafka._require_mvn()


# --------------------------------------------------------------------------- jars


def _fake_mvn(monkeypatch: pytest.MonkeyPatch, *, returncode: int, calls: list[list[str]]) -> None:
    """mvn that drops a Kafka jar into -DoutputDirectory, then exits with ``returncode``."""

    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        out = Path(next(a for a in cmd if a.startswith("-DoutputDirectory=")).split("=", 1)[1])
        (out / f"kafka_2.13-{localkafka.KAFKA_VERSION}.jar").write_bytes(b"jar")
        return subprocess.CompletedProcess(cmd, returncode, "[ERROR] no network", "")

    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(subprocess, "run", run)


def test_jars_are_fetched_once_per_pom(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    paths = localkafka._Paths(tmp_path)
    calls: list[list[str]] = []
    _fake_mvn(monkeypatch, returncode=0, calls=calls)

    localkafka._ensure_jars(paths, log=lambda line: None)
    localkafka._ensure_jars(paths, log=lambda line: None)

    assert len(calls) == 1
    assert "dependency:copy-dependencies" in calls[0]
    assert "-DincludeScope=runtime" in calls[0]
    assert (paths.libs / f"kafka_2.13-{localkafka.KAFKA_VERSION}.jar").exists()
    assert paths.pom_hash.read_text().strip() == localkafka._pom_digest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["libs"]  # no temp folder left


def test_a_changed_pom_fetches_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    paths = localkafka._Paths(tmp_path)
    paths.libs.mkdir()
    (paths.libs / "stale-1.0.jar").write_bytes(b"old")
    paths.pom_hash.write_text("0" * 64)
    calls: list[list[str]] = []
    _fake_mvn(monkeypatch, returncode=0, calls=calls)

    localkafka._ensure_jars(paths, log=lambda line: None)

    assert len(calls) == 1
    assert not (paths.libs / "stale-1.0.jar").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["libs"]


def test_a_failed_fetch_leaves_no_half_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    paths = localkafka._Paths(tmp_path)
    _fake_mvn(monkeypatch, returncode=1, calls=[])

    with pytest.raises(localkafka.BrokerError, match="no network"):
        localkafka._ensure_jars(paths, log=lambda line: None)

    assert list(tmp_path.iterdir()) == []


def test_missing_mvn_is_reported_only_when_jars_are_needed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    paths = localkafka._Paths(tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(localkafka.MissingToolError, match="mvn not found"):
        localkafka._ensure_jars(paths, log=lambda line: None)

    paths.libs.mkdir()
    paths.pom_hash.write_text(localkafka._pom_digest() + "\n")
    localkafka._ensure_jars(paths, log=lambda line: None)  # current jars: no mvn needed


# ------------------------------------------------------------------ state, no broker


def test_nothing_runs_in_a_fresh_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(localkafka, "_answers_metadata", lambda bootstrap, timeout_s: False)
    settings = Settings(bootstrap="127.0.0.1:9092", state_dir=tmp_path)

    current = localkafka.status(settings)

    assert (current.running, current.pid, current.managed) == (False, None, True)
    assert current.log_file == tmp_path / "kafka" / "logs" / "server.log"
    assert localkafka.down(settings) is False


def test_a_recycled_pid_is_not_our_broker(tmp_path: Path) -> None:
    paths = localkafka._Paths(tmp_path)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.pid_file.write_text(f"{os.getpid()}\n")  # alive, but pytest, not Kafka

    if localkafka._cmdline(os.getpid()) is None:
        # Linux always has /proc; only another OS may lack it.
        assert not sys.platform.startswith("linux"), "no /proc on Linux"
        pytest.skip("no /proc: cannot tell processes apart here")
    assert localkafka._our_pid(paths) is None
    assert localkafka._stop(paths, timeout_s=1.0) is False
    assert not paths.pid_file.exists()


def test_external_bootstrap_starts_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_popen(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not start a process for an external cluster")

    monkeypatch.setattr(subprocess, "Popen", no_popen)
    monkeypatch.setattr(localkafka, "_answers_metadata", lambda bootstrap, timeout_s: False)
    settings = Settings(bootstrap="kafka.example:9092", state_dir=tmp_path)

    with pytest.raises(localkafka.BrokerError, match=re.escape("kafka.example:9092")):
        localkafka.up(settings, timeout_s=0.3, log=lambda line: None)

    monkeypatch.setattr(localkafka, "_answers_metadata", lambda bootstrap, timeout_s: True)
    current = localkafka.up(settings, timeout_s=0.3, log=lambda line: None)
    assert (current.running, current.managed, current.pid) == (True, False, None)
    assert not (tmp_path / "kafka").exists()


def test_log_tails_quote_only_what_this_start_wrote(tmp_path: Path) -> None:
    paths = localkafka._Paths(tmp_path)
    paths.logs.mkdir(parents=True)
    paths.log_file.write_text("old line\n")
    before = localkafka._log_sizes(paths)
    with paths.log_file.open("a") as log:
        log.writelines(f"new line {i}\n" for i in range(30))

    tails = localkafka._log_tails(paths, before)

    assert "old line" not in tails
    assert "new line 29" in tails and "new line 10" in tails and "new line 9\n" not in tails


# ----------------------------------------------------------------- docker compose


def test_compose_file_keeps_in_step_with_the_local_broker(tmp_path: Path) -> None:
    """deploy/compose.yaml (untestable here: no Docker) sets what localkafka sets."""
    compose = (PROJECT_ROOT / "deploy" / "compose.yaml").read_text()
    env = dict(re.findall(r'^\s+(KAFKA_[A-Z_]+): "([^"]*)"$', compose, flags=re.MULTILINE))
    # The image's rule: "." -> "_", "_" -> "__", "-" -> "___", upper case, KAFKA_ prefix.
    from_compose = {
        key[len("KAFKA_") :]
        .replace("___", "-")
        .replace("__", "\0")
        .replace("_", ".")
        .replace("\0", "_")
        .lower(): value
        for key, value in env.items()
    }
    local = _props(localkafka._render_server_properties(Settings(state_dir=tmp_path), tmp_path))
    # Addresses and paths differ by design: container hostnames, a volume, two listeners.
    where = {
        "listeners",
        "advertised.listeners",
        "listener.security.protocol.map",
        "controller.quorum.voters",
        "log.dirs",
    }

    assert {k: v for k, v in from_compose.items() if k not in where} == {
        k: v for k, v in local.items() if k not in where
    }
    assert re.search(r"image: apache/kafka:" + re.escape(localkafka.KAFKA_VERSION) + r"\n", compose)
