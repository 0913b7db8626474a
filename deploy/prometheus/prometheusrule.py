"""Renders rules.yaml as the PrometheusRule object of the kustomize base, with absolute runbook_url annotations.

    python deploy/prometheus/prometheusrule.py --runbook-base https://wiki.example.org/event-gateway/operations \\
        > deploy/kubernetes/base/prometheusrule.yaml

rules.yaml stays the source (promtool checks and unit-tests it); a test keeps the rendered object in step with it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

RULES = Path(__file__).resolve().parent / "rules.yaml"
DEFAULT_RUNBOOK_BASE = "https://runbooks.example.com/event-gateway/operations.md"
"""Where docs/operations.md is published for the on-call: replace it with your own (see docs/deploying.md)."""

HEADER = """\
# GENERATED from deploy/prometheus/rules.yaml by deploy/prometheus/prometheusrule.py: edit those, then re-render:
#   python deploy/prometheus/prometheusrule.py --runbook-base URL > deploy/kubernetes/base/prometheusrule.yaml
# runbook_url points at {base}:
# publish docs/operations.md where your on-call reads runbooks and render again with that URL.
"""


def prometheus_rule(rules: dict[str, Any], runbook_base: str) -> dict[str, Any]:
    """The PrometheusRule object (monitoring.coreos.com/v1) holding `rules`' groups, each alert with a runbook_url."""
    groups = []
    for group in rules["groups"]:
        rendered = []
        for rule in group["rules"]:
            annotations = dict(rule.get("annotations", {}))
            anchor = str(annotations.get("runbook", "")).partition("#")[2]
            if anchor:
                annotations["runbook_url"] = f"{runbook_base}#{anchor}"
            rendered.append({**rule, "annotations": annotations})
        groups.append({**group, "rules": rendered})
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "event-gateway", "labels": {"app.kubernetes.io/name": "event-gateway"}},
        "spec": {"groups": groups},
    }


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, as in rules.yaml."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_BlockDumper.add_representer(str, _string)


def render(runbook_base: str = DEFAULT_RUNBOOK_BASE) -> str:
    """The rendered file's text."""
    document = prometheus_rule(yaml.safe_load(RULES.read_text()), runbook_base.rstrip("/"))
    body = yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, width=120, allow_unicode=True)
    return HEADER.format(base=runbook_base.rstrip("/")) + body


def main() -> None:
    """Print the rendered PrometheusRule."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runbook-base", default=DEFAULT_RUNBOOK_BASE, help="absolute URL of docs/operations.md")
    sys.stdout.write(render(parser.parse_args().runbook_base))


if __name__ == "__main__":
    main()
