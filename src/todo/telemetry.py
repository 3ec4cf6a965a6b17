"""OpenTelemetry for the To-Do app: traces, metrics and logs, one contract, three ways to run.

Usage
-----
The application factory sets telemetry up in two calls::

    telemetry.configure_sdk()  # the SDK from OTEL_*, unless the agent installed one
    db.init_app(app)
    ...
    telemetry.init_app(app)    # after db.init_app(app): instruments this app

:func:`configure_sdk` installs the global SDK (providers, exporters) from the
standard ``OTEL_*`` variables, only when they ask for telemetry and no SDK is
installed yet. :func:`init_app` instruments one app: Flask (a SERVER span per
request), its SQLAlchemy engines (DB spans), the app's own metric instruments,
and a bridge that turns the ``todo`` logger's records into OTel log records
carrying the request's trace and span ids. Tests inject their own providers::

    init_app(app, tracer_provider=tp, meter_provider=mp, logger_provider=lp)

The service layer (:mod:`todo.tasks`) gets the current app's tracer and
instruments::

    with telemetry.tracer().start_as_current_span("todo.tasks.add") as span:
        ...
        telemetry.instruments().tasks_created.add(1)

Three ways to run
-----------------
* **The agent**: ``opentelemetry-instrument ... flask run`` installs the SDK and
  instruments Flask, SQLAlchemy and logging before the app starts.
  :func:`configure_sdk` then does nothing. :func:`init_app` adds our
  instruments and sets the ``todo`` logger's level; it leaves the DB spans and
  the log handler to the agent (nothing is exported twice), and re-instruments
  the app's Flask hooks with the same providers so that the URL exclusions and
  span naming below hold under the agent too.
* **In code, without the agent**: ``OTEL_TRACES_EXPORTER=console flask run``:
  :func:`configure_sdk` installs the SDK with the same configurator the agent
  uses, and :func:`init_app` instruments the app.
* **Nothing asked**: plain ``flask run`` exports nothing and prints no telemetry;
  the OpenTelemetry API stays a no-op.

Whatever installed the SDK, a SIGTERM (``kill``, ``docker stop``) ends the process
like Ctrl+C does, so the SDK's exit handlers export the last spans, metrics and
logs. Servers that handle SIGTERM themselves (gunicorn) keep their handler.

Configuration
-------------
The standard variables (``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER``,
``OTEL_LOGS_EXPORTER``, ``OTEL_SERVICE_NAME``, ``OTEL_METRIC_EXPORT_INTERVAL``,
``OTEL_PYTHON_FLASK_EXCLUDED_URLS``, ``OTEL_SEMCONV_STABILITY_OPT_IN``,
``OTEL_PYTHON_LOG_CORRELATION``...) and our ``TODO_LOG_LEVEL`` are described
in :mod:`todo.telemetry_env`. docs/telemetry-reference.md is the contract: every
span, metric and log record the app emits.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any, cast

from flask import Flask, Response, current_app, has_app_context, request
from opentelemetry import metrics, trace
from opentelemetry._logs import LoggerProvider, get_logger_provider
from opentelemetry.distro import OpenTelemetryConfigurator
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.instrumentation.sqlalchemy.version import __version__ as sqlalchemy_instr_version
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import CallbackOptions, Counter, MeterProvider, Observation
from opentelemetry.sdk import _logs as sdk_logs
from opentelemetry.sdk import metrics as sdk_metrics
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, OTELResourceDetector
from opentelemetry.trace import Tracer, TracerProvider
from opentelemetry.util.http import ExcludeList, parse_excluded_urls, sanitize_method
from sqlalchemy.exc import SQLAlchemyError

from todo import __version__
from todo import telemetry_env as env

logger = logging.getLogger(__name__)

#: Name of the app's tracer and meter (the instrumentation scope of our spans and metrics).
SCOPE = "todo"
#: ``service.name`` when neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES names one.
DEFAULT_SERVICE_NAME = "todo"
#: The logger whose records (and its children's: ``todo.tasks``...) become OTel logs.
APP_LOGGER = "todo"

#: Counter of the requests the app served (not the excluded URLs), by route and method.
REQUESTS = "todo.requests"
#: Counter of the tasks added.
TASKS_CREATED = "todo.tasks.created"
#: Gauge of the tasks not done yet, read from the database at each metric export.
TASKS_OPEN = "todo.tasks.open"

#: Metric attributes of todo.requests (the stable HTTP semantic-convention names).
ATTR_HTTP_ROUTE = "http.route"
ATTR_HTTP_METHOD = "http.request.method"

#: Key of the per-app state in ``app.extensions``.
EXTENSION = "todo.telemetry"

#: The exporter value that means "no exporter" for a signal.
_NONE = "none"


@dataclass(frozen=True)
class Instruments:
    """The app's own metric instruments (meter ``todo``).

    Attributes:
        requests: ``todo.requests`` ``{request}``, recorded by :func:`init_app`
            for every request that is traced, with ``http.route`` (absent for
            URLs that match no route) and ``http.request.method``.
        tasks_created: ``todo.tasks.created`` ``{task}``: add 1 per task added.
    """

    requests: Counter
    tasks_created: Counter


@dataclass
class _AppTelemetry:
    """What :func:`init_app` set up for one app (kept in ``app.extensions``)."""

    tracer: Tracer
    instruments: Instruments
    excluded_urls: ExcludeList
    #: The OTel logging handler for this app's records; None when an OTel handler
    #: on the root logger (the agent's) already exports them.
    log_handler: logging.Handler | None


def init_app(
    app: Flask,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    logger_provider: LoggerProvider | None = None,
) -> None:
    """Instrument ``app``: server spans, DB spans, the app's metrics, and its logs.

    Call it once per app, after ``db.init_app(app)``. Providers left as None
    are the global ones (the agent's or :func:`configure_sdk`'s; a no-op when
    there is no SDK), looked up lazily, so an SDK installed later is used too.

    Args:
        app: The Flask app.
        tracer_provider: Provider of the server, app and DB spans.
        meter_provider: Provider of the HTTP metrics and of :class:`Instruments`.
        logger_provider: Provider that receives the app's log records.

    Raises:
        RuntimeError: ``app`` is already instrumented by this function, or has
            no Flask-SQLAlchemy extension yet.
    """
    if EXTENSION in app.extensions:
        raise RuntimeError("telemetry.init_app() was already called for this app")
    excluded_urls = _excluded_urls()
    _instrument_flask(app, tracer_provider, meter_provider, excluded_urls)
    _trace_engines(app, tracer_provider, meter_provider)

    meter = metrics.get_meter(SCOPE, __version__, meter_provider)
    instruments = Instruments(
        requests=meter.create_counter(
            REQUESTS, unit="{request}", description="Requests served, by route and method."
        ),
        tasks_created=meter.create_counter(
            TASKS_CREATED, unit="{task}", description="Tasks added."
        ),
    )
    meter.create_observable_gauge(
        TASKS_OPEN,
        callbacks=[_open_tasks_callback(app)],
        unit="{task}",
        description="Tasks not done yet.",
    )
    app.extensions[EXTENSION] = _AppTelemetry(
        tracer=trace.get_tracer(SCOPE, __version__, tracer_provider),
        instruments=instruments,
        excluded_urls=parse_excluded_urls(excluded_urls),
        log_handler=_log_handler(logger_provider),
    )
    _bridge_logs(app)
    app.after_request(_count_request)
    if _global_sdk_installed():
        _exit_cleanly_on_sigterm()


def tracer() -> Tracer:
    """Return the ``todo`` tracer of the current app (needs an app context)."""
    return _state().tracer


def instruments() -> Instruments:
    """Return the metric instruments of the current app (needs an app context)."""
    return _state().instruments


# --- The global SDK --------------------------------------------------------------

_sdk_lock = threading.Lock()
_Providers = tuple[sdk_trace.TracerProvider, sdk_metrics.MeterProvider, sdk_logs.LoggerProvider]
#: The providers that configure_sdk installed, for shutdown_sdk.
_installed: _Providers | None = None


def telemetry_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Tell whether the ``OTEL_*`` variables ask for telemetry.

    They do when ``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER`` or
    ``OTEL_LOGS_EXPORTER`` names an exporter (anything but ``none``), and
    ``OTEL_SDK_DISABLED`` is not ``true``.
    """
    environ = os.environ if environ is None else environ
    if environ.get(env.OTEL_SDK_DISABLED, "").strip().lower() == "true":
        return False
    exporters = (env.OTEL_TRACES_EXPORTER, env.OTEL_METRICS_EXPORTER, env.OTEL_LOGS_EXPORTER)
    return any(environ.get(name, "").strip().lower() not in ("", _NONE) for name in exporters)


