# One entry point for humans and CI. `make demo` runs the main job; `make test` runs the tests.
PY      ?= .venv/bin/python
PIP     ?= .venv/bin/pip
STAMP   := .venv/.installed

.PHONY: setup test lint demo bench bench-trigger fault-injection lock clean

setup: $(STAMP) node_modules/.package-lock.json

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

test: setup
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy processing localdev sensorctl benchmarks function_app.py function_app tests/function_app tests/fakes
	# The flow imports its helpers as top-level modules (only flows/ is packaged for the pods).
	MYPYPATH=flows $(PY) -m mypy flows/*.py

demo: setup
	$(PY) -m localdev.demo

bench: setup
	$(PY) -m benchmarks.bench_processing

bench-trigger: setup
	$(PY) -m benchmarks.bench_trigger

fault-injection: setup
	$(PY) -m pytest tests/e2e -k fault_injection -s

# Re-resolve requirements-dev.txt in a scratch venv and pin every package it pulls in.
lock:
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	{ sed -n '1,2p' constraints.txt; .lock-venv/bin/pip freeze; } > constraints.txt.new && mv constraints.txt.new constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf .venv node_modules .pytest_cache .mypy_cache .ruff_cache .metaflow .demo .bench
