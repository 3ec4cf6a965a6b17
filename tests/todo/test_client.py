"""todo-client against the real app: commands, errors, traffic, and one trace across both.

The app (``create_app`` with a temporary SQLite database) serves on a free loopback
port from a thread; both it and the client get in-memory span exporters, so the
tests see exactly what each side recorded. The database is read with ``sqlite3``,
not through the app, so "it was written" means it is on disk.
"""

from __future__ import annotations

import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from werkzeug.serving import BaseWSGIServer, make_server

from tests.support import eventually, free_port, running, stop, venv_env
from todo import create_app
from todo.client import main, traffic
from todo.client.api import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    SERVICE_NAME,
    Task,
    format_table,
    printable,
)
from todo.client.traffic import MAX_DESCRIPTION_LENGTH, MAX_OWNED_TASKS
from todo.models import MAX_DESCRIPTION_LENGTH as APP_MAX_DESCRIPTION_LENGTH
from todo.tasks import InvalidDescription, TaskNotFound, validate_description

#: An id no test creates (the database starts empty and the tests add a few dozen).
UNKNOWN_ID = 987_654


@dataclass
class App:
    """The app under test: its URL, database file and recorded server spans."""

    url: str
    db: Path
    spans: InMemorySpanExporter
    flask_app: Flask

    def rows(self) -> dict[int, tuple[str, bool]]:
        """Return the tasks on disk: id -> (description, done)."""
        with sqlite3.connect(self.db) as conn:
            return {
                row[0]: (row[1], bool(row[2]))
                for row in conn.execute("SELECT id, description, done FROM tasks")
            }


def _provider(service_name: str) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


class Server:
    """A werkzeug server for a WSGI app on a free loopback port, in a thread."""

    def __init__(self, wsgi_app: Flask) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._server: BaseWSGIServer = make_server("127.0.0.1", port, wsgi_app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._server.server_close()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """Serve the real app on a free loopback port from a thread."""
    db = tmp_path_factory.mktemp("client") / "todo.sqlite"
    provider, exporter = _provider("todo")
    flask_app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db}",
            "TELEMETRY_TRACER_PROVIDER": provider,
        }
    )
    server = Server(flask_app)
    try:
        yield App(server.url, db, exporter, flask_app)
    finally:
        server.stop()
        provider.shutdown()


@pytest.fixture(scope="module")
def client_tracing() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """Return the client's in-memory tracer provider and its exporter."""
    provider, exporter = _provider(SERVICE_NAME)
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def cli(
    app: App,
    client_tracing: tuple[TracerProvider, InMemorySpanExporter],
    capsys: pytest.CaptureFixture[str],
) -> Any:
    """Return ``cli(*args) -> (exit code, stdout, stderr)``: todo-client in-process."""
    provider, exporter = client_tracing
    exporter.clear()
    app.spans.clear()

    def run(*args: str, url: str = app.url) -> tuple[int, str, str]:
        code = main(["--url", url, *args], tracer_provider=provider)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _added_id(out: str, description: str) -> int:
    match = re.fullmatch(rf"Added task (\d+): {re.escape(description)}\n", out)
    assert match, out
    return int(match[1])


def _invalid_description_message(description: str) -> str:
    """Return the message the app's service layer gives for ``description``."""
    with pytest.raises(InvalidDescription) as info:
        validate_description(description)
    return str(info.value)


# --- Commands against the real app ------------------------------------------------


def test_add_list_done_undone_delete(cli: Any, app: App) -> None:
    code, out, err = cli("add", "Buy milk")
    assert (code, err) == (EXIT_OK, "")
    milk = _added_id(out, "Buy milk")
    assert app.rows()[milk] == ("Buy milk", False)

    # Several words without quotes make one description.
    code, out, _ = cli("add", "Walk", "the", "dog")
    dog = _added_id(out, "Walk the dog")
    assert app.rows()[dog] == ("Walk the dog", False)

    assert cli("done", str(milk)) == (EXIT_OK, f"Marked task {milk} as done: Buy milk\n", "")
    assert app.rows()[milk] == ("Buy milk", True)

    code, out, err = cli("list")
    assert (code, err) == (EXIT_OK, "")
    lines = out.splitlines()
    width = max(2, len(str(max(app.rows()))))
    assert lines[0] == f"{'ID':>{width}}  Done  Description"
    assert f"{milk:>{width}}  [x]   Buy milk" in lines
    assert f"{dog:>{width}}  [ ]   Walk the dog" in lines
    rows = app.rows()
    done = sum(d for _, d in rows.values())
    assert lines[-1] == f"{len(rows)} tasks, {done} done"
    assert len(lines) == len(rows) + 2

    assert cli("undone", str(milk)) == (
        EXIT_OK,
        f"Marked task {milk} as not done: Buy milk\n",
        "",
    )
    assert app.rows()[milk] == ("Buy milk", False)

    assert cli("delete", str(milk)) == (EXIT_OK, f"Deleted task {milk}\n", "")
    assert milk not in app.rows()
    assert dog in app.rows()