def configure_sdk(
    *, service_name: str | None = None, resource_attributes: Mapping[str, str] | None = None
) -> bool:
    """Install the global OpenTelemetry SDK from the ``OTEL_*`` variables, if asked and absent.

    Does nothing (and returns False) when the variables ask for no telemetry
    (see :func:`telemetry_requested`), or when an SDK is installed already, by
    the ``opentelemetry-instrument`` agent or by an earlier call: there is never
    a second SDK, so nothing is exported twice. Otherwise it runs the SDK
    configurator that the agent uses (same variables, same exporters), with our
    resource, and honours ``OTEL_PYTHON_LOG_CORRELATION``. Call it before
    :func:`init_app`. Once per process: the API refuses to replace providers.

    Args:
        service_name: ``service.name`` when neither ``OTEL_SERVICE_NAME`` nor
            ``OTEL_RESOURCE_ATTRIBUTES`` sets one; default ``todo``.
        resource_attributes: More resource attributes (e.g. a worker's
            ``service.instance.id``); they win over the environment.

    Returns:
        Whether this call installed the SDK.
    """
    global _installed
    with _sdk_lock:
        if _installed is not None or not telemetry_requested() or _global_sdk_installed():
            return False
        attributes = _resource_attributes(service_name, resource_attributes)
        # setup_logging_handler=False: init_app bridges the app's logger itself,
        # whatever the deprecated OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED says.
        configurator = OpenTelemetryConfigurator()  # type: ignore[no-untyped-call]
        configurator.configure(  # type: ignore[no-untyped-call]
            resource_attributes=attributes, setup_logging_handler=False
        )
        _installed = (
            cast(sdk_trace.TracerProvider, trace.get_tracer_provider()),
            cast(sdk_metrics.MeterProvider, metrics.get_meter_provider()),
            cast(sdk_logs.LoggerProvider, get_logger_provider()),
        )
    if os.environ.get(env.OTEL_PYTHON_LOG_CORRELATION, "").strip().lower() == "true":
        # Trace ids in the text log lines; the OTel records get them from init_app's bridge.
        LoggingInstrumentor().instrument(enable_log_auto_instrumentation=False)
    _exit_cleanly_on_sigterm()
    logger.info(
        "OpenTelemetry SDK installed for %s (traces: %s, metrics: %s, logs: %s)",
        _installed[0].resource.attributes.get(SERVICE_NAME),
        os.environ.get(env.OTEL_TRACES_EXPORTER, _NONE),
        os.environ.get(env.OTEL_METRICS_EXPORTER, _NONE),
        os.environ.get(env.OTEL_LOGS_EXPORTER, _NONE),
    )
    return True


