"""The Jaeger-compatible query API against a real SqliteStore filled through Writer.write."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from otelviewer.store.sqlite import SqliteStore
from otelviewer.web import CONTENT_SECURITY_POLICY, create_app
from tests.otelviewer import query_data as d

SECOND_US = 1_000_000


@pytest.fixture(scope="module")
def fixture() -> d.Fixture:
    return d.build(time.time_ns())


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, fixture: d.Fixture) -> Iterator[FlaskClient]:
    path = Path(tmp_path_factory.mktemp("jaeger-api")) / "otelviewer.db"
    store = SqliteStore(path, retention_interval_s=0)
    store.write(fixture.batch)
    try:
        yield create_app(store).test_client()
    finally:
        store.close()


def get(client: FlaskClient, url: str, status: int = 200, **params: Any) -> dict[str, Any]:
    response = client.get(url, query_string=params)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert set(body) == {"data", "total", "limit", "offset", "errors"}
    return body


def trace_ids(body: dict[str, Any]) -> list[str]:
    return [t["traceID"] for t in body["data"]]


def error_message(body: dict[str, Any], code: int = 400) -> str:
    assert body["data"] is None
    [error] = body["errors"]
    assert error["code"] == code
    message: str = error["msg"]
    return message


# --------------------------------------------------------------------------- services, operations


def test_services_lists_every_service_sorted(client: FlaskClient) -> None:
    body = get(client, "/api/services")
    assert body == {
        "data": ["todo", "todo-client", "xss-test"],
        "total": 3,
        "limit": 0,
        "offset": 0,
        "errors": None,
    }


def test_legacy_operations_are_the_service_span_names_sorted(client: FlaskClient) -> None:
    body = get(client, "/api/services/todo/operations")
    assert body["data"] == [
        "GET /",
        "GET /api/tasks",
        "INSERT todo.db",
        "POST /add",
        "POST /api/tasks",
        "POST /toggle/<int:task_id>",
        "todo.tasks.add",
        "todo.tasks.list",
        "todo.tasks.toggle",
    ]
    assert body["total"] == 9
    assert get(client, "/api/services/nope/operations")["data"] == []


def test_operations_with_span_kind(client: FlaskClient) -> None:
    body = get(client, "/api/operations", service="todo", spanKind="server")
    assert body["data"] == [
        {"name": "GET /", "spanKind": "server"},
        {"name": "GET /api/tasks", "spanKind": "server"},
        {"name": "POST /add", "spanKind": "server"},
        {"name": "POST /api/tasks", "spanKind": "server"},
        {"name": "POST /toggle/<int:task_id>", "spanKind": "server"},
    ]
    client_ops = get(client, "/api/operations", service="todo")["data"]
    assert {"name": "INSERT todo.db", "spanKind": "client"} in client_ops
    assert {"name": "todo.tasks.add", "spanKind": "internal"} in client_ops
    assert len(client_ops) == 9


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "parameter 'service' is required"),
        ({"service": "todo", "spanKind": "sideways"}, "invalid param 'spanKind': 'sideways'"),
    ],
)
def test_operations_bad_params(client: FlaskClient, params: dict[str, str], message: str) -> None:
    assert message in error_message(get(client, "/api/operations", 400, **params))


# --------------------------------------------------------------------------- search


def test_search_by_service_newest_first(client: FlaskClient) -> None:
    body = get(client, "/api/traces", service="todo", lookback="1h")
    assert trace_ids(body) == [
        d.BOTH_TRACE,
        d.SPLIT_TRACE_FULL,
        d.CALL_TRACE,
        d.ERROR_TRACE,
        d.LIST_TRACE,
        d.ADD_TRACE,
    ]
    assert body["total"] == 6
    assert body["errors"] is None
    assert body["limit"] == 100  # Jaeger's default


def test_search_by_service_and_operation(client: FlaskClient) -> None:
    body = get(client, "/api/traces", service="todo", operation="todo.tasks.list")
    assert trace_ids(body) == [d.SPLIT_TRACE_FULL, d.LIST_TRACE]
    assert trace_ids(get(client, "/api/traces", service="todo-client")) == [d.CALL_TRACE]


def test_seed_filter_by_url_tag(client: FlaskClient) -> None:
    """The seed README's case: find the POST /add request by its URL tag."""
    body = get(client, "/api/traces", service="todo", tags=json.dumps({"http.target": "/add"}))
    assert trace_ids(body) == [d.ADD_TRACE]
    [trace] = body["data"]
    server = next(s for s in trace["spans"] if s["spanID"] == d.ADD_SERVER)
    assert {"key": "http.target", "type": "string", "value": "/add"} in server["tags"]
    assert {"key": "span.kind", "type": "string", "value": "server"} in server["tags"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # repeated tag=key:value, as older Jaeger clients send
        ({"tag": ["http.target:/add"]}, [d.ADD_TRACE]),
        ({"tag": ["http.method:GET", "custom.flag:yes"]}, [d.BOTH_TRACE]),
        # a value with a colon keeps everything after the first one
        ({"tag": ["http.url:http://127.0.0.1:5000/api/tasks"]}, []),
        # the one-span rule: GET and custom.flag are on different spans of SPLIT_TRACE
        ({"tags": '{"http.method": "GET", "custom.flag": "yes"}'}, [d.BOTH_TRACE]),
        ({"tags": '{"custom.flag": "yes"}'}, [d.BOTH_TRACE, d.SPLIT_TRACE_FULL]),
        # resource attributes count, together with span attributes
        ({"tags": '{"host.name": "laptop", "http.target": "/add"}'}, [d.ADD_TRACE]),
        (
            {"tags": '{"service.version": "0.1.0", "http.target": "/api/tasks"}'},
            [d.BOTH_TRACE, d.SPLIT_TRACE_FULL, d.CALL_TRACE],
        ),
        ({"tags": '{"host.name": "elsewhere"}'}, []),
        # values compare as text: the int 302 matches "302" and 302
        ({"tags": '{"http.status_code": "302"}'}, [d.ADD_TRACE]),
        ({"tags": '{"http.status_code": 302}'}, [d.ADD_TRACE]),
        # exact match, not a prefix
        ({"tags": '{"http.target": "/ad"}'}, []),
        # the tags Jaeger derives from OTLP fields
        ({"tags": '{"error": "true"}'}, [d.ERROR_TRACE]),
        ({"tags": '{"otel.status_code": "ERROR"}'}, [d.ERROR_TRACE]),
        ({"tags": '{"span.kind": "client"}'}, [d.ADD_TRACE]),
    ],
)
def test_search_by_tags(client: FlaskClient, params: dict[str, Any], expected: list[str]) -> None:
    assert trace_ids(get(client, "/api/traces", service="todo", **params)) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"minDuration": "999ms"}, [d.CALL_TRACE]),
        ({"minDuration": "1s"}, [d.CALL_TRACE]),
        ({"minDuration": "1.001s"}, []),
        ({"minDuration": "12.4ms"}, [d.CALL_TRACE, d.ERROR_TRACE, d.ADD_TRACE]),
        ({"minDuration": "12.6ms"}, [d.CALL_TRACE, d.ERROR_TRACE]),
        ({"minDuration": "12500us"}, [d.CALL_TRACE, d.ERROR_TRACE, d.ADD_TRACE]),
        ({"minDuration": "35ms", "maxDuration": "45ms"}, [d.ERROR_TRACE]),
        ({"maxDuration": "1ms", "operation": "INSERT todo.db"}, [d.ADD_TRACE]),
        ({"maxDuration": "999us", "operation": "INSERT todo.db"}, []),
    ],
)
def test_search_by_duration_in_go_syntax(
    client: FlaskClient, params: dict[str, str], expected: list[str]
) -> None:
    assert (
        trace_ids(get(client, "/api/traces", service="todo", lookback="1h", **params)) == expected
    )


