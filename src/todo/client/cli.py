"""The ``todo-client`` command line: parse, run each command in its root span, exit.

See the package docstring (`todo.client`) for the commands, options and exit codes.
`main` is the console script; tests call it with argv and injected providers.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer, TracerProvider

from todo import __version__
from todo.client.api import (
    ATTR_ERROR_TYPE,
    ATTR_EXECUTABLE,
    ATTR_EXIT_CODE,
    ATTR_PID,
    ATTR_TASK_ID,
    DEFAULT_TIMEOUT_S,
    EXIT_INTERRUPTED,
    EXIT_OK,
    MAX_TASK_ID,
    SERVICE_NAME,
    ClientError,
    add_task,
    delete_task,
    format_table,
    list_tasks,
    make_http_client,
    printable,
    set_done,
)
from todo.client.traffic import (
    DEFAULT_DURATION_S,
    DEFAULT_RATE,
    MAX_DURATION_S,
    MAX_RATE,
    TrafficGenerator,
    stop_signals_interrupt,
)

logger = logging.getLogger(__name__)

#: Tracer scope name of the client's own spans (the HTTP spans are the instrumentation's).
TRACER_NAME = "todo.client"
#: Environment variable naming the app's base URL when ``--url`` is not given.
URL_ENV = "TODO_URL"
#: Where ``flask run`` serves the app by default.
DEFAULT_URL = "http://localhost:5000"
#: The longest --timeout accepted: beyond five minutes a request has hung, not slowed down.
MAX_TIMEOUT_S = 300.0


@dataclass
class Runtime:
    """What every command gets: the HTTP client and a tracer for its own spans."""

    http: httpx.Client
    tracer: Tracer


def cmd_add(rt: Runtime, args: argparse.Namespace, span: Span) -> int:
    """Add a task and print its id and description."""
    task = add_task(rt.http, " ".join(args.description))
    span.set_attribute(ATTR_TASK_ID, task["id"])
    print(f"Added task {task['id']}: {printable(task['description'])}")
    return EXIT_OK


def cmd_list(rt: Runtime, args: argparse.Namespace, span: Span) -> int:
    """Print the tasks as a table."""
    print(format_table(list_tasks(rt.http)))
    return EXIT_OK


def cmd_done(rt: Runtime, args: argparse.Namespace, span: Span) -> int:
    """Mark a task done (``done``) or not done (``undone``)."""
    span.set_attribute(ATTR_TASK_ID, args.id)
    task = set_done(rt.http, args.id, args.command == "done")
    state = "done" if task["done"] else "not done"
    print(f"Marked task {task['id']} as {state}: {printable(task['description'])}")
    return EXIT_OK


def cmd_delete(rt: Runtime, args: argparse.Namespace, span: Span) -> int:
    """Delete a task."""
    span.set_attribute(ATTR_TASK_ID, args.id)
    delete_task(rt.http, args.id)
    print(f"Deleted task {args.id}")
    return EXIT_OK


def cmd_traffic(rt: Runtime, args: argparse.Namespace, span: Span) -> int:
    """Send demo traffic, then print the requests by status."""
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    generator = TrafficGenerator(rt.http, rt.tracer, seed=seed)
    print(
        f"Sending about {args.rate:g} requests/s to {args.url} for {args.duration:g} s "
        f"(seed {seed}); Ctrl+C stops",
        flush=True,
    )
    code = EXIT_OK
    try:
        with stop_signals_interrupt():
            generator.run(rate=args.rate, duration=args.duration)
    except KeyboardInterrupt:
        generator.report.interrupted = True
        code = EXIT_INTERRUPTED
    except ClientError:
        print(generator.report.summary(args.url))
        raise
    print(generator.report.summary(args.url))
    return code


# --- Command line --------------------------------------------------------------------


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def _bounded_float(maximum: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
        if not 0 < number <= maximum:
            raise argparse.ArgumentTypeError(
                f"must be more than 0 and at most {maximum:g}, got {value}"
            )
        return number

    return parse


def _task_id(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a task id is a whole number, got {value!r}") from None
    if not 1 <= number <= MAX_TASK_ID:
        raise argparse.ArgumentTypeError(f"a task id is between 1 and {MAX_TASK_ID}, got {value}")
    return number


COMMANDS: dict[str, Callable[[Runtime, argparse.Namespace, Span], int]] = {
    "add": cmd_add,
    "list": cmd_list,
    "done": cmd_done,
    "undone": cmd_done,
    "delete": cmd_delete,
    "traffic": cmd_traffic,
}


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser (``--url`` defaults to ``$TODO_URL`` as it is now)."""
    parser = argparse.ArgumentParser(
        prog="todo-client",
        description="Use the To-Do app's JSON API; every command is traced with OpenTelemetry.",
        epilog="Telemetry is configured by the standard OTEL_* environment variables.",
    )
    parser.add_argument(
        "--url",
        type=_url,
        default=os.environ.get(URL_ENV) or DEFAULT_URL,
        help=f"the To-Do app (default: ${URL_ENV} or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--timeout",
        type=_bounded_float(MAX_TIMEOUT_S),
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for each answer (default: {DEFAULT_TIMEOUT_S:g})",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = sub.add_parser("add", help="add a task")
    add.add_argument("description", nargs="+", help="what to do (words are joined)")
    sub.add_parser("list", help="list the tasks")
    for name, text in (
        ("done", "mark a task done"),
        ("undone", "mark a task not done"),
        ("delete", "delete a task"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("id", type=_task_id, metavar="ID", help="the task's id (see list)")
    traffic = sub.add_parser(
        "traffic",
        help="send realistic demo traffic, then print a summary",
        description="Send a realistic mix of requests (including some 404s and 400s), "
        "then print the number of requests by status. Ctrl+C stops early.",
    )
    traffic.add_argument(
        "--rate",
        type=_bounded_float(MAX_RATE),
        default=DEFAULT_RATE,
        metavar="R",
        help=f"requests per second (default: {DEFAULT_RATE:g}, at most {MAX_RATE:g})",
    )
    traffic.add_argument(
        "--duration",
        type=_bounded_float(MAX_DURATION_S),
        default=DEFAULT_DURATION_S,
        metavar="S",
        help=f"seconds to run (default: {DEFAULT_DURATION_S:g}, at most {MAX_DURATION_S:g})",
    )
    traffic.add_argument(
        "--seed", type=int, default=None, metavar="N", help="repeat the same mix of requests"
    )
    return parser


@contextlib.contextmanager
def _global_sdk() -> Iterator[None]:
    """Install the SDK from the OTEL_* variables for the command, and flush it at the end."""
    from todo.telemetry import configure_sdk, shutdown_sdk

    configure_sdk(service_name=SERVICE_NAME)
    try:
        yield
    finally:
        shutdown_sdk()


def run(
    args: argparse.Namespace,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> int:
    """Run the parsed command inside its root span ``todo-client <command>``."""
    tracer = trace.get_tracer(TRACER_NAME, __version__, tracer_provider=tracer_provider)
    with (
        make_http_client(
            args.url,
            timeout=args.timeout,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        ) as http,
        tracer.start_as_current_span(
            f"{SERVICE_NAME} {args.command}",
            context=Context(),  # a root span: one command, one trace
            kind=SpanKind.INTERNAL,
            attributes={ATTR_EXECUTABLE: SERVICE_NAME, ATTR_PID: os.getpid()},
            record_exception=False,
            set_status_on_exception=False,
        ) as span,
    ):
        error_type, message = "", ""
        try:
            code = COMMANDS[args.command](Runtime(http, tracer), args, span)
        except ClientError as exc:
            print(f"todo-client: error: {exc.message}", file=sys.stderr)
            code, error_type, message = exc.exit_code, exc.error_type, exc.message
        except KeyboardInterrupt:
            print("todo-client: interrupted", file=sys.stderr)
            code = EXIT_INTERRUPTED
        # The semantic conventions for CLI spans: a non-zero exit code is an error.
        span.set_attribute(ATTR_EXIT_CODE, code)
        if code != EXIT_OK:
            if code == EXIT_INTERRUPTED:
                error_type, message = "interrupted", "interrupted by a signal"
            span.set_status(StatusCode.ERROR, message)
            span.set_attribute(ATTR_ERROR_TYPE, error_type or str(code))
        return code


def main(
    argv: Sequence[str] | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> int:
    """Run ``todo-client`` and return its exit code.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).
        tracer_provider: Send the spans here instead of configuring the global SDK
            from the ``OTEL_*`` variables (tests inject an in-memory provider).
        meter_provider: The same, for the HTTP client metrics.
    """
    args = build_parser().parse_args(argv)
    # httpx logs every request at INFO ("HTTP Request: GET ..."). When the SDK turns
    # logging on (OTEL_PYTHON_LOG_CORRELATION=true, as `make run` sets), that would
    # fill the terminal of `traffic`; the client reports results and errors itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        if tracer_provider is not None or meter_provider is not None:
            return run(args, tracer_provider=tracer_provider, meter_provider=meter_provider)
        with _global_sdk():
            return run(args)
    except BrokenPipeError:
        # `todo-client list | head -1`: the reader left; say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