def shutdown_sdk() -> None:
    """Export what is pending and shut down the SDK that :func:`configure_sdk` installed.

    Does nothing when it installed none (e.g. under the agent, whose SDK shuts
    down at exit by itself). The SDK's own exit handler does the same at a
    normal exit; call this where a process ends otherwise (a gunicorn worker).
    """
    global _installed
    with _sdk_lock:
        installed, _installed = _installed, None
    if installed is None:
        return
    tracer_provider, meter_provider, logger_provider = installed
    tracer_provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()


# --- Helpers ---------------------------------------------------------------------


def _state() -> _AppTelemetry:
    state = current_app.extensions.get(EXTENSION)
    if state is None:
        raise RuntimeError("telemetry.init_app(app) was not called for the current app")
    return cast(_AppTelemetry, state)


def _excluded_urls() -> str:
    """Return the URL exclusion list in force: the environment's, or our default."""
    for name in (env.OTEL_PYTHON_FLASK_EXCLUDED_URLS, env.OTEL_PYTHON_EXCLUDED_URLS):
        value = os.environ.get(name)
        if value is not None:
            return value
    return env.DEFAULT_EXCLUDED_URLS


def _global_sdk_installed() -> bool:
    """Tell whether an SDK provider is installed globally (the agent's or ours)."""
    return (
        isinstance(trace.get_tracer_provider(), sdk_trace.TracerProvider)
        or isinstance(metrics.get_meter_provider(), sdk_metrics.MeterProvider)
        or isinstance(get_logger_provider(), sdk_logs.LoggerProvider)
    )