def test_search_limit(client: FlaskClient) -> None:
    body = get(client, "/api/traces", service="todo", limit="2")
    assert trace_ids(body) == [d.BOTH_TRACE, d.SPLIT_TRACE_FULL]
    assert body["limit"] == 2
    assert get(client, "/api/traces", service="todo", limit="999999")["limit"] == 1500


def test_search_lookback_and_time_range(client: FlaskClient, fixture: d.Fixture) -> None:
    recent = trace_ids(get(client, "/api/traces", service="todo", lookback="1h"))
    assert d.OLD_TRACE not in recent
    assert d.OLD_TRACE in trace_ids(get(client, "/api/traces", service="todo", lookback="4h"))
    # Without start or lookback, Jaeger looks back two days.
    assert d.OLD_TRACE in trace_ids(get(client, "/api/traces", service="todo"))
    old_us = (fixture.now - 3 * 3600 * d.S) // 1000
    window = {"start": str(old_us - SECOND_US), "end": str(old_us + SECOND_US)}
    assert trace_ids(get(client, "/api/traces", service="todo", **window)) == [d.OLD_TRACE]
    # lookback=custom (the Jaeger UI's value with start/end) is ignored.
    custom = get(client, "/api/traces", service="todo", lookback="custom", **window)
    assert trace_ids(custom) == [d.OLD_TRACE]
    # end alone moves the default window: nothing in the two days before the old trace.
    before = {"end": str(old_us - SECOND_US), "lookback": "1h"}
    assert trace_ids(get(client, "/api/traces", service="todo", **before)) == []


