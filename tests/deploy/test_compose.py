"""deploy/compose: the local stack parses, mounts files that exist, and its ports and config line up."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from gateway import binding, destination
from tests.deploy.tools import DEPLOY, load_yaml, run

COMPOSE = DEPLOY / "compose"


def compose() -> dict[str, Any]:
    """The compose file."""
    data: dict[str, Any] = load_yaml(COMPOSE / "docker-compose.yml")
    return data


def service(name: str) -> dict[str, Any]:
    """One service."""
    found: dict[str, Any] = compose()["services"][name]
    return found


def bind_mounts(name: str) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (named volumes left out)."""
    mounts = {}
    for volume in service(name).get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (COMPOSE / source).resolve()
    return mounts


def gateway_config() -> destination.ResolvedConfig:
    """The gateway's mounted config, resolved with the service's environment."""
    mounts = bind_mounts("gateway")
    return binding.load(mounts["/etc/event-gateway/config.yaml"], env=service("gateway")["environment"])


def published(name: str) -> set[int]:
    """Container ports a service publishes."""
    return {int(str(port).split(":")[-1]) for port in service(name).get("ports", [])}


def test_services_and_images() -> None:
    """Kafka in KRaft mode from the official image, the gateway built from our Dockerfile, Prometheus, Grafana."""
    services = compose()["services"]
    assert {"kafka", "gateway", "prometheus", "grafana"} <= set(services)
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert "ZOOKEEPER" not in " ".join(kafka["environment"]).upper()
    build = services["gateway"]["build"]
    assert (COMPOSE / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "docker" / "Dockerfile"


def test_every_mounted_file_exists() -> None:
    """Each bind-mounted host path exists."""
    checked = 0
    for name in compose()["services"]:
        for target, source in bind_mounts(name).items():
            assert source.exists(), (name, target, source)
            checked += 1
    assert checked >= 6


def test_gateway_config_lines_up_with_the_stack() -> None:
    """The gateway reaches Kafka's internal listener and the sandbox, and listens where Prometheus scrapes."""
    resolved = gateway_config()
    kafka_env = service("kafka")["environment"]
    advertised = dict(item.split("://") for item in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert resolved.gateway.kafka.servers == [advertised[kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"]]]
    topics_command = " ".join(service("kafka-topics")["command"])
    for topic in [*resolved.gateway.kafka.topics, resolved.gateway.kafka.dlq_topic]:
        assert f"--topic {topic} " in topics_command
    http = resolved.gateway.http
    assert http.host == "0.0.0.0" and http.port in published("gateway")
    prometheus = load_yaml(bind_mounts("prometheus")["/etc/prometheus/prometheus.yml"])
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"gateway:{http.port}"]
    sandbox = service("unibo-sandbox")["command"]
    unibo = resolved.destination("unibo")
    assert unibo.config.base_url == f"http://unibo-sandbox:{sandbox[sandbox.index('--unibo-port') + 1]}"
    key = unibo.credentials["default"].api_key.get_secret_value()
    assert f"default={key}" in sandbox
    grace = resolved.gateway.shutdown.grace_period
    assert int(service("gateway")["stop_grace_period"].rstrip("s")) > grace


def test_prometheus_loads_the_rules_and_passes_promtool(tmp_path: Path) -> None:
    """The mounted rule file is the one rules.yaml; `promtool check config` accepts the config with it."""
    mounts = bind_mounts("prometheus")
    config = load_yaml(mounts["/etc/prometheus/prometheus.yml"])
    (rule_path,) = config["rule_files"]
    assert mounts[rule_path] == DEPLOY / "prometheus" / "rules.yaml"
    shutil.copy(mounts[rule_path], tmp_path / "rules.yaml")
    config["rule_files"] = ["rules.yaml"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = run("promtool", "check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_grafana_provisions_the_dashboard_from_prometheus() -> None:
    """The provisioned data source is the stack's Prometheus; the dashboard provider reads the mounted dashboard."""
    mounts = bind_mounts("grafana")
    datasources = mounts["/etc/grafana/provisioning/datasources"]
    (source,) = load_yaml(datasources / "prometheus.yaml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == f"http://prometheus:{next(iter(published('prometheus')))}"
    providers = load_yaml(mounts["/etc/grafana/provisioning/dashboards"] / "event-gateway.yaml")["providers"]
    path = providers[0]["options"]["path"]
    dashboards = {target: host for target, host in mounts.items() if target.startswith(path + "/")}
    assert list(dashboards.values()) == [DEPLOY / "grafana" / "event-gateway.json"]


def test_the_sandbox_runs_from_the_devkit_image() -> None:
    """The gateway image carries no devkit, so the stand-in vendor is built from the devkit's Dockerfile."""
    sandbox, gateway = service("unibo-sandbox"), service("gateway")
    assert sandbox["build"]["dockerfile"] == "deploy/docker/devkit.Dockerfile"
    assert gateway["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert sandbox["image"] != gateway["image"]
    assert sandbox["command"][0] == "sandbox"
