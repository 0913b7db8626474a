"""The InTarget connector against the shared connector contract suite (its "vendor" is the feed store)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from connectors.intarget import connector
from connectors.intarget.client import IntargetClient
from connectors.intarget.config import IntargetCredentials
from connectors.intarget.store import FeedStore
from connectors.intarget.store_postgres import PostgresStore
from connectors.intarget.store_sqlite import SqliteStore
from devkit.testbed.contract import ConnectorContract, ScriptedTransport
from gateway import config as config_module
from gateway.connector import ClientContext, Connector, VendorRecord
from gateway.outcomes import Outcome
from tests.example_config import EXAMPLE_CONFIG, EXAMPLE_ENV


def store_client(store: FeedStore) -> IntargetClient:
    """A client writing through `store`."""
    destination = config_module.DestinationConfig(name="contract", connector="intarget")
    context = ClientContext(
        destination=destination,
        options=connector.options_model(),
        settings=None,
        http=ScriptedTransport(200),  # type: ignore[arg-type]
        shared=store,
    )
    return IntargetClient(context)


class TestIntargetContract(ConnectorContract):
    """Golden fixtures, purity, defaults, example config and the store's outcome table for InTarget."""

    connector: ClassVar[Connector] = connector
    golden_dir: ClassVar[Path] = Path(__file__).parent / "golden"
    example_config: ClassVar[Path | None] = EXAMPLE_CONFIG
    example_env: ClassVar[Mapping[str, str]] = EXAMPLE_ENV
    credentials: ClassVar[dict[str, Any]] = {}
    secrets: ClassVar[tuple[str, ...]] = ()

    def client(self, transport: ScriptedTransport) -> Any:
        """InTarget sends to no HTTP vendor: the client over a store that is not open answers like an outage."""
        return store_client(SqliteStore(Path("/nonexistent/never-opened.db")))

    @pytest.mark.parametrize("case", ["committed", "store_closed", "postgres_down", "bad_record"])
    async def test_outcome_table_conformance(self, case: str, tmp_path: Path) -> None:  # type: ignore[override]
        """A committed batch is delivered, an unreachable store retries, a record the store refuses is rejected."""
        records = self.sample_records()
        expected = Outcome.DELIVERED
        store: FeedStore = SqliteStore(tmp_path / "feeds.db")
        if case == "committed":
            await store.open()
        elif case == "postgres_down":
            store = PostgresStore("postgresql://postgres@127.0.0.1:1/test")
            expected = Outcome.RETRY
        elif case == "store_closed":
            expected = Outcome.RETRY
        else:
            await store.open()
            records = [VendorRecord("transactions", b"not json", "p", "r")]
            expected = Outcome.REJECT
        try:
            result = await store_client(store).send(IntargetCredentials(), records)
        finally:
            await store.close()
        assert result.outcome is expected, result
