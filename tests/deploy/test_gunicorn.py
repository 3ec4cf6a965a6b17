"""gunicorn with two workers exports OTLP to a real otelviewer, per worker, losing nothing.

Runs the two commands of docs/500-going-to-production.md ("gunicorn and fork
safety": blocks ``500-otelviewer`` and ``500-gunicorn``) on free ports, with
two changes for the test:

* the span, log and metric export delays are an hour, so nothing leaves a
  worker before it stops: everything otelviewer has afterwards was flushed by
  ``worker_exit`` during the graceful stop;
* spans also go to the console exporter, so the log shows every span the
  workers recorded, to compare with what otelviewer stored.

Which worker serves a request is up to the kernel, so the test decides it: it
opens a connection and sends half a request. The sync worker that accepts it
blocks reading the rest, and the next requests can only be served by the
other worker. Then it finishes the held request.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import doc_invocation
from tests.doccmd import doc_command
from tests.support import ROOT, eventually, running, stop, venv_env, wait_for_port

pytestmark = pytest.mark.e2e

#: The worker count of the chapter's command.
WORKERS = 2
#: Export delays (ms) longer than the test: only the shutdown flush exports.
HOLD_MS = str(3_600_000)
#: Tasks the other worker creates while the first one holds a half-sent request:
#: a count different from the held worker's 1, so each series is recognisable.
OTHER_WORKER_TASKS = 3
#: gunicorn's graceful stop, bounded by graceful_timeout (30 s) in the config.
STOP_TIMEOUT_S = 45.0
#: Worker start-up imports the app and migrates a fresh SQLite database.
BOOT_TIMEOUT_S = 60.0
#: A span printed by the console exporter: its own id, inside "context".
CONSOLE_SPAN_ID = re.compile(r'"span_id": "0x([0-9a-f]{16})"')
INSTANCE_ID_LOG = re.compile(r"telemetry on, service\.instance\.id=([0-9a-f-]{36})")


@dataclass
class Viewer:
    """A running ``otelviewer serve``."""

    grpc_port: int
    ui_port: int

    def get(self, path: str) -> Any:
        """GET a JSON document from the query API."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}{path}", timeout=10) as r:
            return json.load(r)


@pytest.fixture
def viewer(tmp_path: Path, free_ports: Iterator[int]) -> Iterator[Viewer]:
    """Start the chapter's ``otelviewer serve`` on free ports with a temporary database."""
    doc_env, argv = doc_invocation(doc_command("500-otelviewer"))
    assert argv == ["otelviewer", "serve"]
    grpc_port, http_port, ui_port = next(free_ports), next(free_ports), next(free_ports)
    argv += [
        "--host", "127.0.0.1",
        "--grpc-port", str(grpc_port),
        "--http-port", str(http_port),
        "--ui-port", str(ui_port),
        "--db", str(tmp_path / "otelviewer.db"),
    ]  # fmt: skip
    with running(argv, env=venv_env(**doc_env), stdout_path=tmp_path / "otelviewer.log"):
        wait_for_port(grpc_port)
        wait_for_port(ui_port)
        yield Viewer(grpc_port, ui_port)


