"""The README's walkthrough, run command by command as a new user would.

Each command is loaded from README.md with ``doc_command`` so the README and this
test cannot drift apart. The only change made to a command is moving its fixed
ports (5000, 4317, 4318, 16686) to free ones, so the suite can run anywhere.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.doccmd import ROOT, doc_command, doc_output
from tests.support import (
    eventually,
    free_port,
    running,
    stop,
    use_the_app,
    venv_env,
    wait_for_http,
)

pytestmark = pytest.mark.e2e


@dataclass
class Viewer:
    """A running `otelviewer serve` started from the README's command."""

    grpc_port: int
    http_port: int
    ui_port: int
    log: Path

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"


def _ports(script: str, *, app: int, viewer: Viewer | None = None) -> str:
    script = script.replace("-p 5000", f"-p {app}").replace("localhost:5000", f"localhost:{app}")
    if viewer:
        script = script.replace("localhost:4317", f"localhost:{viewer.grpc_port}")
        script = script.replace("localhost:16686", f"localhost:{viewer.ui_port}")
    return script


@pytest.fixture
def app_env(tmp_path: Path) -> dict[str, str]:
    """Return a user's environment with the venv on PATH and a throwaway app database."""
    return venv_env(DATABASE_URL=f"sqlite:///{tmp_path / 'todo.db'}")


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    tmp = tmp_path_factory.mktemp("viewer")
    v = Viewer(free_port(), free_port(), free_port(), tmp / "viewer.log")
    script = doc_command("otelviewer-serve") + (
        f" --grpc-port {v.grpc_port} --http-port {v.http_port} --ui-port {v.ui_port}"
        f" --db {tmp / 'otelviewer.db'}"
    )
    with running(["bash", "-c", script], stdout_path=v.log):
        wait_for_http(f"{v.ui}/api/services")
        yield v


def test_the_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf"^{re.escape(doc_command('make-test'))}$", ci, re.MULTILINE)


def test_activate_puts_the_venv_first() -> None:
    script = doc_command("activate") + "\ncommand -v flask opentelemetry-instrument otelviewer"
    result = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    found = result.stdout.split()[-3:]
    assert [Path(p).parent for p in found] == [ROOT / ".venv" / "bin"] * 3


def test_flask_run_serves_the_todo_list_quietly(tmp_path: Path, app_env: dict[str, str]) -> None:
    port = free_port()
    app_env["FLASK_RUN_PORT"] = str(port)  # .flaskenv says 5000; the environment wins
    log = tmp_path / "flask.log"
    with running(["bash", "-c", doc_command("flask-run")], env=app_env, stdout_path=log):
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        use_the_app(f"http://127.0.0.1:{port}")
    text = log.read_text()
    assert f"Running on http://127.0.0.1:{port}" in text
    assert "trace_id" not in text, "plain flask run must not print telemetry"


@pytest.mark.parametrize(
    ("cmd_id", "command"),
    [
        ("agent-console", doc_command("agent-console")),
        ("agent-env", doc_command("agent-env")),
    ],
)
def test_the_agent_prints_spans_metrics_and_logs(
    cmd_id: str, command: str, app_env: dict[str, str]
) -> None:
    port = free_port()
    output = ROOT / "output.log"
    output.unlink(missing_ok=True)
    # Only the environment changes, as the README suggests, so metrics show up in
    # seconds; the agent-env command sets its own interval.
    app_env.setdefault("OTEL_METRIC_EXPORT_INTERVAL", "1000")

    def everything_printed() -> bool:
        text = output.read_text() if output.exists() else ""
        return '"name": "POST /add"' in text and '"resource_metrics"' in text

    try:
        with running(["bash", "-c", _ports(command, app=port)], env=app_env):
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
            use_the_app(f"http://127.0.0.1:{port}")
            # Ctrl+C stops tee too (the README says so): read what arrived while running.
            eventually(everything_printed, timeout=20)
        text = output.read_text()
        assert '"service.name": "todo"' in text
        assert re.search(r'"name": "todo\.tasks\.add"', text)
        assert re.search(r'"trace_id": "0x(?!0{32})[0-9a-f]{32}"', text)
        assert '"body": "' in text, "log records are exported"

        if cmd_id == "agent-console":
            grep = subprocess.run(
                ["bash", "-c", doc_command("grep-urls")],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            assert grep.stdout.splitlines() == doc_output("grep-urls")
    finally:
        output.unlink(missing_ok=True)


def test_otelviewer_prints_one_line_per_listener(viewer: Viewer) -> None:
    expected = [
        line.replace("4317", str(viewer.grpc_port))
        .replace("4318", str(viewer.http_port))
        .replace("16686", str(viewer.ui_port))
        for line in doc_output("otelviewer-serve")
    ]
    lines = viewer.log.read_text().splitlines()
    for line in expected:
        assert line in lines


def test_curl_on_the_grpc_port_tells_it_is_up(viewer: Viewer) -> None:
    script = doc_command("curl-4317").replace("4317", str(viewer.grpc_port))
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    # Without a terminal curl also prints its progress meter; the error is the last line.
    assert result.stderr.strip().splitlines()[-1:] == doc_output("curl-4317")


def test_agent_exports_otlp_and_the_api_finds_it_by_url(
    viewer: Viewer, app_env: dict[str, str]
) -> None:
    port = free_port()
    script = _ports(doc_command("agent-otlp"), app=port, viewer=viewer)
    with running(["bash", "-c", script], env=app_env) as proc:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        use_the_app(f"http://127.0.0.1:{port}")

        search = _ports(doc_command("api-tag-search"), app=port, viewer=viewer)

        def found() -> list[dict[str, object]]:
            result = subprocess.run(
                ["bash", "-c", search], capture_output=True, text=True, check=True
            )
            data: list[dict[str, object]] = json.loads(result.stdout)["data"]
            return data

        traces = eventually(found, timeout=15)
        spans = traces[0]["spans"]
        assert isinstance(spans, list)
        assert {s["operationName"] for s in spans} >= {"POST /add", "todo.tasks.add"}
        stop(proc)


def test_the_traced_client_shares_a_trace_with_the_server(
    viewer: Viewer, app_env: dict[str, str]
) -> None:
    port = free_port()
    otlp = {
        "OTEL_SERVICE_NAME": "todo",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://localhost:{viewer.grpc_port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }
    server_env = {**app_env, **otlp, "FLASK_RUN_PORT": str(port)}
    with running(["opentelemetry-instrument", "flask", "run", "--no-reload"], env=server_env):
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        client_env = {
            **app_env,
            "TODO_URL": f"http://localhost:{port}",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp["OTEL_EXPORTER_OTLP_ENDPOINT"],
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
        }
        result = subprocess.run(
            ["bash", "-c", doc_command("client")],
            env=client_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "Buy milk" in result.stdout

        def two_services() -> list[dict[str, object]]:
            url = f"{viewer.ui}/api/traces?service=todo-client&limit=20"
            traces = httpx.get(url, timeout=5).json()["data"]
            return [t for t in traces if len(t["processes"]) == 2]

        trace = eventually(two_services, timeout=15)[0]
        services = {p["serviceName"] for p in trace["processes"].values()}
        assert services == {"todo", "todo-client"}
