"""deploy/kubernetes: both overlays render with `kubectl kustomize` and every object validates against Kubernetes."""

from __future__ import annotations

from functools import cache
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway import binding
from tests.deploy.observability import alerts
from tests.deploy.tools import DEPLOY, run

KUBERNETES = DEPLOY / "kubernetes"
OVERLAYS = ("standalone", "sidecar")
# The oldest Kubernetes the manifests target, and the newest schema kubernetes-validate bundles.
VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
CONTAINER = "event-gateway"
ENV = {"UNIBO_API_KEY": "k"}  # what the Secret provides; the rest has defaults


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    """The objects `kubectl kustomize` renders for an overlay."""
    result = run("kubectl", "kustomize", str(KUBERNETES / "overlays" / overlay))
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def one(overlay: str, kind: str, name: str | None = None) -> dict[str, Any]:
    """The single rendered object of `kind` (and `name`)."""
    found = [o for o in rendered(overlay) if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, (overlay, kind, name, [o["metadata"]["name"] for o in found])
    return found[0]


def pod_spec(overlay: str) -> dict[str, Any]:
    """The pod template spec of the workload that runs the gateway."""
    spec: dict[str, Any] = one(overlay, "Deployment")["spec"]["template"]["spec"]
    return spec


def gateway_container(overlay: str) -> dict[str, Any]:
    """The gateway's container in the overlay's pod."""
    containers = [c for c in pod_spec(overlay)["containers"] if c["name"] == CONTAINER]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def validate_servicemonitor(monitor: dict[str, Any], service: dict[str, Any]) -> None:
    """ServiceMonitor is a CRD (no bundled schema): check its shape and that it selects the Service."""
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {port["name"] for port in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
        assert endpoint["port"] in ports
        assert endpoint["path"] == "/metrics"


def validate_prometheusrule(rule: dict[str, Any]) -> None:
    """PrometheusRule is a CRD (no bundled schema): its shape, and the groups of deploy/prometheus/rules.yaml."""
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(rule["spec"]) == {"groups"}
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        for alert in group["rules"]:
            assert set(alert) <= {"alert", "record", "expr", "for", "labels", "annotations"}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_object_validates(overlay: str, version: str) -> None:
    """Each object validates strictly against the Kubernetes schema (the ServiceMonitor CRD structurally)."""
    kinds = []
    for obj in rendered(overlay):
        kinds.append(obj["kind"])
        if obj["kind"] == "ServiceMonitor":
            validate_servicemonitor(obj, one(overlay, "Service", "event-gateway"))
        elif obj["kind"] == "PrometheusRule":
            validate_prometheusrule(obj)
        else:
            kubernetes_validate.validate(obj, version, strict=True)
    assert {"ConfigMap", "Service", "ServiceMonitor", "PrometheusRule", "Deployment"} <= set(kinds)


def test_validation_catches_a_misspelt_field() -> None:
    """The validation above is not vacuous: a misspelt field of a rendered Deployment fails it."""
    deployment = one("standalone", "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_security_and_resources(overlay: str) -> None:
    """Liveness on /healthz, readiness on /readyz, a locked-down non-root container with resources."""
    container = gateway_container(overlay)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["port"] == "http-metrics"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] != 0
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert container["envFrom"] == [{"secretRef": {"name": "event-gateway-secrets"}}]
    assert container["args"] == ["run", "--config", "/etc/event-gateway/config.yaml"]
    assert container["image"] == "event-gateway:0.1.0"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_map_holds_a_valid_config_and_the_pod_outlives_its_drain(overlay: str) -> None:
    """The mounted config parses as a gateway config, listens where the probes look, and drains within the grace."""
    config_map = one(overlay, "ConfigMap")
    resolved = binding.parse(yaml.safe_load(config_map["data"]["config.yaml"]), env=ENV)
    spec = pod_spec(overlay)
    assert spec["terminationGracePeriodSeconds"] > resolved.gateway.shutdown.grace_period + 5
    port = next(p for p in gateway_container(overlay)["ports"] if p["name"] == "http-metrics")
    assert port["containerPort"] == resolved.gateway.http.port
    assert resolved.gateway.http.host == "0.0.0.0"  # the kubelet probes the pod IP
    mounts = {m["name"]: m for m in gateway_container(overlay)["volumeMounts"]}
    assert mounts["config"]["mountPath"] == "/etc/event-gateway"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]  # generator suffix followed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_selects_the_gateway_pod(overlay: str) -> None:
    """The metrics Service's selector matches the pod that runs the gateway, on its named port."""
    service = one(overlay, "Service", "event-gateway")
    labels = one(overlay, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http-metrics"


def test_standalone_runs_replicas_under_a_disruption_budget() -> None:
    """Standalone: several replicas, one PodDisruptionBudget selecting them, no InTarget volume claim."""
    deployment = one("standalone", "Deployment", "event-gateway")
    assert deployment["spec"]["replicas"] >= 2
    budget = one("standalone", "PodDisruptionBudget")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["maxUnavailable"] == 1
    assert not [o for o in rendered("standalone") if o["kind"] == "PersistentVolumeClaim"]


def test_sidecar_joins_the_producer_pod_with_the_store_claim() -> None:
    """Sidecar: the producer keeps its container and gains the gateway's, with the InTarget store on the claim."""
    workload = one("sidecar", "Deployment", "player-platform")
    names = [c["name"] for c in workload["spec"]["template"]["spec"]["containers"]]
    assert sorted(names) == ["event-gateway", "platform"]
    assert workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "player-platform"
    claim = one("sidecar", "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in pod_spec("sidecar")["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for m in gateway_container("sidecar")["volumeMounts"]}
    assert mounts["state"] == "/var/lib/event-gateway"
    assert not [o for o in rendered("sidecar") if o["kind"] == "PodDisruptionBudget"]


def test_both_layouts_run_the_same_gateway_container() -> None:
    """The sidecar patch and the standalone Deployment define one container (kept identical by this test)."""
    assert gateway_container("sidecar") == gateway_container("standalone")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_renders_without_warnings(overlay: str) -> None:
    """The overlays use `resources` and `patches`: current kubectl renders them without a deprecation warning."""
    result = run("kubectl", "kustomize", str(KUBERNETES / "overlays" / overlay))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    text = "".join(path.read_text() for path in KUBERNETES.rglob("kustomization.yaml"))
    for deprecated in ("bases:", "patchesStrategicMerge:", "patchesJson6902:", "commonLabels:"):
        assert f"\n{deprecated}" not in text, deprecated


def test_prometheus_rule_is_rules_yaml_with_absolute_runbook_urls() -> None:
    """The base's PrometheusRule holds exactly rules.yaml's alerts, each with an absolute runbook_url to its section."""
    from deploy.prometheus.prometheusrule import render  # noqa: PLC0415

    assert (KUBERNETES / "base" / "prometheusrule.yaml").read_text() == render(), "re-render prometheusrule.yaml"
    rule = one("standalone", "PrometheusRule")
    rendered_alerts = {a["alert"]: a for group in rule["spec"]["groups"] for a in group["rules"]}
    assert rendered_alerts.keys() == alerts().keys()
    for name, alert in rendered_alerts.items():
        source = alerts()[name]
        assert alert["expr"] == source["expr"] and alert["labels"] == source["labels"], name
        url = alert["annotations"]["runbook_url"]
        assert url.startswith("https://"), url
        assert url.endswith("#" + source["annotations"]["runbook"].partition("#")[2]), url


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_operator_objects_carry_the_release_label(overlay: str) -> None:
    """kube-prometheus-stack selects ServiceMonitors and PrometheusRules by `release`: both carry it, set once."""
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert one(overlay, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack", kind
    base = (KUBERNETES / "base" / "kustomization.yaml").read_text()
    assert base.count("value: kube-prometheus-stack") == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_intarget_feed_has_a_service_and_a_container_port(overlay: str) -> None:
    """InTarget's feed server gets its own Service on the container's named port, apart from /metrics."""
    service = one(overlay, "Service", "event-gateway-intarget-feed")
    (port,) = service["spec"]["ports"]
    container_ports = {p["name"]: p["containerPort"] for p in gateway_container(overlay)["ports"]}
    assert container_ports[port["targetPort"]] == port["port"] == 9110
    labels = one(overlay, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    monitor = one(overlay, "ServiceMonitor")
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    commented = (KUBERNETES / "base" / "config.yaml").read_text()
    assert "feed: {listen: 0.0.0.0:9110" in commented
