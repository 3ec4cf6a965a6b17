"""configure_sdk / shutdown_sdk: the global SDK, installed once, from the OTEL_* variables.

Installing an SDK is global and permanent for a process, so every case that
installs one runs a small Python script in its own process (environment from
``venv_env``, which drops any OTEL_* of the caller) and reads what it prints.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource

from tests.support import ROOT, eventually, running, venv_env
from todo import __version__, telemetry

#: How long a script may take (imports and an SDK set-up; seconds).
SCRIPT_TIMEOUT_S = 60

#: Prints what configure_sdk did, and the resource of the global provider.
REPORT = """
import json
from opentelemetry import trace
from todo import telemetry

installed = telemetry.configure_sdk({args})
again = telemetry.configure_sdk()
provider = trace.get_tracer_provider()
resource = dict(getattr(provider, "resource", None).attributes) if installed else None
print(json.dumps({{"installed": installed, "again": again,
                  "provider": type(provider).__name__, "resource": resource}}))
"""


def _python(script: str, *, agent: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", textwrap.dedent(script)]
    if agent:
        command = ["opentelemetry-instrument", "python", "-c", textwrap.dedent(script)]
    return subprocess.run(
        command,
        cwd=ROOT,
        env=venv_env(**env),
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )


def _report(args: str = "", *, agent: bool = False, **env: str) -> dict[str, object]:
    result = _python(REPORT.format(args=args), agent=agent, **env)
    assert result.returncode == 0, result.stderr
    found: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize(
    ("environ", "requested"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_METRICS_EXPORTER": "otlp"}, True),
        ({"OTEL_LOGS_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": " None "}, False),
        ({"OTEL_TRACES_EXPORTER": ""}, False),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "false"}, True),
        # The talk's misspelling is read by nothing.
        ({"OTEL_LOG_EXPORTER": "console"}, False),
        ({"OTEL_SERVICE_NAME": "todo", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"}, False),
    ],
)
def test_which_variables_ask_for_telemetry(environ: dict[str, str], requested: bool) -> None:
    assert telemetry.telemetry_requested(environ) is requested


def test_without_otel_variables_nothing_is_installed() -> None:
    assert _report() == {
        "installed": False,
        "again": False,
        "provider": "ProxyTracerProvider",
        "resource": None,
    }


def test_installs_once_with_service_name_todo_and_the_package_version() -> None:
    found = _report(OTEL_TRACES_EXPORTER="console")
    assert (found["installed"], found["again"], found["provider"]) == (
        True,
        False,
        "TracerProvider",
    )
    resource = found["resource"]
    assert isinstance(resource, dict)
    assert resource["service.name"] == "todo"
    assert resource["service.version"] == __version__
    assert resource["telemetry.sdk.name"] == "opentelemetry"


@pytest.mark.parametrize(
    ("service_name", "extra", "environ", "expected"),
    [
        (None, None, {}, {"service.name": "todo", "service.version": __version__}),
        (None, None, {"OTEL_SERVICE_NAME": "todo-eu"}, {"service.name": "todo-eu"}),
        (
            None,
            None,
            {"OTEL_RESOURCE_ATTRIBUTES": "service.name=res,service.version=9"},
            {"service.name": "res", "service.version": "9"},
        ),
        ("todo-client", None, {}, {"service.name": "todo-client"}),
        # The environment names the service over the caller's default.
        (
            "todo-client",
            None,
            {"OTEL_SERVICE_NAME": "shop-client"},
            {"service.name": "shop-client"},
        ),
        # The caller's extra attributes (a worker's id) win over the environment.
        (
            None,
            {"service.instance.id": "worker-1"},
            {"OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=env,deployment.environment=dev"},
            {"service.instance.id": "worker-1", "deployment.environment": "dev"},
        ),
    ],
)
def test_the_resource(
    monkeypatch: pytest.MonkeyPatch,
    service_name: str | None,
    extra: dict[str, str] | None,
    environ: dict[str, str],
    expected: dict[str, str],
) -> None:
    # What configure_sdk hands to the SDK configurator, which calls Resource.create with it.
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    attributes = telemetry._resource_attributes(service_name, extra)
    resource = Resource.create(attributes).attributes
    for key, value in expected.items():
        assert resource[key] == value


def test_under_the_agent_no_second_sdk_is_installed() -> None:
    found = _report(
        agent=True,
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    assert (found["installed"], found["again"], found["provider"]) == (
        False,
        False,
        "TracerProvider",
    )


SHUTDOWN = """
from opentelemetry import metrics, trace
from todo import telemetry

assert telemetry.configure_sdk()
with trace.get_tracer("probe").start_as_current_span("pending span"):
    pass
metrics.get_meter("probe").create_counter("probe.count").add(3)
telemetry.shutdown_sdk()
print("SHUT DOWN", flush=True)
telemetry.shutdown_sdk()  # a second call does nothing
import os
os._exit(0)  # no exit handlers: only shutdown_sdk can have exported
"""


def test_shutdown_sdk_exports_what_is_pending() -> None:
    result = _python(
        SHUTDOWN,
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="console",
        OTEL_METRIC_EXPORT_INTERVAL="600000",
    )
    assert result.returncode == 0, result.stderr
    before, _, after = result.stdout.partition("SHUT DOWN")
    assert '"name": "pending span"' in before
    assert '"name": "probe.count"' in before
    assert '"value": 3' in before
    assert after.strip() == ""


SIGTERM = """
import signal, sys, time
from opentelemetry import metrics
from todo import telemetry

{before}
telemetry.configure_sdk()
metrics.get_meter("probe").create_counter("probe.count").add(5)
print("handler:", signal.getsignal(signal.SIGTERM).__name__, flush=True)
time.sleep(60)
"""


def test_sigterm_ends_the_process_cleanly_so_metrics_are_flushed(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    env = venv_env(OTEL_METRICS_EXPORTER="console", OTEL_METRIC_EXPORT_INTERVAL="600000")
    script = textwrap.dedent(SIGTERM.format(before=""))
    with running([sys.executable, "-c", script], env=env, stdout_path=out) as proc:
        eventually(lambda: "handler:" in out.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=SCRIPT_TIMEOUT_S) == 128 + signal.SIGTERM
    text = out.read_text()
    assert "handler: _raise_system_exit" in text
    assert '"name": "probe.count"' in text
    assert '"value": 5' in text


CORRELATION = """
import logging, signal
from opentelemetry import trace
from todo import telemetry

def server_handler(signum, frame): pass
signal.signal(signal.SIGTERM, server_handler)
telemetry.configure_sdk()
print("handler:", signal.getsignal(signal.SIGTERM).__name__, flush=True)
with trace.get_tracer("probe").start_as_current_span("work") as span:
    logging.getLogger("todo.probe").warning("inside")
    print("trace", format(span.get_span_context().trace_id, "032x"), flush=True)
"""


def test_log_correlation_without_the_agent_and_a_servers_sigterm_handler_is_kept() -> None:
    result = _python(
        CORRELATION,
        OTEL_TRACES_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_METRICS_EXPORTER="console",
        OTEL_PYTHON_LOG_CORRELATION="true",
    )
    assert result.returncode == 0, result.stderr
    trace_id = result.stdout.split("trace ", 1)[1].split()[0]
    (line,) = [line for line in result.stderr.splitlines() if line.endswith("- inside")]
    assert f"trace_id={trace_id}" in line
    assert "resource.service.name=todo" in line
    assert "handler: server_handler" in result.stdout
