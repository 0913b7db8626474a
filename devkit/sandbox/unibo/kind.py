"""The Unibo sandbox's registration: how it is served, configured against and observed."""

from __future__ import annotations

from devkit.sandbox.kind import SandboxKind
from devkit.sandbox.unibo.sandbox import UniboSandbox

KIND: SandboxKind[UniboSandbox] = SandboxKind(
    name="unibo",
    port=9201,
    build=lambda keys, settings, seed: UniboSandbox(keys, fault_seed=seed),
    credentials=lambda key, settings: {"api_key": key},
    endpoints=(
        "events:  POST {url}/api/v1/events",
        "report:  GET {url}/_sandbox/unibo/received",
        "faults:  POST|GET|DELETE {url}/_sandbox/faults",
    ),
    received=lambda sandbox, tenant: set(sandbox.unique_ids(tenant)),
    arrivals=lambda sandbox, tenant: dict(sandbox.tenant(tenant).received),
    expected_id=lambda record: record.record_id,
    refuse=lambda sandbox, ids: sandbox.set_fail_items(ids),
)
