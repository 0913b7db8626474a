"""What the alert rules and the dashboard query, and which metric names a gateway's /metrics exports."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.deploy.tools import DEPLOY, load_yaml

RULES = DEPLOY / "prometheus" / "rules.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "rules.test.yaml"
DASHBOARD = DEPLOY / "grafana" / "event-gateway.json"

_METRIC = re.compile(r"\bgateway_[a-z0-9_]+\b")
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


def alerts() -> dict[str, dict[str, Any]]:
    """Alert name -> rule, over every group of rules.yaml."""
    return {rule["alert"]: rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]}


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard."""
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_queries() -> list[str]:
    """Every PromQL expression in the dashboard: panel targets and template variable queries."""
    queries = [target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])]
    for variable in dashboard()["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            queries.append(query["query"])
    return queries


def metric_names(expression: str) -> set[str]:
    """The gateway_* metric names an expression reads."""
    return set(_METRIC.findall(expression))


def exported_names(exposition: str) -> set[str]:
    """Names a scrape can return, from the `# TYPE` lines (with the counter and histogram sample suffixes)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, family, kind = line.split(" ", 3)
        base = family.removesuffix("_total") if kind == "counter" else family
        names.add(family)
        names.update(base + suffix for suffix in _SUFFIXES.get(kind, ()))
    return names
