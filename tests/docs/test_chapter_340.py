"""Chapter 340 - Manual spans: a failing operation is an ERROR span; its request is not."""

from __future__ import annotations

from typing import Any

import pytest

from tests.doccmd import doc_command, doc_output
from tests.docs.chapters import App, by_name, localise, shell, spans_in
from tests.support import eventually

pytestmark = pytest.mark.e2e


def test_an_unknown_task_ends_the_operation_span_in_error(seed_agent: App) -> None:
    script = localise(doc_command("340-not-found"), app=seed_agent.port, tmp=seed_agent.tmp)
    result = shell(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == doc_output("340-not-found")

    def delete_spans() -> list[dict[str, Any]] | None:
        spans = spans_in(seed_agent.output_text())
        names = {s["name"] for s in spans}
        return spans if {"todo.tasks.delete", "DELETE /api/tasks/<int:task_id>"} <= names else None

    spans = eventually(delete_spans, timeout=10)
    delete = by_name(spans, "todo.tasks.delete")
    assert delete["kind"] == "SpanKind.INTERNAL"
    assert delete["status"] == {
        "status_code": "ERROR",
        "description": "TaskNotFound: There is no task 99; it may have been deleted.",
    }
    assert delete["attributes"] == {"todo.task.id": 99}
    (event,) = delete["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "todo.tasks.TaskNotFound"
    assert event["attributes"]["exception.message"] == (
        "There is no task 99; it may have been deleted."
    )
    assert event["attributes"]["exception.stacktrace"].startswith("Traceback (most recent call")

    server = by_name(spans, "DELETE /api/tasks/<int:task_id>")
    assert server["kind"] == "SpanKind.SERVER"
    assert server["status"] == {"status_code": "UNSET"}
    assert delete["parent_id"] == server["context"]["span_id"]
    assert server["attributes"]["http.target"] == "/api/tasks/99"
    assert server["attributes"]["http.route"] == "/api/tasks/<int:task_id>"
    assert server["attributes"]["http.status_code"] == 404
