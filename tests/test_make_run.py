"""`make run`, as the README shows it: otelviewer plus the instrumented app, and Ctrl+C."""

from __future__ import annotations

import json
import socket
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.doccmd import doc_command
from tests.support import eventually, free_port, running, venv_env, wait_for_http

pytestmark = pytest.mark.e2e


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _post_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_make_run_serves_the_app_and_shows_its_traces_in_otelviewer(tmp_path: Path) -> None:
    ports = {
        "APP_PORT": free_port(),
        "OTLP_GRPC_PORT": free_port(),
        "OTLP_HTTP_PORT": free_port(),
        "UI_PORT": free_port(),
    }
    env = venv_env(**{k: str(v) for k, v in ports.items()}, VIEWER_DB=str(tmp_path / "v.db"))
    # The app's own database goes to a throwaway file too.
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'todo.db'}"
    log = tmp_path / "run.log"
    app = f"http://127.0.0.1:{ports['APP_PORT']}"
    ui = f"http://127.0.0.1:{ports['UI_PORT']}"

    with running(["bash", "-c", doc_command("make-run")], env=env, stdout_path=log) as proc:
        wait_for_http(f"{app}/healthz", timeout=60)
        eventually(lambda: "Press Ctrl+C" in log.read_text(), timeout=30)
        printed = log.read_text()
        assert f"http://localhost:{ports['APP_PORT']}" in printed
        assert f"http://localhost:{ports['UI_PORT']}" in printed

        task = _post_json(f"{app}/api/tasks", {"description": "Buy milk"})
        assert task["description"] == "Buy milk"

        tags = urllib.parse.quote(json.dumps({"http.target": "/api/tasks"}))
        query = f"{ui}/api/traces?service=todo&tags={tags}"
        traces = eventually(lambda: _get_json(query)["data"], timeout=15)
        spans = traces[0]["spans"]
        names = {s["operationName"] for s in spans}
        assert "POST /api/tasks" in names
        assert "todo.tasks.add" in names
        assert proc.poll() is None

    assert proc.returncode is not None
    for port in ports.values():
        assert not _listening(port), f"port {port} still open after Ctrl+C"
