# buildwright developer entry points. `make test` works on a fresh machine: it creates the
# virtualenv, builds (or reuses) the control plane binaries and runs every gate.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
KUBECONFIG_LOCAL := .local/kubeconfig

.PHONY: generated venv control-plane entrypoint shp lint typecheck unit integration test chaos crds cluster cluster-down run e2e-local e2e-kind bench bench-operator peer clean

$(BIN)/buildwright: pyproject.toml localcluster/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e ./localcluster
	touch $@

venv: $(BIN)/buildwright

control-plane:
	@bash hack/build-control-plane.sh >/dev/null

# Tekton's step entrypoint for this machine: the node agent runs it in front of each step.
entrypoint:
	@bash hack/build-entrypoint.sh >/dev/null

lint: venv
	$(BIN)/ruff check operator localcluster tests bench e2e
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q tests/unit

integration: venv control-plane
	$(BIN)/pytest -q tests/integration

test: venv control-plane lint typecheck
	$(BIN)/pytest -q tests

# The fault tests at full size (issue 15; `make test` runs them small): 10 operator SIGKILLs
# during 200 BuildRuns, etcd + apiserver restarted under 50, watches forced to 410 under 50.
chaos: venv control-plane
	BUILDWRIGHT_CHAOS=full $(BIN)/pytest -q -s tests/integration/test_chaos.py

# Real builds through the node agent (needs root and the tools .ci/run installs).
# The upstream shp CLI for the end-to-end tests (they skip, saying why, if it cannot be built).
shp:
	@bash hack/build-shp.sh >/dev/null || echo "warning: shp could not be built; the shp tests will skip" >&2

e2e-local: venv control-plane entrypoint shp
	$(BIN)/pytest -q e2e/local

# The peer of the comparison: Shipwright's build controller and Tekton's controller, built from
# their Go modules into ~/.cache/buildwright/peer/ (minutes the first time; cached by version).
peer:
	@bash hack/build-peer.sh >/dev/null

# buildwright and the peer side by side on one control plane, scenario by scenario (issue 18;
# about an hour; writes bench/results-peer.md): BENCH_ARGS="--repeats 1",
# BENCH_SCENARIOS="--scenario steady-10" for one scenario.
BENCH_SCENARIOS ?= --scenario steady-10 --scenario steady-20 --scenario burst-500 --scenario memory-5000
bench: venv control-plane peer
	$(BIN)/python bench/run.py --compare --bound-rate 2 $(BENCH_SCENARIOS) $(BENCH_ARGS)

# The operator alone, every scenario (issue 9; writes bench/results.md):
# BENCH_ARGS="--scenario steady-100 --quick".
bench-operator: venv control-plane
	$(BIN)/python bench/run.py $(BENCH_ARGS)

crds: venv
	$(BIN)/python -m buildwright.api.crdgen crds

# Everything generated from the code: the CRDs and the table of reasons.
generated: crds
	$(BIN)/python -c "from buildwright.core.reasons import reasons_table; print(reasons_table(), end='')" > docs/reasons.md

cluster: venv control-plane
	$(BIN)/python -m buildwright_localcluster up --kubeconfig $(KUBECONFIG_LOCAL)

cluster-down: venv
	$(BIN)/python -m buildwright_localcluster down --kubeconfig $(KUBECONFIG_LOCAL)

# The local control plane, the node agent (runs build Pods as processes on this machine; needs
# root and the tools the steps call, see e2e/local/README.md) and the operator in the
# foreground. `buildwright run --local` installs the CRDs and strategies itself.
run: cluster entrypoint
	@mkdir -p .local
	@$(BIN)/python -m buildwright_localcluster.nodeagent --kubeconfig $(KUBECONFIG_LOCAL) --state-dir .local/agent \
		>.local/node-agent.log 2>&1 & agent=$$!; \
	trap 'kill $$agent 2>/dev/null; wait $$agent 2>/dev/null' EXIT INT TERM; \
	echo "node agent running (log: .local/node-agent.log)"; \
	$(BIN)/buildwright run --local

e2e-kind:
	bash e2e/kind.sh

clean: cluster-down
	rm -rf $(VENV) .local
