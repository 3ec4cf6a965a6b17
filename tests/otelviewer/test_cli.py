"""``otelviewer serve``: listeners, clean shutdown, a taken port, options and defaults."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from werkzeug.test import Client

from otelviewer.cli import default_db_path, parse_duration, parse_size
from otelviewer.server import ui_app
from otelviewer.store import sql
from otelviewer.store.sqlite import SqliteStore
from tests.otelviewer.conftest import Viewer, start_viewer
from tests.support import (
    VENV_BIN,
    eventually,
    free_port,
    listening,
    running,
    stop,
    venv_env,
    wait_for_port,
)

pytestmark = pytest.mark.e2e


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``otelviewer serve`` expecting it to exit on its own (it cannot start)."""
    return subprocess.run(
        [str(VENV_BIN / "otelviewer"), "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or venv_env(),
        check=False,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_logs_each_listener_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    with start_viewer(tmp_path) as v:
        assert stop(v.proc, sig=sig) == 0
        lines = v.log().splitlines()
    assert lines[:4] == [
        f"otelviewer: created the database {v.db_path}",
        f"otelviewer: OTLP/gRPC listening on 127.0.0.1:{v.grpc_port}",
        f"otelviewer: OTLP/HTTP listening on http://127.0.0.1:{v.http_port}",
        f"otelviewer: UI and Jaeger API on http://127.0.0.1:{v.ui_port}",
    ]
    assert lines[-2:] == [f"otelviewer: stopping ({sig.name})", "otelviewer: stopped"]
    for port in (v.grpc_port, v.http_port, v.ui_port):
        assert not listening(port)
    conn = sqlite3.connect(v.db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


@pytest.mark.parametrize(
    ("taken", "hint"),
    [("--grpc-port", "collector"), ("--http-port", "collector"), ("--ui-port", "Jaeger")],
)
def test_a_taken_port_is_refused_with_a_clear_message(
    tmp_path: Path, taken: str, hint: str
) -> None:
    ports = {"--grpc-port": free_port(), "--http-port": free_port(), "--ui-port": free_port()}
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        ports[taken] = other.getsockname()[1]
        args = [item for pair in ports.items() for item in (pair[0], str(pair[1]))]
        result = serve(*args, "--db", str(tmp_path / "v.db"))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"otelviewer: port {ports[taken]} on 127.0.0.1 is already in use"
        f" (is another otelviewer or {hint} running?)"
    )
    assert result.stdout == ""
    assert not (tmp_path / "v.db").exists()  # nothing was started


def test_a_database_from_a_newer_otelviewer_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    SqliteStore(db, retention_interval_s=0).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {sql.SCHEMA_VERSION + 1}")
    conn.close()
    result = serve(
        "--db",
        str(db),
        "--grpc-port",
        str(free_port()),
        "--http-port",
        str(free_port()),
        "--ui-port",
        str(free_port()),
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"otelviewer: cannot use the database {db}: ")
    assert "newer than this otelviewer" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-age", "7x"], "'7x' is not a duration like 24h or 7d"),
        (["--max-request-size", "lots"], "'lots' is not a size like 16MiB"),
        (["--grpc-port", "70000"], "'70000' is not a TCP port"),
        (["--max-spans", "0"], "'0' must be above zero"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = serve(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_python_dash_m_and_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otelviewer", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=venv_env(),
    )
    for option in (
        "--host",
        "--grpc-port",
        "--http-port",
        "--ui-port",
        "--db",
        "--max-spans",
        "--max-age",
        "--max-request-size",
        "--cors-origin",
    ):
        assert option in result.stdout


def test_defaults_and_options_reach_the_server(tmp_path: Path) -> None:
    """No --db: the per-user data folder; --cors-origin and --max-request-size apply."""
    ports = [free_port() for _ in range(3)]
    env = venv_env(XDG_DATA_HOME=str(tmp_path / "data"))
    command = [
        str(VENV_BIN / "otelviewer"), "serve",
        "--grpc-port", str(ports[0]), "--http-port", str(ports[1]), "--ui-port", str(ports[2]),
        "--cors-origin", "http://localhost:3000", "--max-request-size", "1KiB", "--max-age", "1h",
    ]  # fmt: skip
    with running(command, env=env, stdout_path=tmp_path / "log") as proc:
        for port in ports:
            wait_for_port(port)
        assert (tmp_path / "data" / "otelviewer" / "otelviewer.db").exists()
        url = f"http://127.0.0.1:{ports[1]}/v1/traces"
        preflight = urllib.request.Request(
            url, method="OPTIONS", headers={"Origin": "http://localhost:3000"}
        )
        with urllib.request.urlopen(preflight, timeout=5) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        big = urllib.request.Request(
            url, data=bytes(1025), headers={"Content-Type": "application/x-protobuf"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(big, timeout=5)
        assert refused.value.code == 413
        assert stop(proc) == 0
    text = (tmp_path / "log").read_text()
    assert f"created the database {tmp_path / 'data' / 'otelviewer' / 'otelviewer.db'}" in text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("90m", 5400), ("24h", 86400), ("7d", 604800), ("3600", 3600), ("1.5h", 5400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", 1048576), ("512KiB", 524288), ("16MiB", 16 * 1024 * 1024), ("20MB", 20_000_000),
     ("1k", 1000), ("2GiB", 2 * 1024**3), ("100b", 100)],
)  # fmt: skip
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_default_db_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db_path() == tmp_path / "xdg" / "otelviewer" / "otelviewer.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_db_path() == tmp_path / ".local" / "share" / "otelviewer" / "otelviewer.db"


def test_without_the_web_package_the_ui_port_answers_a_placeholder(
    monkeypatch: pytest.MonkeyPatch, store: SqliteStore
) -> None:
    import otelviewer

    monkeypatch.delattr(otelviewer, "web", raising=False)  # as if never imported...
    monkeypatch.setitem(sys.modules, "otelviewer.web", None)  # ...and not importable
    response = Client(ui_app(store)).get("/")
    assert response.status_code == 503
    assert "web UI is not installed" in response.text


def test_the_ui_port_serves_the_web_app(viewer: Viewer) -> None:
    def services() -> bool:
        with urllib.request.urlopen(viewer.ui_url + "/api/services", timeout=5) as response:
            return response.status == 200

    assert eventually(services)
