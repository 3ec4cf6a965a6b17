"""End to end: the seed's commands, the in-code mode and OTLP, as real processes on loopback.

Every server is started from the repository root as a user would, through
bash, with the venv first on PATH and a throwaway database. The seed's
commands are used as the talk wrote them; the only changes are the port (5000
becomes a free one) and where ``tee`` writes ``output.log`` (a temp folder).
"Ctrl+C" is SIGINT to the process group, as a terminal sends it: to the app
and to ``tee`` alike.

What the console exporters print is a stream of pretty-printed JSON objects
(spans, log records, metric batches); :func:`parse_console` splits it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.doccmd import doc_command, doc_output
from tests.support import ROOT, eventually, free_port, running, stop, venv_env, wait_for_http

pytestmark = pytest.mark.e2e

#: The talk's agent command, verbatim (it ran it after `export
#: OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true`).
SEED_AGENT = """opentelemetry-instrument \\
  --traces_exporter console \\
  --metrics_exporter console \\
  --logs_exporter console \\
  --service_name todo \\
  flask run -p 5000 | tee output.log"""

#: The talk's environment-variable variant, verbatim: note OTEL_LOG_EXPORTER (sic).
SEED_ENV = """OTEL_SERVICE_NAME=todo \\
    OTEL_TRACES_EXPORTER=console \\
    OTEL_METRICS_EXPORTER=console \\
    OTEL_LOG_EXPORTER=console \\
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=0.0.0.0:4317 \\
    OTEL_EXPORTER_OTLP_INSECURE=true \\
    opentelemetry-instrument \\
        flask run -p 5000 | tee output.log"""

#: The talk's "grep the URLs": server spans carry no http.url, so it finds nothing.
SEED_GREP = "cat output.log | grep http.url"


#: The URL greps of docs/telemetry-reference.md, as written there.
URL_GREPS = {
    "telemetry-grep-urls": doc_command("telemetry-grep-urls"),
    "telemetry-grep-urls-stable": doc_command("telemetry-grep-urls-stable"),
}

#: The documented demo setting: metrics every 5 s instead of 60 s.
DEMO_INTERVAL = {"OTEL_METRIC_EXPORT_INTERVAL": "5000"}

#: Seconds a stopping app may take; the env variant's log exporter retries
#: localhost:4317 before it gives up (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s).
STOP_TIMEOUT_S = 30

#: Seconds we wait for the periodic exports (5 s spans batch, 5 s metrics) to reach output.log.
EXPORT_WAIT_S = 20

CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


# --- Reading the console exporters' output -----------------------------------------


@dataclass
class Console:
    """What the console exporters printed, split by signal."""

    spans: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def span_names(self) -> set[str]:
        return {s["name"] for s in self.spans}

    def servers(self) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["kind"] == "SpanKind.SERVER"]

    def metric_points(self, name: str) -> list[dict[str, Any]]:
        """Return the data points of ``name`` from the last metric batch that has it."""
        for batch in reversed(self.metrics):
            for rm in batch["resource_metrics"]:
                for sm in rm["scope_metrics"]:
                    for metric in sm["metrics"]:
                        if metric["name"] == name:
                            return list(metric["data"]["data_points"])
        return []


def parse_console(text: str) -> Console:
    """Split the console exporters' output into spans, log records and metric batches."""
    console = Console()
    lines: list[str] | None = None
    for line in text.splitlines():
        if lines is None:
            if line == "{":
                lines = [line]
            continue
        lines.append(line)
        if line == "}":
            obj = json.loads("\n".join(lines))
            lines = None
            if "resource_metrics" in obj:
                console.metrics.append(obj)
            elif "severity_text" in obj:
                console.logs.append(obj)
            elif "kind" in obj:
                console.spans.append(obj)
    return console


# --- Using the app -----------------------------------------------------------------


def use_the_app(base: str) -> None:
    """Add a task with the form and one through the API; get an unknown, health and static URL."""
    with httpx.Client(base_url=base, timeout=10, follow_redirects=True) as client:
        page = client.get("/")
        token = CSRF_FIELD.search(page.text)
        assert token, "the add form has no csrf_token field"
        added = client.post("/add", data={"description": "Buy milk", "csrf_token": token[1]})
        assert added.status_code == 200  # after the 303 back to GET /
        assert client.post("/api/tasks", json={"description": "Walk dog"}).status_code == 201
        assert client.get("/nope").status_code == 404
        assert client.get("/healthz").status_code == 200
        assert client.get("/static/style.css").status_code == 200


#: The paths use_the_app requests, counted (healthz and static are not traced).
PATH_COUNTS = [(2, "/"), (1, "/add"), (1, "/api/tasks"), (1, "/nope")]


