"""The To-Do JSON API over a traced ``httpx`` client: one function per endpoint.

Every request gets a ``CLIENT`` span from the official httpx instrumentation and
carries the trace context in its headers (W3C ``traceparent`` unless
``OTEL_PROPAGATORS`` says otherwise), so the app's ``SERVER`` span joins the trace.
Failures become a `ClientError`: a one-line message for a person, an exit code,
and a low-cardinality ``error.type`` for the span.

Usage::

    with make_http_client("http://localhost:5000") as http:
        task = add_task(http, "Buy milk")
        set_done(http, task["id"], True)
        print(format_table(list_tasks(http)))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NoReturn, TypedDict

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from todo import __version__

logger = logging.getLogger(__name__)

#: The ``service.name`` of the client's telemetry.
SERVICE_NAME = "todo-client"
#: The JSON API's collection of tasks.
API_TASKS = "/api/tasks"
#: Seconds to wait for each answer: the app answers in milliseconds, so 10 s only
#: passes when something is wrong, and is short enough for a person to wait for.
DEFAULT_TIMEOUT_S = 10.0
#: Task ids are the database's 32-bit signed ``integer`` (PostgreSQL), so larger ids
#: cannot exist; refusing them here gives a clear message instead of a server error.
MAX_TASK_ID = 2**31 - 1

EXIT_OK = 0
#: The app answered with an error status (4xx/5xx); its message is printed.
EXIT_REJECTED = 1
#: argparse's own status for a bad command line.
EXIT_USAGE = 2
#: No usable answer: connection refused, unknown host, timeout, or not the To-Do API.
EXIT_UNREACHABLE = 3
#: The shell's convention for a process stopped by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130

# Attribute names from the OpenTelemetry semantic conventions for CLI programs
# (https://opentelemetry.io/docs/specs/semconv/cli/cli-spans/), plus the app's own
# task id attribute so client and server spans can be searched by the same tag.
ATTR_EXECUTABLE = "process.executable.name"
ATTR_EXIT_CODE = "process.exit.code"
ATTR_PID = "process.pid"
ATTR_ERROR_TYPE = "error.type"
ATTR_TASK_ID = "todo.task.id"


class Task(TypedDict):
    """A task as the JSON API returns it."""

    id: int
    description: str
    done: bool
    created_at: str


class ClientError(Exception):
    """A failure to tell the user about in one line, with the exit code to use."""

    def __init__(self, message: str, *, exit_code: int, error_type: str) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        #: Low-cardinality cause for the span's ``error.type`` (e.g. ``404``, ``ConnectError``).
        self.error_type = error_type


# --- HTTP -----------------------------------------------------------------------


def make_http_client(
    base_url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> httpx.Client:
    """Return an ``httpx.Client`` for ``base_url`` that traces every request.

    Each request gets a ``CLIENT`` span and carries the current trace context in
    its headers (W3C ``traceparent`` by default; ``OTEL_PROPAGATORS`` changes it).

    Args:
        base_url: The app, e.g. ``http://localhost:5000``.
        timeout: Seconds to wait for each answer.
        tracer_provider: Where the spans go; ``None`` means the global provider.
        meter_provider: Where the HTTP client metrics go; ``None`` means the global one.
    """
    client = httpx.Client(
        base_url=base_url,
        timeout=timeout,
        headers={"Accept": "application/json", "User-Agent": f"todo-client/{__version__}"},
    )
    instrumentor = HTTPXClientInstrumentor()
    # Under `opentelemetry-instrument` every httpx client is traced already; a second
    # wrapper would record each request twice.
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument_client(
            client, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    return client


def _reason(exc: Exception) -> str:
    """Turn ``[Errno 111] Connection refused`` into ``connection refused``."""
    text = str(exc) or type(exc).__name__
    if text.startswith("[Errno") and "] " in text:
        text = text.split("] ", 1)[1]
    return text[:1].lower() + text[1:]


def send(http: httpx.Client, method: str, path: str, *, json: Any = None) -> httpx.Response:
    """Send one request; turn "no answer" into a `ClientError` the user can act on."""
    base = str(http.base_url).rstrip("/")
    try:
        return http.request(method, path, json=json)
    except httpx.TimeoutException as exc:
        timeout = http.timeout.read
        raise ClientError(
            f"{base} did not answer within {timeout:g} s",
            exit_code=EXIT_UNREACHABLE,
            error_type=type(exc).__name__,
        ) from exc
    except httpx.TransportError as exc:
        raise ClientError(
            f"cannot reach {base}: {_reason(exc)}",
            exit_code=EXIT_UNREACHABLE,
            error_type=type(exc).__name__,
        ) from exc


def _not_the_api(response: httpx.Response, detail: str) -> ClientError:
    return ClientError(
        f"unexpected answer from {response.request.url} (is it the To-Do app?): {detail}",
        exit_code=EXIT_UNREACHABLE,
        error_type="invalid_response",
    )


def expect(response: httpx.Response, status: int) -> Any:
    """Return the JSON body of ``response`` if it has ``status``; raise `ClientError` if not.

    An error answer from the app becomes its own message (``{"error": "..."}``) with
    the status, e.g. ``Task 42 not found. (HTTP 404)``.
    """
    if response.status_code == status:
        if status == httpx.codes.NO_CONTENT:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise _not_the_api(response, "the body is not JSON") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
    elif response.is_error:
        phrase = httpx.codes.get_reason_phrase(response.status_code) or "Error"
        message = f"{phrase} for {response.request.method} {response.url}"
    else:
        raise _not_the_api(response, f"HTTP {response.status_code} instead of {status}")
    return _raise_rejected(response, message)


def _raise_rejected(response: httpx.Response, message: str) -> NoReturn:
    raise ClientError(
        f"{printable(message)} (HTTP {response.status_code})",
        exit_code=EXIT_REJECTED,
        error_type=str(response.status_code),
    )


def as_task(obj: Any, response: httpx.Response) -> Task:
    """Check that ``obj`` is a task as the API describes it."""
    if (
        isinstance(obj, dict)
        and type(obj.get("id")) is int
        and isinstance(obj.get("description"), str)
        and isinstance(obj.get("done"), bool)
    ):
        return Task(
            id=obj["id"],
            description=obj["description"],
            done=obj["done"],
            created_at=str(obj.get("created_at", "")),
        )
    raise _not_the_api(response, "the body is not a task")


def printable(text: str) -> str:
    r"""Escape control characters (``\x1b``...): stored text must not drive the terminal."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


