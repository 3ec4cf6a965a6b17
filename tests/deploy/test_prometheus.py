"""Prometheus for real: Debian's prometheus scrapes the app's own /metrics endpoint.

The app runs as the chapter shows (docs/500-going-to-production.md, block
``500-scrape``): gunicorn with one worker and ``OTEL_METRICS_EXPORTER=prometheus``,
so the worker's telemetry (set up in ``post_fork``) serves the OpenTelemetry
Prometheus exporter on a free loopback port. Prometheus runs with the ``todo``
job of deploy/prometheus.yml, its target pointed at that port and its interval
shortened to one second. After known traffic, the Prometheus HTTP API must
return the exact tasks-created count and the HTTP duration histogram.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import PROMETHEUS, doc_invocation, load_yaml
from tests.doccmd import doc_command
from tests.support import eventually, running, venv_env, wait_for_http, wait_for_port

pytestmark = pytest.mark.e2e

PROMETHEUS_BIN = Path("/usr/bin/prometheus")
#: Scrape every second so the test waits seconds, not the production 15 s.
SCRAPE_INTERVAL = "1s"
#: Long enough for several scrapes after the last request on a busy 2-core machine.
QUERY_TIMEOUT_S = 30.0
#: Tasks the test creates; the counter must say exactly this.
TASKS = 3
#: Bucket boundaries of http.server.request.duration (stable semconv, seconds):
#: 14 advisory boundaries, so 15 buckets including +Inf.
DURATION_BUCKETS = 15


def prometheus_binary() -> Path:
    """Return Debian's prometheus, or skip (fail in CI, where .ci/run installs it)."""
    found = shutil.which("prometheus")
    path = Path(found) if found else PROMETHEUS_BIN
    if not path.exists():
        message = (
            f"Debian's prometheus is not installed at {PROMETHEUS_BIN} (apt-get install prometheus)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def scrape_config(target: str) -> dict[str, Any]:
    """Return deploy/prometheus.yml reduced to its `todo` job, aimed at ``target``."""
    deployed = load_yaml(PROMETHEUS)
    (job,) = [j for j in deployed["scrape_configs"] if j["job_name"] == "todo"]
    job = {k: v for k, v in job.items() if not k.endswith("_sd_configs")}
    job["static_configs"] = [{"targets": [target]}]
    job["scrape_interval"] = SCRAPE_INTERVAL
    job["scrape_timeout"] = SCRAPE_INTERVAL
    return {
        "global": {**deployed["global"], "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [job],
    }


class PromAPI:
    """The Prometheus HTTP API on loopback."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Return the instant vector for ``promql`` (``[]`` while there is no data)."""
        url = f"{self.base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def value(self, promql: str) -> float | None:
        """Return the single value of ``promql``, or None while it has no sample."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])


@pytest.fixture
def scrape_mode_app(tmp_path: Path, free_ports: Iterator[int]) -> Iterator[tuple[str, int]]:
    """Start the chapter's scrape-mode command; yield (app URL, metrics port)."""
    doc_env, argv = doc_invocation(doc_command("500-scrape"))
    assert argv[:3] == ["gunicorn", "-c", "deploy/gunicorn.conf.py"]
    assert doc_env["OTEL_METRICS_EXPORTER"] == "prometheus"
    app_port, metrics_port = next(free_ports), next(free_ports)
    overrides = {
        # Free loopback ports instead of the documented 9464 and 5000.
        "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(metrics_port),
        "GUNICORN_BIND": f"127.0.0.1:{app_port}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'todo.sqlite'}",
    }
    env = venv_env(**{**doc_env, **overrides})
    with running(argv, env=env, stdout_path=tmp_path / "gunicorn.log"):
        wait_for_port(app_port)
        wait_for_http(f"http://127.0.0.1:{metrics_port}/metrics")
        yield f"http://127.0.0.1:{app_port}", metrics_port


def post_json(url: str, body: dict[str, Any]) -> int:
    """POST ``body`` as JSON; return the status."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def test_prometheus_scrapes_the_tasks_counter_and_the_duration_histogram(
    tmp_path: Path, scrape_mode_app: tuple[str, int], free_ports: Iterator[int]
) -> None:
    binary = prometheus_binary()
    app_url, metrics_port = scrape_mode_app
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(f"127.0.0.1:{metrics_port}")))
    prom_port = next(free_ports)
    argv = [
        str(binary),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]
    with running(argv, env=venv_env(), stdout_path=tmp_path / "prometheus.log"):
        wait_for_http(f"http://127.0.0.1:{prom_port}/-/ready")
        prom = PromAPI(prom_port)

        for i in range(TASKS):
            assert post_json(f"{app_url}/api/tasks", {"description": f"task {i}"}) == 201
        with urllib.request.urlopen(f"{app_url}/", timeout=10) as page:
            assert page.status == 200

        up = 'up{job="todo"}'
        assert eventually(lambda: prom.value(up) == 1.0, timeout=QUERY_TIMEOUT_S)
        created = 'todo_tasks_created_total{job="todo"}'
        assert eventually(lambda: prom.value(created) == TASKS, timeout=QUERY_TIMEOUT_S)
        assert prom.value('todo_tasks_open{job="todo"}') == TASKS

        posts = 'job="todo",http_route="/api/tasks",http_request_method="POST"'
        count = f"http_server_request_duration_seconds_count{{{posts}}}"
        assert eventually(lambda: prom.value(count) == TASKS, timeout=QUERY_TIMEOUT_S)
        buckets = prom.query(f"http_server_request_duration_seconds_bucket{{{posts}}}")
        assert len(buckets) == DURATION_BUCKETS
        by_le = {b["metric"]["le"]: float(b["value"][1]) for b in buckets}
        assert by_le["+Inf"] == TASKS
        values = [by_le[le] for le in sorted(by_le, key=lambda le: float(le))]
        assert values == sorted(values), "histogram buckets must be cumulative"
        assert all(b["metric"]["http_response_status_code"] == "201" for b in buckets)
