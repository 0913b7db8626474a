"""The whole gateway against a broker reachable only over mutual TLS: consume, deliver, dead-letter, commit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devkit.testbed.broker import BrokerTls, EmbeddedBroker, ThrowawayPki, make_throwaway_pki
from devkit.testbed.traffic import Traffic, message, unibo_takes
from gateway.kafka_security import KafkaSecurity, client_security_kwargs
from tests.integration.conftest import RunningSandbox
from tests.integration.harness import gateway_config, running_gateway, unibo_destination, wait_for


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayPki:
    """A throwaway CA, server and client certificates."""
    return make_throwaway_pki(tmp_path_factory.mktemp("gateway-pki"))


@pytest.fixture(scope="module")
def mtls_broker(pki: ThrowawayPki) -> Iterator[EmbeddedBroker]:
    """A broker that requires TLS and a client certificate from the throwaway CA."""
    tls = BrokerTls(pki.server_cert_file, pki.server_key_file, client_ca_file=pki.ca_file)
    with EmbeddedBroker(tls=tls) as embedded:
        yield embedded


async def test_gateway_runs_over_mutual_tls(
    mtls_broker: EmbeddedBroker, pki: ThrowawayPki, unibo: RunningSandbox
) -> None:
    """Configured with kafka.security.tls, the gateway consumes, commits and dead-letters over mutual TLS."""
    security = {
        "tls": {
            "enabled": True,
            "ca_file": str(pki.ca_file),
            "cert_file": str(pki.client_cert_file),
            "key_file": str(pki.client_key_file),
        }
    }
    options: dict[str, Any] = client_security_kwargs(KafkaSecurity.model_validate(security))
    topic = "tls-events"
    await mtls_broker.create_topic(topic, 3, client_options=options)
    await mtls_broker.create_topic(f"{topic}.dlq", 1, client_options=options)
    events = [e for e in Traffic(seed=61, players=50, prefix="mtls").stream(400) if unibo_takes(e)]
    producer = AIOKafkaProducer(bootstrap_servers=mtls_broker.bootstrap_servers, **options)
    await producer.start()
    try:
        for event in events:
            key, value = message(event)
            await producer.send(topic, value, key=key)
        await producer.send_and_wait(topic, b"not json", key=b"x")
    finally:
        await producer.stop()
    tree = gateway_config(mtls_broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    tree["kafka"]["security"] = security
    async with running_gateway(tree) as gateway:
        await wait_for(lambda: unibo.sandbox.total_unique >= len(events), 60, "delivery over TLS")
        await wait_for(
            lambda: (
                gateway.value("gateway_events_dead_lettered_total", destination="unibo", reason="invalid_json") == 1
            ),
            30,
            "the dead letter over TLS",
        )
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="unibo") == 0, 20, "settled")
    assert set(unibo.sandbox.unique_ids("default")) == {e["event_id"] for e in events}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=mtls_broker.bootstrap_servers,
        group_id=f"gw-{topic}.unibo",
        enable_auto_commit=False,
        **options,
    )
    await consumer.start()
    try:
        total = sum([(await consumer.committed(TopicPartition(topic, p))) or 0 for p in range(3)])
    finally:
        await consumer.stop()
    assert total == len(events) + 1
