# Developer and CI entry points. `make test` is what the README and .ci/run use.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Re-install only when the dependency list or the C extension changes.
STAMP := $(VENV)/.install-stamp
BROKER := bash deploy/kafka/local-kafka.sh
export KERAS_BACKEND ?= tensorflow
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv install tools lint test test-unit broker-start broker-stop broker-status clean

venv install: $(STAMP)

$(STAMP): pyproject.toml setup.py consumer/engine/batch_loops.c consumer/model/cell_loops.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# promtool and prometheus (Debian's package), which the observability tests run for real; helm
# (built from the Go module proxy) and the CRD schemas, which the chart tests render against.
tools:
	bash scripts/install-prometheus.sh
	bash scripts/install-helm.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict consumer producer_sim bench
	$(BIN)/mypy --strict tests  # relaxed for tests in pyproject.toml

# Unit and integration tests; the integration session starts and stops its own broker unless
# KAFKA_BOOTSTRAP_SERVERS names one. pytest's exit code 5 (nothing collected) fails too.
test: $(STAMP) tools
	$(BIN)/pytest tests

test-unit: $(STAMP)
	$(BIN)/pytest -m "not integration" tests

broker-start:
	$(BROKER) start

broker-stop:
	$(BROKER) stop

broker-status:
	$(BROKER) status

# Three brokers with mutual TLS and ACLs (docs/local-broker.md, docs/security.md).
.PHONY: cluster-start cluster-stop cluster-status
cluster-start cluster-stop cluster-status: $(STAMP)
	KAFKA_TLS=1 KAFKA_ACLS=1 bash deploy/kafka/local-kafka-cluster.sh $(@:cluster-%=%)

# Keeps .venv (slow to rebuild) and the Maven cache in ~/.m2.
clean:
	$(BROKER) stop
	rm -rf deploy/kafka/run deploy/kafka/lib build .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
	rm -rf ./*.egg-info

# The pipeline end to end on this machine: broker (started if needed, stopped after), reference
# model (trained if missing), two workers, the simulator with a live view for DEMO_SECONDS
# (default 60) at DEMO_RATE records/s (default 2000), then the evaluation report in reports/.
.PHONY: demo rollout-demo
demo: $(STAMP)
	$(BIN)/python -m producer_sim demo

# The demo with a model rollout 30 s into sending: a second version (trained if missing) becomes
# current by SIGHUP; the live view shows sequences per version as the first drains.
rollout-demo: $(STAMP)
	$(BIN)/python -m producer_sim demo --rollout-after-s 30

# Benchmarks side by side (BENCHMARKS.md): the engine against the Keras approaches, the service
# against a passthrough, kcat (Debian's package, installed if missing) and a Quix Streams
# application (in a virtual environment of its own, built if missing) on a local broker of their
# own. Results in bench/results/.
.PHONY: bench bench-quick bench-startup bench-tools
bench: $(STAMP) bench-tools
	$(BIN)/python -m bench

bench-tools:
	bash scripts/install-kcat.sh
	bash scripts/install-quix-peer.sh

# Worker start-up, RSS and installed size: the TensorFlow-free worker against the TensorFlow loader.
bench-startup: $(STAMP)
	$(BIN)/python -m bench.startup

bench-quick: $(STAMP) bench-tools
	$(BIN)/python -m bench --quick

# Reliability scenarios (tests/reliability, see RELIABILITY.md): real workers against a broker of
# their own, through hard kills, broker restarts, rebalance storms, bad input, overload and
# never-ending sequences, each checked against the replay command. `make test` runs them in quick
# mode; `reliability` runs the full sizes. Both print the summary table from RELIABILITY_RESULTS.
RELIABILITY_RESULTS ?= build/reliability
.PHONY: reliability reliability-quick
reliability: $(STAMP)
	rm -rf $(RELIABILITY_RESULTS)
	rc=0; RELIABILITY_MODE=full RELIABILITY_RESULTS=$(RELIABILITY_RESULTS) \
		$(BIN)/pytest --timeout 3600 tests/reliability || rc=$$?; \
		$(BIN)/python -m tests.reliability.report $(RELIABILITY_RESULTS) || rc=$$((rc ? rc : 1)); \
		exit $$rc

reliability-quick: $(STAMP)
	rm -rf $(RELIABILITY_RESULTS)
	rc=0; RELIABILITY_MODE=quick RELIABILITY_RESULTS=$(RELIABILITY_RESULTS) \
		$(BIN)/pytest tests/reliability || rc=$$?; \
		$(BIN)/python -m tests.reliability.report $(RELIABILITY_RESULTS) || rc=$$((rc ? rc : 1)); \
		exit $$rc
