"""Helpers shared by the test suites: ports, processes, waiting, the browser.

Everything here talks to loopback only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
#: Where tests leave screenshots and logs for a person to look at.
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
#: Flags for Chromium on a machine with a closed network (see the env notes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
#: How long a test waits for a server it started to answer.
STARTUP_TIMEOUT_S = 30.0

T = TypeVar("T")

#: The hidden CSRF field of the To-Do app's forms.
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, *, host: str = "127.0.0.1", timeout: float = STARTUP_TIMEOUT_S
) -> None:
    """Wait until something accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def listening(port: int, *, host: str = "127.0.0.1") -> bool:
    """Tell whether something accepts TCP connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def use_the_app(base: str) -> None:
    """Do what a person does in the browser: open the list, add "Buy milk" with the form.

    The form post answers 303 and the browser asks for the list again: the
    server sees ``GET /``, ``POST /add``, ``GET /``.
    """
    with httpx.Client(base_url=base, timeout=10, follow_redirects=True) as client:
        page = client.get("/")
        assert page.status_code == 200
        token = CSRF_FIELD.search(page.text)
        assert token, "the add form has no csrf_token field"
        added = client.post("/add", data={"description": "Buy milk", "csrf_token": token[1]})
        assert added.status_code == 200
        assert [r.status_code for r in added.history] == [303]
        assert "Buy milk" in added.text


def wait_for_http(url: str, *, timeout: float = STARTUP_TIMEOUT_S) -> None:
    """Wait until ``url`` answers any HTTP status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer after {timeout}s")


def eventually(check: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.1) -> T:
    """Call ``check`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last result: {last!r})")


def venv_env(**extra: str) -> dict[str, str]:
    """Return os.environ with the venv's bin first on PATH, no OTEL_* leaking in, plus ``extra``."""
    # A user's shell has no OTEL_* of ours, and is not inside `make test` (make's
    # variables would make a nested make print "Entering directory").
    make_vars = {"MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k not in make_vars}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@contextlib.contextmanager
def running(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    stdout_path: Path | None = None,
    shell: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a process in its own process group, and stop the whole group afterwards.

    Output goes to ``stdout_path`` (stderr merged) when given, so a test can read
    it after the process has stopped and flushed.
    """
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        args if not shell else " ".join(args),
        cwd=cwd,
        env=env if env is not None else venv_env(),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        shell=shell,
    )
    try:
        yield proc
    finally:
        stop(proc)
        if stdout_path:
            out.close()  # type: ignore[union-attr]


def stop(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
    """Send ``sig`` to the process group (as Ctrl+C would), then SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    return proc.returncode


def chromium_available() -> bool:
    """Tell whether Debian's Chromium is installed."""
    return CHROMIUM.exists() or shutil.which("chromium") is not None
