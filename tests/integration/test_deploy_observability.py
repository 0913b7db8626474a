"""The dashboard and the alert rules query only metrics a running gateway exports; the image's healthcheck works."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from tests.deploy.dockerfile import healthcheck_command, parse
from tests.deploy.observability import alerts, dashboard_queries, exported_names, metric_names
from tests.deploy.tools import DEPLOY
from tests.integration.conftest import RunningSandbox
from tests.integration.harness import gateway_config, http_get, running_gateway, unibo_destination


def _healthcheck(url: str) -> int:
    """Run the Dockerfile's HEALTHCHECK command with this interpreter against `url`; its exit code."""
    command = healthcheck_command(parse(DEPLOY / "docker" / "Dockerfile")[-1])
    assert command[0] == "python"
    env = {**os.environ, "GATEWAY_HEALTHZ_URL": url}
    return subprocess.run(
        [sys.executable, *command[1:]], check=False, env=env, capture_output=True, timeout=30
    ).returncode


async def test_queried_metrics_are_exported_and_healthcheck_passes(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox
) -> None:
    """Every gateway_* name in the dashboard and the rules is in a live /metrics; the HEALTHCHECK sees /healthz."""
    port = free_port()
    tree = gateway_config(
        broker.bootstrap_servers,
        topic,
        [unibo_destination(unibo.url), unibo_destination(unibo.url, name="unibo-b")],
        http_port=port,
    )
    async with running_gateway(tree):
        status, exposition = await http_get(f"http://127.0.0.1:{port}/metrics")
        healthy = await asyncio.to_thread(_healthcheck, f"http://127.0.0.1:{port}/healthz")
    assert status == 200
    exported = exported_names(exposition)
    assert "gateway_events_consumed_total" in exported  # the parse found the families
    dashboard_names = set().union(*(metric_names(query) for query in dashboard_queries()))
    rule_names = set().union(*(metric_names(rule["expr"]) for rule in alerts().values()))
    assert len(dashboard_names) >= 15 and len(rule_names) >= 8
    assert dashboard_names - exported == set()
    assert rule_names - exported == set()
    assert healthy == 0
    closed = await asyncio.to_thread(_healthcheck, f"http://127.0.0.1:{free_port()}/healthz")
    assert closed != 0