def test_search_by_trace_ids_reports_the_missing_ones(client: FlaskClient) -> None:
    body = get(client, "/api/traces", traceID=[d.ADD_TRACE, d.MISSING_TRACE, d.SPLIT_TRACE.upper()])
    assert trace_ids(body) == [d.ADD_TRACE, d.SPLIT_TRACE_FULL]
    assert body["errors"] == [{"msg": "trace not found", "traceID": d.MISSING_TRACE}]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "parameter 'service' is required"),
        ({"service": "todo", "minDuration": "1x"}, "unable to parse param 'minDuration'"),
        ({"service": "todo", "minDuration": "100"}, "unable to parse param 'minDuration'"),
        ({"service": "todo", "maxDuration": "-1s"}, "unable to parse param 'maxDuration'"),
        (
            {"service": "todo", "minDuration": "2s", "maxDuration": "1s"},
            "'maxDuration' should be greater than 'minDuration'",
        ),
        ({"service": "todo", "limit": "ten"}, "unable to parse param 'limit'"),
        ({"service": "todo", "limit": "-1"}, "invalid param 'limit'"),
        ({"service": "todo", "start": "yesterday"}, "unable to parse param 'start'"),
        ({"service": "todo", "end": "1.5"}, "unable to parse param 'end'"),
        ({"service": "todo", "start": "20", "end": "10"}, "'start' is after 'end'"),
        ({"service": "todo", "end": "1" + "0" * 20}, "invalid param 'end'"),
        ({"service": "todo", "minDuration": "9999999999h"}, "invalid param 'minDuration'"),
        ({"service": "todo", "lookback": "forever"}, "unable to parse param 'lookback'"),
        ({"service": "todo", "tags": "{not json"}, "malformed 'tags' parameter"),
        ({"service": "todo", "tags": '["a"]'}, "malformed 'tags' parameter"),
        ({"service": "todo", "tags": '{"a": {"b": 1}}'}, "malformed 'tags' parameter"),
        ({"service": "todo", "tag": "novalue"}, "malformed 'tag' parameter"),
        ({"traceID": "xyz"}, "invalid param 'traceID'"),
        ({"service": "todo", "spanKind": "up"}, "invalid param 'spanKind'"),
    ],
)
def test_search_bad_params_answer_400_naming_the_param(
    client: FlaskClient, params: dict[str, str], message: str
) -> None:
    assert message in error_message(get(client, "/api/traces", 400, **params))


# --------------------------------------------------------------------------- one trace


