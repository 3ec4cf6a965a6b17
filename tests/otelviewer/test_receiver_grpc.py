"""The OTLP/gRPC receiver: status codes, partial success, limits, and ``curl`` on 4317."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otelviewer.receiver.grpc import PortInUse, start_grpc_server
from otelviewer.receiver.ingest import Ingest
from otelviewer.store.sqlite import SqliteStore
from tests.otelviewer.conftest import Viewer
from tests.support import free_port

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
#: A small limit, so the "too large" case stays small.
LIMIT = 64 * 1024


def request(
    *span_ids: bytes, service: str = "grpc-test"
) -> trace_service_pb2.ExportTraceServiceRequest:
    req = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = req.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value={"string_value": service})
    )
    scope_spans = resource_spans.scope_spans.add()
    for span_id in span_ids:
        scope_spans.spans.append(
            Span(
                trace_id=TRACE_ID,
                span_id=span_id,
                name="export",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=1_700_000_000_000_000_000,
                end_time_unix_nano=1_700_000_000_001_000_000,
            )
        )
    return req


@pytest.fixture
def grpc_store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "g.db", retention_interval_s=0, write_timeout_s=0.2) as s:
        yield s


@pytest.fixture
def ingest(grpc_store: SqliteStore) -> Iterator[Ingest]:
    pipeline = Ingest(grpc_store)
    yield pipeline
    pipeline.close()


@pytest.fixture
def channel(ingest: Ingest) -> Iterator[grpc.Channel]:
    port = free_port()
    server = start_grpc_server(ingest, "127.0.0.1", port, max_request_bytes=LIMIT)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            yield ch
    finally:
        server.stop(None).wait()


def test_export_stores_and_answers_an_empty_response(
    channel: grpc.Channel, grpc_store: SqliteStore
) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    response = stub.Export(request(b"\x01" * 8, b"\x02" * 8), timeout=10)
    assert response == trace_service_pb2.ExportTraceServiceResponse()
    [trace] = grpc_store.get_traces([TRACE_ID.hex()])
    assert [s.span_id for s in trace] == ["0101010101010101", "0202020202020202"]
    assert trace[0].resource.service_name == "grpc-test"


def test_invalid_items_are_counted_in_partial_success(
    channel: grpc.Channel, grpc_store: SqliteStore
) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    response = stub.Export(request(b"\x01" * 8, b"\x00" * 8, b"\x03"), timeout=10)
    assert response.partial_success.rejected_spans == 2
    assert response.partial_success.error_message == (
        "rejected 2 of 3 spans: 2 with a span_id that is not 8 bytes or is all zero"
    )
    assert len(grpc_store.get_traces([TRACE_ID.hex()])[0]) == 1


def test_logs_partial_success(channel: grpc.Channel, grpc_store: SqliteStore) -> None:
    req = logs_service_pb2.ExportLogsServiceRequest()
    records = req.resource_logs.add().scope_logs.add().log_records
    records.append(LogRecord(time_unix_nano=1, body={"string_value": "ok"}, trace_id=TRACE_ID))
    records.append(LogRecord(time_unix_nano=2, trace_id=b"\x01\x02"))
    response = logs_service_pb2_grpc.LogsServiceStub(channel).Export(req, timeout=10)
    assert response.partial_success.rejected_log_records == 1
    from otelviewer.store.contract import LogQueryParams

    [record] = grpc_store.find_logs(LogQueryParams(trace_id=TRACE_ID.hex()))
    assert (record.body, record.resource.service_name) == ("ok", "unknown_service")


def _raw_export(channel: grpc.Channel, data: bytes) -> grpc.RpcError:
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=None,
        response_deserializer=None,
    )
    with pytest.raises(grpc.RpcError) as failed:
        export(data, timeout=10)
    return failed.value


def test_an_undecodable_request_is_invalid_argument(channel: grpc.Channel) -> None:
    error = _raw_export(channel, b"\xff\xff\xff not protobuf")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "not a valid ExportTraceServiceRequest" in error.details()  # type: ignore[attr-defined]


def test_a_request_over_the_limit_is_resource_exhausted(channel: grpc.Channel) -> None:
    error = _raw_export(
        channel, request(*(bytes([1] * 7 + [n % 256]) for n in range(3000))).SerializeToString()
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]


def test_a_busy_store_is_unavailable(channel: grpc.Channel, grpc_store: SqliteStore) -> None:
    other = sqlite3.connect(grpc_store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the database
        error = _raw_export(channel, request(b"\x01" * 8).SerializeToString())
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert grpc_store.get_traces([TRACE_ID.hex()]) == []


def test_invalid_utf8_is_repaired(channel: grpc.Channel, grpc_store: SqliteStore) -> None:
    data = request(b"\x01" * 8, service="svc-XX").SerializeToString().replace(b"XX", b"\xc3\x28")
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=None,
        response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString,
    )
    assert export(data, timeout=10) == trace_service_pb2.ExportTraceServiceResponse()
    assert grpc_store.get_services() == ["svc-\ufffd("]


def test_a_taken_port_is_refused(ingest: Ingest) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(PortInUse):
            start_grpc_server(ingest, "127.0.0.1", taken.getsockname()[1])


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_on_the_grpc_port_says_http_0_9(viewer: Viewer) -> None:
    result = subprocess.run(
        ["curl", f"localhost:{viewer.grpc_port}"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "curl: (1) Received HTTP/0.9 when not allowed"