def seed(command: str, *, port: int, output: Path) -> str:
    """Return a seed command with its port and output file moved."""
    assert "-p 5000" in command
    return command.replace("-p 5000", f"-p {port}").replace("tee output.log", f"tee {output}")


def app_env(tmp: Path, **extra: str) -> dict[str, str]:
    return venv_env(DATABASE_URL=f"sqlite:///{tmp / 'todo.sqlite'}", **extra)


def nonzero(hex_id: str) -> bool:
    return bool(re.fullmatch(r"0x[0-9a-f]+", hex_id)) and int(hex_id, 16) != 0


def assert_no_duplicate_records(console: Console) -> None:
    keys = [(r["body"], r["timestamp"], r["trace_id"], r["span_id"]) for r in console.logs]
    assert len(keys) == len(set(keys)), "a log record was exported twice"


# --- The seed's commands, several at once ------------------------------------------


@dataclass
class Run:
    """One server started from a command, and what it printed."""

    name: str
    port: int
    output: Path
    console: Console = field(default_factory=Console)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


RUNS = {
    # name: (command, extra environment)
    "agent": (SEED_AGENT, DEMO_INTERVAL),
    "agent+deprecated": (
        SEED_AGENT,
        {**DEMO_INTERVAL, "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"},
    ),
    "agent+stable": (SEED_AGENT, {**DEMO_INTERVAL, "OTEL_SEMCONV_STABILITY_OPT_IN": "http"}),
    "env-variant": (SEED_ENV, DEMO_INTERVAL),
}


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Run the seed's commands side by side, use each app, wait for exports, then Ctrl+C."""
    runs: dict[str, Run] = {}
    with contextlib.ExitStack() as stack:
        procs = {}
        for name, (command, extra) in RUNS.items():
            tmp = tmp_path_factory.mktemp(name.replace("+", "-"))
            run = Run(name, free_port(), tmp / "output.log")
            script = seed(command, port=run.port, output=run.output)
            procs[name] = stack.enter_context(
                running(["bash", "-c", script], env=app_env(tmp, **extra), cwd=ROOT)
            )
            runs[name] = run
        for run in runs.values():
            wait_for_http(f"{run.base}/healthz")
        for run in runs.values():
            use_the_app(run.base)
        for run in runs.values():
            # Both the spans' batch and a metric export after the requests.
            eventually(
                lambda run=run: (
                    '"name": "todo.tasks.created"' in run.output.read_text()
                    and '"name": "POST /api/tasks"' in run.output.read_text()
                ),
                timeout=EXPORT_WAIT_S,
            )
        for name, proc in procs.items():
            assert proc.poll() is None, f"{name} stopped early"
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl+C, in all terminals at once
        for proc in procs.values():
            proc.wait(timeout=STOP_TIMEOUT_S)
    for run in runs.values():
        run.console = parse_console(run.output.read_text())
    return runs


@pytest.mark.parametrize("name", ["agent", "agent+deprecated", "agent+stable"])
def test_the_seed_agent_command_prints_spans_metrics_and_logs(
    seed_runs: dict[str, Run], name: str
) -> None:
    console = seed_runs[name].console
    assert console.spans
    assert {s["resource"]["attributes"]["service.name"] for s in console.spans} == {"todo"}
    servers = {s["name"] for s in console.servers()}
    assert servers == {"GET /", "POST /add", "POST /api/tasks", "GET"}, "healthz/static traced?"
    # server -> todo.tasks.add -> DB span, in one trace.
    by_id = {s["context"]["span_id"]: s for s in console.spans}
    (api_add,) = [
        s
        for s in console.spans
        if s["name"] == "todo.tasks.add" and by_id[s["parent_id"]]["name"] == "POST /api/tasks"
    ]
    inserts = [
        s
        for s in console.spans
        if s["parent_id"] == api_add["context"]["span_id"] and s["name"].startswith("INSERT ")
    ]
    assert len(inserts) == 1
    assert inserts[0]["attributes"]["db.system"] == "sqlite"
    assert inserts[0]["context"]["trace_id"] == api_add["context"]["trace_id"]

    created = console.metric_points("todo.tasks.created")
    assert [p["value"] for p in created] == [2]
    requests = {
        (p["attributes"]["http.request.method"], p["attributes"].get("http.route")): p["value"]
        for p in console.metric_points("todo.requests")
    }
    assert requests == {
        ("GET", "/"): 2,
        ("POST", "/add"): 1,
        ("POST", "/api/tasks"): 1,
        ("GET", None): 1,
    }
    duration = "http.server.request.duration" if name == "agent+stable" else "http.server.duration"
    assert sum(p["count"] for p in console.metric_points(duration)) == 5

    added = [r for r in console.logs if r["body"].startswith("added task")]
    assert [r["body"] for r in added] == ["added task 1: 'Buy milk'", "added task 2: 'Walk dog'"]
    assert all(nonzero(r["trace_id"]) and nonzero(r["span_id"]) for r in added)
    assert added[1]["trace_id"] == api_add["context"]["trace_id"]
    assert added[1]["span_id"] == api_add["context"]["span_id"]
    assert {r["resource"]["attributes"]["service.name"] for r in console.logs} == {"todo"}
    assert_no_duplicate_records(console)


