"""The OTLP/HTTP receiver: the status mapping table, gzip, bounded inflate, CORS.

Most cases call the real WSGI application (``receiver.http.create_app``) over a
real ``SqliteStore`` through werkzeug's test client; the last ones go over a
socket to a running ``otelviewer serve``.
"""

from __future__ import annotations

import gzip
import json
import socket
import sqlite3
import tracemalloc
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.rpc import status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from werkzeug.test import Client, TestResponse

from otelviewer.receiver.http import HttpError, create_app, inflate
from otelviewer.receiver.ingest import Ingest
from otelviewer.receiver.otlp import DEFAULT_MAX_REQUEST_BYTES, TRACES
from otelviewer.store.contract import LogQueryParams, MetricQueryParams, TraceQueryParams
from otelviewer.store.sqlite import SqliteStore
from tests.otelviewer.conftest import Viewer

PB = "application/x-protobuf"
JSON = "application/json"
TRACE_ID = "5b8efff798038103d269b633813fc60c"
#: A small limit, so the "too large" cases stay small.
LIMIT = 64 * 1024


def spans_json(*span_ids: str, trace_id: str = TRACE_ID, name: str = "GET /") -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": name,
                                "kind": 2,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000000250000000",
                            }
                            for span_id in span_ids
                        ]
                    }
                ],
            }
        ]
    }


def body(payload: dict[str, Any], content_type: str) -> bytes:
    if content_type == JSON:
        return json.dumps(payload).encode()
    return bytes(TRACES.parse_json(json.dumps(payload).encode()).SerializeToString())


VALID_JSON = json.dumps(spans_json("eee19b7ec3c1b174")).encode()
VALID_PB = body(spans_json("eee19b7ec3c1b174"), PB)


@pytest.fixture
def http_store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "h.db", retention_interval_s=0, write_timeout_s=0.2) as s:
        yield s


@pytest.fixture
def ingest(http_store: SqliteStore) -> Iterator[Ingest]:
    pipeline = Ingest(http_store)
    yield pipeline
    pipeline.close()


@pytest.fixture
def client(ingest: Ingest) -> Client:
    return Client(create_app(ingest, max_body=LIMIT))


def rpc_status(response: TestResponse) -> Any:
    """Decode a google.rpc.Status error body in the response's content type."""
    status = status_pb2.Status()
    if response.content_type == JSON:
        data = json.loads(response.data)
        status.code, status.message = data["code"], data["message"]
    else:
        assert response.content_type == PB
        status.ParseFromString(response.data)
    return status


def post(client: Client, data: bytes, content_type: str = PB, **headers: str) -> TestResponse:
    return client.post("/v1/traces", data=data, headers={"Content-Type": content_type, **headers})


# --- the status mapping table ---------------------------------------------------------------

BOMB = gzip.compress(bytes(LIMIT * 20))  # 1.25 MiB of zeros in a few KB


