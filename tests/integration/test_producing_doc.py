"""docs/producing.md's Python producer runs as printed, against the real broker, and produces a valid event."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from devkit.testbed.broker import EmbeddedBroker
from gateway.events import DepositEvent, decode

DOC = Path(__file__).resolve().parents[2] / "docs" / "producing.md"


async def test_the_documented_python_producer_produces_a_valid_keyed_event(broker: EmbeddedBroker, topic: str) -> None:
    """The snippet, minus its last line (the `asyncio.run` with the doc's broker), produces one valid deposit.

    Tansu answers InitProducerId with an unknown error, so idempotence is switched off here (real Kafka has it).
    """
    (snippet,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert "enable_idempotence=True," in snippet
    *body, last = snippet.replace("enable_idempotence=True,", "enable_idempotence=False,").strip().splitlines()
    assert last.startswith("asyncio.run(produce_deposit(")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(body), str(DOC), "exec"), namespace)
    await namespace["produce_deposit"](broker.bootstrap_servers, topic)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
        (message,) = [message for messages in batches.values() for message in messages]
    finally:
        await consumer.stop()
    event = decode(message.value)
    assert isinstance(event, DepositEvent)
    assert message.key == event.player_id.encode()
    assert event.event_id.startswith("dep-") and str(event.amount) == "50.00"
