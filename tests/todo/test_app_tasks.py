"""The service layer: validation, spans of the telemetry contract, counter, logs, rollback."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.postgres import on_all_databases
from todo import tasks
from todo.models import MAX_DESCRIPTION_LENGTH


@dataclass
class Traced:
    app: Flask
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def tasks_created(self) -> int:
        data = self.metrics.get_metrics_data()
        total = 0
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == "todo.tasks.created":
                        total += sum(int(p.value) for p in metric.data.data_points)  # type: ignore[union-attr]
        return total


@pytest.fixture
def traced(make_app: Callable[..., Flask]) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    app = make_app(
        TELEMETRY_TRACER_PROVIDER=tracer_provider, TELEMETRY_METER_PROVIDER=meter_provider
    )
    yield Traced(app, exporter, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [("Buy milk", "Buy milk"), ("  padded \t\n", "padded"), ("ü" * MAX_DESCRIPTION_LENGTH, None)],
)
def test_validate_description_accepts(raw: str, cleaned: str | None) -> None:
    assert tasks.validate_description(raw) == (cleaned if cleaned is not None else raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "A description is required."),
        ("", "Describe the task: the description cannot be empty."),
        ("\u00a0 \t", "Describe the task: the description cannot be empty."),
        ("one\ntwo", "The description must be one line, without control characters."),
        ("nul\x00byte", "The description must be one line, without control characters."),
        ("bell\x07", "The description must be one line, without control characters."),
        (
            "y" * (MAX_DESCRIPTION_LENGTH + 1),
            "The description is too long: at most 256 characters, this one has 257.",
        ),
    ],
)
def test_validate_description_refuses(raw: str | None, message: str) -> None:
    with pytest.raises(tasks.InvalidDescription) as raised:
        tasks.validate_description(raw)
    assert str(raised.value) == message


@on_all_databases
def test_service_round_trip(app: Flask) -> None:
    with app.app_context():
        task = tasks.add_task(" Read ")
        assert (task.description, task.done) == ("Read", False)
        assert tasks.count_open() == 1
        assert tasks.toggle_task(task.id).done is True
        assert tasks.count_open() == 0
        updated = tasks.update_task(task.id, description="Read a book", done=False)
        assert (updated.description, updated.done) == ("Read a book", False)
        assert [t.id for t in tasks.list_tasks()] == [task.id]
        assert tasks.get_task(task.id).description == "Read a book"
        deleted = tasks.delete_task(task.id)
        assert deleted.description == "Read a book"  # still readable once deleted
        assert tasks.list_tasks() == []
        with pytest.raises(tasks.TaskNotFound) as raised:
            tasks.get_task(task.id)
        assert raised.value.task_id == task.id


def test_spans_of_each_operation_are_children_of_the_server_span(traced: Traced) -> None:
    client = traced.app.test_client()
    traced.spans.clear()
    task_id = client.post("/api/tasks", json={"description": "x"}).get_json()["id"]
    client.get(f"/api/tasks/{task_id}")
    client.post(f"/toggle/{task_id}")
    client.patch(f"/api/tasks/{task_id}", json={"done": False})
    client.get("/api/tasks")
    client.delete(f"/api/tasks/{task_id}")

    expected = [
        ("POST /api/tasks", "todo.tasks.add", {"todo.task.id": task_id}),
        ("GET /api/tasks/<int:task_id>", "todo.tasks.get", {"todo.task.id": task_id}),
        (
            "POST /toggle/<int:task_id>",
            "todo.tasks.toggle",
            {"todo.task.id": task_id, "todo.task.done": True},
        ),
        (
            "PATCH /api/tasks/<int:task_id>",
            "todo.tasks.update",
            {"todo.task.id": task_id, "todo.task.done": False},
        ),
        ("GET /api/tasks", "todo.tasks.list", {"todo.task.count": 1}),
        ("DELETE /api/tasks/<int:task_id>", "todo.tasks.delete", {"todo.task.id": task_id}),
    ]
    spans = traced.spans.get_finished_spans()
    for server_name, name, attributes in expected:
        [server] = [s for s in spans if s.name == server_name]
        [internal] = traced.finished(name)
        assert internal.kind is SpanKind.INTERNAL
        assert internal.instrumentation_scope is not None
        assert internal.instrumentation_scope.name == "todo"
        assert dict(internal.attributes or {}) == attributes
        assert internal.status.status_code is StatusCode.UNSET
        assert internal.parent is not None
        assert internal.parent.span_id == server.context.span_id
        # The database spans of the operation are its children.
        db_spans = [s for s in spans if s.parent and s.parent.span_id == internal.context.span_id]
        assert db_spans, f"no DB span under {name}"
        assert all(s.kind is SpanKind.CLIENT for s in db_spans)
        assert all((s.attributes or {}).get("db.system") == "sqlite" for s in db_spans)


@pytest.mark.parametrize(
    ("method", "path", "body", "span_name", "exception_type"),
    [
        ("GET", "/api/tasks/999", None, "todo.tasks.get", "todo.tasks.TaskNotFound"),
        ("POST", "/toggle/999", None, "todo.tasks.toggle", "todo.tasks.TaskNotFound"),
        ("POST", "/delete/999", None, "todo.tasks.delete", "todo.tasks.TaskNotFound"),
        ("PATCH", "/api/tasks/999", {"done": True}, "todo.tasks.update", "todo.tasks.TaskNotFound"),
        (
            "POST",
            "/api/tasks",
            {"description": " "},
            "todo.tasks.add",
            "todo.tasks.InvalidDescription",
        ),
    ],
)
def test_failed_operation_span_has_error_status_and_exception_event(
    traced: Traced,
    method: str,
    path: str,
    body: object,
    span_name: str,
    exception_type: str,
) -> None:
    client = traced.app.test_client()
    traced.spans.clear()
    response = client.open(path, method=method, json=body)
    assert response.status_code in (400, 404)
    [span] = traced.finished(span_name)
    assert span.status.status_code is StatusCode.ERROR
    [event] = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == exception_type
    expected = (
        "There is no task 999; it may have been deleted."
        if exception_type.endswith("TaskNotFound")
        else "Describe the task: the description cannot be empty."
    )
    assert (event.attributes or {})["exception.message"] == expected
    assert expected in response.get_data(as_text=True)


def test_tasks_created_counter(traced: Traced) -> None:
    client = traced.app.test_client()
    assert traced.tasks_created() == 0
    client.post("/api/tasks", json={"description": "one"})
    client.post("/add", data={"description": "two"})
    client.post("/add", data={"description": ""})  # refused: not counted
    assert traced.tasks_created() == 2


def test_one_info_log_line_per_change(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    client = app.test_client()
    with caplog.at_level(logging.INFO, logger="todo.tasks"):
        client.post("/add", data={"description": "Log me"})
        client.post("/toggle/1")
        client.post("/toggle/1")
        client.patch("/api/tasks/1", json={"description": "Logged"})
        client.get("/")
        client.post("/delete/1")
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "todo.tasks"] == [
        (logging.INFO, "added task 1: 'Log me'"),
        (logging.INFO, "marked task 1 done: 'Log me'"),
        (logging.INFO, "marked task 1 open: 'Log me'"),
        (logging.INFO, "updated task 1: done=False 'Logged'"),
        (logging.INFO, "deleted task 1: 'Logged'"),
    ]
