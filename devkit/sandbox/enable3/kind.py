"""The Enable3 sandbox's registration: how it is served, configured against and observed."""

from __future__ import annotations

from typing import Any

import orjson

from devkit.sandbox.enable3.sandbox import Enable3Sandbox
from devkit.sandbox.kind import SandboxKind
from gateway.connector import VendorRecord


def _expected_id(record: VendorRecord) -> str | None:
    item: Any = orjson.loads(record.body)
    return item.get("id") or item.get("requestId") if isinstance(item, dict) else None  # segments: by count


def _received(sandbox: Enable3Sandbox, tenant: str) -> set[str]:
    log = sandbox.tenant(tenant)
    return set(log.events) | set(log.revenue)


KIND: SandboxKind[Enable3Sandbox] = SandboxKind(
    name="enable3",
    port=9202,
    build=lambda keys, settings, seed: Enable3Sandbox(keys, fault_seed=seed),
    credentials=lambda key, settings: {"api_key": key},
    endpoints=(
        "events:  POST {url}/api/v1/event  (+ /api/v1/revenue, /api/v1/segment/users)",
        "widget:  GET {url}/api/v1/integration/user/<id>/widget|token|balance",
        "report:  GET {url}/_sandbox/enable3/received",
        "faults:  POST|GET|DELETE {url}/_sandbox/faults",
    ),
    received=_received,
    arrivals=lambda sandbox, tenant: dict(sandbox.tenant(tenant).events),
    expected_id=_expected_id,
    refuse=lambda sandbox, ids: sandbox.set_fail_ids(ids),
)