@pytest.mark.parametrize(
    ("method", "path", "content_type", "encoding", "data", "status", "rpc_code"),
    [
        ("POST", "/v1/traces", PB, None, VALID_PB, 200, None),
        ("POST", "/v1/traces", JSON, None, VALID_JSON, 200, None),
        ("POST", "/v1/traces", "application/json; charset=utf-8", None, VALID_JSON, 200, None),
        ("POST", "/v1/traces", PB, "gzip", gzip.compress(VALID_PB), 200, None),
        ("POST", "/v1/traces", JSON, "deflate", zlib.compress(VALID_JSON), 200, None),
        ("POST", "/v1/traces", PB, None, b"\xff\xff not protobuf", 400, 3),
        ("POST", "/v1/traces", JSON, None, b"{not json", 400, 3),
        ("POST", "/v1/traces", JSON, "gzip", b"\x1f\x8b not gzip", 400, 3),
        ("POST", "/v1/traces", PB, "gzip", gzip.compress(VALID_PB)[:-12], 400, 3),
        ("POST", "/v1/traces", PB, None, bytes(LIMIT + 1), 413, 8),
        ("POST", "/v1/traces", PB, "gzip", BOMB, 413, 8),
        ("POST", "/v1/traces", "text/plain", None, VALID_JSON, 415, 3),
        ("POST", "/v1/traces", "", None, VALID_JSON, 415, 3),
        ("POST", "/v1/traces", PB, "br", VALID_PB, 415, 3),
        ("GET", "/v1/traces", PB, None, b"", 405, 12),
        ("PUT", "/v1/logs", JSON, None, b"{}", 405, 12),
        ("OPTIONS", "/v1/metrics", JSON, None, b"", 405, 12),  # no CORS configured
        ("POST", "/v1/spans", PB, None, VALID_PB, 404, 5),
        ("POST", "/", JSON, None, VALID_JSON, 404, 5),
    ],
)
def test_status_mapping(
    client: Client,
    method: str,
    path: str,
    content_type: str,
    encoding: str | None,
    data: bytes,
    status: int,
    rpc_code: int | None,
) -> None:
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    response = client.open(path, method=method, data=data, headers=headers)
    assert response.status_code == status
    answered_as = PB if content_type == PB else JSON
    assert response.content_type == answered_as  # the request's content type (or JSON)
    assert response.headers["Content-Length"] == str(len(response.data))
    if rpc_code is None:
        if answered_as == PB:
            assert (
                ExportTraceServiceResponse.FromString(response.data) == ExportTraceServiceResponse()
            )
        else:
            assert json.loads(response.data) == {}
    else:
        error = rpc_status(response)
        assert error.code == rpc_code
        assert error.message  # a human message
        assert "Traceback" not in error.message
    if status == 405:
        assert response.headers["Allow"] == "POST"
    assert "Access-Control-Allow-Origin" not in response.headers


def test_stored_after_200(client: Client, http_store: SqliteStore) -> None:
    assert post(client, VALID_PB).status_code == 200
    [[span]] = http_store.get_traces([TRACE_ID])
    assert (span.name, span.resource.service_name, span.duration_nanos) == (
        "GET /",
        "web",
        250_000_000,
    )


@pytest.mark.parametrize("content_type", [PB, JSON])
def test_invalid_items_get_200_with_partial_success(
    client: Client, http_store: SqliteStore, content_type: str
) -> None:
    payload = spans_json("eee19b7ec3c1b174", "0000000000000000", "abc")
    response = post(client, body(payload, content_type), content_type)
    assert response.status_code == 200
    assert response.content_type == content_type
    expected = "rejected 2 of 3 spans: 2 with a span_id that is not 8 bytes or is all zero"
    if content_type == PB:
        partial = ExportTraceServiceResponse.FromString(response.data).partial_success
        assert (partial.rejected_spans, partial.error_message) == (2, expected)
    else:
        partial = json.loads(response.data)["partialSuccess"]
        assert (int(partial["rejectedSpans"]), partial["errorMessage"]) == (2, expected)
    assert [s.span_id for s in http_store.get_traces([TRACE_ID])[0]] == ["eee19b7ec3c1b174"]


def test_logs_and_metrics_answer_with_their_own_response(client: Client) -> None:
    logs = client.post("/v1/logs", data=b"", headers={"Content-Type": PB})
    metrics = client.post("/v1/metrics", data=b"", headers={"Content-Type": PB})
    assert (logs.status_code, metrics.status_code) == (200, 200)
    assert ExportLogsServiceResponse.FromString(logs.data) == ExportLogsServiceResponse()
    assert ExportMetricsServiceResponse.FromString(metrics.data) == ExportMetricsServiceResponse()


