"""End to end: todo-client and the app, as separate processes, both exporting to otelviewer.

The app runs under the zero-code agent (``opentelemetry-instrument flask run``)
exporting OTLP/gRPC; the console script ``todo-client`` configures its SDK from the
standard ``OTEL_*`` variables (``todo.telemetry.configure_sdk``) and exports
OTLP/HTTP. otelviewer receives both, and its Jaeger-compatible API must show one
trace across the two services with the right parent/child links, and the
dependency ``todo-client -> todo``.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.otelviewer.conftest import Viewer, start_viewer
from tests.support import eventually, free_port, running, venv_env, wait_for_http

pytestmark = pytest.mark.e2e

#: How long the test waits for telemetry to reach the viewer. The client flushes
#: when it exits; the app's batch processor is set to export every 100 ms.
EXPORT_TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    """Start ``otelviewer serve`` on free loopback ports with a throwaway database."""
    with start_viewer(tmp_path_factory.mktemp("viewer")) as v:
        yield v


@pytest.fixture(scope="module")
def app_url(viewer: Viewer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run the app under the agent, exporting traces over OTLP/gRPC to the viewer."""
    tmp = tmp_path_factory.mktemp("app")
    port = free_port()
    env = venv_env(
        DATABASE_URL=f"sqlite:///{tmp / 'todo.sqlite'}",
        OTEL_SERVICE_NAME="todo",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{viewer.grpc_port}",
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    args = [
        "opentelemetry-instrument", "flask", "--app", "todo", "run",
        "--host", "127.0.0.1", "--port", str(port), "--no-reload",
    ]  # fmt: skip
    with running(args, env=env, stdout_path=tmp / "app.log"):
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz")
        yield url


def _client(viewer: Viewer, app_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = venv_env(
        TODO_URL=app_url,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{viewer.http_port}",
    )
    return subprocess.run(
        ["todo-client", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}


def _parent(span: dict[str, Any]) -> str | None:
    refs = [r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"]
    assert len(refs) <= 1
    return refs[0] if refs else None


def test_one_trace_across_client_and_server(viewer: Viewer, app_url: str) -> None:
    added = _client(viewer, app_url, "add", "Buy milk")
    assert (added.returncode, added.stderr) == (0, "")
    match = re.fullmatch(r"Added task (\d+): Buy milk\n", added.stdout)
    assert match
    task_id = int(match[1])

    def add_trace() -> dict[str, Any] | None:
        answer = httpx.get(
            f"{viewer.ui_url}/api/traces",
            params={"service": "todo-client", "operation": "todo-client add", "limit": 20},
            timeout=5,
        ).json()
        for candidate in answer["data"]:
            services = {p["serviceName"] for p in candidate["processes"].values()}
            names = {s["operationName"] for s in candidate["spans"]}
            # Complete once the app's own span (exported in a batch) is there too.
            if services == {"todo-client", "todo"} and "todo.tasks.add" in names:
                return candidate  # type: ignore[no-any-return]
        return None

    trace = eventually(add_trace, timeout=EXPORT_TIMEOUT_S)
    service_of = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    spans = {s["operationName"]: s for s in trace["spans"]}
    command, http, server, add = (
        spans["todo-client add"],
        spans["POST"],
        spans["POST /api/tasks"],
        spans["todo.tasks.add"],
    )
    assert {s["traceID"] for s in trace["spans"]} == {trace["traceID"]}
    assert service_of[command["processID"]] == "todo-client"
    assert service_of[http["processID"]] == "todo-client"
    assert service_of[server["processID"]] == "todo"
    assert service_of[add["processID"]] == "todo"
    # todo-client add -> POST (client) -> POST /api/tasks (server) -> todo.tasks.add
    assert _parent(command) is None
    assert _parent(http) == command["spanID"]
    assert _parent(server) == http["spanID"]
    assert _parent(add) == server["spanID"]
    assert _tags(command)["span.kind"] == "internal"
    assert _tags(command)["todo.task.id"] == task_id
    assert _tags(command)["process.exit.code"] == 0
    assert _tags(http)["span.kind"] == "client"
    assert _tags(server)["span.kind"] == "server"
    assert _tags(add)["todo.task.id"] == task_id

    def dependency() -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{viewer.ui_url}/api/dependencies",
            params={"endTs": int(time.time() * 1000), "lookback": 3_600_000},
            timeout=5,
        ).json()
        return [d for d in answer["data"] if (d["parent"], d["child"]) == ("todo-client", "todo")]

    (link,) = eventually(dependency, timeout=EXPORT_TIMEOUT_S)
    assert link["callCount"] >= 1


def test_a_failed_command_is_an_error_trace(viewer: Viewer, app_url: str) -> None:
    failed = _client(viewer, app_url, "delete", "987654")
    assert failed.returncode == 1
    assert failed.stderr.endswith("(HTTP 404)\n")

    def delete_trace() -> dict[str, Any] | None:
        answer = httpx.get(
            f"{viewer.ui_url}/api/traces",
            params={"service": "todo-client", "operation": "todo-client delete", "limit": 5},
            timeout=5,
        ).json()
        for candidate in answer["data"]:
            if any(s["operationName"].startswith("DELETE /api") for s in candidate["spans"]):
                return candidate  # type: ignore[no-any-return]
        return None

    trace = eventually(delete_trace, timeout=EXPORT_TIMEOUT_S)
    spans = {s["operationName"]: s for s in trace["spans"]}
    command, http = spans["todo-client delete"], spans["DELETE"]
    server = spans["DELETE /api/tasks/<int:task_id>"]
    assert _parent(server) == http["spanID"]
    assert _parent(http) == command["spanID"]
    assert _tags(command)["error"] is True
    assert _tags(command)["error.type"] == "404"
    assert _tags(command)["process.exit.code"] == 1
    assert _tags(server)["http.status_code"] == 404
