# One entry point for humans and CI. `make demo` runs the main job; `make test` runs the tests.
PY      ?= .venv/bin/python
PIP     ?= .venv/bin/pip
STAMP   := .venv/.installed

.PHONY: setup test lint demo bench bench-trigger bench-flow bench-scale fault-injection fault-injection-coalesce check-infra deploy-flow lock clean

setup: $(STAMP) node_modules/.package-lock.json

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

test: setup
	$(PY) -m pytest

# The function app on the Functions worker's BUNDLED azure-functions (what a placeholder cold start
# runs, see docs/function-app.md) as well as the pinned one: a second venv, the same constraints,
# then that version over it; the function-app tests (indexing replay included) run in it.
# Rebuilt only when the requirements change; pip's cache makes a rebuild take seconds, not minutes.
AF_BUNDLED ?= 1.22.0b4
AF_VENV    := .venv-af122
.PHONY: test-bundled-af
test-bundled-af: node_modules/.package-lock.json
	@if [ ! -f $(AF_VENV)/.installed-$(AF_BUNDLED) ] || \
	    [ -n "$$(find requirements.txt requirements-dev.txt constraints.txt -newer $(AF_VENV)/.installed-$(AF_BUNDLED))" ]; then \
	  set -ex; \
	  test -x $(AF_VENV)/bin/python || python3 -m venv $(AF_VENV); \
	  echo '*' > $(AF_VENV)/.gitignore; \
	  $(AF_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt; \
	  $(AF_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps azure-functions==$(AF_BUNDLED); \
	  $(AF_VENV)/bin/pip check; \
	  touch $(AF_VENV)/.installed-$(AF_BUNDLED); \
	fi
	$(AF_VENV)/bin/python -c 'import importlib.metadata as m; v = m.version("azure-functions"); assert v == "$(AF_BUNDLED)", v; print("azure-functions", v)'
	$(AF_VENV)/bin/python -m pytest tests/function_app -p no:cacheprovider

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy chunk_contract processing localdev sensorctl benchmarks function_app.py function_app tests/function_app tests/fakes tests/sensorctl
	# The flow imports its helpers as top-level modules (only flows/ is packaged for the pods).
	MYPYPATH=flows $(PY) -m mypy flows/*.py

demo: setup
	$(PY) -m localdev.demo

bench: setup
	$(PY) -m benchmarks.bench_processing

bench-trigger: setup
	$(PY) -m benchmarks.bench_trigger

# The flow (local runtime, Azurite) on 1M/10M/100M-sample chunks and 1-200-chunk batches, beside the CLI.
bench-flow: setup
	$(PY) -m benchmarks.bench_flow --options

# 10,000 sensors x 1 chunk/min through the real queue and ledger (Azurite), the drainer and the fake Argo.
bench-scale: setup
	$(PY) -m benchmarks.bench_scale

# Bicep static checks (checkov + tests/infra via pycep-parser) in their own venv .venv-checks.
check-infra:
	infra/check.sh

# Compile and create the WorkflowTemplate + CronWorkflow on the cluster, then make the cron
# Forbid overlaps (Metaflow cannot set concurrencyPolicy, and replaces the cron on every create),
# then check the deployment end to end. Needs Metaflow configured for Azure + Kubernetes (docs/flow.md).
deploy-flow: setup
	METAFLOW_KUBERNETES_SECRETS=sensor-storage METAFLOW_ARGO_WORKFLOWS_USE_SCHEDULES=true \
	  $(PY) flows/sensor_processing_flow.py --environment=conda --with retry argo-workflows create
	$(PY) -m sensorctl cron-forbid
	$(PY) -m sensorctl doctor

fault-injection: setup
	$(PY) -m pytest tests/e2e/test_fault_injection.py -s

fault-injection-coalesce: setup
	$(PY) -m pytest tests/e2e/test_fault_injection_coalesce.py -s

# Re-resolve requirements-dev.txt in a scratch venv and pin every package it pulls in.
lock:
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	{ sed -n '1,2p' constraints.txt; .lock-venv/bin/pip freeze; } > constraints.txt.new && mv constraints.txt.new constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf .venv .venv-af122 .venv-checks node_modules .pytest_cache .mypy_cache .ruff_cache .metaflow .demo .bench

# One fallback sweep (SENSOR_CHUNK_LAYOUT) vs the full listing, with 2k/20k/100k chunks of history on Azurite.
.PHONY: bench-fallback
bench-fallback: setup
	$(PY) -m benchmarks.bench_fallback
