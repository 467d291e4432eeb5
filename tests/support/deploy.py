"""What deploy/ asks of the metrics: the PromQL of the alerts and the Grafana dashboards,
read from the files (the unit tests check the files, the integration tests run the
queries on a real worker's metrics)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import DEPLOY


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def grafana_queries() -> list[str]:
    """Every PromQL expression of the provisioned Grafana dashboards."""
    out: list[str] = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            out.extend(t["expr"] for t in panel["targets"])
    return out


def alert_queries() -> list[str]:
    """Every alert rule's expression."""
    rules = read_yaml(DEPLOY / "prometheus" / "alerts.yml")
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def metric_names(exprs: list[str]) -> set[str]:
    """The kessai metric names the expressions use."""
    return {m for e in exprs for m in re.findall(r"\bkessai_[a-z_]+\b", e)}
