"""docker-compose.yml wires the services the way the README describes (parsed, no Docker needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
Services = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def services() -> Services:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    found = doc["services"]
    assert isinstance(found, dict)
    return found


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _pom_kafka_version() -> str:
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert match is not None
    return match.group(1)


def test_kafka_is_single_node_kraft_from_the_official_image(services: Services) -> None:
    kafka = services["kafka"]
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka"
    assert tag == _pom_kafka_version(), "compose and the local broker run different Kafka versions"
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(env["KAFKA_NODE_ID"] + "@")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"


def test_kafka_listeners_serve_containers_and_the_host(services: Services) -> None:
    kafka = services["kafka"]
    env = _env(kafka)
    advertised = dict(
        entry.split("://", 1) for entry in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    assert advertised["EXTERNAL"] == "localhost:9092"
    assert advertised["INTERNAL"] == "kafka:29092"
    assert any(str(p).endswith("9092:9092") for p in kafka["ports"])
    for service in ("consumer", "producer-sim"):
        assert _env(services[service])["KAFKA_BOOTSTRAP_SERVERS"] == advertised["INTERNAL"]


def test_kafka_has_a_healthcheck(services: Services) -> None:
    check = services["kafka"]["healthcheck"]
    command = " ".join(check["test"]) if isinstance(check["test"], list) else check["test"]
    assert "kafka-broker-api-versions" in command
    assert int(check["retries"]) > 0


def test_built_services_wait_for_a_healthy_broker(services: Services) -> None:
    built = {
        name: svc
        for name, svc in services.items()
        if isinstance(svc.get("build"), dict) and svc["build"]["dockerfile"] == "deploy/Dockerfile"
    }
    assert set(built) >= {"consumer", "producer-sim"}
    for name, svc in built.items():
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy", name
        assert (ROOT / svc["build"].get("context", ".") / svc["build"]["dockerfile"]).is_file()


def test_consumer_runs_two_replicas_with_a_model_volume(services: Services) -> None:
    consumer = services["consumer"]
    assert consumer["command"][:3] == ["run", "--model", "/models/model.keras"]
    assert "--create-topics" in consumer["command"]
    assert consumer["deploy"]["replicas"] == 2
    assert any(str(v).split(":")[1] == "/models" for v in consumer["volumes"])
    assert "8000" in [str(p) for p in consumer["expose"]]
    # Every other KAFKA_* variable is read by the service as a librdkafka property.
    assert [k for k in _env(consumer) if k.startswith("KAFKA_")] == ["KAFKA_BOOTSTRAP_SERVERS"]


def test_producer_sim_runs_the_simulator_module(services: Services) -> None:
    assert services["producer-sim"]["entrypoint"] == ["python", "-m", "producer_sim"]


def dockerfile_stages() -> dict[str, str]:
    """Each `FROM ... AS name` stage of deploy/Dockerfile, by name, with its instructions."""
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    parts = re.split(r"^FROM .* AS (\w+)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_dockerfile_installs_the_project_and_runs_the_consumer() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    # The project is built once, as a wheel with its C extension, in a stage with a compiler.
    wheel = dockerfile_stages()["wheel"]
    assert re.search(r"apt-get install .*\bgcc\b", wheel)
    # A failed compile fails the image build (setup.py), not only a slower engine.
    assert re.search(
        r"^RUN LSTM_SCORER_REQUIRE_EXTENSION=1 pip wheel --no-deps --wheel-dir /wheels \.$",
        wheel,
        re.M,
    )
    assert "setup.py" in wheel
    for name in ("serve", "full"):
        assert 'ENTRYPOINT ["python", "-m", "consumer"]' in dockerfile_stages()[name], name


def test_the_serve_image_has_no_tensorflow_and_runs_as_a_user() -> None:
    stages = dockerfile_stages()
    serve = stages["serve"]
    installs = re.findall(r"^RUN pip install (.+)$", serve, re.MULTILINE)
    assert installs == ["/wheels/*.whl"], "serve installs the serving dependencies only (no extras)"
    assert "gcc" not in serve and "gcc" not in stages["base"]
    assert re.search(r"^USER (?!root\b)\w+", serve, re.MULTILINE)
    assert list(stages)[-1] == "serve", "a build without --target gives the slim image"
    # The full image can train: TensorFlow and Keras come with the keras extra.
    assert re.search(r'^RUN pip install "[^"]*\.whl\)\[[^]]*\bkeras\b', stages["full"], re.M)


def test_workers_use_the_serve_image_and_the_tools_the_full_one(services: Services) -> None:
    assert services["consumer"]["build"]["target"] == "serve"
    assert services["producer-sim"]["build"]["target"] == "full"
    assert services["evaluate"]["image"] == services["producer-sim"]["image"]
    assert services["consumer"]["image"] != services["producer-sim"]["image"]


def test_prometheus_and_grafana_mount_the_repositorys_config(services: Services) -> None:
    prometheus = services["prometheus"]
    config = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    mount = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    in_container = config.split("=", 1)[1]
    host_dir = mount["/etc/prometheus"]
    assert (ROOT / host_dir / Path(in_container).relative_to("/etc/prometheus")).is_file()
    for volume in services["grafana"]["volumes"]:
        assert (ROOT / volume.split(":")[0]).is_dir(), volume


def test_the_evaluation_reads_the_labels_the_simulator_writes(services: Services) -> None:
    sim, evaluate = services["producer-sim"], services["evaluate"]
    labels_out = sim["command"][sim["command"].index("--labels-out") + 1]
    labels_in = evaluate["command"][evaluate["command"].index("--labels") + 1]
    assert labels_out == labels_in
    cond = evaluate["depends_on"]["producer-sim"]["condition"]
    assert cond == "service_completed_successfully"