def _resource_attributes(
    service_name: str | None, extra: Mapping[str, str] | None
) -> dict[str, Any]:
    """Return the resource attributes to add to what the environment says."""
    attributes: dict[str, Any] = dict(extra or {})
    from_env = OTELResourceDetector().detect().attributes
    if SERVICE_NAME not in from_env and SERVICE_NAME not in attributes:
        attributes[SERVICE_NAME] = service_name or DEFAULT_SERVICE_NAME
    if SERVICE_VERSION not in from_env and SERVICE_VERSION not in attributes:
        attributes[SERVICE_VERSION] = __version__
    return attributes


def _instrument_flask(
    app: Flask,
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
    excluded_urls: str,
) -> None:
    """Instrument the app with the Flask instrumentation (SERVER spans, HTTP metrics)."""
    if getattr(app, "_is_instrumented_by_opentelemetry", False) and not _remove_agent_hooks(app):
        return
    hooks = app.before_request_funcs.setdefault(None, [])
    others = list(hooks)
    FlaskInstrumentor.instrument_app(  # type: ignore[no-untyped-call]
        app,
        request_hook=_name_unmatched_requests,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        excluded_urls=excluded_urls,
    )
    # The span starts in a before_request hook. Run it first: a hook that
    # refuses the request (CSRF's, registered earlier) would otherwise leave
    # that request without a span.
    hooks[:] = [f for f in hooks if f not in others] + others


def _name_unmatched_requests(span: trace.Span, _environ: Mapping[str, Any]) -> None:
    """Name the span of a request that matched no route after its method only.

    The instrumentation names it ``METHOD /the/path``: one span name per URL
    anyone tries (scanners try thousands), which backends index and group by.
    The HTTP semantic conventions say ``METHOD`` alone (``HTTP`` for unknown
    methods); the path stays in the ``http.target`` / ``url.path`` attribute.
    """
    if request.url_rule is None and span.is_recording():
        method = sanitize_method(request.method)
        span.update_name("HTTP" if method == "_OTHER" else method)


def _remove_agent_hooks(app: Flask) -> bool:
    """Take the agent's Flask instrumentation off ``app``, so init_app can redo it.

    Under the agent, ``flask.Flask`` is the instrumentation's subclass, which
    instruments every app when it is created, with the URL exclusions read from
    the environment when the agent started: before this app could say that
    ``/healthz`` and ``/static`` are not worth a span. Re-instrumenting with
    the same providers and our exclusions is the only way to apply them; the
    spans and metrics are otherwise the same. The instrumentation's own
    ``uninstrument_app`` does the work; its subclass does not record the
    teardown hook that it needs, so we find it first.

    Returns:
        Whether the hooks were removed; when not, the agent's stay (warned).
    """
    module = FlaskInstrumentor.__module__
    teardowns = [
        f
        for f in app.teardown_request_funcs.get(None, [])
        if getattr(f, "__module__", "") == module
    ]
    wsgi_is_agents = getattr(app.wsgi_app, "__module__", "") == module
    if not (wsgi_is_agents and len(teardowns) == 1 and hasattr(app, "_before_request")):
        logger.warning(
            "the app was instrumented in an unexpected way; keeping that instrumentation "
            "(set %s to exclude /healthz and /static from tracing)",
            env.OTEL_PYTHON_FLASK_EXCLUDED_URLS,
        )
        return False
    app._teardown_request = teardowns[0]  # type: ignore[attr-defined]
    FlaskInstrumentor.uninstrument_app(app)  # type: ignore[no-untyped-call]
    return True


def _trace_engines(
    app: Flask, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
) -> None:
    """Trace the app's SQLAlchemy engines (a CLIENT span per statement, ``db.system``)."""
    if SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry:
        # The agent wrapped create_engine: every engine is traced already.
        return
    extension = app.extensions.get("sqlalchemy")
    if extension is None:
        raise RuntimeError("call db.init_app(app) before telemetry.init_app(app)")
    with app.app_context():
        engines = list(extension.engines.values())
    # The same scope, instruments and listeners as SQLAlchemyInstrumentor, for
    # these engines only: instrument() would also patch create_engine for the
    # whole process, with this app's providers.
    scope = SQLAlchemyInstrumentor.__module__
    db_tracer = trace.get_tracer(scope, sqlalchemy_instr_version, tracer_provider)
    meter = metrics.get_meter(scope, sqlalchemy_instr_version, meter_provider)
    connections = meter.create_up_down_counter(
        "db.client.connections.usage",
        unit="connections",
        description="The number of connections that are currently in state described by the "
        "state attribute.",
    )
    for engine in engines:
        EngineTracer(db_tracer, engine, connections)  # type: ignore[no-untyped-call]


