"""Readiness: /readyz's verdict, and the gateway_ready gauge that exports it for the flapping alert."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from gateway.app import Gateway
from gateway.binding import parse
from gateway.http_server import readiness


@dataclass
class FakePipeline:
    """What readiness reads from a pipeline."""

    name: str
    joined: bool = True
    halted: bool = False
    kafka_problem: str | None = None


def _gateway() -> Gateway:
    tree = {
        "kafka": {"bootstrap_servers": "127.0.0.1:9092", "topics": ["t"], "dlq_topic": "t.dlq"},
        "destinations": [
            {
                "name": "unibo",
                "connector": "unibo",
                "base_url": "http://127.0.0.1:1",
                "credentials": {"default": {"api_key": "k"}},
            }
        ],
    }
    return Gateway(parse(tree, env={}))


def test_readiness_needs_every_pipeline_joined_and_none_halted() -> None:
    """Ready only with pipelines, all joined, none halted; each destination's state is named."""
    assert readiness([]) == (False, {})
    assert readiness([FakePipeline("a"), FakePipeline("b")]) == (True, {"a": "ready", "b": "ready"})
    assert readiness([FakePipeline("a"), FakePipeline("b", joined=False)]) == (False, {"a": "ready", "b": "joining"})
    assert readiness([FakePipeline("a", halted=True)]) == (False, {"a": "halted"})
    assert readiness([FakePipeline("a", kafka_problem="consumer_error")]) == (False, {"a": "consumer_error"})
    assert readiness([FakePipeline("a", kafka_problem="kafka_unreachable")]) == (False, {"a": "kafka_unreachable"})


def test_ready_gauge_follows_the_pipelines_at_scrape_time() -> None:
    """gateway_ready is 0 before the pipelines exist, 1 when ready, 0 again while a tenant is halted."""
    gateway = _gateway()
    assert gateway.registry.get_sample_value("gateway_ready") == 0.0
    pipelines = [FakePipeline("unibo")]
    gateway.pipelines = cast(Any, pipelines)
    assert gateway.registry.get_sample_value("gateway_ready") == 1.0
    pipelines[0].halted = True
    assert gateway.registry.get_sample_value("gateway_ready") == 0.0
