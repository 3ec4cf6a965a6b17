"""The telemetry contract (docs/telemetry-reference.md), asserted with the SDK's in-memory parts.

Each test makes an app with its own providers (a SimpleSpanProcessor into an
InMemorySpanExporter, an InMemoryMetricReader, a SimpleLogRecordProcessor into
an InMemoryLogRecordExporter) injected through ``create_app``'s config, drives
it with the test client, and checks exactly what users are told to expect.

The HTTP attributes that depend on the semantic-convention mode (read once per
process) are checked in test_telemetry_semconv.py, in subprocesses; everything
here is the same in every mode.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy
from flask import Flask
from flask.testing import FlaskClient
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.postgres import on_all_databases
from tests.todo.conftest import MakeApp
from todo import __version__
from todo.db import db

#: The resource of the injected providers (configure_sdk's is tested in test_telemetry_sdk.py).
RESOURCE = Resource.create({"service.name": "todo", "service.version": __version__})

JSON = {"Content-Type": "application/json"}


@dataclass
class Telemetry:
    """The in-memory end of the injected providers."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    logs: InMemoryLogRecordExporter
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider

    def finished(self) -> list[ReadableSpan]:
        """Return the ended spans, in the order they ended."""
        return list(self.spans.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        """Return the one ended span called ``name``."""
        found = [s for s in self.finished() if s.name == name]
        assert len(found) == 1, (
            f"expected one {name!r} span, got {[s.name for s in self.finished()]}"
        )
        return found[0]

    def metric_list(self) -> dict[str, tuple[str, Metric]]:
        """Collect now; return each metric by name, with its scope name."""
        data = self.metrics.get_metrics_data()
        assert data is not None
        return {
            metric.name: (scope.scope.name, metric)
            for rm in data.resource_metrics
            for scope in rm.scope_metrics
            for metric in scope.metrics
        }

    def points(self, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
        """Collect now; return the data points of metric ``name`` by their attributes."""
        _, metric = self.metric_list()[name]
        return {frozenset((p.attributes or {}).items()): p for p in metric.data.data_points}

    def records(self) -> list[ReadableLogRecord]:
        """Return the exported log records."""
        return list(self.logs.get_finished_logs())


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """Return fresh in-memory providers' ends; shut the providers down afterwards."""
    spans, reader, logs = (
        InMemorySpanExporter(),
        InMemoryMetricReader(),
        InMemoryLogRecordExporter(),
    )
    tracer_provider = TracerProvider(resource=RESOURCE)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    yield Telemetry(spans, reader, logs, tracer_provider, meter_provider, logger_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()


@pytest.fixture
def app(make_app: MakeApp, telemetry: Telemetry) -> Flask:
    """Return a test app whose telemetry goes to ``telemetry``."""
    return make_app(
        TELEMETRY_TRACER_PROVIDER=telemetry.tracer_provider,
        TELEMETRY_METER_PROVIDER=telemetry.meter_provider,
        TELEMETRY_LOGGER_PROVIDER=telemetry.logger_provider,
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _add(client: FlaskClient, description: str = "Buy milk") -> int:
    response = client.post("/api/tasks", json={"description": description})
    assert response.status_code == 201
    task_id = response.get_json()["id"]
    assert isinstance(task_id, int)
    return task_id


def _children(telemetry: Telemetry, parent: ReadableSpan) -> list[ReadableSpan]:
    return [
        s for s in telemetry.finished() if s.parent and s.parent.span_id == parent.context.span_id
    ]


# --- Server spans ----------------------------------------------------------------

SERVER_SPANS = [
    # method, path, body (JSON for /api, form otherwise), span name, route, status
    ("GET", "/", None, "GET /", "/", 200),
    ("POST", "/add", {"description": "Buy milk"}, "POST /add", "/add", 303),
    ("POST", "/toggle/1", {}, "POST /toggle/<int:task_id>", "/toggle/<int:task_id>", 303),
    ("POST", "/delete/1", {}, "POST /delete/<int:task_id>", "/delete/<int:task_id>", 303),
    ("GET", "/api/tasks", None, "GET /api/tasks", "/api/tasks", 200),
    ("POST", "/api/tasks", {"description": "Buy milk"}, "POST /api/tasks", "/api/tasks", 201),
    ("GET", "/api/tasks/1", None, "GET /api/tasks/<int:task_id>", "/api/tasks/<int:task_id>", 200),
    (
        "PATCH",
        "/api/tasks/1",
        {"done": True},
        "PATCH /api/tasks/<int:task_id>",
        "/api/tasks/<int:task_id>",
        200,
    ),
    (
        "DELETE",
        "/api/tasks/1",
        None,
        "DELETE /api/tasks/<int:task_id>",
        "/api/tasks/<int:task_id>",
        204,
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "name", "route", "status"),
    SERVER_SPANS,
    ids=[s[3] for s in SERVER_SPANS],
)
def test_one_server_span_per_request_named_method_and_route(
    client: FlaskClient,
    telemetry: Telemetry,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    name: str,
    route: str,
    status: int,
) -> None:
    if "/1" in path:
        _add(client)
    telemetry.spans.clear()
    if path.startswith("/api"):
        response = client.open(path, method=method, json=body)
    else:
        response = client.open(path, method=method, data=body)
    assert response.status_code == status

    servers = [s for s in telemetry.finished() if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == [name]
    server = servers[0]
    assert server.parent is None
    assert server.attributes is not None
    assert server.attributes["http.route"] == route
    assert server.status.status_code is StatusCode.UNSET
    assert server.instrumentation_scope is not None
    assert server.instrumentation_scope.name == "opentelemetry.instrumentation.flask"
    assert server.resource.attributes["service.name"] == "todo"


@pytest.mark.parametrize("path", ["/no/such/page", "/api/tasks/not-a-number", "/wp-login.php"])
def test_an_unmatched_url_is_named_after_the_method_only(
    client: FlaskClient, telemetry: Telemetry, path: str
) -> None:
    assert client.get(path).status_code == 404
    (span,) = telemetry.finished()
    assert span.name == "GET"
    assert span.kind is SpanKind.SERVER
    assert span.attributes is not None
    assert "http.route" not in span.attributes


def test_an_unknown_method_is_named_http(client: FlaskClient, telemetry: Telemetry) -> None:
    assert client.open("/nowhere", method="BREW").status_code == 404
    (span,) = telemetry.finished()
    assert span.name == "HTTP"


@pytest.mark.parametrize("path", ["/healthz", "/static/style.css", "/static/favicon.svg"])
def test_health_checks_and_static_files_are_not_traced_nor_counted(
    client: FlaskClient, telemetry: Telemetry, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    response.close()
    assert telemetry.finished() == []
    metrics = telemetry.metric_list()
    assert "todo.requests" not in metrics
    assert "http.server.duration" not in metrics
    assert "http.server.request.duration" not in metrics


# --- The app's spans and the DB spans beneath them ---------------------------------


def _db_name(app: Flask) -> str:
    url = sqlalchemy.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    assert url.database
    return url.database


@on_all_databases
def test_server_span_then_app_span_then_db_spans(
    app: Flask, client: FlaskClient, telemetry: Telemetry
) -> None:
    task_id = _add(client)

    server = telemetry.span("POST /api/tasks")
    add = telemetry.span("todo.tasks.add")
    assert add.kind is SpanKind.INTERNAL
    assert add.parent is not None
    assert add.parent.span_id == server.context.span_id
    assert add.context.trace_id == server.context.trace_id
    assert dict(add.attributes or {}) == {"todo.task.id": task_id}
    assert add.instrumentation_scope is not None
    assert add.instrumentation_scope.name == "todo"
    assert add.instrumentation_scope.version == __version__
    assert add.status.status_code is StatusCode.UNSET

    db_spans = _children(telemetry, add)
    assert db_spans, "no DB span under todo.tasks.add"
    system = (
        "sqlite" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else "postgresql"
    )
    insert = [
        s
        for s in db_spans
        if str((s.attributes or {}).get("db.statement", "")).startswith("INSERT INTO tasks")
    ]
    assert len(insert) == 1
    assert insert[0].name == f"INSERT {_db_name(app)}"
    assert insert[0].kind is SpanKind.CLIENT
    for span in db_spans:
        assert span.kind is SpanKind.CLIENT
        assert (span.attributes or {})["db.system"] == system
        assert span.instrumentation_scope is not None
        assert span.instrumentation_scope.name == "opentelemetry.instrumentation.sqlalchemy"
    # Every span of the request is in one trace: server -> app -> DB, nothing else.
    request_spans = [
        s for s in telemetry.finished() if s.context.trace_id == server.context.trace_id
    ]
    assert len(request_spans) == 2 + len(db_spans)


SERVICE_SPANS = [
    # request, span name, attributes (task_id, count filled in)
    ("GET /api/tasks", "todo.tasks.list", {"todo.task.count": 2}),
    ("GET /", "todo.tasks.list", {"todo.task.count": 2}),
    ("GET /api/tasks/{id}", "todo.tasks.get", {"todo.task.id": "id"}),
    ("POST /toggle/{id}", "todo.tasks.toggle", {"todo.task.id": "id", "todo.task.done": True}),
    (
        "PATCH /api/tasks/{id}",
        "todo.tasks.update",
        {"todo.task.id": "id", "todo.task.done": True},
    ),
    ("DELETE /api/tasks/{id}", "todo.tasks.delete", {"todo.task.id": "id"}),
    ("POST /delete/{id}", "todo.tasks.delete", {"todo.task.id": "id"}),
]


@pytest.mark.parametrize(
    ("request_line", "name", "attributes"), SERVICE_SPANS, ids=[s[0] for s in SERVICE_SPANS]
)
def test_each_operation_has_its_span_with_attributes(
    client: FlaskClient,
    telemetry: Telemetry,
    request_line: str,
    name: str,
    attributes: Mapping[str, Any],
) -> None:
    _add(client, "first")
    task_id = _add(client, "second")
    telemetry.spans.clear()
    method, path = request_line.format(id=task_id).split(" ", 1)
    body = {"done": True} if method == "PATCH" else None
    response = (
        client.open(path, method=method, json=body) if body else client.open(path, method=method)
    )
    assert response.status_code < 400

    span = telemetry.span(name)
    expected = {k: task_id if v == "id" else v for k, v in attributes.items()}
    assert dict(span.attributes or {}) == expected
    assert span.kind is SpanKind.INTERNAL
    (server,) = [s for s in telemetry.finished() if s.kind is SpanKind.SERVER]
    assert span.parent is not None
    assert span.parent.span_id == server.context.span_id
    assert all((s.attributes or {}).get("db.system") for s in _children(telemetry, span)), (
        "children of app spans are DB spans"
    )
    assert _children(telemetry, span), f"{name} ran no query"


# --- Failures ----------------------------------------------------------------------


def _exception_event(span: ReadableSpan) -> Mapping[str, Any]:
    events = [e for e in span.events if e.name == "exception"]
    assert len(events) == 1, f"{span.name}: events {[e.name for e in span.events]}"
    return events[0].attributes or {}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "name", "exception"),
    [
        ("GET", "/api/tasks/999", None, 404, "todo.tasks.get", "todo.tasks.TaskNotFound"),
        ("DELETE", "/api/tasks/999", None, 404, "todo.tasks.delete", "todo.tasks.TaskNotFound"),
        ("POST", "/toggle/999", None, 404, "todo.tasks.toggle", "todo.tasks.TaskNotFound"),
        (
            "POST",
            "/api/tasks",
            {"description": "   "},
            400,
            "todo.tasks.add",
            "todo.tasks.InvalidDescription",
        ),
        (
            "POST",
            "/add",
            {"description": "x" * 257},
            400,
            "todo.tasks.add",
            "todo.tasks.InvalidDescription",
        ),
    ],
)
def test_a_failing_operation_ends_its_span_in_error_with_an_exception_event(
    client: FlaskClient,
    telemetry: Telemetry,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    name: str,
    exception: str,
) -> None:
    if path.startswith("/api"):
        response = client.open(path, method=method, json=body)
    else:
        response = client.open(path, method=method, data=body)
    assert response.status_code == status

    span = telemetry.span(name)
    assert span.status.status_code is StatusCode.ERROR
    event = _exception_event(span)
    assert event["exception.type"] == exception
    assert "Traceback" in str(event["exception.stacktrace"])
    # A 4xx is the client's mistake, not the server's: the server span is not an error.
    (server,) = [s for s in telemetry.finished() if s.kind is SpanKind.SERVER]
    assert server.status.status_code is StatusCode.UNSET
    assert (server.attributes or {}).get("http.status_code", status) == status


def test_a_database_error_is_an_error_on_every_span_of_the_request(
    app: Flask, client: FlaskClient, telemetry: Telemetry
) -> None:
    with app.app_context():
        db.session.execute(sqlalchemy.text("DROP TABLE tasks"))
        db.session.commit()
    telemetry.spans.clear()

    response = client.post("/api/tasks", json={"description": "Buy milk"})
    assert response.status_code == 500
    assert response.get_json() == {"error": response.get_json()["error"]}
    assert "Traceback" not in response.get_data(as_text=True)

    add = telemetry.span("todo.tasks.add")
    assert add.status.status_code is StatusCode.ERROR
    assert _exception_event(add)["exception.type"] == "sqlalchemy.exc.OperationalError"
    (insert,) = _children(telemetry, add)
    assert insert.status.status_code is StatusCode.ERROR
    server = telemetry.span("POST /api/tasks")
    assert server.status.status_code is StatusCode.ERROR
    assert _exception_event(server)["exception.type"] == "sqlalchemy.exc.OperationalError"


# --- Metrics -----------------------------------------------------------------------


def test_requests_are_counted_by_route_and_method(
    client: FlaskClient, telemetry: Telemetry
) -> None:
    task_id = _add(client)
    client.get("/")
    client.get("/")
    client.get(f"/api/tasks/{task_id}")
    client.get("/api/tasks/999")
    client.get("/no/such/page")
    client.get("/healthz")
    client.post("/api/tasks", data="x", headers={"Content-Type": "text/plain"})

    scope, metric = telemetry.metric_list()["todo.requests"]
    assert scope == "todo"
    assert metric.unit == "{request}"
    counts = {k: p.value for k, p in telemetry.points("todo.requests").items()}
    assert counts == {
        frozenset({("http.route", "/api/tasks"), ("http.request.method", "POST")}): 2,
        frozenset({("http.route", "/"), ("http.request.method", "GET")}): 2,
        frozenset({("http.route", "/api/tasks/<int:task_id>"), ("http.request.method", "GET")}): 2,
        frozenset({("http.request.method", "GET")}): 1,
    }


@on_all_databases
def test_tasks_created_and_open_follow_adds_toggles_and_deletes(
    client: FlaskClient, telemetry: Telemetry
) -> None:
    ids = [_add(client, f"task {n}") for n in range(3)]
    client.post("/api/tasks", json={"description": ""})  # refused: not created

    def value(name: str) -> Any:
        (point,) = telemetry.points(name).values()
        return point.value

    assert value("todo.tasks.created") == 3
    assert value("todo.tasks.open") == 3
    assert client.post(f"/toggle/{ids[0]}").status_code == 303
    assert value("todo.tasks.open") == 2
    assert client.patch(f"/api/tasks/{ids[1]}", json={"done": True}).status_code == 200
    assert value("todo.tasks.open") == 1
    assert client.delete(f"/api/tasks/{ids[2]}").status_code == 204
    assert value("todo.tasks.open") == 0
    assert client.post(f"/toggle/{ids[0]}").status_code == 303
    assert value("todo.tasks.open") == 1
    assert value("todo.tasks.created") == 3

    metrics = telemetry.metric_list()
    for name in ("todo.tasks.created", "todo.tasks.open"):
        scope, metric = metrics[name]
        assert (scope, metric.unit) == ("todo", "{task}")
        (point,) = metric.data.data_points
        assert dict(point.attributes or {}) == {}


def test_counting_open_tasks_makes_no_span(client: FlaskClient, telemetry: Telemetry) -> None:
    _add(client)
    telemetry.spans.clear()
    telemetry.metric_list()
    assert telemetry.finished() == []


def test_counting_open_tasks_leaves_the_connection_usage_balanced(
    client: FlaskClient, telemetry: Telemetry
) -> None:
    for description in ("Buy milk", "Walk the dog"):
        _add(client, description)
        client.get("/")
        telemetry.metric_list()  # each collection counts the open tasks
    usage = telemetry.points("db.client.connections.usage")
    used = [point.value for attrs, point in usage.items() if ("state", "used") in attrs]
    assert used == [0], "every connection checked out was checked in again"


# --- Logs --------------------------------------------------------------------------


def test_log_records_carry_the_trace_and_span_of_the_request(
    client: FlaskClient, telemetry: Telemetry
) -> None:
    task_id = _add(client, "Buy milk")

    add = telemetry.span("todo.tasks.add")
    (record,) = [r for r in telemetry.records() if str(r.log_record.body).startswith("added task")]
    log = record.log_record
    assert log.body == f"added task {task_id}: 'Buy milk'"
    assert log.severity_text == "INFO"
    assert log.trace_id == add.context.trace_id != 0
    assert log.span_id == add.context.span_id
    assert record.instrumentation_scope is not None
    assert record.instrumentation_scope.name == "todo.tasks"
    assert record.resource.attributes["service.name"] == "todo"


def test_an_unexpected_error_is_logged_with_its_exception_in_the_request(
    app: Flask, client: FlaskClient, telemetry: Telemetry
) -> None:
    with app.app_context():
        db.session.execute(sqlalchemy.text("DROP TABLE tasks"))
        db.session.commit()
    client.get("/api/tasks")

    server = telemetry.span("GET /api/tasks")
    (record,) = [r for r in telemetry.records() if r.log_record.severity_text == "ERROR"]
    assert record.log_record.body == "unexpected error in GET /api/tasks"
    assert record.log_record.trace_id == server.context.trace_id
    assert record.log_record.span_id == server.context.span_id
    assert (record.log_record.attributes or {})["exception.type"] == "OperationalError"


def test_two_apps_in_one_process_keep_their_logs_apart(
    make_app: MakeApp, client: FlaskClient, telemetry: Telemetry
) -> None:
    other_logs = InMemoryLogRecordExporter()
    other_provider = LoggerProvider(resource=RESOURCE)
    other_provider.add_log_record_processor(SimpleLogRecordProcessor(other_logs))
    other = make_app(TELEMETRY_LOGGER_PROVIDER=other_provider)
    try:
        _add(client, "mine")
        assert (
            other.test_client().post("/api/tasks", json={"description": "theirs"}).status_code
            == 201
        )
    finally:
        other_provider.shutdown()

    mine = [str(r.log_record.body) for r in telemetry.records()]
    theirs = [str(r.log_record.body) for r in other_logs.get_finished_logs()]
    assert [b for b in mine if b.startswith("added")] == ["added task 1: 'mine'"]
    assert [b for b in theirs if b.startswith("added")] == ["added task 2: 'theirs'"]


def test_every_change_logs_one_record_in_its_span(make_app: MakeApp, telemetry: Telemetry) -> None:
    app = make_app(
        WTF_CSRF_ENABLED=True,
        TELEMETRY_TRACER_PROVIDER=telemetry.tracer_provider,
        TELEMETRY_LOGGER_PROVIDER=telemetry.logger_provider,
    )
    client = app.test_client()
    task_id = _add(client)
    client.patch(f"/api/tasks/{task_id}", json={"done": True})
    client.patch(f"/api/tasks/{task_id}", json={"done": False})
    client.delete(f"/api/tasks/{task_id}")
    assert client.post("/add", data={"description": "no token"}).status_code == 400

    spans = {s.context.span_id: s.name for s in telemetry.finished()}
    logged = [
        (str(r.log_record.body), r.log_record.severity_text, spans.get(r.log_record.span_id or 0))
        for r in telemetry.records()
    ]
    assert logged == [
        (f"added task {task_id}: 'Buy milk'", "INFO", "todo.tasks.add"),
        (f"updated task {task_id}: done=True 'Buy milk'", "INFO", "todo.tasks.update"),
        (f"updated task {task_id}: done=False 'Buy milk'", "INFO", "todo.tasks.update"),
        (f"deleted task {task_id}: 'Buy milk'", "INFO", "todo.tasks.delete"),
        ("refused a form post: The CSRF token is missing.", "INFO", "POST /add"),
    ]