def _open_tasks_callback(app: Flask) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """Return the callback of ``todo.tasks.open``: one COUNT query per metric export."""
    app_ref = weakref.ref(app)

    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        target = app_ref()
        if target is None:
            return []
        from todo import tasks  # here: tasks imports this module

        # Suppressed: a query made for a metric export is not app activity, and
        # would otherwise be a root DB span every export interval. Suppression
        # wraps the app context so that the connection's check-in at teardown is
        # suppressed like its checkout (else db.client.connections.usage drifts).
        with suppress_instrumentation(), target.app_context():
            try:
                return [Observation(tasks.count_open())]
            except SQLAlchemyError:
                logger.warning("cannot count the open tasks for %s", TASKS_OPEN, exc_info=True)
                return []

    return observe


def _count_request(response: Response) -> Response:
    """Add the request to ``todo.requests`` (after_request hook)."""
    state = _state()
    if not state.excluded_urls.url_disabled(request.url):
        attributes = {ATTR_HTTP_METHOD: sanitize_method(request.method)}
        if request.url_rule is not None:
            attributes[ATTR_HTTP_ROUTE] = request.url_rule.rule
        state.instruments.requests.add(1, attributes)
    return response


# --- Logs ------------------------------------------------------------------------


def _log_handler(logger_provider: LoggerProvider | None) -> logging.Handler | None:
    """Return the OTel handler for an app's records, or None if the root logger has one.

    The agent (through opentelemetry-instrumentation-logging, or the SDK when the
    deprecated OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true) puts one
    on the root logger; the app's records reach it, so a second would export
    each record twice. An injected provider always gets its own handler.
    """
    if logger_provider is None and _root_has_otel_handler():
        return None
    return LoggingHandler(logger_provider=logger_provider)


def _root_has_otel_handler() -> bool:
    sdk_handler = sdk_logs.LoggingHandler  # deprecated; only compared with, never created
    return any(isinstance(h, (LoggingHandler, sdk_handler)) for h in logging.getLogger().handlers)


class _AppLogBridge(logging.Handler):
    """Hand each record of the ``todo`` logger to the OTel handler of its app.

    One per process, on the ``todo`` logger: a record logged in an app context
    goes to that app's handler (tests run several apps, each with its own
    provider); a record logged outside one (at start-up) to the last app's.
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_app: weakref.ref[Flask] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        app: Flask | None = None
        if has_app_context():
            app = cast(Flask, current_app._get_current_object())  # type: ignore[attr-defined]
        elif self.last_app is not None:
            app = self.last_app()
        state = app.extensions.get(EXTENSION) if app is not None else None
        if state is not None and state.log_handler is not None:
            state.log_handler.handle(record)


_bridge_lock = threading.Lock()


def _bridge_logs(app: Flask) -> None:
    """Route the ``todo`` logger's records to the app's OTel handler; set its level."""
    app_logger = logging.getLogger(APP_LOGGER)
    with _bridge_lock:
        bridge = next((h for h in app_logger.handlers if isinstance(h, _AppLogBridge)), None)
        if bridge is None:
            bridge = _AppLogBridge()
            app_logger.addHandler(bridge)
        bridge.last_app = weakref.ref(app)
    if app_logger.level == logging.NOTSET:
        level = os.environ.get(env.TODO_LOG_LEVEL, env.DEFAULT_LOG_LEVEL).strip().upper()
        try:
            app_logger.setLevel(level)
        except ValueError:
            logger.warning("%s=%r is not a log level; using %s", env.TODO_LOG_LEVEL, level, "INFO")
            app_logger.setLevel(logging.INFO)


# --- Stopping --------------------------------------------------------------------


def _exit_cleanly_on_sigterm() -> None:
    """Make SIGTERM end the process like Ctrl+C, so the SDK's exit handlers flush.

    Python's default SIGTERM action kills the process on the spot: no atexit
    handlers, so the last batch of spans and the final metrics are lost. Only
    where nobody handles SIGTERM yet (gunicorn and other servers keep theirs),
    and only from the main thread, where signal handlers live.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    signal.signal(signal.SIGTERM, _raise_system_exit)


def _raise_system_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
