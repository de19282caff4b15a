"""The Helm chart (deploy/helm/lstm-scorer), rendered by a real helm and validated offline: every
object against the Kubernetes schemas (kubernetes-validate, a pinned Kubernetes version), the
custom resources against their published CRD schemas (deploy/helm/crd-sources.txt, from the Go
module proxy), and the contract with the service it deploys."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from consumer.config import _HELP, _env
from tests.unit.test_prometheus_rules import JOB

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "lstm-scorer"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "lstm-scorer.rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "lstm-scorer.json"
KUBE_VERSION = "1.37.0"  # the Kubernetes helm's client-go speaks; schemas of the same version
VALUES_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
# Set by the chart itself, from its own values (model, kafka, metricsPort, the pod name).
CHART_SET = {"MODEL_PATH", "INSTANCE_ID", "KAFKA_BOOTSTRAP_SERVERS", "METRICS_ADDR",
             "METRICS_PORT", "CREATE_TOPICS"}  # fmt: skip

Objects = list[dict[str, Any]]


@cache
def helm() -> str:
    """helm, built by the project's script if missing (it names what is missing, e.g. Go)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-helm.sh")],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, f"scripts/install-helm.sh failed:\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, check=False, timeout=120)


def render(*flags: str) -> Objects:
    done = run_helm("template", "scorer", str(CHART), "--kube-version", KUBE_VERSION, *flags)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(objects: Objects, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: Objects, kind: str) -> dict[str, Any]:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the CRD's openAPIV3Schema, from the module cache."""
    helm()  # the script downloads the modules too
    cache_dir = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    schemas = {}
    for line in (ROOT / "deploy" / "helm" / "crd-sources.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        module, version, path = line.split()
        escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in module)
        crd = yaml.safe_load((Path(cache_dir) / f"{escaped}@{version}" / path).read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            if v.get("served"):
                schemas[(f"{group}/{v['name']}", kind)] = v["schema"]["openAPIV3Schema"]
    return schemas


def validate(objects: Objects) -> None:
    for obj in objects:
        schema = crd_schemas().get((obj["apiVersion"], obj["kind"]))
        if schema is not None:
            jsonschema.Draft7Validator(schema).validate(obj)
        else:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


VALUES = [pytest.param([], id="defaults")] + [
    pytest.param(["-f", str(p)], id=p.name.removesuffix("-values.yaml")) for p in VALUES_FILES
]


def test_there_are_values_files_for_sasl_autoscaling_and_a_model_volume() -> None:
    names = {p.name for p in VALUES_FILES}
    assert {"sasl-values.yaml", "exactly-once-autoscaling-values.yaml",
            "model-volume-values.yaml"} <= names  # fmt: skip


@pytest.mark.parametrize("flags", VALUES)
def test_the_chart_lints_renders_and_every_object_validates(flags: list[str]) -> None:
    lint = run_helm("lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, *flags)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    objects = render(*flags)
    assert {"StatefulSet", "Service", "PodDisruptionBudget"} <= {o["kind"] for o in objects}
    validate(objects)


def test_custom_resources_are_validated_against_their_crds() -> None:
    objects = [o for p in VALUES_FILES for o in render("-f", str(p))]
    kinds = {(o["apiVersion"], o["kind"]) for o in objects}
    custom = {("keda.sh/v1alpha1", k) for k in ("ScaledObject", "TriggerAuthentication")}
    custom |= {("monitoring.coreos.com/v1", k)
               for k in ("ServiceMonitor", "PodMonitor", "PrometheusRule")}  # fmt: skip
    assert custom <= set(crd_schemas()) & kinds  # each rendered by some values file
    broken = one(render("-f", str(CHART / "ci" / "exactly-once-autoscaling-values.yaml")),
                 "ScaledObject")  # fmt: skip
    broken["spec"]["triggers"][0]["metadata"] = "not a map"
    with pytest.raises(jsonschema.ValidationError):
        validate([broken])  # the CRD schema really is applied


def worker(objects: Objects) -> dict[str, Any]:
    spec = one(objects, "StatefulSet")["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "worker")


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_instance_id_is_the_pod_name() -> None:
    env = env_of(worker(render()))
    assert env["INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_probes_ask_the_services_own_endpoints_on_its_metrics_port() -> None:
    objects = render("--set", "metricsPort=9100")
    c = worker(objects)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 9100} and env_of(c)["METRICS_PORT"] == "9100"
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    served = (ROOT / "consumer" / "http_endpoints.py").read_text()
    assert 'path == "/healthz"' in served and 'path == "/readyz"' in served
    service = one(objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_every_run_setting_is_reachable_from_values() -> None:
    every = {_env(name) for name in _HELP}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["settings"]) | CHART_SET == every
    env = env_of(worker(render(
        "--set", "settings.MAX_STEPS=50", "--set", "kafka.properties.x=1",
        "--set", "kafka.consumerProperties.session\\.timeout\\.ms=15000",
    )))  # fmt: skip
    assert env["MAX_STEPS"] == "50" and env["KAFKA_X"] == "1"
    assert env["KAFKA_CONSUMER_SESSION_TIMEOUT_MS"] == "15000"
    assert every - {"SHADOW_MODEL", "SHADOW_TOPIC"} <= set(env)  # empty ones are left out


def test_a_setting_the_chart_sets_is_refused_in_settings() -> None:
    done = run_helm("template", "s", str(CHART), "--set", "settings.INSTANCE_ID=x")
    assert done.returncode != 0 and "settings.INSTANCE_ID is set by the chart" in done.stderr


@pytest.mark.parametrize(("max_replicas", "partitions", "ok"), [(4, 4, True), (5, 4, False)])
def test_the_replica_ceiling_never_exceeds_the_partitions(
    max_replicas: int, partitions: int, ok: bool
) -> None:
    flags = ["--set", "autoscaling.enabled=true",
             "--set", f"autoscaling.maxReplicas={max_replicas}",
             "--set", f"kafka.inputPartitions={partitions}"]  # fmt: skip
    if ok:
        scaled = one(render(*flags), "ScaledObject")["spec"]
        assert scaled["maxReplicaCount"] == max_replicas <= partitions
        assert scaled["triggers"][0]["metadata"]["allowIdleConsumers"] == "false"
        assert "replicas" not in one(render(*flags), "StatefulSet")["spec"]  # KEDA's to set
        return
    done = run_helm("template", "s", str(CHART), *flags)
    assert done.returncode != 0 and "exceeds kafka.inputPartitions" in done.stderr


def test_autoscaling_and_the_topics_job_require_the_partition_count() -> None:
    for flag in ("autoscaling.enabled=true", "topics.job.enabled=true"):
        done = run_helm("template", "s", str(CHART), "--set", flag)
        assert done.returncode != 0 and "kafka.inputPartitions is required" in done.stderr


def test_the_prometheus_rule_is_the_rules_file(tmp_path: Path) -> None:
    rule = one(render("--set", "monitoring.prometheusRule.enabled=true"), "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    rendered = tmp_path / "rendered.rules.yml"
    rendered.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    check = subprocess.run(["promtool", "check", "rules", str(rendered)],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("monitor", ["serviceMonitor", "podMonitor"])
def test_scrapes_are_named_as_the_rules_and_dashboard_expect(monitor: str) -> None:
    objects = render("--set", f"monitoring.{monitor}.enabled=true")
    found = one(objects, monitor[0].upper() + monitor[1:])
    label = found["spec"]["jobLabel"]
    if monitor == "serviceMonitor":
        assert one(objects, "Service")["metadata"]["labels"][label] == JOB
    else:
        pod = one(objects, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
        assert pod[label] == JOB


def test_the_dashboard_configmap_is_the_dashboard_for_the_sidecar() -> None:
    cm = one(render("--set", "monitoring.dashboard.enabled=true"), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["lstm-scorer.json"]) == json.loads(DASHBOARD.read_text())


def test_pods_run_unprivileged_and_terminate_after_a_checkpoint() -> None:
    objects = render()
    pod = one(objects, "StatefulSet")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    c = worker(objects)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    commit_s = int(env_of(c)["COMMIT_INTERVAL_MS"]) / 1000
    assert pod["terminationGracePeriodSeconds"] > commit_s + 30  # flush and commit on SIGTERM
    assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]


def test_the_topics_job_creates_with_the_partition_count_and_the_workers_environment() -> None:
    objects = render("-f", str(CHART / "ci" / "sasl-values.yaml"))
    job = one(objects, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == ["create-topics", "--input-partitions", "12"]
    worker_env = env_of(worker(objects))
    worker_env.pop("INSTANCE_ID")
    assert env_of(c) == worker_env and c["envFrom"] == worker(objects)["envFrom"]
    assert "KAFKA_SECURITY_PROTOCOL" in worker_env  # the pass-through, from kafka.properties


@pytest.mark.parametrize(
    ("values", "check"),
    [
        ("model-volume-values.yaml",
         lambda pod, c: pod["volumes"][1]["persistentVolumeClaim"]["claimName"]
         == "lstm-scorer-models"
         and c["volumeMounts"][1] == {"name": "model", "mountPath": "/models", "readOnly": True}),
        ("model-init-container-values.yaml",
         lambda pod, c: pod["initContainers"][0]["volumeMounts"][0]["mountPath"] == "/models"
         and "emptyDir" in pod["volumes"][1]),
    ],
)  # fmt: skip
def test_the_model_comes_from_a_volume_or_an_init_container(
    values: str, check: Callable[[dict[str, Any], dict[str, Any]], bool]
) -> None:
    objects = render("-f", str(CHART / "ci" / values))
    pod = one(objects, "StatefulSet")["spec"]["template"]["spec"]
    assert check(pod, worker(objects))
