"""The connector contract suite: every connector's tests subclass it (golden fixtures, purity, outcomes, secrets).

It reads only what the subclass names (its golden folder, an example configuration if any), never a file of this
repository, so a connector package of its own runs it too: `from devkit.testbed.contract import ConnectorContract`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from devkit.testbed.traffic import Traffic
from gateway import binding
from gateway import config as config_module
from gateway.connector import ClientContext, Connector, VendorRecord
from gateway.errors import EventError
from gateway.events import EVENT_TYPES, decode
from gateway.http_client import HttpResponse
from gateway.outcomes import FailureKind, Outcome, TransportFailure

TIMEOUT = TransportFailure(FailureKind.TIMEOUT)


class ScriptedTransport:
    """Answers every request with one fixed response and records the requests (the edge fake for client tests)."""

    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.response = HttpResponse(
            status, body, CIMultiDictProxy(CIMultiDict(headers or {})), TIMEOUT if status == 0 else None
        )
        self.requests: list[dict[str, Any]] = []

    async def request(
        self, method: str, url: str | URL, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        self.requests.append({"method": method, "url": str(url), "body": body, "headers": dict(headers or {})})
        return self.response

    async def close(self) -> None:
        return None


class ConnectorContract:
    """Subclass with the connector, its golden folder, and credentials whose secret values must never leak.

    Golden files sit beside the connector's tests (e.g. `golden_dir = Path(__file__).parent / "golden"`) and are JSON:
    {"event": <normalized event>, "options": {...} (optional), "items": [<expected record body>, ...],
    "routes": [<route per item>] (optional)}.
    """

    connector: ClassVar[Connector]
    golden_dir: ClassVar[Path]
    credentials: ClassVar[dict[str, Any]]
    secrets: ClassVar[tuple[str, ...]]
    base_url: ClassVar[str] = "https://vendor.invalid"
    example_config: ClassVar[Path | None] = None
    """A configuration file documenting a destination of this connector (checked when given)."""
    example_env: ClassVar[Mapping[str, str]] = {}
    """The environment the example configuration is read with."""

    # -- helpers --------------------------------------------------------------------------------------------------

    @classmethod
    def golden_files(cls) -> list[Path]:
        """Every golden fixture of the connector."""
        return sorted(cls.golden_dir.glob("*.json"))

    def options(self, raw: dict[str, Any] | None = None) -> Any:
        """The connector's options model from a dict."""
        return self.connector.options_model.model_validate(raw or {})

    def records_for(self, event: dict[str, Any], options: dict[str, Any] | None = None) -> Sequence[VendorRecord]:
        """Decode and map one event dict."""
        return self.connector.map(decode(orjson.dumps(event)), self.options(options))

    def client(self, transport: ScriptedTransport) -> Any:
        """The connector's client over a scripted transport."""
        destination = config_module.DestinationConfig(
            name="contract", connector=self.connector.name, base_url=self.base_url
        )
        context = ClientContext(destination=destination, options=self.options(), settings=None, http=transport)  # type: ignore[arg-type]
        return self.connector.client(context)

    def sample_records(self) -> list[VendorRecord]:
        """Records from the first golden fixture that maps to any."""
        for path in self.golden_files():
            case = orjson.loads(path.read_bytes())
            records = self.records_for(case["event"], case.get("options"))
            if records:
                return list(records)
        raise AssertionError("no golden fixture produces a record")

    # -- the contract ---------------------------------------------------------------------------------------------

    def test_golden_fixtures(self) -> None:
        """Each golden event maps to exactly the expected vendor records."""
        files = self.golden_files()
        assert files, f"no golden fixtures in {self.golden_dir}"
        for path in files:
            case = orjson.loads(path.read_bytes())
            records = self.records_for(case["event"], case.get("options"))
            assert [orjson.loads(r.body) for r in records] == case["items"], path.name
            if "routes" in case:
                assert [r.route for r in records] == case["routes"], path.name

    def test_mapping_is_pure_and_deterministic(self) -> None:
        """Mapping the same event twice gives identical records, ids included (idempotency keys are derived)."""
        for path in self.golden_files():
            case = orjson.loads(path.read_bytes())
            assert self.records_for(case["event"], case.get("options")) == self.records_for(
                case["event"], case.get("options")
            ), path.name

    def test_mapping_raises_only_event_errors(self) -> None:
        """Across a realistic stream of every type, mapping returns records or raises an EventError, nothing else."""
        for event in Traffic(seed=5, players=100, prefix="contract").stream(3000):
            try:
                records = self.records_for(event)
            except EventError:
                continue
            for record in records:
                assert isinstance(record.body, bytes) and record.key and record.record_id

    def test_default_events_are_the_types_the_mapping_takes(self) -> None:
        """Across a stream of every type, only events of the default types map to records: a type the mapping takes
        but the defaults leave out would be filtered before it is ever mapped (a MapDispatch's types are the
        defaults)."""
        taken: set[str] = set()
        for event in Traffic(seed=5, players=100, prefix="contract").stream(3000):
            try:
                records = self.records_for(event)
            except EventError:
                continue
            if records:
                taken.add(event["type"])
        assert taken, "no event of the stream maps to a record"
        assert sorted(taken - self.connector.defaults.events) == []

    def test_defaults_are_sane(self) -> None:
        """Default event types are contract types, at least one; batch bounds and concurrency are positive."""
        defaults = self.connector.defaults
        assert defaults.events and defaults.events <= set(EVENT_TYPES)
        assert defaults.max_events > 0 and defaults.max_bytes > 0 and defaults.linger_ms >= 0
        assert defaults.concurrency > 0

    def test_example_config_has_this_connector(self) -> None:
        """The example configuration documents a destination of this connector, and it parses."""
        if self.example_config is None:
            pytest.skip("no example configuration given (example_config)")
        resolved = binding.load(self.example_config, env=self.example_env)
        assert any(d.connector.name == self.connector.name for d in resolved.destinations)

    def test_credentials_never_show_their_secrets(self) -> None:
        """repr and str of the credentials model never show a secret value."""
        model = self.connector.credentials_model.model_validate(self.credentials)
        for secret in self.secrets:
            assert secret not in repr(model) and secret not in str(model)

    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (200, Outcome.DELIVERED),
            (204, Outcome.DELIVERED),
            (401, Outcome.HALT),
            (403, Outcome.HALT),
            (429, Outcome.RETRY),
            (500, Outcome.RETRY),
            (503, Outcome.RETRY),
            (0, Outcome.RETRY),
        ],
        ids=str,
    )
    async def test_outcome_table_conformance(self, status: int, outcome: Outcome) -> None:
        """The core's outcome table holds for this connector's client."""
        client = self.client(ScriptedTransport(status))
        credentials = self.connector.credentials_model.model_validate(self.credentials)
        result = await client.send(credentials, self.sample_records())
        assert result.outcome is outcome

    async def test_a_vendor_echoing_the_key_does_not_leak_it(self) -> None:
        """If a vendor's error body echoes the request, the secret never reaches a dead letter's error text."""
        from gateway.dlq import dead_letter_headers  # noqa: PLC0415
        from gateway.logs import scrubber  # noqa: PLC0415

        scrubber.register(self.secrets)
        echo = orjson.dumps({"error": "bad request", "echo": list(self.secrets)})
        client = self.client(ScriptedTransport(400, echo))
        credentials = self.connector.credentials_model.model_validate(self.credentials)
        result = await client.send(credentials, self.sample_records())
        message = SimpleNamespace(topic="t", partition=0, offset=1, key=None, value=b"{}", headers=[])
        headers = dict(dead_letter_headers(message, "d", "rejected", result.detail, result.status))
        for secret in self.secrets:
            assert secret.encode() not in headers["gateway-error"]
