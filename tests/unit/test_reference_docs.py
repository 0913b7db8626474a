"""The reference pages keep up with the code: every metric, dead-letter header, alert and example config key is
described where an operator looks for it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from gateway import dlq, replay_records
from gateway.errors import DeadLetterReason
from gateway.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLE = ROOT / "config" / "gateway.example.yaml"
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
CONNECTOR_BLOCKS = {"credentials", "options", "feed", "ambassador", "withdrawal_callback", "retention", "store"}
"""Destination keys whose contents belong to a connector: described in its README, not in configuration.md."""


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section of a Markdown text (up to the next heading of the same level)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"no section '## {heading}'"
    return match.group(1)


def code_words(text: str) -> set[str]:
    """Names written in code spans: each dotted name as written and its first part (`batch.linger_ms`, `batch`)."""
    words: set[str] = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        for found in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", span):
            name = found.rstrip(".")
            words |= {name, name.split(".")[0]}
    return words


def exported_metrics() -> set[str]:
    """The names `/metrics` shows for every metric `Metrics` registers (counters with their `_total`)."""
    registry = CollectorRegistry()
    Metrics(registry)
    return {m.name + ("_total" if m.type == "counter" else "") for m in registry.collect()}


def missing_metrics(doc: str) -> list[str]:
    """Metrics not named in the metrics table of `doc` (a row starting with the name, labels allowed)."""
    rows = {m.group(1) for m in re.finditer(r"^\| `(gateway_[a-z_]+)[{`]", doc, flags=re.M)}
    return sorted(exported_metrics() - rows)


def test_every_metric_is_in_the_metrics_table() -> None:
    """docs/metrics.md has a row for each metric the gateway exports, connector extensions included."""
    assert missing_metrics((DOCS / "metrics.md").read_text()) == []


def test_the_metrics_check_misses_a_removed_row() -> None:
    """Dropping one row of the table is caught (the check does not pass on a mention elsewhere)."""
    doc = (DOCS / "metrics.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| `gateway_task_failures_total"))
    assert missing_metrics(doc.replace(row + "\n", "")) == ["gateway_task_failures_total"]


def headers_written() -> set[str]:
    """Every `gateway-*` header the gateway writes on a dead letter, replay's included."""
    fields = {"headers": [], "topic": "t", "partition": 0, "offset": 1, "value": b"x", "key": None}
    message = type("Message", (), fields)
    names = {name for name, _ in dlq.dead_letter_headers(message, "d", "rejected", "e", 400, record_id="r")}
    names |= {name for name, _ in dlq.reduced(message, [], keep_own=True)[1]}
    return names | {replay_records.ATTEMPT_HEADER}


def missing_headers(doc: str) -> list[str]:
    """Headers without a row in the headers table of `doc`."""
    rows = {m.group(1) for m in re.finditer(r"^\| `(gateway-[a-z-]+)`", doc, flags=re.M)}
    return sorted(headers_written() - rows)


def test_every_dead_letter_header_is_described() -> None:
    """docs/dead-letters.md has a row for each header a dead letter can carry; the check sees a removed row."""
    doc = (DOCS / "dead-letters.md").read_text()
    assert missing_headers(doc) == []
    row = next(line for line in doc.splitlines() if line.startswith("| `gateway-value-dropped`"))
    assert missing_headers(doc.replace(row + "\n", "")) == ["gateway-value-dropped"]


def test_every_dead_letter_reason_is_described() -> None:
    """docs/dead-letters.md has a row for each reason the writer accepts (DeadLetterReason), and no other."""
    doc = (DOCS / "dead-letters.md").read_text()
    rows = {m.group(1) for m in re.finditer(r"^\| `([a-z_]+)` \|", section(doc, "Reasons"), flags=re.M)}
    assert sorted(set(DeadLetterReason) - rows) == []
    assert sorted(rows - set(DeadLetterReason)) == [], "a reason the docs name but the gateway never writes"


