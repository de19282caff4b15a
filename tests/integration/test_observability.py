"""Observability end to end: a real Prometheus scrapes a live worker while records flow, and every
dashboard query and alert rule is run against it; /readyz during a long restore.

What "an alert rule works" means here, since an alert's expression is a condition that is
(rightly) empty on a healthy worker:
  - every series selector in every rule (recording and alerting) matches a live series, so no
    rule watches a metric, label or bucket boundary (le="120.0") the worker does not expose;
  - Prometheus evaluates every rule with health "ok" and no error (no matching or type errors);
  - every recording rule produces a series, and no alert fires on the healthy worker.
That each alert fires on its failure is shown by the promtool unit tests of the rules.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from producer_sim.cluster.ports import free_port
from producer_sim.cluster.processes import wait_for
from tests.kafka_harness import NewTopicFactory, delete_topics
from tests.service_harness import Deployment, interleaved_stream, save_user_model
from tests.unit.test_prometheus_rules import (
    JOB,
    RULES,
    dashboard_exprs,
    load_dashboard,
    names_in,
    promtool,
    rules,
    variable_selectors,
)

PARTITIONS = 2
RESTORE_KEYS = 200_000
# Grafana's variables as a dashboard viewer would have them: every worker of the job, and
# $__rate_interval as Grafana derives it from a 1 s scrape (4 scrapes), with some slack.
GRAFANA_VARIABLES = {
    "job": JOB,
    "instance": ".*",
    "__rate_interval": "15s",
    "__interval": "5s",
    "__range": "1m",
}
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def substitute(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced; an unknown variable is an error."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in GRAFANA_VARIABLES:
            raise KeyError(f"no test value for Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARIABLES[name]

    return _VARIABLE.sub(value, expr)


def selectors_in(expr: str) -> set[str]:
    """Every series selector (name and label matchers) in a PromQL expression."""
    found = set()
    for name in names_in(expr):
        for match in re.finditer(rf"(?<![\w:]){re.escape(name)}(\{{[^}}]*\}})?", expr):
            found.add(match.group(0))
    return found


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Small layers keep the 200k state records of the restore test small (about 150 bytes each).
    path = tmp_path_factory.mktemp("model") / "small.keras"
    return save_user_model(path, seed=5, units=(8, 4))


@pytest.fixture
def deployment(  # noqa: PLR0917  (pytest passes fixtures by name)
    kafka_bootstrap: str,
    kafka_admin: AdminClient,
    new_topic: NewTopicFactory,
    unique_group: Callable[[], str],
    model: Path,
    tmp_path: Path,
) -> Iterator[Deployment]:
    d = Deployment(
        kafka_bootstrap,
        new_topic(PARTITIONS),
        new_topic(PARTITIONS),
        new_topic(1),
        unique_group(),
        model,
        tmp_path,
    )
    try:
        yield d
    finally:
        d.stop_all()
        delete_topics(kafka_admin, [d.changelog])


class PrometheusServer:
    """A Prometheus on a free loopback port with temporary storage, scraping one worker every
    second under the production job name, with the production rules evaluated every second."""

    def __init__(self, workdir: Path, target_port: int) -> None:
        exe = shutil.which("prometheus")
        if exe is None:
            pytest.fail("prometheus is not installed: run scripts/install-prometheus.sh")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}
            ],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self._log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                exe,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        def ready() -> bool | None:
            assert self.proc.poll() is None, "prometheus exited; see prometheus.log"
            try:
                with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as resp:
                    return True if resp.status == 200 else None
            except (urllib.error.URLError, ConnectionError):
                return None

        wait_for(ready, timeout_s, "prometheus ready")

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as err:  # a bad query: 400 with the error in the body
            body = json.load(err)
        assert body["status"] == "success", f"{path} {params}: {body.get('error')}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._log.close()


class Feeder(threading.Thread):
    """Produces interleaved sequences and one bad record every round until stopped."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(name="feeder", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.halt = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            producer = Producer(
                {"bootstrap.servers": self.bootstrap, "partitioner": "murmur2_random"}
            )
            rng = np.random.default_rng(11)
            rounds = 0
            while not self.halt.is_set():
                records = interleaved_stream(rng, 20, max_len=8, key_prefix=f"obs{rounds}")
                for key, value in records:
                    producer.produce(self.topic, value, key.encode())
                producer.produce(self.topic, b"{not json", b"bad-input")  # a dead letter
                self.sent += len(records) + 1
                producer.poll(0)
                rounds += 1
                self.halt.wait(0.25)  # pacing: a few hundred records a second is plenty
            assert producer.flush(30) == 0
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        """Stops producing; raises what made the thread fail, if anything did."""
        self.halt.set()
        if self.is_alive():
            self.join(60)
        if self.error is not None:
            raise self.error


