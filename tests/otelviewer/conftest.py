"""Fixtures for the otelviewer tests: a store on a temporary file, a running server.

* ``store``: a fresh ``SqliteStore`` on a temporary file (retention thread off;
  call ``store.enforce_retention()`` to run it).
* ``viewer``: one ``otelviewer serve`` subprocess per test module, on free ports
  with its own database; yields a ``Viewer`` with its ports and URLs.
* ``start_viewer``: a context manager to start more servers with extra arguments
  (``with start_viewer(tmp_path, "--cors-origin", "http://x") as v: ...``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import pytest

from otelviewer.store.sqlite import SqliteStore
from tests.support import free_port, running, venv_env, wait_for_http, wait_for_port


@dataclass
class Viewer:
    """A running ``otelviewer serve``."""

    grpc_port: int
    http_port: int
    ui_port: int
    db_path: Path
    log_path: Path
    proc: Popen[bytes]

    @property
    def grpc_endpoint(self) -> str:
        """Return the OTLP/gRPC endpoint as the SDK exporters take it."""
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        """Return the OTLP/HTTP base URL (append ``/v1/traces`` etc.)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ui_url(self) -> str:
        """Return the UI and Jaeger API base URL."""
        return f"http://127.0.0.1:{self.ui_port}"

    def log(self) -> str:
        """Return what the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def open_store(self) -> SqliteStore:
        """Open the server's database for reading from the test process."""
        return SqliteStore(self.db_path, read_only=True)


@contextlib.contextmanager
def start_viewer(directory: Path, *args: str) -> Iterator[Viewer]:
    """Run ``python -m otelviewer serve`` on free ports until the block ends (SIGINT)."""
    ports = free_port(), free_port(), free_port()
    db_path = directory / "otelviewer.db"
    log_path = directory / f"otelviewer-{ports[0]}.log"
    command = [
        sys.executable,
        "-m",
        "otelviewer",
        "serve",
        "--grpc-port",
        str(ports[0]),
        "--http-port",
        str(ports[1]),
        "--ui-port",
        str(ports[2]),
        "--db",
        str(db_path),
        *args,
    ]
    with running(command, env=venv_env(), stdout_path=log_path) as proc:
        viewer = Viewer(*ports, db_path=db_path, log_path=log_path, proc=proc)
        try:
            wait_for_port(ports[0])
            wait_for_http(viewer.http_url + "/")
            wait_for_http(viewer.ui_url + "/")
        except TimeoutError:
            raise AssertionError(f"otelviewer did not start:\n{viewer.log()}") from None
        yield viewer


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """Return a fresh store on a temporary file (no retention thread)."""
    with SqliteStore(tmp_path / "otelviewer.db", retention_interval_s=0) as s:
        yield s


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    """Run one ``otelviewer serve`` for the test module, on free ports."""
    with start_viewer(tmp_path_factory.mktemp("viewer")) as v:
        yield v


@pytest.fixture(name="start_viewer")
def start_viewer_fixture() -> Callable[..., contextlib.AbstractContextManager[Viewer]]:
    """Return ``start_viewer``, to run a server with extra command-line arguments."""
    return start_viewer
