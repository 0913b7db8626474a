"""A newly assigned partition is read only once its assignment is prepared: aiokafka starts fetching it before it
calls the rebalance listener, and would hand its records to the pipeline while the listener still awaits."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from devkit.testbed.broker import EmbeddedBroker
from gateway import binding
from gateway.kafka_clients import destination_consumer
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline, _Rebalance
from tests.integration.harness import gateway_config, produce, unibo_destination

EVENTS = 200
PREPARING = 2.0  # how long the assignment's preparation takes here: ample for aiokafka to fetch meanwhile


async def test_records_of_a_partition_come_only_after_its_assignment_is_prepared(broker: EmbeddedBroker) -> None:
    """The preparation (the start position, the previous owner's settled offsets, parked events to wait for) is
    made slow. Before, records arrived while it ran: they were taken without knowing what it found (a record the
    previous owner had settled sent again; a brand's events delivered directly ahead of its parked ones)."""
    topic = "assignment-prepared"
    await broker.create_topic(topic, partitions=2)
    await produce(broker.bootstrap_servers, topic, [b'{"n": %d}' % n for n in range(EVENTS)], key=b"k")
    resolved = binding.parse(gateway_config(broker.bootstrap_servers, topic, [unibo_destination("http://x")]), env={})
    pipeline = Pipeline(resolved.destinations[0], resolved.gateway.kafka, None, Metrics(CollectorRegistry()))  # type: ignore[arg-type]
    prepared = asyncio.Event()
    assigned: list[TopicPartition] = []

    async def slow_preparation(partitions: list[TopicPartition], consumer: object = None) -> None:
        assigned.extend(partitions)
        await asyncio.sleep(PREPARING)
        prepared.set()

    pipeline.on_assigned = slow_preparation  # type: ignore[method-assign,assignment]
    consumer = destination_consumer(resolved.gateway.kafka, "assignment-prepared", "unibo", "earliest")
    consumer.subscribe(topics=[topic], listener=_Rebalance(pipeline, consumer))
    await consumer.start()
    early = received = 0
    try:
        async with asyncio.timeout(30):
            while received < EVENTS:
                batches = await consumer.getmany(timeout_ms=100)
                count = sum(len(records) for records in batches.values())
                received += count
                if not prepared.is_set():
                    early += count
    finally:
        await consumer.stop()
        await pipeline._cancel_workers()
    assert sorted(tp.partition for tp in assigned) == [0, 1]
    assert early == 0
    assert received == EVENTS  # paused while preparing, resumed after: nothing skipped