def test_control_characters_never_reach_the_terminal() -> None:
    # The app refuses them (400), but the client does not trust any server's text.
    task = Task(id=7, description="Ring \x1b[31mred\x1b[0m bell\n", done=False, created_at="")
    assert format_table([task]).splitlines()[1] == " 7  [ ]   Ring \\x1b[31mred\\x1b[0m bell\\n"
    assert printable("Café ✓") == "Café ✓"


@pytest.mark.parametrize("command", ["done", "undone", "delete"])
def test_unknown_id_is_a_404_with_the_apps_message(cli: Any, app: App, command: str) -> None:
    before = app.rows()
    expected = str(TaskNotFound(UNKNOWN_ID))
    assert cli(command, str(UNKNOWN_ID)) == (
        EXIT_REJECTED,
        "",
        f"todo-client: error: {expected} (HTTP 404)\n",
    )
    assert app.rows() == before


@pytest.mark.parametrize("description", ["", "   ", "x" * 257, "Ring \x1b[31mred\x1b[0m bell"])
def test_invalid_description_is_a_400_and_writes_nothing(
    cli: Any, app: App, description: str
) -> None:
    before = app.rows()
    expected = _invalid_description_message(description)
    assert cli("add", description) == (
        EXIT_REJECTED,
        "",
        f"todo-client: error: {expected} (HTTP 400)\n",
    )
    assert app.rows() == before


def test_server_down_is_a_clear_message(cli: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert cli("list", url=url) == (
        EXIT_UNREACHABLE,
        "",
        f"todo-client: error: cannot reach {url}: connection refused\n",
    )


def test_a_server_that_does_not_answer_times_out(cli: Any) -> None:
    # A socket that accepts connections (the kernel's backlog) but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        assert cli("--timeout", "0.2", "list", url=url) == (
            EXIT_UNREACHABLE,
            "",
            f"todo-client: error: {url} did not answer within 0.2 s\n",
        )


def test_a_server_that_is_not_the_api(cli: Any, app: App) -> None:
    # /healthz answers, but /healthz/api/tasks is an ordinary (HTML) 404.
    code, out, err = cli("list", url=f"{app.url}/healthz")
    assert (code, out) == (EXIT_REJECTED, "")
    assert err == f"todo-client: error: Not Found for GET {app.url}/healthz/api/tasks (HTTP 404)\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["done", "abc"], "argument ID: a task id is a whole number, got 'abc'"),
        (["delete", "0"], "argument ID: a task id is between 1 and 2147483647, got 0"),
        (["traffic", "--rate", "0"], "argument --rate: must be more than 0 and at most 100"),
        (["traffic", "--duration", "1e9"], "argument --duration: must be more than 0"),
        (["--url", "ftp://x", "list"], "argument --url: expected an http:// or https:// URL"),
        (["--timeout", "-1", "list"], "argument --timeout: must be more than 0"),
        (["add"], "the following arguments are required: description"),
    ],
)
def test_usage_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args, tracer_provider=TracerProvider())
    assert exit_info.value.code == EXIT_USAGE
    assert message in capsys.readouterr().err


# --- The console script, as a user runs it ---------------------------------------------


