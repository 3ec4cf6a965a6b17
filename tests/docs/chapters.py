"""Helpers for the tests that run the commands of docs/ chapters 100 to 400.

The chapters' commands are loaded with :func:`tests.doccmd.doc_command`, so the
docs and the tests cannot drift apart. The only changes made to a command are
the documented substitutions of :func:`localise`: the fixed ports of the docs
(5000, 4317, 16686) become free ones and ``output.log`` a file in a temporary
folder, so the suite can run anywhere, next to a developer's own ``make run``.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.doccmd import ROOT, Block, blocks
from tests.support import eventually, free_port, running, venv_env

DOCS = ROOT / "docs"
CHAPTER_300 = DOCS / "300-building-our-application"

#: The CSRF token in the list page's forms.
#: Terminal colour codes, which Werkzeug adds to some lines.
ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: Only for speed: spans and log records are exported every 200 ms instead of
#: every 5 s and 1 s, so a test does not wait for the batch processors. The
#: commands themselves are run as the docs show them.
FAST_BATCHES = {"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_BLRP_SCHEDULE_DELAY": "200"}
#: How long a command started by a test may take to serve (the agent imports a lot).
APP_STARTUP_S = 30.0


def localise(
    script: str, *, app: int, tmp: Path, grpc: int | None = None, ui: int | None = None
) -> str:
    """Return ``script`` with the docs' fixed ports and ``output.log`` moved.

    Args:
        script: A command from the docs.
        app: The port that replaces the app's 5000.
        tmp: The folder where ``output.log`` goes.
        grpc: The port that replaces OTLP/gRPC's 4317, if any.
        ui: The port that replaces the viewer's 16686, if any.
    """
    script = script.replace("-p 5000", f"-p {app}").replace("localhost:5000", f"localhost:{app}")
    script = script.replace("output.log", str(tmp / "output.log"))
    if grpc is not None:
        script = script.replace(":4317", f":{grpc}")
    if ui is not None:
        script = script.replace(":16686", f":{ui}")
    return script


def doc_blocks(relative: str) -> list[Block]:
    """Return the shell blocks of one Markdown file under docs/."""
    return blocks(DOCS / relative)


def run_block(relative: str, script: str) -> Block:
    """Return the ``<!-- run -->`` block of ``relative`` whose command is ``script``."""
    found = [b for b in doc_blocks(relative) if b.kind == "run" and b.script == script]
    assert len(found) == 1, f"{relative}: no single run block with the command {script!r}"
    return found[0]


def shell(script: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with bash from the repository root, as a user's terminal would."""
    return subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env=env if env is not None else venv_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def console_objects(text: str) -> list[dict[str, Any]]:
    """Return the JSON objects that the console exporters printed, in order.

    Each starts with ``{`` at the beginning of a line; other lines (Flask's
    banner, text logs) are skipped.
    """
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    for match in re.finditer(r"^\{", text, re.MULTILINE):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue  # an object cut off when the process was killed
        found.append(obj)
    return found


def spans_in(text: str) -> list[dict[str, Any]]:
    """Return the spans printed by the console span exporter."""
    return [o for o in console_objects(text) if "kind" in o and "context" in o]


def logs_in(text: str) -> list[dict[str, Any]]:
    """Return the log records printed by the console log exporter."""
    return [o for o in console_objects(text) if "body" in o and "severity_number" in o]


@dataclass
class App:
    """A command from the docs, running on a free port."""

    port: int
    tmp: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str] = field(repr=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> Path:
        """The ``output.log`` that ``tee`` writes."""
        return self.tmp / "output.log"

    @property
    def terminal(self) -> Path:
        """What the command printed to the terminal (stdout and stderr)."""
        return self.tmp / "terminal.log"

    def output_text(self) -> str:
        return self.output.read_text() if self.output.exists() else ""

    def terminal_text(self) -> str:
        return ANSI.sub("", self.terminal.read_text())


@contextmanager
def started(
    script: str,
    tmp: Path,
    *,
    grpc: int | None = None,
    ui: int | None = None,
    **extra_env: str,
) -> Iterator[App]:
    """Run a docs command that serves the app; Ctrl+C (SIGINT to the group) at the end.

    The app's database is a fresh SQLite file in ``tmp``; ``extra_env`` adds
    variables that only make a test faster (never ones that the command sets).
    """
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = venv_env(DATABASE_URL=f"sqlite:///{tmp / 'todo.sqlite'}", **extra_env)
    env["FLASK_RUN_PORT"] = str(port)  # for the commands without -p; the environment wins
    command = localise(script, app=port, tmp=tmp, grpc=grpc, ui=ui)
    with running(["bash", "-c", command], env=env, stdout_path=tmp / "terminal.log") as proc:
        app = App(port, tmp, proc, env)
        wait_until_serving(proc, f"{app.base}/healthz", tmp / "terminal.log")
        yield app


def wait_until_serving(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Wait until ``url`` answers; fail at once, with the output, if ``proc`` ends first."""

    def serving() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the command ended ({proc.returncode}):\n{log.read_text()}")
        try:
            return httpx.get(url, timeout=1).status_code < 500
        except httpx.TransportError:
            return False

    eventually(serving, timeout=APP_STARTUP_S, interval=0.05)


def by_name(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Return the one span called ``name``."""
    found = [s for s in spans if s["name"] == name]
    assert len(found) == 1, f"expected one {name!r} span, got {[s['name'] for s in spans]}"
    return found[0]