# --- The API, one function per endpoint -------------------------------------------


def list_tasks(http: httpx.Client) -> list[Task]:
    """GET /api/tasks."""
    response = send(http, "GET", API_TASKS)
    body = expect(response, httpx.codes.OK)
    if not isinstance(body, dict) or not isinstance(body.get("tasks"), list):
        raise _not_the_api(response, 'no "tasks" list in the body')
    return [as_task(item, response) for item in body["tasks"]]


def add_task(http: httpx.Client, description: str) -> Task:
    """POST /api/tasks."""
    response = send(http, "POST", API_TASKS, json={"description": description})
    return as_task(expect(response, httpx.codes.CREATED), response)


def set_done(http: httpx.Client, task_id: int, done: bool) -> Task:
    """PATCH /api/tasks/<id> with ``{"done": done}``."""
    response = send(http, "PATCH", f"{API_TASKS}/{task_id}", json={"done": done})
    return as_task(expect(response, httpx.codes.OK), response)


def delete_task(http: httpx.Client, task_id: int) -> None:
    """DELETE /api/tasks/<id>."""
    expect(send(http, "DELETE", f"{API_TASKS}/{task_id}"), httpx.codes.NO_CONTENT)


def format_table(tasks: Sequence[Task]) -> str:
    """Render tasks as the ``list`` command prints them."""
    if not tasks:
        return 'No tasks yet. Add one with: todo-client add "Buy milk"'
    width = max(len("ID"), *(len(str(t["id"])) for t in tasks))
    lines = [f"{'ID':>{width}}  Done  Description"]
    lines += [
        f"{t['id']:>{width}}  {'[x]' if t['done'] else '[ ]'}   {printable(t['description'])}"
        for t in tasks
    ]
    done = sum(t["done"] for t in tasks)
    lines.append(f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}, {done} done")
    return "\n".join(lines)
