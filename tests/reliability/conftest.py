"""Reliability scenarios: real workers against a real broker of their own, checked against the
replay command. Quick mode by default (part of `pytest tests`); RELIABILITY_MODE=full for the
sizes in RELIABILITY.md (`make reliability`). Each scenario writes its summary as JSON to
RELIABILITY_RESULTS (default: a folder under pytest's temporary directory).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from producer_sim.cluster.broker import started_on_free_ports
from producer_sim.cluster.broker_cluster import LocalCluster
from producer_sim.cluster.ports import free_port
from tests.reliability.profile import Profile, current_profile
from tests.reliability.secured_cluster import heal, secure_workers
from tests.reliability.stage import Deployment, SaslBroker, Stage
from tests.reliability.summary import results_folder
from tests.service_harness import save_user_model

_HERE = Path(__file__).resolve().parent

DeploymentFactory = Callable[..., Deployment]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: a fault-injection scenario against a broker of its own"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Scenarios need a broker: `-m "not integration"` leaves them out with the integration tests.
    for item in items:
        if item.path.parent == _HERE:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def profile() -> Profile:
    return current_profile()


@pytest.fixture(scope="session")
def stage(tmp_path_factory: pytest.TempPathFactory, profile: Profile) -> Iterator[Stage]:
    # Run dirs' names start with "kafka" so CI's exit trap finds and stops a broker left behind
    # by a killed session.
    password = secrets.token_hex(16)
    model = save_user_model(tmp_path_factory.mktemp("reliability-model") / "user.keras", seed=7)
    results = results_folder(tmp_path_factory.mktemp("reliability-results"))

    def new(port: int) -> SaslBroker:
        # A directory of its own per attempt: a refused start leaves its run directory formatted.
        run_dir = tmp_path_factory.mktemp("kafka-reliability")
        return SaslBroker(run_dir, port, port + 1, sasl_port=free_port(), sasl_password=password)

    broker = started_on_free_ports(new, 29192)
    try:
        yield Stage(broker, model, profile, results)
    finally:
        broker.stop()


@pytest.fixture
def deployment(stage: Stage, tmp_path: Path) -> Iterator[DeploymentFactory]:
    """`deployment(guarantee=..., extra_args=(...))` -> fresh topics, group and an empty fleet."""
    made: list[Deployment] = []

    def make(**kwargs: object) -> Deployment:
        dep = Deployment(stage, tmp_path, **kwargs)  # type: ignore[arg-type]
        made.append(dep)
        return dep

    yield make
    for dep in made:
        dep.teardown()


@pytest.fixture(scope="session")
def cluster_stage(
    tmp_path_factory: pytest.TempPathFactory, profile: Profile, stage: Stage
) -> Iterator[Stage]:
    """Three brokers with a mutual-TLS listener and ACLs; the same model and results as `stage`.
    Its folder's name starts with "kafka" so CI's exit trap stops its nodes too."""
    cluster = LocalCluster(
        tmp_path_factory.mktemp("kafka-cluster"), free_port(span=12), tls=True, acls=True
    )
    try:
        cluster.start()
    except RuntimeError:
        cluster.stop()
        raise
    try:
        yield Stage(cluster, stage.model, profile, stage.results)
    finally:
        cluster.stop()


@pytest.fixture
def cluster_deployment(cluster_stage: Stage, tmp_path: Path) -> Iterator[DeploymentFactory]:
    """`cluster_deployment(...)`: like `deployment`, on the three-broker cluster, its workers on
    the TLS listener with exactly their ACLs."""
    made: list[Deployment] = []

    def make(**kwargs: object) -> Deployment:
        dep = Deployment(cluster_stage, tmp_path, **kwargs)  # type: ignore[arg-type]
        made.append(dep)
        assert isinstance(cluster_stage.broker, LocalCluster)
        secure_workers(dep, cluster_stage.broker)
        return dep

    yield make
    for dep in made:
        dep.teardown()
    heal(cluster_stage)
