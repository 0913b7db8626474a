"""A parking reader at its brand's bound holds before it pauses, as the pipeline does: a poll with every partition
paused makes aiokafka drop what it prefetched (a brand's parked drain peaked at 200-213 MiB of RSS that way)."""

from __future__ import annotations

from gateway.load import HOLD
from tests.unit.test_parking_order import PARKING, _Consumer, _gate, _reader, _Source


def test_at_its_bound_a_reader_holds_then_pauses_and_resumes_from_half() -> None:
    gate, _, _, _ = _gate(_Source())
    reader, consumer = _reader(gate, []), _Consumer()
    load = reader._load
    for _ in range(1000):  # the brand's bound (1,000 messages) reached
        load.add(100)
    assert reader._room(consumer, 10.0) is None  # holding: no poll, nothing paused
    assert reader._room(consumer, 10.0 + HOLD - 0.1) is None
    assert consumer.paused == set()
    assert reader._room(consumer, 10.0 + HOLD) == 1  # held that long: an outage or a halt
    assert consumer.paused == {PARKING}
    for _ in range(600):  # back below half
        load.release(100)
    assert reader._room(consumer, 20.0) == 600  # room for 600 more under the bound
    assert consumer.paused == set()
    for _ in range(600):
        load.add(100)
    assert reader._room(consumer, 30.0) is None  # full again: a fresh hold
    assert consumer.paused == set()
