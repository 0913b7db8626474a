"""The UserWise sandbox's registration: how it is served, configured against and observed."""

from __future__ import annotations

from devkit.sandbox.kind import SandboxKind, Setting
from devkit.sandbox.userwise.sandbox import DEFAULT_SECRET, UserWiseSandbox


def _received(sandbox: UserWiseSandbox, tenant: str) -> set[str]:
    log = sandbox.app_log(tenant)
    return set(log.event_uids) | set(log.revenue)


KIND: SandboxKind[UserWiseSandbox] = SandboxKind(
    name="userwise",
    port=9203,
    build=lambda keys, settings, seed: UserWiseSandbox(keys, settings["secret"], fault_seed=seed),
    credentials=lambda key, settings: {"api_key": key, "secret_key": settings["secret"]},
    endpoints=(
        "events:  POST {url}/api/v1/appuser/{{id}}/events|revenue_events|attributes",
        "report:  GET {url}/_sandbox/userwise/received[?ids=1&player=ID]",
        "faults:  POST|GET|DELETE {url}/_sandbox/faults",
    ),
    received=_received,
    arrivals=lambda sandbox, tenant: dict(sandbox.app_log(tenant).first_seen),
    expected_id=lambda record: record.record_id if record.route != "attributes" else None,
    refuse=lambda sandbox, ids: sandbox.set_fail_uids(ids),
    settings={"secret": Setting(DEFAULT_SECRET, "the company secret that signs UserWise requests")},
    destination={"concurrency": 32},
)
