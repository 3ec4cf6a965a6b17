"""`make run`, as the README shows it: otelviewer plus the instrumented app, and Ctrl+C."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.doccmd import doc_command
from tests.support import eventually, free_port, listening, running, venv_env, wait_for_http

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.e2e


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _post_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def _run_env(tmp_path: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Free ports for every listener of `make run`, and its environment."""
    ports = {
        "APP_PORT": free_port(),
        "OTLP_GRPC_PORT": free_port(),
        "OTLP_HTTP_PORT": free_port(),
        "UI_PORT": free_port(),
    }
    env = venv_env(**{k: str(v) for k, v in ports.items()}, VIEWER_DB=str(tmp_path / "v.db"))
    # The app's own database goes to a throwaway file too.
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'todo.db'}"
    return ports, env


def test_make_run_serves_the_app_and_shows_its_traces_in_otelviewer(
    tmp_path: Path, browser: Browser, artifacts: Path
) -> None:
    ports, env = _run_env(tmp_path)
    log = tmp_path / "run.log"
    app = f"http://127.0.0.1:{ports['APP_PORT']}"
    ui = f"http://127.0.0.1:{ports['UI_PORT']}"

    with running(["bash", "-c", doc_command("make-run")], env=env, stdout_path=log) as proc:
        wait_for_http(f"{app}/healthz", timeout=60)
        eventually(lambda: "Press Ctrl+C" in log.read_text(), timeout=30)
        printed = log.read_text()
        assert f"http://localhost:{ports['APP_PORT']}" in printed
        assert f"http://localhost:{ports['UI_PORT']}" in printed

        for description in ("Buy milk", "Water the plants"):
            task = _post_json(f"{app}/api/tasks", {"description": description})
            assert task["description"] == description

        tags = urllib.parse.quote(json.dumps({"http.target": "/api/tasks"}))
        query = f"{ui}/api/traces?service=todo&tags={tags}"
        traces = eventually(lambda: _get_json(query)["data"], timeout=15)
        spans = traces[0]["spans"]
        names = {s["operationName"] for s in spans}
        assert "POST /api/tasks" in names
        assert "todo.tasks.add" in names
        # One copy of the database spans: the app's own (the agent's is disabled).
        db_spans = [s for s in spans if any(t["key"] == "db.system" for t in s["tags"])]
        assert [t["value"] for s in db_spans for t in s["tags"] if t["key"] == "db.system"] == [
            "sqlite"
        ] * len(db_spans)
        assert db_spans, "the INSERT is traced"
        assert "connect" not in names
        assert proc.poll() is None

        # What a user sees: the list, and the trace of adding a task in otelviewer.
        # These screenshots are the README's pictures (docs/images/).
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(app)
        assert page.get_by_text("Water the plants").is_visible()
        page.screenshot(path=artifacts / "make-run-todo.png")
        page.goto(f"{ui}/trace/{traces[0]['traceID']}")
        page.get_by_text("todo.tasks.add").first.click()
        assert page.get_by_text("todo.task.id").first.is_visible()
        page.screenshot(path=artifacts / "make-run-trace.png", full_page=True)
        page.close()

    assert proc.returncode is not None
    for port in ports.values():
        assert not listening(port), f"port {port} still open after Ctrl+C"


def _kill_session(session_id: int) -> None:
    """SIGKILL every process left in a session (run.sh gives each program its own group)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # (state, ppid, pgrp, session, ...)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)


def test_make_run_stops_everything_when_only_make_is_signalled(tmp_path: Path) -> None:
    # `timeout 60 make run`, or a service manager, sends SIGTERM to make alone;
    # make does not pass it on, so scripts/run.sh watches for make to be gone.
    ports, env = _run_env(tmp_path)
    log = tmp_path / "run.log"
    with running(["make", "run"], env=env, stdout_path=log) as make:
        try:
            eventually(lambda: "Press Ctrl+C" in log.read_text(), timeout=60)
            assert all(listening(port) for port in ports.values())
            os.kill(make.pid, signal.SIGTERM)  # make only, not its process group
            make.wait(timeout=15)
            eventually(lambda: not any(listening(port) for port in ports.values()), timeout=30)
            assert "otelviewer: stopped" in log.read_text()  # a clean stop, not a kill
        finally:
            _kill_session(make.pid)
