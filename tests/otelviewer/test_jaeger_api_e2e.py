"""End to end: the official OpenTelemetry SDK exporters send to a running ``otelviewer serve``,
and the Jaeger-compatible API (and our logs/metrics JSON) gives back exactly what was sent.

Spans are built with explicit start and end times so that durations are exact; each
signal goes once over OTLP/gRPC and once over OTLP/HTTP (protobuf). The last test
runs the To-Do app under the zero-code agent and finds its request by its URL tag,
the seed's "filter by URL tag".
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetrics,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetrics,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests.otelviewer.conftest import Viewer
from tests.support import eventually, free_port, running, venv_env, wait_for_http

pytestmark = pytest.mark.e2e

#: How long a test waits for exported telemetry to be queryable (exports are synchronous
#: here; this only covers a slow machine).
EXPORT_TIMEOUT_S = 15.0
MS = 1_000_000


def api(viewer: Viewer, path: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(f"{viewer.ui_url}{path}", params=params, timeout=5)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def tags(items: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    return {t["key"]: (t["type"], t["value"]) for t in items}


def _providers(
    protocol: str, viewer: Viewer, service: str
) -> tuple[TracerProvider, LoggerProvider]:
    resource = Resource.create({"service.name": service, "deployment.environment": "e2e"})
    tracer_provider = TracerProvider(resource=resource)
    logger_provider = LoggerProvider(resource=resource)
    if protocol == "grpc":
        tracer_provider.add_span_processor(
            SimpleSpanProcessor(GrpcSpans(endpoint=viewer.grpc_endpoint, insecure=True))
        )
        logger_provider.add_log_record_processor(
            SimpleLogRecordProcessor(GrpcLogs(endpoint=viewer.grpc_endpoint, insecure=True))
        )
    else:
        tracer_provider.add_span_processor(
            SimpleSpanProcessor(HttpSpans(endpoint=f"{viewer.http_url}/v1/traces"))
        )
        logger_provider.add_log_record_processor(
            SimpleLogRecordProcessor(HttpLogs(endpoint=f"{viewer.http_url}/v1/logs"))
        )
    return tracer_provider, logger_provider


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_traces_and_logs_come_back_through_the_api(viewer: Viewer, protocol: str) -> None:
    service = f"e2e-{protocol}"
    tracer_provider, logger_provider = _providers(protocol, viewer, service)
    tracer = tracer_provider.get_tracer("e2e.scope", "1.2.3")
    # Relative to now: the store's age-based retention would drop a fixed old time.
    t0 = time.time_ns() - 5_000 * MS
    with tracer.start_as_current_span(
        "GET /items", kind=SpanKind.SERVER, start_time=t0, end_on_exit=False,
        attributes={"http.method": "GET", "http.target": "/items", "http.status_code": 200},
    ) as server:  # fmt: skip
        server_ctx = server.get_span_context()
        child = tracer.start_span(
            "items.load",
            start_time=t0 + 2 * MS,
            attributes={"items.count": 3, "items.ratio": 0.5, "items.cached": False},
            links=[Link(server_ctx, {"why": "test"})],
        )
        child.add_event("loaded", {"rows": 3}, timestamp=t0 + 5 * MS)
        child.set_status(Status(StatusCode.ERROR, "disk on fire"))
        with trace.use_span(child):
            logger_provider.get_logger("e2e.logs").emit(
                timestamp=t0 + 6 * MS,
                severity_number=SeverityNumber.WARN,
                severity_text="WARN",
                body=f"slow load over {protocol}",
                attributes={"attempt": 2},
            )
        child.end(end_time=t0 + 9 * MS)
        server.end(end_time=t0 + 12_345_678)
    tracer_provider.shutdown()
    logger_provider.shutdown()
    trace_id = format(server_ctx.trace_id, "032x")

    def found() -> dict[str, Any] | None:
        data = api(viewer, "/api/traces", service=service, tags=json.dumps({"items.count": "3"}))
        return data["data"][0] if data["data"] else None

    result = eventually(found, timeout=EXPORT_TIMEOUT_S)
    assert result["traceID"] == trace_id
    [process] = result["processes"].values()
    assert process["serviceName"] == service
    resource = tags(process["tags"])
    assert resource["deployment.environment"] == ("string", "e2e")
    assert resource["telemetry.sdk.language"] == ("string", "python")
    root, load = result["spans"]
    assert (root["operationName"], load["operationName"]) == ("GET /items", "items.load")
    assert root["references"] == []
    assert root["spanID"] == format(server_ctx.span_id, "016x")
    assert (root["startTime"], root["duration"]) == (t0 // 1000, 12_345)
    assert (load["startTime"], load["duration"]) == ((t0 + 2 * MS) // 1000, 7_000)
    assert load["references"] == [
        {"refType": "CHILD_OF", "traceID": trace_id, "spanID": root["spanID"]},
        {"refType": "FOLLOWS_FROM", "traceID": trace_id, "spanID": root["spanID"]},
    ]
    assert tags(root["tags"]) == {
        "http.method": ("string", "GET"),
        "http.target": ("string", "/items"),
        "http.status_code": ("int64", 200),
        "otel.scope.name": ("string", "e2e.scope"),
        "otel.scope.version": ("string", "1.2.3"),
        "span.kind": ("string", "server"),
    }
    assert tags(load["tags"]) == {
        "items.count": ("int64", 3),
        "items.ratio": ("float64", 0.5),
        "items.cached": ("bool", False),
        "otel.scope.name": ("string", "e2e.scope"),
        "otel.scope.version": ("string", "1.2.3"),
        "span.kind": ("string", "internal"),
        "otel.status_code": ("string", "ERROR"),
        "error": ("bool", True),
        "otel.status_description": ("string", "disk on fire"),
    }
    assert load["logs"] == [
        {
            "timestamp": (t0 + 5 * MS) // 1000,
            "fields": [
                {"key": "event", "type": "string", "value": "loaded"},
                {"key": "rows", "type": "int64", "value": 3},
            ],
        }
    ]
    # The log record carries the span's ids.
    [record] = api(viewer, "/api/v1/logs", traceID=trace_id)["data"]
    assert (record["traceID"], record["spanID"]) == (trace_id, load["spanID"])
    assert (record["body"], record["severityNumber"], record["severityText"]) == (
        f"slow load over {protocol}",
        13,
        "WARN",
    )
    assert (record["serviceName"], record["attributes"]) == (service, {"attempt": 2})
    assert record["timestamp"] == (t0 + 6 * MS) // 1000


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_metrics_come_back_as_series(viewer: Viewer, protocol: str) -> None:
    exporter = (
        GrpcMetrics(endpoint=viewer.grpc_endpoint, insecure=True)
        if protocol == "grpc"
        else HttpMetrics(endpoint=f"{viewer.http_url}/v1/metrics")
    )
    # A long interval: only force_flush exports, so the points are exactly ours.
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": f"metrics-{protocol}"}),
    )
    counter = provider.get_meter("e2e").create_counter(
        f"e2e.{protocol}.jobs", unit="{job}", description="Jobs done"
    )
    counter.add(2, {"queue": "fast"})
    counter.add(5, {"queue": "slow"})
    provider.force_flush()
    counter.add(1, {"queue": "fast"})
    provider.shutdown()  # exports the last collection

    def series() -> list[dict[str, Any]] | None:
        data: list[dict[str, Any]] = api(viewer, f"/api/v1/metrics/e2e.{protocol}.jobs/series")[
            "data"
        ]
        fast = [s for s in data if s["attributes"] == {"queue": "fast"}]
        return data if fast and len(fast[0]["points"]) == 2 else None

    data = eventually(series, timeout=EXPORT_TIMEOUT_S)
    by_queue = {s["attributes"]["queue"]: s for s in data}
    assert [p["value"] for p in by_queue["fast"]["points"]] == [2.0, 3.0]  # cumulative
    assert [p["value"] for p in by_queue["slow"]["points"]] == [5.0, 5.0]
    assert by_queue["fast"]["serviceName"] == f"metrics-{protocol}"
    assert (by_queue["fast"]["kind"], by_queue["fast"]["isMonotonic"]) == ("sum", True)
    names = api(viewer, "/api/v1/metrics")["data"]
    assert {
        "name": f"e2e.{protocol}.jobs",
        "kind": "sum",
        "unit": "{job}",
        "description": "Jobs done",
    } in names


def test_todo_request_found_by_its_url_tag(
    viewer: Viewer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The seed's case: the app under the agent; its request found by ``http.target``."""
    tmp: Path = tmp_path_factory.mktemp("todo-agent")
    port = free_port()
    env = venv_env(
        DATABASE_URL=f"sqlite:///{tmp / 'todo.sqlite'}",
        OTEL_SERVICE_NAME="todo",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT=viewer.grpc_endpoint,
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
        created = httpx.post(f"{url}/api/tasks", json={"description": "find me"}, timeout=10)
        assert created.status_code == 201

        def found() -> list[dict[str, Any]] | None:
            body = api(
                viewer,
                "/api/traces",
                service="todo",
                tags=json.dumps({"http.target": "/api/tasks", "http.method": "POST"}),
                lookback="1h",
            )
            data: list[dict[str, Any]] = body["data"]
            return data or None

        [result] = eventually(found, timeout=EXPORT_TIMEOUT_S)
    spans = {s["operationName"]: s for s in result["spans"]}
    server = spans["POST /api/tasks"]
    assert tags(server["tags"])["span.kind"] == ("string", "server")
    assert tags(server["tags"])["http.status_code"] == ("int64", 201)
    add = spans["todo.tasks.add"]
    assert add["references"][0] == {
        "refType": "CHILD_OF",
        "traceID": result["traceID"],
        "spanID": server["spanID"],
    }
