"""The Prometheus configuration, rules and Grafana dashboard: valid for promtool, unit-tested
rules, and every metric they read defined in the catalogue (a renamed metric fails here).

promtool comes from Debian's `prometheus` package: scripts/install-prometheus.sh installs it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from consumer.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "rules" / "lstm-scorer.rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "rules" / "lstm-scorer.rules.test.yml"
CONFIGS = (PROMETHEUS_DIR / "prometheus.yml", PROMETHEUS_DIR / "prometheus.compose.yml")
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "lstm-scorer.json"
DOCS = ROOT / "docs" / "observability.md"
JOB = "lstm-scorer"

# Bare words in PromQL that are neither metrics nor recording rules (grouping clauses and function
# calls are taken out before names are looked for).
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w:.$])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()")
_GRAFANA_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*\w+\)$")


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Runs promtool; fails (never skips) when it is missing, saying how to install it."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is not installed (it comes with Prometheus): run "
            "scripts/install-prometheus.sh, which installs Debian's prometheus package"
        )
    return subprocess.run(
        [exe, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def load_yaml(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), path
    return doc


def rules() -> list[dict[str, Any]]:
    """Every recording and alerting rule, in file order."""
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def alerts() -> dict[str, str]:
    """Alert name -> expression."""
    return {r["alert"]: r["expr"] for r in rules() if "alert" in r}


def recorded() -> dict[str, str]:
    """Recording rule name -> expression."""
    return {r["record"]: r["expr"] for r in rules() if "record" in r}


def load_dashboard() -> dict[str, Any]:
    doc = json.loads(DASHBOARD.read_text())
    assert isinstance(doc, dict)
    return doc


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows are layout), including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel query, as written (with Grafana variables)."""
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p["targets"]]


def variable_selectors(dashboard: dict[str, Any]) -> list[str]:
    """The series selectors of the dashboard's `label_values(selector, label)` variables."""
    found = []
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = _GRAFANA_LABEL_VALUES.match(query.strip())
        assert match, f"variable {var['name']}: unsupported query {query!r}"
        found.append(match.group(1).strip())
    return found


def names_in(expr: str) -> set[str]:
    """Metric and recording-rule names a PromQL expression reads: what is left once strings,
    label matchers, ranges, grouping clauses, function calls and keywords are taken out."""
    bare = _GROUPING.sub(" ", _MATCHERS.sub(" ", _STRINGS.sub('""', expr)))
    return {n for n in _NAME.findall(bare) if n.lower() not in _KEYWORDS}


@cache
def exposed_names() -> frozenset[str]:
    """Every series name a worker can expose, from the catalogue built on a fresh registry."""
    registry = CollectorRegistry()
    Metrics(registry)
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "info": ("_info",),
        "gauge": ("",),
    }
    return frozenset(
        family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]
    )


def unknown_names(exprs: Iterable[str]) -> set[str]:
    """Names read by `exprs` that neither the catalogue, the rules nor Prometheus define."""
    known = exposed_names() | recorded().keys() | {"up"}
    return {name for expr in exprs for name in names_in(expr)} - known


def test_names_in_finds_metrics_and_rules_but_not_labels_or_functions() -> None:
    expr = (
        'sum by (job, le) (rate(lstm_scorer_x_bucket{job="$job", le="1.0"}[$__rate_interval]))'
        ' / on (job) group_left job:lstm_scorer_y:rate5m > 0 and up{job="a"} offset 5m'
    )
    assert names_in(expr) == {"lstm_scorer_x_bucket", "job:lstm_scorer_y:rate5m", "up"}
    assert names_in("absent(up)") == {"up"}


def test_a_renamed_metric_is_reported() -> None:
    assert unknown_names(["rate(lstm_scorer_outputs_produced_total[5m])"]) == set()
    assert unknown_names(["rate(lstm_scorer_outputs_total[5m])"]) == {"lstm_scorer_outputs_total"}
    assert unknown_names(["lstm_scorer_build"]) == {"lstm_scorer_build"}  # Info: only _info
    assert unknown_names(["job:not_recorded:sum"]) == {"job:not_recorded:sum"}


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert set(alerts()) - firing == set(), "alerts never shown to fire"
    assert set(alerts()) - quiet == set(), "alerts never shown to stay quiet"
    assert firing | quiet <= set(alerts()), "tests name alerts that do not exist"


def test_rules_follow_the_conventions() -> None:
    for name in recorded():
        # level:metric:operations, the Prometheus naming convention for recording rules.
        assert re.fullmatch(r"[a-z_]+:lstm_scorer_[a-z0-9_]+:[a-z0-9_]+", name), name
    for rule in rules():
        if "alert" in rule:
            assert rule["alert"].startswith("LstmScorer"), rule["alert"]
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert {"up"} <= names_in(alerts()["LstmScorerWorkerDown"])


