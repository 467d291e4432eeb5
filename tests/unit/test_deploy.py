"""deploy/: the compose stack, Prometheus' scrape targets and Grafana's provisioning fit
together. (promtool validates the Prometheus files, and a real Prometheus evaluates
the alerts and every Grafana query against a real worker: tests/integration/test_audit.py.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def grafana_queries() -> list[str]:
    """Every PromQL expression of the provisioned Grafana dashboards."""
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            out.extend(t["expr"] for t in panel["targets"])
    return out


def alert_queries() -> list[str]:
    rules = _yaml(DEPLOY / "prometheus" / "alerts.yml")
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def metric_names(exprs: list[str]) -> set[str]:
    """The kessai metric names the expressions use."""
    return {m for e in exprs for m in re.findall(r"\bkessai_[a-z_]+\b", e)}


def test_the_stack_has_every_service_and_its_files_exist() -> None:
    compose = _yaml(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert set(services) == {"kafka", "worker-1", "worker-2", "prometheus", "grafana"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is missing"
    build = services["worker-1"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    # The workers listen beyond loopback in their containers, on the port scraped.
    dockerfile = (DEPLOY / "worker.Dockerfile").read_text()
    assert "KESSAI_WEB_BIND=0.0.0.0" in dockerfile and "KESSAI_WEB_PORT=6066" in dockerfile


def test_prometheus_scrapes_each_worker_of_the_stack() -> None:
    compose = _yaml(DEPLOY / "compose.yaml")
    workers = {n for n in compose["services"] if n.startswith("worker-")}
    config = _yaml(DEPLOY / "prometheus" / "prometheus.yml")
    [job] = config["scrape_configs"]
    targets = {t for c in job["static_configs"] for t in c["targets"]}
    assert targets == {f"{w}:6066" for w in workers}
    assert config["rule_files"] == ["alerts.yml"]


def test_grafana_reads_the_stacks_prometheus_and_loads_the_dashboards() -> None:
    sources = _yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    [source] = sources["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    providers = _yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "kessai.yml")
    [provider] = providers["providers"]
    grafana = _yaml(DEPLOY / "compose.yaml")["services"]["grafana"]
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
        for g in _yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"]
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