def test_a_busy_store_answers_503_with_retry_after(client: Client, http_store: SqliteStore) -> None:
    other = sqlite3.connect(http_store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the database
        response = post(client, VALID_JSON, JSON)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert rpc_status(response).code == 14  # UNAVAILABLE
    assert http_store.get_traces([TRACE_ID]) == []
    assert post(client, VALID_JSON, JSON).status_code == 200  # and it recovers


def test_a_closed_store_answers_503(client: Client, http_store: SqliteStore) -> None:
    http_store.close()
    response = post(client, VALID_PB)
    assert response.status_code == 503
    assert rpc_status(response).code == 14


# --- bounded inflate ------------------------------------------------------------------------


def gzip_bomb(*, megabytes: int) -> bytes:
    """Return gzip data that inflates to ``megabytes`` MiB of zeros (built in pieces)."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    return b"".join(packer.compress(chunk) for _ in range(megabytes)) + packer.flush()


def test_a_gzip_bomb_is_refused_without_inflating_it() -> None:
    limit = 1024 * 1024
    bomb = gzip_bomb(megabytes=64)  # 64 MiB of zeros in about 64 KB
    assert len(bomb) < limit
    tracemalloc.start()
    try:
        with pytest.raises(HttpError) as refused:
            inflate(bomb, "gzip", limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.status == 413
    assert peak < 3 * limit  # the output is capped at limit + 1 bytes, not 64 MiB


def test_inflate_stops_at_the_limit_exactly() -> None:
    data = bytes(range(256)) * 4
    assert inflate(gzip.compress(data), "gzip", len(data)) == data
    with pytest.raises(HttpError, match="past the limit"):
        inflate(gzip.compress(data), "gzip", len(data) - 1)


def test_inflate_takes_several_gzip_members() -> None:
    assert inflate(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", 10) == b"abcd"
    with pytest.raises(HttpError, match="past the limit"):
        inflate(gzip.compress(b"abcdef") + gzip.compress(b"ghijkl"), "gzip", 10)


# --- CORS -----------------------------------------------------------------------------------

ORIGIN = "http://localhost:3000"


def test_cors_is_off_by_default(client: Client) -> None:
    response = post(client, VALID_JSON, JSON, Origin=ORIGIN)
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_for_the_configured_origin_only(ingest: Ingest) -> None:
    cors = Client(create_app(ingest, cors_origin=ORIGIN))
    preflight = cors.options(
        "/v1/traces",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert preflight.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    sent = post(cors, VALID_JSON, JSON, Origin=ORIGIN)
    assert sent.status_code == 200
    assert sent.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert sent.headers["Vary"] == "Origin"

    stranger = cors.options("/v1/traces", headers={"Origin": "http://evil.example"})
    assert stranger.status_code == 204
    assert "Access-Control-Allow-Origin" not in stranger.headers
    refused = post(cors, VALID_JSON, JSON, Origin="http://evil.example")
    assert "Access-Control-Allow-Origin" not in refused.headers


# --- over a socket, to a running otelviewer serve ---------------------------------------------


def _send(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def test_a_running_server_stores_gzip_json_and_protobuf(viewer: Viewer) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    as_json = json.dumps(spans_json("b7ad6b7169203331", trace_id=trace_id, name="json")).encode()
    status, data, headers = _send(
        viewer.http_url + "/v1/traces",
        gzip.compress(as_json),
        {"Content-Type": JSON, "Content-Encoding": "gzip"},
    )
    assert (status, json.loads(data), headers["Content-Type"]) == (200, {}, JSON)
    as_pb = body(spans_json("b7ad6b7169203332", trace_id=trace_id, name="protobuf"), PB)
    status, data, headers = _send(viewer.http_url + "/v1/traces", as_pb, {"Content-Type": PB})
    assert (status, data, headers["Content-Type"]) == (200, b"", PB)
    with viewer.open_store() as store:
        [trace] = store.get_traces([trace_id])
        assert sorted(s.name for s in trace) == ["json", "protobuf"]
        assert store.find_trace_ids(TraceQueryParams(service="web", operation="json")) == [trace_id]
        assert store.find_logs(LogQueryParams(trace_id=trace_id)) == []
        assert store.get_metric_points(MetricQueryParams(name="none")) == []


def test_a_running_server_refuses_a_body_over_the_limit(viewer: Viewer) -> None:
    # Only the headers are sent: the server must refuse on Content-Length alone,
    # before receiving (and buffering) 16 MiB.
    with socket.create_connection(("127.0.0.1", viewer.http_port), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            + f"Content-Length: {DEFAULT_MAX_REQUEST_BYTES + 1}\r\n\r\n".encode()
        )
        status_line = conn.makefile("rb").readline()
    assert status_line.split()[1] == b"413"
    status, data, _ = _send(viewer.http_url + "/v1/traces", b"{", {"Content-Type": JSON})
    assert status == 400
    assert json.loads(data)["code"] == 3