def test_rules_read_recorded_series_of_the_same_evaluation() -> None:
    """A rule reading a recorded series must come after its recording rule in the same group:
    groups are evaluated independently, so across groups it would read the previous value."""
    all_recorded = set(recorded())
    for group in load_yaml(RULES)["groups"]:
        earlier: set[str] = set()
        for rule in group["rules"]:
            reads = names_in(rule["expr"]) & all_recorded
            assert reads <= earlier, f"{rule.get('alert') or rule['record']} reads {reads}"
            if "record" in rule:
                earlier.add(rule["record"])


def test_promtool_accepts_both_prometheus_configs() -> None:
    for config in CONFIGS:
        result = promtool("check", "config", str(config))
        assert result.returncode == 0, f"{config.name}: {result.stdout}{result.stderr}"
        assert "SUCCESS: 1 rule files found" in result.stdout, config.name


def test_configs_scrape_the_workers_as_one_job() -> None:
    demo, compose = (load_yaml(path) for path in CONFIGS)
    demo_job = next(j for j in demo["scrape_configs"] if j["job_name"] == JOB)
    targets = [t for sc in demo_job["static_configs"] for t in sc["targets"]]
    assert targets == ["localhost:8001", "localhost:8002"]
    compose_job = next(j for j in compose["scrape_configs"] if j["job_name"] == JOB)
    assert compose_job["dns_sd_configs"] == [
        {"names": ["consumer"], "type": "A", "port": 8000, "refresh_interval": "10s"}
    ]
    for config in (demo, compose):
        assert config["rule_files"] == ["rules/*.rules.yml"]  # not the *.rules.test.yml files
    # The rules select the job by this name.
    assert f'job="{JOB}"' in alerts()["LstmScorerWorkerDown"]


def test_dashboard_parses_and_every_panel_has_a_query() -> None:
    dashboard = load_dashboard()
    shown = list(panels(dashboard))
    assert len(shown) >= 20
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in shown:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"panel {panel['title']!r}: empty query"
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"datasource", "job", "instance"}
    assert variables["job"]["current"]["value"] == JOB
    assert variables["instance"]["allValue"] == ".*"


def test_dashboard_shows_what_operators_need() -> None:
    """One panel (or more) per concern, found by the metric it reads."""
    exprs = " ".join(expr for _, expr in dashboard_exprs(load_dashboard()))
    for needed in (
        "lstm_scorer_records_consumed_total",
        "lstm_scorer_outputs_produced_total",
        "lstm_scorer_end_to_end_latency_seconds_bucket",
        "lstm_scorer_consumer_lag_records",
        "lstm_scorer_active_sequences",
        "lstm_scorer_state_table_bytes",
        "lstm_scorer_sequences_ended_total",
        "lstm_scorer_dlq_records_total",
        "lstm_scorer_rebalances_total",
        "lstm_scorer_restore_in_progress_partitions",
        "lstm_scorer_output_probability_bucket",
        "lstm_scorer_commit_seconds_bucket",
        "lstm_scorer_commit_failures_total",
        "lstm_scorer_build_info",
    ):
        assert needed in exprs, f"no panel reads {needed}"
    heatmaps = [p for p in panels(load_dashboard()) if p["type"] == "heatmap"]
    assert [t["format"] for p in heatmaps for t in p["targets"]] == ["heatmap"]


def test_every_metric_in_rules_and_dashboard_is_in_the_catalogue() -> None:
    dashboard = load_dashboard()
    exprs = [
        *rules_exprs(),
        *(expr for _, expr in dashboard_exprs(dashboard)),
        *variable_selectors(dashboard),
    ]
    assert unknown_names(exprs) == set()
    used = {name for expr in exprs for name in names_in(expr)}
    assert len(used & exposed_names()) >= 25  # the extraction did find the metrics


def rules_exprs() -> list[str]:
    return [r["expr"] for r in rules()]


def test_the_documentation_lists_every_metric_alert_and_recording_rule() -> None:
    documented = set(re.findall(r"`([\w:]+)`", DOCS.read_text()))
    registry = CollectorRegistry()
    Metrics(registry)
    suffix = {"counter": "_total", "info": "_info"}
    metrics = {f.name + suffix.get(f.type, "") for f in registry.collect()}
    assert metrics - documented == set(), "metrics missing from docs/observability.md"
    assert set(alerts()) - documented == set(), "alerts missing from docs/observability.md"
    assert set(recorded()) - documented == set(), "recording rules missing from the docs"
