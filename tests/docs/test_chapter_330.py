"""Chapter 330 - The agent: the seed's commands, `tee -i`, the variables, logs, `--no-reload`."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.doccmd import doc_command, doc_output
from tests.docs.chapters import (
    FAST_BATCHES,
    App,
    by_name,
    doc_blocks,
    logs_in,
    run_block,
    shell,
    spans_in,
    started,
)
from tests.support import eventually, stop, use_the_app

pytestmark = pytest.mark.e2e

CHAPTER = "300-building-our-application/330-the-agent.md"


def _attributes(span: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = span["attributes"]
    return attributes


def test_the_agent_loads_the_instrumentations_the_chapter_lists() -> None:
    block = run_block(
        CHAPTER,
        'python -c "from importlib.metadata import entry_points; '
        "print(*sorted(e.name for e in entry_points(group='opentelemetry_instrumentor')))\"",
    )
    result = shell(block.script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == block.output


def test_only_the_plural_logs_variable_exists() -> None:
    (block,) = [b for b in doc_blocks(CHAPTER) if "OTEL_LOGS?_EXPORTER" in b.script]
    result = shell(block.script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == block.output == ["OTEL_LOGS_EXPORTER"]


def test_the_seed_command_prints_the_request_tree_and_each_log_once(seed_agent: App) -> None:
    use_the_app(seed_agent.base)

    def request_spans() -> list[dict[str, Any]] | None:
        spans = spans_in(seed_agent.output_text())
        names = [s["name"] for s in spans]
        return spans if names.count("GET /") == 2 and "POST /add" in names else None

    spans = eventually(request_spans, timeout=10)
    post = by_name(spans, "POST /add")
    assert post["kind"] == "SpanKind.SERVER"
    assert post["parent_id"] is None
    assert post["resource"]["attributes"]["service.name"] == "todo"
    assert "service.instance.id" in post["resource"]["attributes"]
    attributes = _attributes(post)
    assert attributes["http.method"] == "POST"
    assert attributes["http.target"] == "/add"
    assert attributes["http.route"] == "/add"
    assert attributes["http.status_code"] == 303
    assert "http.url" not in attributes

    add = by_name(spans, "todo.tasks.add")
    assert add["kind"] == "SpanKind.INTERNAL"
    assert add["parent_id"] == post["context"]["span_id"]
    assert add["context"]["trace_id"] == post["context"]["trace_id"]
    (insert,) = [s for s in spans if s["name"].startswith("INSERT ") and s["parent_id"]]
    assert insert["name"].endswith("todo.sqlite")
    assert insert["parent_id"] == add["context"]["span_id"]
    assert _attributes(insert)["db.system"] == "sqlite"

    # The schema upgrade at start-up: database spans without a parent.
    startup = [s for s in spans if s["kind"] == "SpanKind.CLIENT" and s["parent_id"] is None]
    assert {"connect"} <= {s["name"] for s in startup}
    assert any(s["name"].startswith("CREATE ") for s in startup)

    def app_logs() -> list[dict[str, Any]] | None:
        logs = logs_in(seed_agent.output_text())
        return logs if any(r["body"] == "added task 1: 'Buy milk'" for r in logs) else None

    logs = eventually(app_logs, timeout=10)
    (added,) = [r for r in logs if r["body"] == "added task 1: 'Buy milk'"]
    assert added["trace_id"] == add["context"]["trace_id"]
    assert added["span_id"] == add["context"]["span_id"]
    skipping = [r for r in logs if r["body"].startswith("Skipping installation of LoggingHandler")]
    assert len(skipping) == 1
    assert skipping[0]["body"] in (Path(__file__).parents[2] / "docs" / CHAPTER).read_text()


@pytest.mark.parametrize(
    "script",
    [doc_command("330-agent-console"), doc_command("330-agent-env")],
    ids=["options", "variables"],
)
def test_tee_i_keeps_the_metrics_flushed_at_ctrl_c_and_the_grep_finds_the_urls(
    script: str, tmp_path: Path
) -> None:
    with started(script, tmp_path) as app:
        use_the_app(app.base)
    output = app.output_text()
    assert '"resource_metrics"' in output, "the final metrics reach output.log"
    names = [s["name"] for s in spans_in(output)]
    assert names.count("GET /") == 2
    assert "POST /add" in names
    bodies = [r["body"] for r in logs_in(output)]
    assert bodies.count("added task 1: 'Buy milk'") == 1

    grep = shell(doc_command("330-grep-urls").replace("output.log", str(app.output)))
    assert grep.returncode == 0, grep.stderr
    assert grep.stdout.splitlines() == doc_output("330-grep-urls")


def test_the_seeds_misspelt_logs_variable_prints_no_logs(tmp_path: Path) -> None:
    with started(doc_command("330-agent-env-seed"), tmp_path, **FAST_BATCHES) as app:
        use_the_app(app.base)
        eventually(lambda: "POST /add" in {s["name"] for s in spans_in(app.output_text())})
        # Console log records of that request would be printed within 200 ms:
        # give them three times that, then look.
        time.sleep(3 * int(FAST_BATCHES["OTEL_BLRP_SCHEDULE_DELAY"]) / 1000)
        assert logs_in(app.output_text()) == [], "no log records on the console"
        # ...and Ctrl+C would wait for the OTLP log exporter to give up: skip that.
        stop(app.proc, sig=signal.SIGKILL)


def test_debug_without_the_reloader_is_one_traced_process(tmp_path: Path) -> None:
    with started(doc_command("330-agent-debug"), tmp_path) as app:
        response = httpx.post(f"{app.base}/api/tasks", json={"description": "Buy milk"}, timeout=5)
        assert response.status_code == 201
    terminal = app.terminal_text()
    assert "Debug mode: on" in terminal
    assert "Restarting with" not in terminal, "no reloader"
    spans = spans_in(terminal)
    assert "POST /api/tasks" in {s["name"] for s in spans}
    instances = {s["resource"]["attributes"]["service.instance.id"] for s in spans}
    assert len(instances) == 1