@pytest.mark.parametrize(
    ("name", "cmd_id", "key"),
    [
        ("agent", "telemetry-grep-urls", "http.target"),
        ("agent+stable", "telemetry-grep-urls-stable", "url.path"),
    ],
    ids=["default", "stable"],
)
def test_the_url_grep_of_the_docs_lists_the_paths_called(
    seed_runs: dict[str, Run], name: str, cmd_id: str, key: str
) -> None:
    grep = URL_GREPS[cmd_id]
    output = seed_runs[name].output
    assert seed_runs[name].console.metrics, "metrics were exported: the grep must skip them"
    result = subprocess.run(
        ["bash", "-c", grep], cwd=output.parent, capture_output=True, text=True, check=True
    )
    lines = result.stdout.splitlines()
    assert lines == [f'{n:7d} "{key}": "{path}",' for n, path in PATH_COUNTS]
    # The docs' sample (a list page, then one task added with the form) is part of it.
    assert set(doc_output(cmd_id)) <= set(lines)


def test_the_seeds_http_url_grep_finds_nothing(seed_runs: dict[str, Run]) -> None:
    result = subprocess.run(
        ["bash", "-c", SEED_GREP],
        cwd=seed_runs["agent"].output.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (1, "")


def test_the_seed_env_variant_prints_spans_and_metrics_but_no_logs(
    seed_runs: dict[str, Run],
) -> None:
    console = seed_runs["env-variant"].console
    assert {s["name"] for s in console.servers()} == {
        "GET /",
        "POST /add",
        "POST /api/tasks",
        "GET",
    }
    assert console.metric_points("todo.requests")
    # OTEL_LOG_EXPORTER is not a variable anything reads: the agent's default
    # (otlp, to localhost:4317) is used for logs, so none are printed.
    assert console.logs == []


# --- OTLP: a real receiver, and none ---------------------------------------------------


@dataclass
class Received:
    """What a tiny OTLP/gRPC receiver got."""

    traces: list[trace_service_pb2.ExportTraceServiceRequest] = field(default_factory=list)
    metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = field(default_factory=list)
    logs: list[logs_service_pb2.ExportLogsServiceRequest] = field(default_factory=list)


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        self.received.traces.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        self.received.metrics.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        self.received.logs.append(request)
        return logs_service_pb2.ExportLogsServiceResponse()


@contextlib.contextmanager
def otlp_receiver(port: int) -> Iterator[Received]:
    """Serve the three OTLP/gRPC services on 127.0.0.1:port, keeping what arrives."""
    received = Received()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(received), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(received), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(received), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield received
    finally:
        server.stop(grace=None)


def _attrs(values: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in values}


def test_the_agent_exports_otlp_to_a_real_receiver_and_flushes_on_sigterm(tmp_path: Path) -> None:
    port, grpc_port = free_port(), free_port()
    env = app_env(
        tmp_path,
        OTEL_SERVICE_NAME="todo",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{grpc_port}",
        OTEL_EXPORTER_OTLP_INSECURE="true",
    )
    # The distro's defaults: OTLP over gRPC for traces, metrics and logs.
    command = ["opentelemetry-instrument", "flask", "run", "--no-reload", "-p", str(port)]
    with otlp_receiver(grpc_port) as received:
        with running(command, env=env) as proc:
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
            use_the_app(f"http://127.0.0.1:{port}")
            # SIGTERM right away: the 60 s metric interval has not passed, so
            # metrics arrive only if stopping flushes them.
            assert stop(proc, sig=signal.SIGTERM) == 128 + signal.SIGTERM

        spans = [
            (_attrs(rs.resource.attributes), span)
            for request in received.traces
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]
        assert {resource["service.name"] for resource, _ in spans} == {"todo"}
        names = {span.name for _, span in spans}
        assert {"GET /", "POST /add", "POST /api/tasks", "GET", "todo.tasks.add"} <= names
        metric_names = {
            m.name
            for request in received.metrics
            for rm in request.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }
        assert {
            "todo.requests",
            "todo.tasks.created",
            "todo.tasks.open",
            "http.server.duration",
        } <= (metric_names)
        records = [
            record
            for request in received.logs
            for rl in request.resource_logs
            for sl in rl.scope_logs
            for record in sl.log_records
        ]
        added = [r for r in records if r.body.string_value.startswith("added task")]
        assert len(added) == 2
        assert all(int.from_bytes(r.trace_id, "big") != 0 for r in added)
        add_spans = {span.span_id for _, span in spans if span.name == "todo.tasks.add"}
        assert {r.span_id for r in added} == add_spans


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def test_with_the_collector_down_the_app_keeps_serving(tmp_path: Path) -> None:
    port, nowhere = free_port(), free_port()
    assert not _listening(nowhere)
    output = tmp_path / "output.log"
    env = app_env(
        tmp_path,
        OTEL_SERVICE_NAME="todo",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        # Printed, so the exporter's complaints (log records themselves) can be read.
        OTEL_LOGS_EXPORTER="console",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{nowhere}",
        OTEL_EXPORTER_OTLP_INSECURE="true",
        # Export attempts soon, and give up soon when stopping.
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_EXPORTER_OTLP_TIMEOUT="2",
    )
    command = ["opentelemetry-instrument", "flask", "run", "--no-reload", "-p", str(port)]
    with running(command, env=env, stdout_path=output) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz")
        use_the_app(base)
        complaint = "Transient error StatusCode.UNAVAILABLE encountered while exporting traces"
        eventually(lambda: complaint in output.read_text(), timeout=EXPORT_WAIT_S)
        for n in range(5):
            response = httpx.post(
                f"{base}/api/tasks", json={"description": f"still {n}"}, timeout=5
            )
            assert response.status_code == 201
        assert httpx.get(base, timeout=5).status_code == 200
        assert proc.poll() is None
        assert stop(proc, sig=signal.SIGTERM) == 128 + signal.SIGTERM


# --- In code, without the agent --------------------------------------------------------


def test_in_code_flask_run_prints_telemetry_and_flushes_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    output = tmp_path / "output.log"
    env = app_env(
        tmp_path,
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="console",
        OTEL_LOGS_EXPORTER="console",
    )
    with running(
        ["flask", "run", "--no-reload", "-p", str(port)], env=env, stdout_path=output
    ) as proc:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        use_the_app(f"http://127.0.0.1:{port}")
        assert stop(proc, sig=signal.SIGTERM) == 128 + signal.SIGTERM

    console = parse_console(output.read_text())
    assert {s["name"] for s in console.servers()} == {
        "GET /",
        "POST /add",
        "POST /api/tasks",
        "GET",
    }
    resource = console.spans[0]["resource"]["attributes"]
    assert resource["service.name"] == "todo"
    assert resource["service.version"]
    assert "connect" not in console.span_names()  # only the agent wraps Engine.connect
    # The 60 s interval has not passed: these come from the flush at SIGTERM.
    assert [p["value"] for p in console.metric_points("todo.tasks.created")] == [2]
    added = [r for r in console.logs if r["body"].startswith("added task")]
    assert len(added) == 2
    assert all(nonzero(r["trace_id"]) for r in added)
    assert_no_duplicate_records(console)


def test_plain_flask_run_prints_no_telemetry(tmp_path: Path) -> None:
    port = free_port()
    output = tmp_path / "output.log"
    with running(["flask", "run", "-p", str(port)], env=app_env(tmp_path), stdout_path=output):
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        use_the_app(f"http://127.0.0.1:{port}")
    text = output.read_text()
    assert f"Running on http://127.0.0.1:{port}" in text
    console = parse_console(text)
    assert (console.spans, console.logs, console.metrics) == ([], [], [])
    assert "trace_id" not in text


def test_ctrl_c_flushes_the_agents_metrics_and_log_lines_can_carry_trace_ids(
    tmp_path: Path,
) -> None:
    """Without tee in the way, Ctrl+C exports what is pending, metrics included."""
    port = free_port()
    output, terminal = tmp_path / "output.log", tmp_path / "terminal.log"
    script = seed(SEED_AGENT, port=port, output=output).replace(f"| tee {output}", f"> {output}")
    env = app_env(tmp_path, OTEL_PYTHON_LOG_CORRELATION="true")
    with running(["bash", "-c", script], env=env, stdout_path=terminal):
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        use_the_app(f"http://127.0.0.1:{port}")
    console = parse_console(output.read_text())
    assert [p["value"] for p in console.metric_points("todo.tasks.created")] == [2]
    assert "POST /api/tasks" in console.span_names()
    (record,) = [r for r in console.logs if r["body"] == "added task 2: 'Walk dog'"]
    # The text line on stderr carries the same ids as the OTel record.
    (line,) = [line for line in terminal.read_text().splitlines() if "added task 2" in line]
    assert f"trace_id={record['trace_id'][2:]} span_id={record['span_id'][2:]}" in line
    assert "resource.service.name=todo" in line
