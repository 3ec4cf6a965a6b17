"""The HTTP attributes and metrics in each semantic-convention mode.

``OTEL_SEMCONV_STABILITY_OPT_IN`` is read once per process, when the first
instrumentation starts, so each mode runs in its own Python process: it makes
an app with in-memory providers, sends the same three requests through the
test client, and prints what was recorded as JSON for the test to check.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from typing import Any

import pytest

from tests.support import ROOT, venv_env

#: How long one probe process may take (imports, migrations, three requests).
PROBE_TIMEOUT_S = 60

#: Old (default) HTTP server span attributes, for a request without query string.
OLD_SPAN_KEYS = {
    "http.method",
    "http.server_name",
    "http.scheme",
    "net.host.name",
    "http.host",
    "net.host.port",
    "http.target",
    "net.peer.ip",
    "http.user_agent",
    "http.flavor",
    "http.route",
    "http.status_code",
}
#: Stable HTTP server span attributes (``OTEL_SEMCONV_STABILITY_OPT_IN=http``).
NEW_SPAN_KEYS = {
    "http.request.method",
    "url.scheme",
    "server.address",
    "server.port",
    "url.path",
    "client.address",
    "user_agent.original",
    "network.protocol.version",
    "http.route",
    "http.response.status_code",
}
OLD_DURATION_KEYS = {
    "http.method",
    "http.server_name",
    "http.scheme",
    "net.host.name",
    "http.host",
    "net.host.port",
    "http.flavor",
    "http.status_code",
    "http.target",
}
NEW_DURATION_KEYS = {
    "http.request.method",
    "url.scheme",
    "network.protocol.version",
    "http.response.status_code",
    "http.route",
}


def probe() -> None:
    """Run in the subprocess: three requests, then print spans and HTTP metrics as JSON."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from todo import create_app

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/todo.sqlite",
                "TELEMETRY_TRACER_PROVIDER": tracer_provider,
                "TELEMETRY_METER_PROVIDER": meter_provider,
            }
        )
        client = app.test_client()
        client.post("/api/tasks", json={"description": "Buy milk"})
        client.get("/api/tasks/1?fields=all")
        client.get("/no/such/page")
        metrics: dict[str, Any] = {}
        data = reader.get_metrics_data()
        assert data is not None
        for rm in data.resource_metrics:
            for scope in rm.scope_metrics:
                if scope.scope.name == "opentelemetry.instrumentation.flask":
                    for metric in scope.metrics:
                        metrics[metric.name] = {
                            "unit": metric.unit,
                            "points": [
                                {
                                    "attributes": dict(p.attributes or {}),
                                    "count": getattr(p, "count", None),
                                }
                                for p in metric.data.data_points
                            ],
                        }
        with app.app_context():
            from todo.db import db

            db.engine.dispose()
    servers = [
        {"name": s.name, "attributes": dict(s.attributes or {})}
        for s in spans.get_finished_spans()
        if s.kind is SpanKind.SERVER
    ]
    print(json.dumps({"spans": servers, "metrics": metrics}))


def _run_probe(mode: str | None) -> dict[str, Any]:
    env = venv_env() if mode is None else venv_env(OTEL_SEMCONV_STABILITY_OPT_IN=mode)
    result = subprocess.run(
        [sys.executable, "-c", "from tests.todo.test_telemetry_semconv import probe; probe()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return found


@pytest.fixture(
    scope="module", params=[None, "http", "http/dup"], ids=["default", "http", "http-dup"]
)
def recorded(request: pytest.FixtureRequest) -> tuple[str | None, dict[str, Any]]:
    mode: str | None = request.param
    return mode, _run_probe(mode)


def _reports(mode: str | None) -> tuple[bool, bool]:
    """Return whether ``mode`` reports the old names, and the stable ones."""
    return mode in (None, "http/dup"), mode in ("http", "http/dup")


def test_span_names_do_not_depend_on_the_mode(recorded: tuple[str | None, dict[str, Any]]) -> None:
    _, found = recorded
    assert [s["name"] for s in found["spans"]] == [
        "POST /api/tasks",
        "GET /api/tasks/<int:task_id>",
        "GET",
    ]


def test_server_span_attributes(recorded: tuple[str | None, dict[str, Any]]) -> None:
    mode, found = recorded
    old, new = _reports(mode)
    post, get, unmatched = (s["attributes"] for s in found["spans"])
    expected = (OLD_SPAN_KEYS if old else set()) | (NEW_SPAN_KEYS if new else set())
    assert set(post) == expected
    assert set(get) == expected | ({"url.query"} if new else set())
    assert set(unmatched) == expected - {"http.route"}
    assert post["http.route"] == "/api/tasks"
    assert get["http.route"] == "/api/tasks/<int:task_id>"
    if old:
        assert (post["http.method"], post["http.target"], post["http.status_code"]) == (
            "POST",
            "/api/tasks",
            201,
        )
        assert get["http.target"] == "/api/tasks/1?fields=all"
        assert unmatched["http.target"] == "/no/such/page"
    if new:
        assert (
            post["http.request.method"],
            post["url.path"],
            post["http.response.status_code"],
        ) == (
            "POST",
            "/api/tasks",
            201,
        )
        assert (get["url.path"], get["url.query"]) == ("/api/tasks/1", "fields=all")
        assert unmatched["url.path"] == "/no/such/page"
    # The talk grepped http.url: server spans never carry it, in any mode.
    assert all(
        "http.url" not in s["attributes"] and "url.full" not in s["attributes"]
        for s in found["spans"]
    )


def test_http_server_duration_histogram(recorded: tuple[str | None, dict[str, Any]]) -> None:
    mode, found = recorded
    old, new = _reports(mode)
    metrics = found["metrics"]
    expected_names = {"http.server.active_requests"}
    if old:
        expected_names.add("http.server.duration")
        points = metrics["http.server.duration"]["points"]
        assert metrics["http.server.duration"]["unit"] == "ms"
        # One series per route (http.target holds the route here, not the path) and status.
        by_target = {p["attributes"].get("http.target"): p for p in points}
        assert set(by_target) == {"/api/tasks", "/api/tasks/<int:task_id>", None}
        assert all(p["count"] == 1 for p in points)
        assert set(by_target["/api/tasks"]["attributes"]) == OLD_DURATION_KEYS
        assert set(by_target[None]["attributes"]) == OLD_DURATION_KEYS - {"http.target"}
    if new:
        expected_names.add("http.server.request.duration")
        points = metrics["http.server.request.duration"]["points"]
        assert metrics["http.server.request.duration"]["unit"] == "s"
        by_route = {p["attributes"].get("http.route"): p for p in points}
        assert set(by_route) == {"/api/tasks", "/api/tasks/<int:task_id>", None}
        assert all(p["count"] == 1 for p in points)
        assert set(by_route["/api/tasks"]["attributes"]) == NEW_DURATION_KEYS
        assert by_route[None]["attributes"]["http.response.status_code"] == 404
    assert set(metrics) == expected_names
    assert metrics["http.server.active_requests"]["unit"] == ("{request}" if new else "requests")