def undescribed_keys(doc: str, example: dict[str, Any]) -> list[str]:
    """Keys of the example config that configuration.md does not name: the top-level keys anywhere, kafka's in the
    `kafka` section, the destinations' (and their nested core blocks', as `batch.linger_ms`) in `destinations[]`."""
    missing = [key for key in example if key not in code_words(doc)]
    kafka_words = code_words(section(doc, "`kafka`"))
    missing += [f"kafka.{path}" for path in paths(example["kafka"], set()) if path not in kafka_words]
    destination_words = code_words(section(doc, "`destinations[]`"))
    for destination in example["destinations"]:
        missing += [
            f"destinations[{destination['name']}].{path}"
            for path in paths(destination, CONNECTOR_BLOCKS)
            if path not in destination_words
        ]
    return sorted(set(missing))


def paths(block: dict[str, Any], opaque: set[str]) -> list[str]:
    """A block's keys, and `key.sub` for each key of a nested mapping (two levels: `security.tls`, `retry.max`), except
    under the keys in `opaque`."""
    found = []
    for key, value in block.items():
        found.append(key)
        if isinstance(value, dict) and key not in opaque:
            found += [f"{key}.{sub}" for sub in value]
    return found


def test_every_example_key_is_in_the_configuration_reference() -> None:
    """Each top-level, kafka and destination key of config/gateway.example.yaml is named in docs/configuration.md."""
    assert undescribed_keys((DOCS / "configuration.md").read_text(), yaml.safe_load(EXAMPLE.read_text())) == []


def test_the_configuration_check_misses_a_removed_key() -> None:
    """Removing the row of a kafka key, or naming it only outside its section, is caught."""
    doc = (DOCS / "configuration.md").read_text()
    example = yaml.safe_load(EXAMPLE.read_text())
    row = next(line for line in doc.splitlines() if line.startswith("| `dlq_max_message_bytes`"))
    assert undescribed_keys(doc.replace(row + "\n", ""), example) == ["kafka.dlq_max_message_bytes"]
    row = next(line for line in doc.splitlines() if line.startswith("| `start_from`"))
    assert undescribed_keys(doc.replace(row, ""), example) == [
        f"destinations[{d['name']}].start_from" for d in example["destinations"] if "start_from" in d
    ]


def test_every_connector_option_in_the_example_is_in_its_readme() -> None:
    """Each `options` key the example sets is named in that connector's README (connectors/<name>/README.md)."""
    missing = []
    for destination in yaml.safe_load(EXAMPLE.read_text())["destinations"]:
        readme = code_words((ROOT / "connectors" / destination["connector"] / "README.md").read_text())
        missing += [
            f"{destination['connector']}: options.{key}"
            for key in destination.get("options", {})
            if key not in readme and f"options.{key}" not in readme
        ]
    assert missing == []


def runbook_sections() -> dict[str, str]:
    """The sections under `## Alerts` of docs/operations.md: anchor -> body."""
    alerts = section((DOCS / "operations.md").read_text(), "Alerts")
    parts = re.split(r"^### (.+)\n", alerts, flags=re.M)
    return {title.strip().lower(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def alerts_without_runbook(sections: dict[str, str]) -> list[str]:
    """Alerts whose runbook annotation does not point at a section of `sections` that says what it means and what
    to do."""
    missing = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            name = rule["alert"]
            path, _, anchor = rule["annotations"]["runbook"].partition("#")
            body = sections.get(anchor, "")
            explained = "**Means:**" in body and "**Do:**" in body
            if path != "docs/operations.md" or anchor != name.lower() or not explained:
                missing.append(name)
    return missing


def test_every_alert_has_a_runbook_section() -> None:
    """Each alert's runbook annotation points at its own section under Alerts in docs/operations.md, which says what
    it means and what to do; removing one section is caught."""
    sections = runbook_sections()
    assert alerts_without_runbook(sections) == []
    del sections["gatewaydeadletterreduced"]
    assert alerts_without_runbook(sections) == ["GatewayDeadLetterReduced"]


def files_naming_the_design_notes() -> list[str]:
    """Source files (gateway/, connectors/, tests/, bench/) that name the design notes a user does not have."""
    outside = "DESIGN" + ".md"  # spelled apart so this file does not name it
    sources = [p for folder in ("gateway", "connectors", "tests", "bench") for p in (ROOT / folder).rglob("*.py")]
    return sorted(str(p.relative_to(ROOT)) for p in sources if p.name != "test_docs.py" and outside in p.read_text())


def test_no_code_points_at_the_design_notes() -> None:
    """Docstrings and comments point at docs/ (in the repository), never at the design notes outside it."""
    assert files_naming_the_design_notes() == []
