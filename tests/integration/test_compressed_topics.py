"""Compressed topics: every codec production producers use is consumed, and a batch that cannot be decoded is loud."""

from __future__ import annotations

import asyncio

import aiokafka.codec
import pytest
from structlog.testing import capture_logs

from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, unibo_takes
from tests.integration.conftest import RunningSandbox
from tests.integration.harness import (
    committed,
    gateway_config,
    http_get,
    produce,
    running_gateway,
    unibo_destination,
    wait_for,
)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_every_codec_is_delivered_end_to_end(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, codec: str
) -> None:
    """Events produced with each compression type all reach the sandbox, and the offsets reach the end."""
    events = list(Traffic(seed=23, players=50).stream(600))
    expected = {event["event_id"] for event in events if unibo_takes(event)}
    await produce(broker.bootstrap_servers, topic, events, compression=codec)
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    async with running_gateway(tree) as gateway:
        await wait_for(lambda: unibo.sandbox.total_unique >= len(expected), 60, f"all {codec} events at the sandbox")
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="unibo") == 0, 30, "settlement")
        assert gateway.value("gateway_consumer_errors_total", destination="unibo", error="UnsupportedCodecError") == 0
    assert set(unibo.sandbox.unique_ids("default")) == expected
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)


async def test_an_undecodable_batch_is_loud_and_nothing_before_it_is_lost(
    broker: EmbeddedBroker,
    topic: str,
    unibo: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the codec library: not ready, a metric, a log naming the library, retried with backoff; once it is
    back, the same process delivers every event, the plain ones fetched together with the compressed batch too."""
    events = list(Traffic(seed=29, players=40).stream(800))
    plain, packed = events[:400], events[400:]
    expected = {event["event_id"] for event in events if unibo_takes(event)}
    await produce(broker.bootstrap_servers, topic, plain)
    await produce(broker.bootstrap_servers, topic, packed, compression="lz4")
    monkeypatch.setattr(aiokafka.codec, "cramjam", None)  # as if the library were not installed
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    with capture_logs() as logs:
        async with running_gateway(tree) as gateway:
            url = f"{gateway.gateway.http.url}/readyz" if gateway.gateway.http else ""
            labels = {"destination": "unibo", "error": "UnsupportedCodecError"}
            await wait_for(
                lambda: gateway.value("gateway_consumer_errors_total", **labels) >= 2,
                60,
                "the decoding failure counted (and retried with backoff)",
            )
            status, body = await http_get(url)
            assert status == 503
            assert "consumer_error" in body
            assert gateway.value("gateway_ready") == 0
            monkeypatch.undo()  # the operator installs the codec: the very same process recovers
            await wait_for(lambda: unibo.sandbox.total_unique >= len(expected), 60, "every event at the sandbox")
            await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="unibo") == 0, 30, "settled")
            await wait_for(lambda: _ready(url), 30, "ready again")
    assert set(unibo.sandbox.unique_ids("default")) == expected
    failures = [line for line in logs if line["event"].startswith("cannot read from Kafka")]
    assert failures, "no log line for the undecodable batch"
    assert "lz4" in failures[0]["error"], failures[0]
    assert "cramjam" in failures[0]["hint"], failures[0]
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)


async def _ready(url: str) -> bool:
    status, _ = await http_get(url)
    await asyncio.sleep(0)
    return status == 200