def test_trace_by_id_has_jaeger_shape(client: FlaskClient, fixture: d.Fixture) -> None:
    body = get(client, f"/api/traces/{d.ADD_TRACE}")
    assert body["total"] == 1
    assert body["errors"] is None
    [trace] = body["data"]
    assert trace["traceID"] == d.ADD_TRACE
    assert trace["warnings"] is None
    assert trace["processes"] == {
        "p1": {
            "serviceName": "todo",
            "tags": [
                {"key": "service.version", "type": "string", "value": "0.1.0"},
                {"key": "host.name", "type": "string", "value": "laptop"},
            ],
        }
    }
    server, internal, db = trace["spans"]
    t_add = fixture.now - 60 * d.S
    assert server == {
        "traceID": d.ADD_TRACE,
        "spanID": d.ADD_SERVER,
        "flags": 1,
        "operationName": "POST /add",
        "references": [],
        "startTime": t_add // 1000,
        "duration": 12_500,
        "tags": [
            {"key": "http.method", "type": "string", "value": "POST"},
            {"key": "http.target", "type": "string", "value": "/add"},
            {"key": "http.route", "type": "string", "value": "/add"},
            {"key": "http.status_code", "type": "int64", "value": 302},
            {
                "key": "otel.scope.name",
                "type": "string",
                "value": "opentelemetry.instrumentation.flask",
            },
            {"key": "otel.scope.version", "type": "string", "value": "0.66b1"},
            {"key": "span.kind", "type": "string", "value": "server"},
        ],
        "logs": [],
        "processID": "p1",
        "warnings": None,
    }
    assert internal["references"] == [
        {"refType": "CHILD_OF", "traceID": d.ADD_TRACE, "spanID": d.ADD_SERVER}
    ]
    assert internal["startTime"] == (t_add + 2 * d.MS) // 1000
    assert internal["duration"] == 8_000
    assert internal["tags"] == [
        {"key": "todo.task.id", "type": "int64", "value": 7},
        {"key": "todo.ratio", "type": "float64", "value": 0.25},
        {"key": "todo.flag", "type": "bool", "value": True},
        {"key": "todo.tags", "type": "string", "value": '["a","b"]'},
        {"key": "todo.meta", "type": "string", "value": '{"k":1}'},
        {"key": "otel.scope.name", "type": "string", "value": "todo"},
        {"key": "otel.scope.version", "type": "string", "value": "0.1.0"},
        {"key": "span.kind", "type": "string", "value": "internal"},
        {"key": "otel.status_code", "type": "string", "value": "OK"},
    ]
    assert internal["logs"] == [
        {
            "timestamp": (t_add + 3 * d.MS) // 1000,
            "fields": [
                {"key": "event", "type": "string", "value": "validated"},
                {"key": "todo.length", "type": "int64", "value": 12},
            ],
        }
    ]
    assert db["references"][0]["spanID"] == d.ADD_INTERNAL
    assert db["duration"] == 1_000


def test_error_span_tags_and_exception_event(client: FlaskClient) -> None:
    [trace] = get(client, f"/api/traces/{d.ERROR_TRACE}")["data"]
    internal = next(s for s in trace["spans"] if s["spanID"] == d.ERROR_INTERNAL)
    assert internal["tags"][-4:] == [
        {"key": "span.kind", "type": "string", "value": "internal"},
        {"key": "otel.status_code", "type": "string", "value": "ERROR"},
        {"key": "error", "type": "bool", "value": True},
        {"key": "otel.status_description", "type": "string", "value": "task 99 not found"},
    ]
    [log] = internal["logs"]
    assert log["fields"] == [
        {"key": "event", "type": "string", "value": "exception"},
        {"key": "exception.type", "type": "string", "value": "LookupError"},
        {"key": "exception.message", "type": "string", "value": "task 99 not found"},
    ]


