"""Scenario 7: the broker's SASL/SCRAM listener. A worker given the right credentials through the
environment (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME,
KAFKA_SASL_PASSWORD, passed through to librdkafka) scores correctly; one given a wrong password
stops at once with a clear error and a non-zero exit. No password appears in any log or metric."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.reliability.accounting import expect
from tests.reliability.conftest import DeploymentFactory
from tests.reliability.feeder import Feeder
from tests.reliability.fleet import Fleet
from tests.reliability.scenario import assert_clean, conclude
from tests.reliability.stage import SCRAM_MECHANISM, SaslBroker, Stage
from tests.reliability.test_hard_kills import stream

REFUSAL_BOUND_S = 90.0  # model loading included; the refusal itself takes about a second


def sasl_env(user: str, password: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
        "KAFKA_SASL_USERNAME": user,
        "KAFKA_SASL_PASSWORD": password,
    }


def test_sasl_credentials(stage: Stage, deployment: DeploymentFactory, tmp_path: Path) -> None:
    broker = stage.broker
    assert isinstance(broker, SaslBroker)
    dep = deployment(worker_bootstrap=broker.sasl_bootstrap)
    dep.fleet.env.update(sasl_env(broker.sasl_user, broker.sasl_password))
    wrong_password = "not-" + broker.sasl_password[::-1]
    refused = Fleet(dep.fleet.args, tmp_path, sasl_env(broker.sasl_user, wrong_password))
    started = time.monotonic()
    worker = dep.fleet.start("w0")
    intruder = refused.start("intruder")
    assert intruder.proc is not None
    intruder_exit = intruder.proc.wait(REFUSAL_BOUND_S)
    refused_after_s = time.monotonic() - started
    worker.wait_ready(180)
    records = stream(np.random.default_rng(700), 500, 20, "secure")
    feeder = Feeder(stage.bootstrap, dep.input, records)
    feeder.start()
    expected = expect(feeder.result(), stage.model, workdir=tmp_path)
    exposed: dict[str, Any] = {}

    def scrape() -> dict[str, Any]:
        metrics = worker.http("/metrics")[1]
        exposed["metrics"] = metrics
        return {"metrics_bytes": len(metrics)}

    summary = conclude(
        dep,
        scenario="security",
        expected=expected,
        started=started,
        drain_timeout_s=300,
        details={
            "listener": "SASL_PLAINTEXT " + SCRAM_MECHANISM,
            "wrong_password_exit": intruder_exit,
            "wrong_password_refused_after_s": round(refused_after_s, 1),
        },
        before_stop=scrape,
    )
    assert_clean(summary)
    assert intruder_exit == 3
    refusal = intruder.log_path.read_bytes()
    assert b"refused the credentials" in refusal and b"KAFKA_SASL_PASSWORD" in refusal
    texts = [worker.log_path.read_bytes(), refusal, exposed["metrics"]]
    for secret in (broker.sasl_password, wrong_password):
        assert all(secret.encode() not in text for text in texts), "a password leaked"
