"""The environment variables that configure the app's telemetry, in one place.

Standard ``OTEL_*`` names are used wherever OpenTelemetry defines one; they are
read by the SDK, the ``opentelemetry-instrument`` agent and the instrumentations
(the constants here are for our code and docs). Our own variables start with
``TODO_``. docs/telemetry-reference.md lists them all with examples.
"""

from __future__ import annotations

# --- Which telemetry, and where it goes (read by the SDK) -----------------------

OTEL_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
"""Span exporters, comma-separated: ``console``, ``otlp``, ``none``.

Setting this (or one of the two below) to anything but ``none`` is what asks
for telemetry: :func:`todo.telemetry.configure_sdk` installs the SDK only then.
"""

OTEL_METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
"""Metric exporters: ``console``, ``otlp``, ``prometheus``, ``none``."""

OTEL_LOGS_EXPORTER = "OTEL_LOGS_EXPORTER"
"""Log record exporters: ``console``, ``otlp``, ``none``.

Note the plural: ``OTEL_LOG_EXPORTER`` (as in the talk this project started
from) is not a variable anything reads.
"""

OTEL_SDK_DISABLED = "OTEL_SDK_DISABLED"
"""``true`` turns the SDK off: :func:`todo.telemetry.configure_sdk` installs nothing."""

OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
"""The ``service.name`` resource attribute; ``todo`` when unset (in-code mode)."""

OTEL_RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
"""More resource attributes, ``key=value,key=value`` (e.g. ``deployment.environment=dev``)."""

OTEL_METRIC_EXPORT_INTERVAL = "OTEL_METRIC_EXPORT_INTERVAL"
"""Milliseconds between two metric exports; the SDK's default is 60000.

The documented demo commands and ``make run`` set 5000 so metrics show up
within seconds. Metrics are also exported once more when the app stops.
"""

OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
"""Where the OTLP exporters send all signals, e.g. ``http://localhost:4317`` (gRPC)."""

OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
"""Where the OTLP span exporter sends spans; only used when traces go to ``otlp``."""

OTEL_EXPORTER_OTLP_INSECURE = "OTEL_EXPORTER_OTLP_INSECURE"
"""``true``: the OTLP gRPC exporters connect without TLS (a local collector)."""

# --- What the instrumentations record ------------------------------------------

OTEL_PYTHON_FLASK_EXCLUDED_URLS = "OTEL_PYTHON_FLASK_EXCLUDED_URLS"
"""Comma-separated regular expressions; requests whose URL matches are not traced.

When neither this nor ``OTEL_PYTHON_EXCLUDED_URLS`` is set, the app excludes
:data:`DEFAULT_EXCLUDED_URLS` (``/healthz`` and ``/static/...``), with or
without the agent. Setting it replaces that default.
"""

OTEL_PYTHON_EXCLUDED_URLS = "OTEL_PYTHON_EXCLUDED_URLS"
"""Like ``OTEL_PYTHON_FLASK_EXCLUDED_URLS``, for every HTTP instrumentation."""

DEFAULT_EXCLUDED_URLS = r"://[^/]+/healthz(?:\?|$),://[^/]+/static/"
"""The URLs not traced by default: the health check and static files.

Regular expressions searched in the full URL (``http://host:port/path?query``),
anchored after the host so that a path or query that merely contains the word
is still traced. Load balancers call ``/healthz`` every few seconds and static
files are not app logic: tracing them adds noise and cost, not insight.
"""

OTEL_SEMCONV_STABILITY_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
"""``http``: HTTP spans and metrics follow the stable semantic conventions
(``http.request.method``, ``url.path``, ``http.server.request.duration`` in s);
``http/dup``: both the old and the stable names. Unset: the old ones
(``http.method``, ``http.target``, ``http.server.duration`` in ms).
Read once, when the first instrumentation starts.
"""

# --- Logs -----------------------------------------------------------------------

OTEL_PYTHON_LOG_CORRELATION = "OTEL_PYTHON_LOG_CORRELATION"
"""``true``: the text log lines carry ``trace_id=... span_id=...`` too.

Read by the logging instrumentation (under the agent, and by
:func:`todo.telemetry.configure_sdk` without it). The OTel log records carry
the ids either way.
"""

OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED = (
    "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"
)
"""Deprecated. ``true`` makes the SDK attach its own (deprecated) logging handler.

Not needed: ``opentelemetry-instrumentation-logging`` bridges the log records
without it. With it, the app still exports each record once.
"""

TODO_LOG_LEVEL = "TODO_LOG_LEVEL"
"""Level of the app's ``todo`` logger (``DEBUG``, ``INFO``...); default ``INFO``.

Python's default (WARNING, inherited from the root logger) would drop the
app's INFO records (task added, deleted...) before they become OTel logs.
Only applied when the ``todo`` logger has no level of its own.
"""

DEFAULT_LOG_LEVEL = "INFO"
"""The level of the ``todo`` logger when ``TODO_LOG_LEVEL`` is unset."""
