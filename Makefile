# flask-opentelemetry: `make help` lists every target.
# Every target that needs Python creates .venv/ and installs the pinned lock into
# it when the venv is missing or older than pyproject.toml / the lock files.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
QUICK  ?=
TRAFFIC ?=

.DEFAULT_GOAL := help
.PHONY: help venv run serve test lint format lock bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is needed; set PYTHON=python3.x")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

venv: $(STAMP) ## Create .venv and install the pinned dependencies

run: $(STAMP) ## Start otelviewer and the instrumented To-Do app (Ctrl+C stops both)
	@TRAFFIC=$(TRAFFIC) RUN_OWNER=$$PPID PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/run.sh

serve: $(STAMP) ## Run the app under gunicorn, exporting OTLP to 127.0.0.1:4317 (otelviewer or a Collector)
	@# Defaults only: any OTEL_* or SECRET_KEY already in the environment wins. One key
	@# for all workers, so a form served by one worker posts to another.
	@export OTEL_SERVICE_NAME=$${OTEL_SERVICE_NAME:-todo} \
	  OTEL_TRACES_EXPORTER=$${OTEL_TRACES_EXPORTER:-otlp} \
	  OTEL_METRICS_EXPORTER=$${OTEL_METRICS_EXPORTER:-otlp} \
	  OTEL_LOGS_EXPORTER=$${OTEL_LOGS_EXPORTER:-otlp} \
	  OTEL_EXPORTER_OTLP_ENDPOINT=$${OTEL_EXPORTER_OTLP_ENDPOINT:-http://127.0.0.1:4317} \
	  OTEL_EXPORTER_OTLP_INSECURE=$${OTEL_EXPORTER_OTLP_INSECURE:-true} \
	  SECRET_KEY=$${SECRET_KEY:-$$($(PY) -c 'import secrets; print(secrets.token_hex(32))')} \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH"; \
	exec gunicorn -c deploy/gunicorn.conf.py

test: $(STAMP) ## Run the whole test suite
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest

lint: $(STAMP) ## ruff (lint + format check), mypy strict, and the lock check
	$(VENV)/bin/ruff check src tests bench deploy scripts
	$(VENV)/bin/ruff format --check src tests bench deploy scripts
	$(VENV)/bin/mypy
	$(PY) scripts/check_lock.py

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix src tests bench deploy scripts
	$(VENV)/bin/ruff format src tests bench deploy scripts

lock: $(STAMP) ## Regenerate requirements*.txt from pyproject.toml (needs uv and the registry)
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.10 -q -o requirements.txt
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.10 --extra dev -q -o requirements-dev.txt

bench: $(STAMP) ## Measure what telemetry costs and how fast otelviewer is (QUICK=1: under a minute)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/run.py $(if $(QUICK),--quick)

clean: ## Remove the venv, caches and local databases
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache instance src/instance output.log test-artifacts
