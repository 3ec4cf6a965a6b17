"""Chapter 310 - Installation: `make run`, `.flaskenv`, and `flask run` by hand."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.doccmd import doc_command, doc_output
from tests.docs.chapters import App, run_block, shell, wait_until_serving
from tests.support import eventually, free_port, listening, running, venv_env

pytestmark = pytest.mark.e2e

CHAPTER = "300-building-our-application/310-installation.md"


def _printed_block() -> list[str]:
    """Return the lines of the text block that follows `make run` in the chapter."""
    text = (Path(__file__).resolve().parents[2] / "docs" / CHAPTER).read_text()
    after = text.split("<!-- cmd: 310-make-run -->", 1)[1]
    block = re.search(r"```text\n(.*?)```", after, re.DOTALL)
    assert block, "the chapter no longer shows what make run prints"
    return [line for line in block[1].splitlines() if line.strip()]


def test_make_run_prints_where_to_look_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = {
        name: free_port() for name in ("APP_PORT", "OTLP_GRPC_PORT", "OTLP_HTTP_PORT", "UI_PORT")
    }
    env = venv_env(**{k: str(v) for k, v in ports.items()}, VIEWER_DB=str(tmp_path / "viewer.db"))
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'todo.sqlite'}"
    log = tmp_path / "make-run.log"
    defaults = {"APP_PORT": 5000, "OTLP_GRPC_PORT": 4317, "OTLP_HTTP_PORT": 4318, "UI_PORT": 16686}

    with running(["bash", "-c", doc_command("310-make-run")], env=env, stdout_path=log) as proc:
        wait_until_serving(proc, f"http://127.0.0.1:{ports['APP_PORT']}/healthz", log)
        eventually(lambda: "Press Ctrl+C to stop." in log.read_text(), timeout=30)
        printed = [line.strip() for line in log.read_text().splitlines()]
        for line in _printed_block():
            for name, default in defaults.items():
                line = line.replace(str(default), str(ports[name]))
            assert line.strip() in printed
        assert httpx.get(f"http://127.0.0.1:{ports['UI_PORT']}/api/services", timeout=5).is_success

    for port in ports.values():
        assert not listening(port), f"port {port} is still open after Ctrl+C"


def test_flask_run_from_the_repository_root_serves_the_list(plain_app: App) -> None:
    printed = plain_app.terminal_text().splitlines()
    expected = [line.replace("5000", str(plain_app.port)) for line in doc_output("310-flask-run")]
    for line in expected:
        assert line in printed
    page = httpx.get(plain_app.base + "/", timeout=5)
    assert page.status_code == 200
    assert "To-Do List" in page.text
    assert 'name="csrf_token"' in page.text
    assert "trace_id" not in plain_app.terminal_text(), "plain flask run prints no telemetry"


def test_flaskenv_is_what_the_chapter_shows() -> None:
    block = run_block(CHAPTER, "grep -v '^#' .flaskenv")
    result = shell(block.script)
    assert result.returncode == 0
    assert result.stdout.splitlines() == block.output
