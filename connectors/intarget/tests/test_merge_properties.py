"""Property: any sequence of partial player updates, cut into any batches, ends as the in-order fold of them."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.intarget.store_sqlite import SqliteStore
from connectors.intarget.tests.clock import ManualClock
from connectors.intarget.tests.test_store import by_id, player, read, records

FIELDS = {
    "first_name": st.sampled_from(["Ann", "Bo", None]),
    "city": st.sampled_from(["Riga", "Oslo", None]),
    "is_blocked": st.sampled_from([True, False, None]),
    "email": st.sampled_from(["a@example.com", "b@example.com", None]),
    "custom": st.dictionaries(st.sampled_from(["level", "tier"]), st.integers(0, 3), max_size=2),
}
UPDATES = st.lists(st.fixed_dictionaries({}, optional=FIELDS), min_size=1, max_size=12)


def fold(updates: list[dict[str, Any]]) -> dict[str, Any]:
    """What the rows must say: later values win, absent keeps, null clears, custom merges by key."""
    state: dict[str, Any] = {}
    custom: dict[str, int] = {}
    for update in updates:
        for name, value in update.items():
            if name == "custom":
                custom.update(value)
            else:
                state[name] = value
    return {**state, "custom": custom}


async def apply(updates: list[dict[str, Any]], cuts: list[int], path: Path) -> dict[str, Any]:
    """Write the updates in batches cut at `cuts`; the resulting stored fields."""
    store = SqliteStore(path, ManualClock())
    await store.open()
    try:
        events = [player(f"pl-{index}", **update) for index, update in enumerate(updates)]
        bounds = [0, *sorted(set(cuts)), len(events)]
        for start, end in itertools.pairwise(bounds):
            if start < end:
                await store.write(records(*events[start:end]))
        row = by_id(await read(store, "players"))["p-1"]
        contacts = by_id(await read(store, "contacts"), "player_id").get("p-1", {})
    finally:
        await store.close()
    stored: dict[str, Any] = {name: row[name] for name in ("first_name", "city", "is_blocked")}
    stored["email"] = contacts.get("email")
    stored["is_blocked"] = None if stored["is_blocked"] is None else bool(stored["is_blocked"])
    stored["custom"] = {name: int(value[1]) for name, value in orjson.loads(row["custom"] or "{}").items()}
    return stored


@settings(max_examples=40, deadline=None)
@given(updates=UPDATES, cuts=st.lists(st.integers(0, 12), max_size=4))
def test_partial_updates_fold_in_order_whatever_the_batches(updates: list[dict[str, Any]], cuts: list[int]) -> None:
    """The stored player equals the in-order fold of its partial updates, however they were batched."""
    expected = fold(updates)
    with tempfile.TemporaryDirectory() as folder:
        stored = asyncio.run(apply(updates, [c for c in cuts if c <= len(updates)], Path(folder) / "feeds.db"))
    for name in ("first_name", "city", "is_blocked", "email"):
        assert stored[name] == expected.get(name), name
    assert stored["custom"] == expected["custom"]
