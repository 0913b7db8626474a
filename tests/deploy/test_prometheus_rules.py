"""deploy/prometheus: the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`)."""

from __future__ import annotations

import re

from tests.deploy.observability import RULE_TESTS, RULES, alerts
from tests.deploy.tools import ROOT, load_yaml, run

# The concerns, each a rule group: the first seven, then scrape health and offset commits.
GROUPS = {
    "event-gateway.scrape",
    "event-gateway.commits",
    "event-gateway.lag",
    "event-gateway.destination",
    "event-gateway.dead-letters",
    "event-gateway.retries",
    "event-gateway.stalled",
    "event-gateway.readiness",
    "event-gateway.intarget-feeds",
    "event-gateway.kafka",
}


def test_promtool_check_rules() -> None:
    """promtool accepts the rule file."""
    result = run("promtool", "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    """Every rule unit test passes: alerts fire on the synthetic series and stay quiet on normal ones."""
    result = run("promtool", "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Each alert has a test case where it fires and one where it must not."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == set(alerts())
    assert quiet == set(alerts())


def test_groups_thresholds_and_runbook_anchors() -> None:
    """The eight groups exist; each alert documents its threshold and severity and links a runbook section."""
    groups = {group["name"] for group in load_yaml(RULES)["groups"]}
    assert groups == GROUPS
    runbook = (ROOT / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("#")
    }
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["threshold"], name
        path, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert path == "docs/operations.md"
        assert anchor == name.lower() and anchor in anchors, name
