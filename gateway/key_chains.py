"""Per-key delivery for per-request connectors: each ordering key's records run as a task of their own, started after
that key's earlier records are settled, so one slow or failing player never holds back a lane's other players nor
its next batch, while each player's records still reach the vendor in source order."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from gateway.batcher import Item
from gateway.logs import destination_logger

ChainKey = tuple[str, str]  # (tenant, ordering key)


class KeyChains:
    """The running per-key deliveries of one destination; `failure` holds a bug that escaped one of them."""

    def __init__(self, destination: str) -> None:
        self._destination = destination
        self._log = destination_logger("gateway.key_chains", destination)
        self._tails: dict[ChainKey, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: dict[str, int] = {}  # per tenant: its deliveries running
        self._records: dict[asyncio.Task[None], tuple[str, list[Item]]] = {}  # each delivery's tenant and records
        self.failure: BaseException | None = None
        self._ended_one = asyncio.Event()  # set whenever a delivery ends: lanes waiting for room look again

    def start(
        self,
        tenant: str,
        groups: list[list[Item]],
        deliver: Callable[[list[Item]], Awaitable[None]],
        finished: Callable[[], None],
    ) -> None:
        """Deliver each group (one key's records) after that key's previous group; `finished` runs once all did."""
        remaining = len(groups)

        async def chain(records: list[Item], previous: asyncio.Task[None] | None) -> None:
            nonlocal remaining
            try:
                if previous is not None:
                    await asyncio.wait([previous])  # never raises: a cancelled predecessor just ends the wait
                await deliver(records)
            finally:
                remaining -= 1
                if remaining == 0:
                    finished()

        for records in groups:
            key = (tenant, records[0].record.key)
            task = asyncio.create_task(chain(records, self._tails.get(key)), name=f"chain:{self._destination}")
            self._tails[key] = task
            self._tasks.add(task)
            self._records[task] = (tenant, records)
            self._running[tenant] = self._running.get(tenant, 0) + 1
            task.add_done_callback(functools.partial(self._ended, key))

    def _ended(self, key: ChainKey, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        del self._records[task]
        self._running[key[0]] -= 1
        self._ended_one.set()
        if self._tails.get(key) is task:
            del self._tails[key]
        if not task.cancelled() and task.exception() is not None:
            self.failure = task.exception()
            self._log.error("a per-key delivery failed", exc_info=self.failure)

    def __len__(self) -> int:
        return len(self._tasks)

    def held(self, tenant: str) -> list[Item]:
        """The records of `tenant`'s deliveries that have not ended (being sent, or waiting for their key's turn)."""
        return [item for name, records in self._records.values() if name == tenant for item in records]

    def running(self, tenant: str) -> int:
        """How many of `tenant`'s deliveries run."""
        return self._running.get(tenant, 0)

    async def room(self, tenant: str, limit: int) -> None:
        """Wait while `limit` deliveries or more of `tenant` run: a vendor outage then stalls that tenant's lanes,
        which hold plain records, instead of piling up tasks; another tenant's stuck players never hold back this
        one's. (A batch may go over by its own size: a batch of more players than `limit` must not wait for every
        other player to finish.)"""
        while self._running.get(tenant, 0) >= limit:
            self._ended_one.clear()
            await self._ended_one.wait()

    async def wait(self) -> None:
        """Return when every delivery started so far has ended."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def close(self) -> None:
        """Cancel every running delivery (shutdown: their records stay unsettled, so uncommitted)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
