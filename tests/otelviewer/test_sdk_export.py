"""The official OpenTelemetry SDK exporters send to a running ``otelviewer serve``.

Both OTLP transports (gRPC and HTTP/protobuf), all three signals; what the store
holds afterwards is read back through a second ``SqliteStore`` on the server's
database file and compared exactly: parents, durations, attributes, resources,
metric values, log trace ids.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from grpc import Compression
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetrics,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
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

from otelviewer.model import HistogramValue, MetricKind
from otelviewer.model import SpanKind as Kind
from otelviewer.model import StatusCode as Code
from otelviewer.store.contract import LogQueryParams, MetricQueryParams, TraceQueryParams
from otelviewer.store.sqlite import SqliteStore
from tests.otelviewer.conftest import Viewer

pytestmark = pytest.mark.e2e

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
TRANSPORTS = ["grpc", "http"]


def exporters(transport: str, viewer: Viewer) -> tuple[Any, Any, Any]:
    """Return (span, metric, log) exporters of the official SDK for ``transport``."""
    if transport == "grpc":
        endpoint = viewer.grpc_endpoint
        return (
            GrpcSpans(endpoint=endpoint, insecure=True),
            GrpcMetrics(endpoint=endpoint, insecure=True),
            GrpcLogs(endpoint=endpoint, insecure=True),
        )
    base = viewer.http_url
    return (
        HttpSpans(endpoint=f"{base}/v1/traces"),
        HttpMetrics(endpoint=f"{base}/v1/metrics"),
        HttpLogs(endpoint=f"{base}/v1/logs"),
    )


def resource(transport: str) -> Resource:
    return Resource.create(
        {
            "service.name": f"sdk-{transport}",
            "service.version": "2.0.1",
            "deployment.environment": "test",
        }
    )


@pytest.fixture(scope="module")
def store(viewer: Viewer) -> Iterator[SqliteStore]:
    """The server's database, read from this process (overrides the temp-file store)."""
    with viewer.open_store() as s:
        yield s


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_spans_arrive_with_parents_durations_attributes_and_resource(
    transport: str, viewer: Viewer, store: SqliteStore
) -> None:
    span_exporter, _, _ = exporters(transport, viewer)
    provider = TracerProvider(resource=resource(transport))
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    tracer = provider.get_tracer("checkout-lib", "1.4.2")
    try:
        other = tracer.start_span("other", start_time=T0)
        other.end(end_time=T0 + 1)
        root = tracer.start_span(
            "POST /checkout",
            kind=SpanKind.SERVER,
            start_time=T0,
            attributes={"http.route": "/checkout", "http.status_code": 201, "retry": False},
        )
        child = tracer.start_span(
            "db.query",
            context=trace.set_span_in_context(root),
            kind=SpanKind.CLIENT,
            start_time=T0 + 2 * MS,
            links=[Link(other.get_span_context(), {"why": "batch"})],
            attributes={"db.system": "sqlite", "rows": [1, 2, 3], "ratio": 0.75},
        )
        child.add_event("retrying", {"attempt": 2}, timestamp=T0 + 3 * MS)
        child.set_status(Status(StatusCode.ERROR, "locked"))
        child.end(end_time=T0 + 7 * MS)
        root.end(end_time=T0 + 10 * MS)
    finally:
        provider.shutdown()

    trace_id = f"{root.get_span_context().trace_id:032x}"
    [spans] = store.get_traces([trace_id])
    by_name = {s.name: s for s in spans}
    assert list(by_name) == ["POST /checkout", "db.query"]  # by start time
    server, db = by_name["POST /checkout"], by_name["db.query"]

    assert server.span_id == f"{root.get_span_context().span_id:016x}"
    assert server.parent_span_id is None
    assert (server.kind, server.start_unix_nano, server.duration_nanos) == (
        Kind.SERVER,
        T0,
        10 * MS,
    )
    assert server.attributes == {"http.route": "/checkout", "http.status_code": 201, "retry": False}
    assert server.status_code is Code.UNSET
    assert (server.scope.name, server.scope.version) == ("checkout-lib", "1.4.2")
    assert server.resource.service_name == f"sdk-{transport}"
    assert server.resource.attributes["service.version"] == "2.0.1"
    assert server.resource.attributes["deployment.environment"] == "test"
    assert server.resource.attributes["telemetry.sdk.name"] == "opentelemetry"

    assert db.parent_span_id == server.span_id
    assert (db.kind, db.start_unix_nano, db.duration_nanos) == (Kind.CLIENT, T0 + 2 * MS, 5 * MS)
    assert db.attributes == {"db.system": "sqlite", "rows": [1, 2, 3], "ratio": 0.75}
    assert (db.status_code, db.status_message) == (Code.ERROR, "locked")
    [event] = db.events
    assert (event.name, event.time_unix_nano, event.attributes) == (
        "retrying",
        T0 + 3 * MS,
        {"attempt": 2},
    )
    [link] = db.links
    assert link.span_id == f"{other.get_span_context().span_id:016x}"
    assert link.attributes == {"why": "batch"}

    service = f"sdk-{transport}"
    assert service in store.get_services()
    found = store.find_trace_ids(
        TraceQueryParams(
            service=service,
            attributes={"http.route": "/checkout", "deployment.environment": "test"},
        )
    )
    assert found == [trace_id]
    errors = store.find_trace_ids(TraceQueryParams(service=service, attributes={"error": "true"}))
    assert errors == [trace_id]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metrics_arrive_with_their_values(
    transport: str, viewer: Viewer, store: SqliteStore
) -> None:
    _, metric_exporter, _ = exporters(transport, viewer)
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=resource(transport))
    meter = provider.get_meter("todo")
    requests = meter.create_counter("todo.requests", unit="{request}", description="Requests")
    durations = meter.create_histogram("todo.duration", unit="ms")
    open_tasks = meter.create_up_down_counter("todo.tasks.open", unit="{task}")
    try:
        requests.add(3, {"http.route": "/"})
        requests.add(4, {"http.route": "/"})
        requests.add(1, {"http.route": "/add"})
        for value in (3.0, 12.0, 700.0):
            durations.record(value, {"http.route": "/"})
        open_tasks.add(5)
        open_tasks.add(-2)
        assert provider.force_flush(timeout_millis=10_000)
    finally:
        provider.shutdown()

    service = f"sdk-{transport}"

    def points(name: str) -> list[Any]:
        return store.get_metric_points(MetricQueryParams(name=name, service=service))

    sums = points("todo.requests")
    by_route = {p.attributes["http.route"]: p for p in sums[:2]}
    assert {route: p.value for route, p in by_route.items()} == {"/": 7.0, "/add": 1.0}
    first = by_route["/"]
    assert (first.kind, first.is_monotonic, first.temporality) == (MetricKind.SUM, True, 2)
    assert (first.unit, first.description, first.scope.name) == ("{request}", "Requests", "todo")
    assert first.resource.service_name == service

    [histogram, *_] = points("todo.duration")
    assert histogram.kind is MetricKind.HISTOGRAM
    assert histogram.histogram is not None
    bounds = histogram.histogram.explicit_bounds
    assert bounds[:4] == (0.0, 5.0, 10.0, 25.0)
    expected_buckets = [0] * (len(bounds) + 1)
    for value in (3.0, 12.0, 700.0):
        expected_buckets[sum(1 for b in bounds if value > b)] += 1
    assert histogram.histogram == HistogramValue(
        count=3,
        sum=715.0,
        bucket_counts=tuple(expected_buckets),
        explicit_bounds=bounds,
        min=3.0,
        max=700.0,
    )

    [gauge, *_] = points("todo.tasks.open")
    assert (gauge.kind, gauge.value, gauge.is_monotonic) == (MetricKind.SUM, 3.0, False)
    names = {d.name for d in store.get_metric_names()}
    assert {"todo.requests", "todo.duration", "todo.tasks.open"} <= names


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logs_arrive_with_the_trace_and_span_ids_of_their_span(
    transport: str, viewer: Viewer, store: SqliteStore
) -> None:
    _, _, log_exporter = exporters(transport, viewer)
    logs = LoggerProvider(resource=resource(transport))
    logs.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    traces = TracerProvider(resource=resource(transport))
    span = traces.get_tracer("todo").start_span("POST /add")
    marker = f"Task added via {transport} {time.time_ns()}"
    try:
        logs.get_logger("todo.tasks").emit(
            timestamp=T0,
            context=trace.set_span_in_context(span),
            severity_number=SeverityNumber.WARN,
            severity_text="WARNING",
            body=marker,
            attributes={"todo.task.id": 42},
        )
        logs.get_logger("todo.tasks").emit(
            timestamp=T0 + 1, severity_number=SeverityNumber.INFO, body={"structured": [1, "two"]}
        )
    finally:
        span.end()
        logs.shutdown()
        traces.shutdown()

    service = f"sdk-{transport}"
    trace_id = f"{span.get_span_context().trace_id:032x}"
    [record] = store.find_logs(LogQueryParams(trace_id=trace_id))
    assert record.body == marker
    assert record.span_id == f"{span.get_span_context().span_id:016x}"
    assert (record.severity_number, record.severity_text) == (13, "WARNING")
    assert (record.time_unix_nano, record.attributes) == (T0, {"todo.task.id": 42})
    assert record.observed_time_unix_nano > 0
    assert (record.scope.name, record.resource.service_name) == ("todo.tasks", service)

    structured = store.find_logs(LogQueryParams(service=service, text="structured"))
    assert [(r.body, r.trace_id, r.span_id) for r in structured] == [
        ({"structured": [1, "two"]}, None, None)
    ]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_gzip_compressed_exports(transport: str, viewer: Viewer, store: SqliteStore) -> None:
    if transport == "grpc":
        exporter: Any = GrpcSpans(
            endpoint=viewer.grpc_endpoint, insecure=True, compression=Compression.Gzip
        )
    else:
        exporter = HttpSpans(
            endpoint=f"{viewer.http_url}/v1/traces", compression=HttpCompression.Gzip
        )
    provider = TracerProvider(resource=resource(f"{transport}-gzip"))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        span = provider.get_tracer("gz").start_span("compressed", attributes={"big": "x" * 5000})
        span.end()
    finally:
        provider.shutdown()
    [[stored]] = store.get_traces([f"{span.get_span_context().trace_id:032x}"])
    assert (stored.name, stored.attributes) == ("compressed", {"big": "x" * 5000})
    assert stored.resource.service_name == f"sdk-{transport}-gzip"
