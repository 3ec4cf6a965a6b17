"""Fixtures for the deploy/ tests: the parsed configuration files."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT, free_port

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
COLLECTOR = DEPLOY / "otel-collector-config.yaml"
PROMETHEUS = DEPLOY / "prometheus.yml"
LOKI = DEPLOY / "loki-config.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
GRAFANA = DEPLOY / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "datasources.yaml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yaml"
DASHBOARDS = GRAFANA / "dashboards"
CHAPTER = ROOT / "docs" / "500-going-to-production.md"


def load_yaml(path: Path) -> Any:
    """Parse one YAML file (safe loader: plain data only)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """Return deploy/compose.yaml."""
    return dict(load_yaml(COMPOSE))


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the compose services by name."""
    return dict(compose["services"])


@pytest.fixture(scope="session")
def collector() -> dict[str, Any]:
    """Return deploy/otel-collector-config.yaml."""
    return dict(load_yaml(COLLECTOR))


@pytest.fixture(scope="session")
def prometheus_config() -> dict[str, Any]:
    """Return deploy/prometheus.yml."""
    return dict(load_yaml(PROMETHEUS))


@pytest.fixture(scope="session")
def datasources() -> list[dict[str, Any]]:
    """Return the provisioned Grafana data sources."""
    return list(load_yaml(DATASOURCES)["datasources"])


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict[str, Any]]:
    """Return the Grafana dashboards by file name."""
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARDS.glob("*.json")}


def doc_invocation(script: str) -> tuple[dict[str, str], list[str]]:
    """Split a one-command docs block into (leading VAR=value assignments, argv).

    The e2e tests run the chapter's commands through this, as
    ``doc_invocation(doc_command("ID"))``, changing only what they must (free
    ports, a temporary database), so the docs cannot drift from what is tested.
    """
    script = script.replace("\\\n", " ")
    tokens = shlex.split(script)
    env: dict[str, str] = {}
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):
        name, _, value = tokens.pop(0).partition("=")
        env[name] = value
    assert tokens, f"no command in {script!r}"
    return env, tokens


@pytest.fixture
def free_ports() -> Iterator[int]:
    """Return an endless supply of distinct free loopback ports."""

    def ports() -> Iterator[int]:
        seen: set[int] = set()
        while True:
            port = free_port()
            if port not in seen:
                seen.add(port)
                yield port

    return ports()
