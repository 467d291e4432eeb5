"""deploy/: the compose stack, Prometheus' scrape targets and Grafana's provisioning fit
together. (promtool validates the Prometheus files, and a real Prometheus evaluates
the alerts and every Grafana query against a real worker: tests/integration/test_audit.py.)
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from streams.security import acl
from tests.support.deploy import grafana_queries, metric_names, read_yaml
from tests.support.paths import DEPLOY


def test_the_stack_has_every_service_and_its_files_exist() -> None:
    compose = read_yaml(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert set(services) == {
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "kafka-acls",
        "worker-1",
        "worker-2",
        "prometheus",
        "grafana",
    }
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            # ./secrets is made by `kessai kafka compose-secrets` (the test below).
            if source.startswith(".") and not source.startswith("./secrets/"):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is missing"
    build = services["worker-1"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    # The workers listen beyond loopback in their containers, on the port scraped.
    dockerfile = (DEPLOY / "worker.Dockerfile").read_text()
    assert "KESSAI_WEB_BIND=0.0.0.0" in dockerfile and "KESSAI_WEB_PORT=6066" in dockerfile


def test_prometheus_scrapes_each_worker_of_the_stack() -> None:
    compose = read_yaml(DEPLOY / "compose.yaml")
    workers = {n for n in compose["services"] if n.startswith("worker-")}
    config = read_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    [job] = config["scrape_configs"]
    targets = {t for c in job["static_configs"] for t in c["targets"]}
    assert targets == {f"{w}:6066" for w in workers}
    assert config["rule_files"] == ["alerts.yml"]


def test_grafana_reads_the_stacks_prometheus_and_loads_the_dashboards() -> None:
    sources = read_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    [source] = sources["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    providers = read_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "kessai.yml")
    [provider] = providers["providers"]
    grafana = read_yaml(DEPLOY / "compose.yaml")["services"]["grafana"]
    mounted = {v.split(":")[1] for v in grafana["volumes"]}
    assert provider["options"]["path"] in mounted
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        dashboard = json.loads(path.read_text())
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
            assert panel["targets"], panel["title"]


def test_the_dashboard_and_alerts_watch_what_the_issue_asks_for() -> None:
    used = metric_names(grafana_queries())
    for needed in (
        "kessai_trades_received_total",
        "kessai_settlements_total",
        "kessai_settlement_latency_seconds_bucket",
        "kessai_trades_open",
        "kessai_rejections_total",
        "kessai_consumer_lag_records",
        "kessai_conservation_error_units",
        "kessai_balance_tokens",
        "kessai_open_locks",
        "kessai_transactions_committed_total",
    ):
        assert needed in used, f"no Grafana panel shows {needed}"
    alerts = {
        r["alert"]
        for g in read_yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"]
        for r in g["rules"]
    }
    assert {
        "KessaiConsumerLagGrowing",
        "KessaiTradesPendingTooLong",
        "KessaiSettlementFailures",
        "KessaiRejectionsSpiking",
        "KessaiConservationOffZero",
        "KessaiNoCommits",
    } <= alerts


def test_compose_secrets_make_every_file_the_stack_reads(tmp_path: Path) -> None:
    from streams.devtools.localkafka.compose import write_compose_secrets

    out = tmp_path / "secrets"
    write_compose_secrets(out)
    services = read_yaml(DEPLOY / "compose.yaml")["services"]
    _assert_each_service_finds_the_secrets_it_names(services, out)
    _assert_a_worker_holds_only_its_own_secrets(services, out)
    _assert_the_broker_takes_only_sasl_ssl_clients(out)
    _assert_the_acls_and_users_are_made(out)
    _assert_the_secret_files_are_private(out)
    _assert_the_host_env_files_reach_the_published_port(out)
    # A second run keeps the passwords, keys and cluster id; another deployment's
    # cluster id differs, so that the broker refuses a volume formatted for the other.
    before = (out / "credentials" / "worker.json").read_text()
    cluster_id = (out / "cluster-id").read_text()
    write_compose_secrets(out)
    assert (out / "credentials" / "worker.json").read_text() == before
    assert (out / "cluster-id").read_text() == cluster_id
    assert f"'{cluster_id.strip()}'\n" in (out / "format.args").read_text()
    write_compose_secrets(tmp_path / "other")
    assert (tmp_path / "other" / "cluster-id").read_text() != cluster_id


def _assert_each_service_finds_the_secrets_it_names(services: dict[str, Any], out: Path) -> None:
    # Each service sees its own folder at /secrets; every /secrets path it names (its
    # command, health check, env file, and the files those name) is in that folder.
    for name, service in services.items():
        mounts = [v for v in service.get("volumes", []) if v.endswith(":/secrets:ro")]
        if not mounts:
            continue
        [mount] = mounts
        folder = DEPLOY / mount.split(":")[0]
        assert folder.is_relative_to(DEPLOY / "secrets" / "mounts"), mount
        local = out / folder.relative_to(DEPLOY / "secrets")
        # The service's own words, host paths (its mount, its env file) left out.
        own = {k: v for k, v in service.items() if k not in ("volumes", "env_file")}
        texts = [json.dumps(own)]
        texts += [p.read_text() for p in local.rglob("*") if p.is_file()]
        for path in {m for t in texts for m in re.findall(r"/secrets/[\w./-]+", t)}:
            assert (local / path.removeprefix("/secrets/")).is_file(), (name, path)


def _assert_a_worker_holds_only_its_own_secrets(services: dict[str, Any], out: Path) -> None:
    env_file = services["worker-1"]["env_file"].removeprefix("./secrets/")
    worker_env = (out / env_file).read_text()
    # A worker never holds the admin's password or a venue's or the bridge's key.
    worker_files = {p.name for p in (out / "mounts" / "worker").rglob("*")}
    assert not {"admin.json", "admin-client.properties", "bridge.pem", "venue-a.pem"} & worker_files
    assert "KESSAI_KAFKA_SECURITY=sasl_ssl" in worker_env
    assert "KESSAI_BOOTSTRAP=kafka-1:9092,kafka-2:9092,kafka-3:9092" in worker_env


def _assert_the_broker_takes_only_sasl_ssl_clients(out: Path) -> None:
    from cryptography import x509

    # Three nodes: SASL_SSL only, the controllers' listener too (it crosses the
    # network), ACLs enforced, three voters, three replicas; the certificate names each.
    for i in (1, 2, 3):
        props = (out / "mounts" / f"kafka-{i}" / "server.properties").read_text()
        assert props == (out / f"server-kafka-{i}.properties").read_text()
        assert "listener.security.protocol.map=CONTROLLER:SASL_SSL,INTERNAL:SASL_SSL," in props
        assert "allow.everyone.if.no.acl.found=false" in props
        assert "PLAINTEXT://" not in props
        assert f"node.id={i}\n" in props
        assert "controller.quorum.voters=1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093" in props
        assert (
            f"advertised.listeners=INTERNAL://kafka-{i}:9092,HOST://127.0.0.1:{19091 + i}" in props
        )
        assert "inter.broker.listener.name=INTERNAL" in props
        assert "default.replication.factor=3" in props and "min.insync.replicas=2" in props
    [cert, _ca] = x509.load_pem_x509_certificates((out / "broker.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"kafka-1", "kafka-2", "kafka-3"} <= set(names.get_values_for_type(x509.DNSName))


def _assert_the_acls_and_users_are_made(out: Path) -> None:
    # The ACL script installs exactly the table; the start script makes every user.
    acls = (out / "acls.sh").read_text()
    calls = acl.acl_command_args(acl.ACLS)
    assert acls.count("kafka-acls.sh") == len(calls)
    for call in calls:
        assert " ".join(call[:4]) in acls
    # The SCRAM users are made from an argument file: salted passwords are as good as
    # passwords for a SCRAM login, and a command line is visible to every local user.
    start = (out / "kafka-start.sh").read_text()
    assert "@/secrets/format.args" in start and "saltedpassword" not in start
    args = (out / "format.args").read_text()
    for principal in acl.PRINCIPALS:
        assert f"name={principal}," in args


def _assert_the_secret_files_are_private(out: Path) -> None:
    secret = [*out.glob("server-*.properties"), out / "format.args", *out.glob("credentials/*")]
    assert len(secret) >= 5
    for path in secret:
        assert path.stat().st_mode & 0o077 == 0, path


def _assert_the_host_env_files_reach_the_published_port(out: Path) -> None:
    from streams.config import Settings
    from streams.security import signing

    # The host's env files reach the published port, with paths in the folder.
    host = Settings.from_env(
        dict(
            line.split("=", 1)
            for line in (out / "host-env" / "ops.env").read_text().splitlines()[1:]
        )
    )
    assert host.bootstrap == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    assert host.signers_file is not None
    assert host.registry_key is not None and host.deployment is not None
    admin_key = signing.public_key_of(host.registry_key, where="ops.env")
    registry = signing.load_registry(host.signers_file, admin_key)
    assert registry.deployment == host.deployment
    assert registry.entries.keys() == {
        "venue-a",
        "venue-b",
        "bridge",
        "registrar",
        "kessai",
    }


def test_the_systemd_unit_restarts_a_worker_for_ever_and_verifies(tmp_path: Path) -> None:
    """M14: systemd's default start limit (5 starts in 10 s) left a worker down for
    good after a burst of fail-stop exits."""
    text = (DEPLOY / "systemd" / "kessai-worker.service").read_text()
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string(text)
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"
    assert unit["Service"]["Restart"] == "always"
    assert int(unit["Service"]["RestartSec"]) >= 5
    assert unit["Service"]["User"] != "root"
    assert unit["Service"]["ExecStart"].endswith("kessai worker")
    # systemd's own check, with a command and environment that exist on this machine.
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian's systemd package)"
    runnable = text.replace(unit["Service"]["ExecStart"], "/usr/bin/env true").replace(
        "EnvironmentFile=/", "EnvironmentFile=-/"
    )
    (tmp_path / "kessai-worker.service").write_text(runnable)
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "kessai-worker.service")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_the_kubernetes_worker_restarts_for_ever_answers_its_probes_and_mounts_its_files() -> None:
    deployment = read_yaml(DEPLOY / "kubernetes" / "worker.yaml")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["securityContext"]["runAsNonRoot"] is True
    [container] = spec["containers"]
    # The probes come with a Host the worker answers (a foreign Host gets 403), and
    # Prometheus' scrape by pod IP is one (KESSAI_WEB_HOSTS).
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/health"
    assert {"name": "Host", "value": "localhost"} in probe["httpHeaders"]
    env = {e["name"]: e for e in container["env"]}
    assert env["KESSAI_WEB_HOSTS"]["value"] == "$(POD_IP)"
    # Every /secrets file the worker's env names is mounted where it names it.
    mounted = {i["path"] for i in spec["volumes"][0]["secret"]["items"]}
    from streams.devtools.localkafka.compose import MOUNTS

    wanted = {name for name in MOUNTS["worker"] if not name.startswith("env/")}
    assert mounted == wanted, (mounted, wanted)


def test_the_worker_image_does_not_run_as_root() -> None:
    """L9."""
    dockerfile = (DEPLOY / "worker.Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), users