def test_two_services_two_processes_and_a_link(client: FlaskClient) -> None:
    [trace] = get(client, f"/api/traces/{d.CALL_TRACE}")["data"]
    assert trace["processes"] == {
        "p1": {
            "serviceName": "todo-client",
            "tags": [{"key": "host.name", "type": "string", "value": "laptop"}],
        },
        "p2": {
            "serviceName": "todo",
            "tags": [
                {"key": "service.version", "type": "string", "value": "0.1.0"},
                {"key": "host.name", "type": "string", "value": "laptop"},
            ],
        },
    }
    client_span, server_span = trace["spans"]
    assert (client_span["processID"], server_span["processID"]) == ("p1", "p2")
    assert client_span["references"] == [
        {"refType": "FOLLOWS_FROM", "traceID": d.ADD_TRACE, "spanID": d.ADD_SERVER}
    ]
    assert {"key": "w3c.tracestate", "type": "string", "value": "vendor=1"} in client_span["tags"]
    assert server_span["references"] == [
        {"refType": "CHILD_OF", "traceID": d.CALL_TRACE, "spanID": d.CALL_CLIENT}
    ]
    assert client_span["duration"] == 1_200_000


def test_short_trace_id_is_zero_padded_as_jaeger_does(client: FlaskClient) -> None:
    [trace] = get(client, f"/api/traces/{d.SPLIT_TRACE}")["data"]
    assert trace["traceID"] == d.SPLIT_TRACE_FULL
    assert [s["spanID"] for s in trace["spans"]] == [d.SPLIT_SERVER, d.SPLIT_CHILD]


def test_unknown_trace_is_404(client: FlaskClient) -> None:
    body = get(client, f"/api/traces/{d.MISSING_TRACE}", 404)
    assert body == {
        "data": None,
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": [{"code": 404, "msg": "trace not found"}],
    }


@pytest.mark.parametrize("bad", ["not-hex", "z" * 32, "1" * 33])
def test_malformed_trace_id_is_400(client: FlaskClient, bad: str) -> None:
    assert "invalid param 'traceID'" in error_message(get(client, f"/api/traces/{bad}", 400))


# --------------------------------------------------------------------------- dependencies


def test_dependencies_count_calls_between_services(client: FlaskClient, fixture: d.Fixture) -> None:
    end_ms = fixture.now // 1_000_000 + 1000
    body = get(client, "/api/dependencies", endTs=str(end_ms), lookback=str(3_600_000))
    assert body["data"] == [{"parent": "todo-client", "child": "todo", "callCount": 1}]
    # A window before the call has none.
    early = get(client, "/api/dependencies", endTs=str(end_ms - 60_000), lookback="5000")
    assert early["data"] == []
    assert get(client, "/api/dependencies")["data"] == body["data"]  # defaults: now, 24h
    assert get(client, "/api/dependencies", service="nobody")["data"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"endTs": "soon"}, "'endTs'"),
        ({"lookback": "1h"}, "'lookback'"),
        ({"lookback": "0"}, "'lookback'"),
    ],
)
def test_dependencies_bad_params(client: FlaskClient, params: dict[str, str], message: str) -> None:
    assert message in error_message(get(client, "/api/dependencies", 400, **params))


# --------------------------------------------------------------------------- logs and metrics


def test_logs_of_a_trace(client: FlaskClient, fixture: d.Fixture) -> None:
    body = get(client, "/api/v1/logs", traceID=d.ADD_TRACE)
    t_add = fixture.now - 60 * d.S
    assert body["data"] == [
        {
            "timestamp": (t_add + 9 * d.MS) // 1000,
            "observedTimestamp": (t_add + 9 * d.MS) // 1000,
            "severityNumber": 13,
            "severityText": "WARNING",
            "body": "description was trimmed",
            "serviceName": "todo",
            "resource": dict(d.TODO.attributes),
            "scope": {"name": "", "version": ""},
            "attributes": {},
            "traceID": d.ADD_TRACE,
            "spanID": d.ADD_SERVER,
        },
        {
            "timestamp": (t_add + 5 * d.MS) // 1000,
            "observedTimestamp": (t_add + 6 * d.MS) // 1000,
            "severityNumber": 9,
            "severityText": "INFO",
            "body": "task 7 added",
            "serviceName": "todo",
            "resource": dict(d.TODO.attributes),
            "scope": {"name": "todo.tasks", "version": ""},
            "attributes": {"code.function": "add"},
            "traceID": d.ADD_TRACE,
            "spanID": d.ADD_INTERNAL,
        },
    ]
    assert body["limit"] == 100
    assert get(client, "/api/v1/logs", trace_id=d.ADD_TRACE)["data"] == body["data"]