def test_prometheus_scrapes_a_live_worker_and_every_query_has_data(
    deployment: Deployment,
) -> None:
    # With a shadow model (the served one: agreement 1), so the shadow panels have data too.
    shadow = (
        "--shadow-model",
        str(deployment.model),
        "--shadow-topic",
        deployment.output + "-shadow",
    )
    worker = deployment.worker(*shadow)
    prometheus = PrometheusServer(deployment.workdir, worker.port)
    feeder = Feeder(deployment.bootstrap, deployment.input)
    try:
        prometheus.wait_ready()
        worker.wait_ready()
        feeder.start()
        wait_for(
            lambda: worker.metric("lstm_scorer_outputs_produced_total") > 0 or None,
            90,
            "outputs from the worker",
        )

        exposition = worker.http("/metrics")[1].decode()
        lint = promtool("check", "metrics", stdin=exposition)
        assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr

        dashboard = load_dashboard()
        panel_queries = [(title, substitute(expr)) for title, expr in dashboard_exprs(dashboard)]
        rule_selectors = sorted({s for rule in rules() for s in selectors_in(rule["expr"])})
        records = [rule["record"] for rule in rules() if "record" in rule]

        def empty_queries() -> list[str]:
            empty = [f"{t}: {q}" for t, q in panel_queries if not prometheus.query(q)]
            empty += [f"rule selector: {s}" for s in rule_selectors if not prometheus.query(s)]
            empty += [f"recording rule: {r}" for r in records if not prometheus.query(r)]
            for selector in variable_selectors(dashboard):
                if not prometheus.api("series", **{"match[]": substitute(selector)}):
                    empty.append(f"variable: {selector}")
            return empty

        # Rate windows fill up scrape by scrape: poll until every query has data, or report.
        last: list[list[str]] = []

        def all_have_data() -> bool | None:
            last[:] = [empty_queries()]
            return True if not last[0] else None

        try:
            wait_for(all_have_data, 90, "every query to return data")
        except TimeoutError:
            pytest.fail("queries without data:\n" + "\n".join(last[0]))

        def rule_states() -> list[dict[str, Any]]:
            groups = prometheus.api("rules")["groups"]
            return [rule for group in groups for rule in group["rules"]]

        wait_for(
            lambda: all(r["health"] == "ok" for r in rule_states()) or None,
            30,
            "every rule evaluated",
        )
        states = rule_states()
        assert len(states) == len(rules())
        assert [(r["name"], r["lastError"]) for r in states if r.get("lastError")] == []
        firing = [r["name"] for r in states if r["type"] == "alerting" and r["state"] == "firing"]
        assert firing == [], "alerts firing on a healthy worker"

        # One target, scraped (a single scrape may time out on a loaded machine: not a failure).
        up = prometheus.query(f'max_over_time(up{{job="{JOB}"}}[1m])')
        assert [s["value"][1] for s in up] == ["1"]
        print(
            f"\n{len(panel_queries)} panel queries, {len(rule_selectors)} rule selectors and "
            f"{len(records)} recording rules returned data; {feeder.sent} records fed"
        )
    finally:
        try:
            feeder.stop()
        finally:
            prometheus.stop()
    assert worker.terminate() == 0


def _state_record(model: Path) -> bytes:
    """One valid changelog state record for `model`, as a worker would write it."""
    from consumer.codecs.changelog import encode_state  # noqa: PLC0415
    from consumer.engine.state_table import StateTable  # noqa: PLC0415
    from consumer.model import load_step_function  # noqa: PLC0415

    step_fn = load_step_function(model)
    table = StateTable(step_fn.state_sizes, step_fn.n_outputs)
    slot = table.allocate("template", 0)
    table.steps[slot] = 3
    # Recent, so idle eviction (an hour by default) leaves the restored states alone.
    table.last_seen[slot] = time.time()
    table.last_output[slot] = 0.5
    for arr in table.states:
        arr[slot] = np.linspace(-0.5, 0.5, arr.shape[1], dtype=np.float32)
    return encode_state(table, "template", step_fn.version)


def test_readyz_is_not_ready_while_a_restore_runs(deployment: Deployment) -> None:
    """The changelog is written directly (valid state records for RESTORE_KEYS keys, each in the
    partition its key hashes to), so the restore's length does not depend on a first worker."""
    d = deployment
    admin = AdminClient({"bootstrap.servers": d.bootstrap})  # must outlive its futures
    futures = admin.create_topics(
        [NewTopic(d.changelog, PARTITIONS, config={"cleanup.policy": "compact"})]
    )
    futures[d.changelog].result(30)
    value = _state_record(d.model)
    producer = Producer(
        {
            "bootstrap.servers": d.bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "compression.type": "lz4",
        }
    )
    for i in range(RESTORE_KEYS):
        while True:
            try:
                producer.produce(d.changelog, value, f"restored-{i}".encode())
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0

    worker = d.worker()
    seen: list[tuple[int, str]] = []  # /readyz answers, each change once, in order

    def ready() -> bool | None:
        status, body = worker.http("/readyz")
        reason = json.loads(body)["reason"] if status else "not listening"
        if not seen or seen[-1] != (status, reason):
            seen.append((status, reason))
        return True if status == 200 else None

    wait_for(ready, 300, "the worker to become ready after its restore")
    restoring = [i for i, (status, reason) in enumerate(seen) if reason.startswith("restoring")]
    assert restoring, f"no restore observed on /readyz: {seen}"
    assert all(seen[i][0] == 503 for i in restoring)
    assert seen[-1][0] == 200 and restoring[-1] < len(seen) - 1, seen

    assert worker.metric("lstm_scorer_restored_records_total") == RESTORE_KEYS
    assert worker.metric("lstm_scorer_restored_states_discarded_total") == 0
    wait_for(
        lambda: worker.metric("lstm_scorer_active_sequences") == RESTORE_KEYS or None,
        30,
        "the restored sequences in the state table gauge",
    )
    seconds = worker.metric("lstm_scorer_restore_seconds_sum")
    print(f"\nrestored {RESTORE_KEYS} states in {seconds:.2f} s; /readyz went through {seen}")
    assert worker.terminate() == 0
