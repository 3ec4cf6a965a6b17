"""`make serve`: gunicorn with telemetry on, exporting OTLP to 127.0.0.1:4317 by default.

The default endpoint is moved to a throwaway otelviewer on a free port through the
same variable a user would set; everything else is the Makefile's default.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.otelviewer.conftest import start_viewer
from tests.support import eventually, free_port, running, venv_env, wait_for_http

pytestmark = pytest.mark.e2e


def test_make_serve_exports_to_the_local_collector_and_shares_one_secret_key(
    tmp_path: Path,
) -> None:
    port = free_port()
    with start_viewer(tmp_path) as viewer:
        env = venv_env(
            GUNICORN_BIND=f"127.0.0.1:{port}",
            WEB_CONCURRENCY="2",
            DATABASE_URL=f"sqlite:///{tmp_path / 'todo.db'}",
            OTEL_EXPORTER_OTLP_ENDPOINT=viewer.grpc_endpoint,
            OTEL_BSP_SCHEDULE_DELAY="200",
        )
        serve_log = tmp_path / "serve.log"
        with running(["make", "--no-print-directory", "serve"], env=env, stdout_path=serve_log):
            base = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base}/healthz")
            # Forms work whichever worker serves the next request: one key for all.
            for _ in range(4):
                with urllib.request.urlopen(f"{base}/", timeout=5) as page:
                    assert page.status == 200
            request = urllib.request.Request(
                f"{base}/api/tasks",
                data=json.dumps({"description": "Buy milk"}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 201

            def services() -> list[str]:
                with urllib.request.urlopen(f"{viewer.ui_url}/api/services", timeout=5) as r:
                    data: list[str] = json.load(r)["data"]
                    return data

            assert eventually(services, timeout=20) == ["todo"]
    log = serve_log.read_text()
    assert "Booting worker" in log
    assert "SECRET_KEY is not set" not in log
