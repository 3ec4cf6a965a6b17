"""Chapter 360 - Exporting and viewing: otelviewer, curl on 4317, OTLP, the UI and the API."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.doccmd import doc_command, doc_output
from tests.docs.chapters import App, localise, shell, started, wait_until_serving
from tests.support import eventually, free_port, running, stop, use_the_app

pytestmark = pytest.mark.e2e


@dataclass
class Viewer:
    """`otelviewer serve` as the chapter starts it, on free ports."""

    grpc: int
    http: int
    ui: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ui}"


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    tmp = tmp_path_factory.mktemp("viewer")
    v = Viewer(free_port(), free_port(), free_port(), tmp / "viewer.log")
    # The documented command, moved to free ports and a throwaway database.
    script = doc_command("360-otelviewer-serve") + (
        f" --grpc-port {v.grpc} --http-port {v.http} --ui-port {v.ui} --db {tmp / 'viewer.db'}"
    )
    with running(["bash", "-c", script], stdout_path=v.log) as proc:
        wait_until_serving(proc, f"{v.base}/api/services", v.log)
        yield v


@pytest.fixture(scope="module")
def otlp_app(viewer: Viewer, tmp_path_factory: pytest.TempPathFactory) -> App:
    """The app as the chapter runs it, exporting OTLP to the viewer; used once, then stopped.

    Stopping (Ctrl+C) flushes what the batch processors hold, so the tests that
    query the viewer do not wait for the next scheduled export.
    """
    tmp = tmp_path_factory.mktemp("otlp-app")
    with started(doc_command("360-agent-otlp"), tmp, grpc=viewer.grpc) as app:
        use_the_app(app.base)
    assert app.proc.returncode == 0
    return app


def _traces(script: str, viewer: Viewer, app: App) -> list[dict[str, Any]]:
    result = shell(localise(script, app=app.port, tmp=app.tmp, ui=viewer.ui))
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["errors"] is None
    data: list[dict[str, Any]] = body["data"]
    return data


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}


def _one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [s for s in spans if s["operationName"] == name]
    assert len(found) == 1, [s["operationName"] for s in spans]
    return found[0]


def test_otelviewer_prints_one_line_per_listener(viewer: Viewer) -> None:
    printed = viewer.log.read_text().splitlines()
    for line in doc_output("360-otelviewer-serve"):
        line = line.replace("4317", str(viewer.grpc)).replace("4318", str(viewer.http))
        assert line.replace("16686", str(viewer.ui)) in printed


def test_curl_on_the_grpc_port_says_http_0_9(viewer: Viewer) -> None:
    result = shell(doc_command("360-curl-up").replace("4317", str(viewer.grpc)))
    assert result.returncode == 1
    assert doc_output("360-curl-up")[0] in result.stderr.splitlines()


def test_curl_on_a_closed_port_cannot_connect() -> None:
    port = free_port()
    result = shell(doc_command("360-curl-down").replace("4317", str(port)))
    assert result.returncode == 7
    (shown,) = doc_output("360-curl-down")
    pattern = re.escape(shown.replace("4317", str(port))).replace(
        r"after\ 0\ ms", r"after\ \d+\ ms"
    )
    assert any(re.fullmatch(pattern, line) for line in result.stderr.splitlines()), result.stderr


def test_the_api_finds_the_request_by_its_url(viewer: Viewer, otlp_app: App) -> None:
    traces = eventually(
        lambda: _traces(doc_command("360-api-traces"), viewer, otlp_app), timeout=15
    )
    assert len(traces) == 1, "one POST /add"
    (trace,) = traces
    spans = trace["spans"]
    post = _one(spans, "POST /add")
    add = _one(spans, "todo.tasks.add")
    assert _tags(post)["http.target"] == "/add"
    assert _tags(post)["span.kind"] == "server"
    assert post["references"] == []
    assert add["references"] == [
        {"refType": "CHILD_OF", "traceID": trace["traceID"], "spanID": post["spanID"]}
    ]
    (insert,) = [s for s in spans if s["operationName"].startswith("INSERT ")]
    assert insert["references"][0]["spanID"] == add["spanID"]
    services = {p["serviceName"] for p in trace["processes"].values()}
    assert services == {"todo"}


def test_the_ui_search_by_url_tag_lists_the_trace(viewer: Viewer, otlp_app: App) -> None:
    def page() -> str | None:
        params = {"service": "todo", "tags": "http.target=/add"}
        text = httpx.get(f"{viewer.base}/search", params=params, timeout=5).text
        return text if "POST /add" in text else None

    text = eventually(page, timeout=15)
    assert "1 trace" in text


def test_the_traces_logs_reach_the_viewer(viewer: Viewer, otlp_app: App) -> None:
    (trace,) = eventually(lambda: _traces(doc_command("360-api-traces"), viewer, otlp_app))

    def logs() -> list[dict[str, Any]] | None:
        url = f"{viewer.base}/api/v1/logs"
        answer = httpx.get(url, params={"traceID": trace["traceID"]}, timeout=5).json()
        records: list[dict[str, Any]] = answer["data"]
        return records or None

    records = eventually(logs, timeout=10)
    assert "added task 1: 'Buy milk'" in json.dumps(records)


def test_the_stable_conventions_put_the_path_in_url_path(viewer: Viewer, tmp_path: Path) -> None:
    with started(doc_command("360-agent-otlp-stable"), tmp_path, grpc=viewer.grpc) as app:
        use_the_app(app.base)
    traces = eventually(
        lambda: _traces(doc_command("360-api-traces-stable"), viewer, app), timeout=15
    )
    post = _one(traces[0]["spans"], "POST /add")
    tags = _tags(post)
    assert tags["url.path"] == "/add"
    assert tags["http.request.method"] == "POST"
    assert tags["http.response.status_code"] == 303
    assert "http.target" not in tags
    assert "http.url" not in tags
    assert "url.full" not in tags


def test_with_the_receiver_down_the_app_serves_and_says_why(tmp_path: Path) -> None:
    dead = free_port()
    script = doc_command("360-collector-down").replace(":4317", f":{dead}")
    with started(script, tmp_path) as app:
        use_the_app(app.base)
        eventually(
            lambda: (
                "Transient error StatusCode.UNAVAILABLE encountered while exporting"
                in app.terminal_text()
            ),
            timeout=10,
        )
        assert "added task 1: 'Buy milk'" in app.terminal_text()
        # Stopping would wait for every exporter's last attempt: not worth a test's time.
        stop(app.proc, sig=signal.SIGKILL)


def test_a_second_otelviewer_refuses_the_taken_port(viewer: Viewer, tmp_path: Path) -> None:
    script = doc_command("360-otelviewer-serve") + (
        f" --grpc-port {viewer.grpc} --http-port {free_port()} --ui-port {free_port()}"
        f" --db {tmp_path / 'second.db'}"
    )
    result = shell(script)
    assert result.returncode != 0
    assert f"port {viewer.grpc} on 127.0.0.1 is already in use" in result.stderr + result.stdout