@pytest.mark.e2e
def test_console_script(app: App) -> None:
    env = venv_env(TODO_URL=app.url)  # no OTEL_* variables: no telemetry, no errors
    added = subprocess.run(
        ["todo-client", "add", "From the console"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (added.returncode, added.stderr) == (0, "")
    task_id = _added_id(added.stdout, "From the console")
    assert app.rows()[task_id] == ("From the console", False)

    down = subprocess.run(
        ["todo-client", "--url", f"http://127.0.0.1:{free_port()}", "done", str(task_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert down.returncode == EXIT_UNREACHABLE
    assert down.stdout == ""
    assert re.fullmatch(
        r"todo-client: error: cannot reach http://127\.0\.0\.1:\d+: connection refused\n",
        down.stderr,
    )


# --- Traffic ----------------------------------------------------------------------------

SUMMARY_ROW = re.compile(r"^\s*(\d{3}|total)\s+(\d+)$", re.MULTILINE)


def _summary(out: str) -> tuple[int, dict[str, int]]:
    sent = re.search(r"^Sent (\d+) requests to ", out, re.MULTILINE)
    assert sent, out
    return int(sent[1]), {label: int(n) for label, n in SUMMARY_ROW.findall(out)}


def test_traffic_sends_a_mix_and_prints_it(
    cli: Any, app: App, client_tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    before = app.rows()
    code, out, err = cli("traffic", "--rate", "25", "--duration", "2", "--seed", "7")
    assert (code, err) == (EXIT_OK, "")
    assert "(seed 7)" in out
    sent, rows = _summary(out)
    total = rows.pop("total")
    assert sent == total == sum(rows.values())
    assert "failed" not in out
    assert set(rows) <= {"200", "201", "204", "400", "404"}
    assert rows["200"] > 0
    assert rows["201"] > 0
    assert rows["204"] > 0
    assert rows["400"] > 0
    assert rows["404"] > 0

    # It only ever touched its own tasks, and keeps few of them.
    after = app.rows()
    assert all(after[i] == before[i] for i in before)
    assert len(set(after) - set(before)) <= MAX_OWNED_TASKS

    # One root span per request, each linked to the command's span.
    spans = client_tracing[1].get_finished_spans()
    (command,) = [s for s in spans if s.name == f"{SERVICE_NAME} traffic"]
    roots = [s for s in spans if s.name.startswith("traffic ")]
    assert len(roots) == total
    for root in roots:
        assert root.parent is None
        assert [link.context.span_id for link in root.links] == [command.context.span_id]
    http = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert len(http) == total
    by_id = {s.context.span_id: s for s in roots}
    assert all(s.parent is not None and s.parent.span_id in by_id for s in http)


def test_traffic_against_a_server_that_is_down(cli: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = cli("traffic", "--rate", "50", "--duration", "600", url=url)
    assert code == EXIT_UNREACHABLE
    assert err == f"todo-client: error: cannot reach {url}: connection refused\n"
    assert _summary(out) == (0, {"total": 0})


def _answered(span: ReadableSpan) -> bool:
    attributes = span.attributes or {}
    return "http.status_code" in attributes or "http.response.status_code" in attributes


def _outage(
    app: App, exporter: InMemorySpanExporter, *, then_interrupt: bool
) -> tuple[str, threading.Thread]:
    """Serve the app on a second server, and stop that server in the middle of a run.

    A thread waits until the client has had answers, stops the server, waits until
    requests have failed, and then (if asked) interrupts the run as Ctrl+C would.
    """
    server = Server(app.flask_app)

    def http_spans() -> list[ReadableSpan]:
        return [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]

    def break_it() -> None:
        eventually(lambda: sum(map(_answered, http_spans())) >= 5)
        server.stop()
        if then_interrupt:
            eventually(lambda: sum(not _answered(s) for s in http_spans()) >= 3)
            signal.raise_signal(signal.SIGINT)

    thread = threading.Thread(target=break_it, daemon=True)
    thread.start()
    return server.url, thread


def test_traffic_rides_out_an_outage(
    cli: Any, app: App, client_tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    url, breaker = _outage(app, client_tracing[1], then_interrupt=True)
    code, out, err = cli("traffic", "--rate", "50", "--duration", "600", url=url)
    breaker.join(timeout=10)
    assert (code, err) == (EXIT_INTERRUPTED, "")
    sent, rows = _summary(out)
    failed = re.search(r"^\s*failed: no answer\s+(\d+)$", out, re.MULTILINE)
    assert failed, out
    assert int(failed[1]) >= 3
    assert sent == rows.pop("total") == sum(rows.values()) + int(failed[1])
    assert sum(rows.values()) >= 5  # the answers before the outage


def test_traffic_gives_up_when_the_app_stays_down(
    cli: Any,
    app: App,
    client_tracing: tuple[TracerProvider, InMemorySpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(traffic, "GIVE_UP_AFTER_S", 0.2)
    url, breaker = _outage(app, client_tracing[1], then_interrupt=False)
    code, out, err = cli("traffic", "--rate", "50", "--duration", "600", url=url)
    breaker.join(timeout=10)
    assert code == EXIT_UNREACHABLE
    assert err == (
        f"todo-client: error: cannot reach {url}: connection refused (no answer for 0.2 s)\n"
    )
    sent, rows = _summary(out)
    assert sent == rows["total"] > 5
    assert "failed: no answer" in out


def test_traffic_knows_the_apps_description_limit() -> None:
    # Restated in the client (to keep the database layer out of it); must not drift.
    assert MAX_DESCRIPTION_LENGTH == APP_MAX_DESCRIPTION_LENGTH


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("signal_name", "sigint_ignored"),
    [
        ("SIGINT", False),  # Ctrl+C in a terminal
        ("SIGTERM", False),  # a supervisor stopping it
        # `todo-client traffic &` in a script starts with SIGINT ignored (as
        # scripts/run.sh does); `kill -INT` must still stop it.
        ("SIGINT", True),
    ],
)
def test_traffic_stops_cleanly_on_a_signal(
    app: App, tmp_path: Path, signal_name: str, sigint_ignored: bool
) -> None:
    log = tmp_path / "traffic.log"
    args = ["todo-client", "--url", app.url, "traffic", "--rate", "20", "--duration", "600"]
    if sigint_ignored:
        args = ["bash", "-c", f"trap '' INT; exec {shlex.join(args)}"]
    with running(args, stdout_path=log) as proc:
        # Wait until it has had answers, then stop it as Ctrl+C (or a supervisor) would.
        eventually(lambda: proc.poll() is None and "Sending about" in log.read_text())
        start = len(app.rows())
        eventually(lambda: len(app.rows()) != start or None)
        code = stop(proc, sig=getattr(signal, signal_name))
    out = log.read_text()
    assert code == EXIT_INTERRUPTED, out
    assert "Traceback" not in out
    sent, rows = _summary(out)
    assert ", interrupted" in out
    assert sent == rows["total"] > 0


# --- One trace across client and server ---------------------------------------------


def _by_name(spans: Any, name: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.name == name]
    return span  # type: ignore[no-any-return]


def test_one_trace_spans_client_and_server(
    cli: Any, app: App, client_tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    code, out, _ = cli("add", "Trace me")
    task_id = _added_id(out, "Trace me")
    assert code == EXIT_OK

    client_spans = client_tracing[1].get_finished_spans()
    assert [s.name for s in client_spans] == ["POST", f"{SERVICE_NAME} add"]
    command = _by_name(client_spans, f"{SERVICE_NAME} add")
    http = _by_name(client_spans, "POST")
    assert command.parent is None
    assert command.kind is SpanKind.INTERNAL
    assert command.status.status_code is StatusCode.UNSET
    assert command.attributes is not None
    assert command.attributes["process.executable.name"] == SERVICE_NAME
    assert command.attributes["process.exit.code"] == 0
    assert command.attributes["todo.task.id"] == task_id
    assert http.kind is SpanKind.CLIENT
    assert http.parent is not None
    assert http.parent.span_id == command.context.span_id
    assert http.instrumentation_scope is not None
    assert http.instrumentation_scope.name == "opentelemetry.instrumentation.httpx"

    server_spans = eventually(
        lambda: [s for s in app.spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    )
    (server,) = server_spans
    assert server.name == "POST /api/tasks"
    assert server.context.trace_id == http.context.trace_id == command.context.trace_id
    assert server.parent is not None
    assert server.parent.is_remote
    assert server.parent.span_id == http.context.span_id
    add = eventually(
        lambda: [s for s in app.spans.get_finished_spans() if s.name == "todo.tasks.add"]
    )[0]
    assert add.parent is not None
    assert add.parent.span_id == server.context.span_id

    assert command.resource.attributes["service.name"] == "todo-client"
    assert http.resource.attributes["service.name"] == "todo-client"
    assert server.resource.attributes["service.name"] == "todo"


def test_a_failed_command_marks_its_span(
    cli: Any, app: App, client_tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    code, _, err = cli("done", str(UNKNOWN_ID))
    assert code == EXIT_REJECTED
    spans = client_tracing[1].get_finished_spans()
    command = _by_name(spans, f"{SERVICE_NAME} done")
    http = _by_name(spans, "PATCH")
    assert command.status.status_code is StatusCode.ERROR
    assert command.status.description == err.removeprefix("todo-client: error: ").strip()
    assert command.attributes is not None
    assert command.attributes["error.type"] == "404"
    assert command.attributes["process.exit.code"] == EXIT_REJECTED
    assert command.attributes["todo.task.id"] == UNKNOWN_ID
    assert http.status.status_code is StatusCode.ERROR
    server = eventually(
        lambda: [s for s in app.spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    )[0]
    assert server.name == "PATCH /api/tasks/<int:task_id>"
    assert server.parent is not None
    assert server.parent.span_id == http.context.span_id


def test_server_down_span_records_the_connection_error(
    cli: Any, client_tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    code, _, _ = cli("list", url=f"http://127.0.0.1:{free_port()}")
    assert code == EXIT_UNREACHABLE
    spans = client_tracing[1].get_finished_spans()
    command = _by_name(spans, f"{SERVICE_NAME} list")
    http = _by_name(spans, "GET")
    assert command.attributes is not None
    assert command.attributes["error.type"] == "ConnectError"
    assert command.attributes["process.exit.code"] == EXIT_UNREACHABLE
    assert http.status.status_code is StatusCode.ERROR