def hold_a_worker(port: int, body: bytes) -> socket.socket:
    """Send all of a POST but the blank line that ends its headers; return the socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /api/tasks HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        b"Connection: close\r\n" + f"Content-Length: {len(body)}\r\n".encode()
    )
    return sock


def finish(sock: socket.socket, body: bytes) -> bytes:
    """Send the rest of the held request and return the whole response."""
    sock.sendall(b"\r\n" + body)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def post_task(port: int, description: str) -> int:
    """Create a task through the JSON API; return the status."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/tasks",
        data=json.dumps({"description": description}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def instance_of(trace: dict[str, Any], span: dict[str, Any]) -> str:
    """Return the service.instance.id of the process that recorded ``span``."""
    tags = {t["key"]: t["value"] for t in trace["processes"][span["processID"]]["tags"]}
    return str(tags["service.instance.id"])


def last_values(viewer: Viewer, metric: str) -> dict[str, float]:
    """Return {service.instance.id: latest value} of a cumulative sum, per series."""
    series = viewer.get(f"/api/v1/metrics/{metric}/series?service=todo")["data"]
    values: dict[str, float] = {}
    for one in series:
        instance = str(one["resource"]["service.instance.id"])
        assert instance not in values, f"two series of {metric} for one worker: {series}"
        values[instance] = float(one["points"][-1]["value"])
    return values


def test_two_workers_report_separately_and_a_graceful_stop_loses_nothing(
    tmp_path: Path, viewer: Viewer, free_ports: Iterator[int]
) -> None:
    doc_env, argv = doc_invocation(doc_command("500-gunicorn"))
    assert argv == ["gunicorn", "-c", "deploy/gunicorn.conf.py", "--workers", str(WORKERS)]
    assert doc_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"
    app_port = next(free_ports)
    overrides = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{viewer.grpc_port}",
        "OTEL_TRACES_EXPORTER": doc_env["OTEL_TRACES_EXPORTER"] + ",console",
        "OTEL_BSP_SCHEDULE_DELAY": HOLD_MS,
        "OTEL_BLRP_SCHEDULE_DELAY": HOLD_MS,
        "OTEL_METRIC_EXPORT_INTERVAL": HOLD_MS,
        "GUNICORN_BIND": f"127.0.0.1:{app_port}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'todo.sqlite'}",
    }
    log = tmp_path / "gunicorn.log"
    # running() only cleans up after a failure: the test itself stops the master
    # with SIGTERM to its pid alone, as `kill` or `docker stop` would.
    with running(argv, env=venv_env(**{**doc_env, **overrides}), stdout_path=log) as master:
        wait_for_port(app_port)
        eventually(
            lambda: len(INSTANCE_ID_LOG.findall(log.read_text())) == WORKERS,
            timeout=BOOT_TIMEOUT_S,
        )

        held_body = json.dumps({"description": "held"}).encode()
        held = hold_a_worker(app_port, held_body)
        for i in range(OTHER_WORKER_TASKS):
            assert post_task(app_port, f"task {i}") == 201
        response = finish(held, held_body)
        assert response.startswith(b"HTTP/1.1 201"), response[:200]

        master.send_signal(signal.SIGTERM)
        assert master.wait(timeout=STOP_TIMEOUT_S) == 0
        assert stop(master) == 0

    instance_ids = set(INSTANCE_ID_LOG.findall(log.read_text()))
    assert len(instance_ids) == WORKERS, "each worker gets its own service.instance.id"

    # Traces: four requests, one trace each; three from one worker, one from the other.
    found = viewer.get("/api/traces?service=todo&limit=100")["data"]
    roots = [
        (trace, span)
        for trace in found
        for span in trace["spans"]
        if not [r for r in span["references"] if r["refType"] == "CHILD_OF"]
    ]
    assert sorted(span["operationName"] for _, span in roots) == ["POST /api/tasks"] * 4
    per_worker = Counter(instance_of(trace, span) for trace, span in roots)
    assert set(per_worker) == instance_ids
    assert sorted(per_worker.values()) == [1, OTHER_WORKER_TASKS]
    for trace in found:
        names = {span["operationName"] for span in trace["spans"]}
        assert {"POST /api/tasks", "todo.tasks.add"} <= names
        assert len({instance_of(trace, s) for s in trace["spans"]}) == 1

    # Nothing recorded was lost: every span the workers printed is stored, and no other.
    printed = set(CONSOLE_SPAN_ID.findall(log.read_text()))
    stored = {span["spanID"] for trace in found for span in trace["spans"]}
    assert printed
    assert stored == printed

    # Metrics: one series per worker, each with that worker's own count.
    assert last_values(viewer, "todo.tasks.created") == dict(per_worker)
    assert last_values(viewer, "todo.requests") == dict(per_worker)


def test_the_config_alone_names_an_app_that_loads() -> None:
    """The chapter's bare `gunicorn -c deploy/gunicorn.conf.py` loads todo.wsgi:app."""
    doc_env, argv = doc_invocation(doc_command("500-serve"))
    assert (doc_env, argv) == ({}, ["gunicorn", "-c", "deploy/gunicorn.conf.py"])
    result = subprocess.run(
        [*argv, "--check-config"],
        cwd=ROOT,
        env=venv_env(SECRET_KEY="x", DATABASE_URL="sqlite://"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