@pytest.mark.parametrize(
    ("params", "bodies"),
    [
        ({"service": "todo-client"}, ["todo-client started"]),
        (
            {"service": "todo", "minSeverity": "WARN"},
            ["task 99 not found", "description was trimmed"],
        ),
        ({"service": "todo", "minSeverity": "17"}, ["task 99 not found"]),
        ({"text": "TRIMMED"}, ["description was trimmed"]),
        ({"service": "todo", "limit": "1"}, ["task 99 not found"]),
    ],
)
def test_log_search(client: FlaskClient, params: dict[str, str], bodies: list[str]) -> None:
    assert [r["body"] for r in get(client, "/api/v1/logs", **params)["data"]] == bodies


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"minSeverity": "LOUD"}, "invalid param 'minSeverity'"),
        ({"traceID": "nothex"}, "invalid param 'traceID'"),
        ({"limit": "0"}, "invalid param 'limit'"),
        ({"start": "x"}, "unable to parse param 'start'"),
    ],
)
def test_log_search_bad_params(client: FlaskClient, params: dict[str, str], message: str) -> None:
    assert message in error_message(get(client, "/api/v1/logs", 400, **params))


def test_metric_names(client: FlaskClient) -> None:
    assert get(client, "/api/v1/metrics")["data"] == [
        {"name": "http.server.duration", "kind": "histogram", "unit": "s", "description": ""},
        {
            "name": "todo.requests",
            "kind": "sum",
            "unit": "{request}",
            "description": "Requests handled",
        },
    ]


def test_metric_series_group_by_attributes(client: FlaskClient, fixture: d.Fixture) -> None:
    series = get(client, "/api/v1/metrics/todo.requests/series")["data"]
    assert [(s["label"], [p["value"] for p in s["points"]]) for s in series] == [
        ("todo http.request.method=GET http.route=/", [5.0, 9.0]),
        ("todo http.request.method=POST http.route=/add", [1.0, 3.0, 4.0]),
    ]
    first = series[1]
    assert first["attributes"] == {"http.route": "/add", "http.request.method": "POST"}
    assert first["resource"] == dict(d.TODO.attributes)
    assert (first["kind"], first["isMonotonic"], first["temporality"]) == ("sum", True, 2)
    assert first["points"][0]["timestamp"] == (fixture.now - 50 * d.S) // 1000
    assert len({s["id"] for s in series}) == 2


def test_histogram_series_chart_the_mean(client: FlaskClient) -> None:
    [series] = get(client, "/api/v1/metrics/http.server.duration/series")["data"]
    assert [p["value"] for p in series["points"]] == pytest.approx([0.015, 0.025])
    assert series["points"][1]["histogram"] == {
        "count": 4,
        "sum": 0.1,
        "min": 0.01,
        "max": 0.04,
        "bucketCounts": [4, 0],
        "explicitBounds": [0.05],
    }
    assert get(client, "/api/v1/metrics/no.such.metric/series")["data"] == []


# --------------------------------------------------------------------------- HTTP behaviour


def test_unknown_api_path_and_method_answer_json(client: FlaskClient) -> None:
    assert error_message(get(client, "/api/nothing", 404), 404)
    response = client.post("/api/traces")
    assert response.status_code == 405
    assert response.get_json()["errors"][0]["code"] == 405


def test_pretty_print_and_security_headers(client: FlaskClient) -> None:
    response = client.get("/api/services?prettyPrint=true")
    assert response.get_data(as_text=True).startswith('{\n    "data": [\n')
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
