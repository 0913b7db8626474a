"""A parking reader at its brand's bound holds before it pauses, as the pipeline does: a poll with every partition
paused makes aiokafka drop what it prefetched (a brand's parked drain peaked at 200-213 MiB of RSS that way)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.load import HOLD
from tests.unit.test_parking_order import PARKING, _Consumer, _gate, _parked, _reader, _Source


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


class _Prefetched(_Consumer):
    """A consumer whose polls return what it fetched ahead, as aiokafka's do: without suspending."""

    def __init__(self, polls: list[list[Any]], stop: asyncio.Event) -> None:
        super().__init__()
        self.polls, self.stop = polls, stop

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]:
        if not self.polls:
            self.stop.set()
            return {}
        return {PARKING: self.polls.pop(0)}


async def test_a_reader_gives_the_loop_a_turn_after_every_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    # Draining a parked brand beside the pipelines: every poll's records are handed on in one go, then the loop turns.
    gate, _, _, _ = _gate(_Source())
    ingested: list[int] = []
    reader, stop = _reader(gate, ingested), asyncio.Event()
    polls = [[_parked(poll * 50 + i, "casino-b") for i in range(50)] for poll in range(12)]
    consumer = _Prefetched(polls, stop)

    async def committed() -> None:  # a commit that does not suspend either
        return None

    monkeypatch.setattr(reader, "_commit", committed)
    turns: list[int] = []  # how many records were handed on at each turn of the loop

    async def probe() -> None:
        while not stop.is_set():
            turns.append(len(ingested))
            await asyncio.sleep(0)

    probing = asyncio.create_task(probe())
    await reader._read(consumer, stop)
    await probing
    assert len(ingested) == 600
    assert [count for count in range(50, 600, 50) if count in turns] == list(range(50, 600, 50))
