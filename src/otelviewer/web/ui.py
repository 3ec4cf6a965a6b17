"""The web UI: server-rendered pages over the query service.

Pages (every one is a deep link: the URL holds the whole query):

``/search`` (and ``/``)
    Trace search: service, operation, tags in logfmt (``http.target=/add
    error=true``), lookback, min/max duration (Go durations), limit. Shows a
    duration-over-time scatter plot and the matching traces, newest first.
``/trace/<id>``
    The trace's waterfall (collapsible), each span's detail (attributes,
    resource, events, links, status), and the trace's logs.
``/logs``
    Log search by service, minimum severity, text and trace id; each record links
    to its trace.
``/metrics``
    Pick a metric and a series; see it charted over time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import zlib
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Flask, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from otelviewer.model import AttrValue, LogRecord, MetricKind, Span, StatusCode
from otelviewer.query import (
    MAX_LOG_LIMIT,
    QueryError,
    TraceSummary,
    build_waterfall,
    format_logfmt,
    normalize_trace_id,
    parse_log_query,
    parse_logfmt,
    parse_lookback,
    parse_trace_search,
    point_value,
    span_kind_name,
    summarize_trace,
)
from otelviewer.store.contract import DEFAULT_SEARCH_LIMIT, LogQueryParams, MetricQueryParams
from otelviewer.web.charts import line_chart, scatter
from otelviewer.web.context import query_service

logger = logging.getLogger(__name__)

bp = Blueprint("ui", __name__)

#: The lookbacks the search form offers (Jaeger UI's list, plus short ones for a laptop).
LOOKBACKS = (
    ("5m", "Last 5 minutes"),
    ("15m", "Last 15 minutes"),
    ("1h", "Last hour"),
    ("2h", "Last 2 hours"),
    ("6h", "Last 6 hours"),
    ("12h", "Last 12 hours"),
    ("24h", "Last 24 hours"),
    ("2d", "Last 2 days"),
    ("7d", "Last 7 days"),
)
#: The search form's default lookback: a laptop session's recent work.
DEFAULT_LOOKBACK = "1h"
#: How far back the metrics page looks by default.
DEFAULT_METRIC_LOOKBACK = "1h"
#: Severity choices of the log search (OTLP's first number of each range).
SEVERITIES = (("", "Any"), ("5", "DEBUG+"), ("9", "INFO+"), ("13", "WARN+"), ("17", "ERROR+"))
#: A line chart draws a dot per point up to this many points (more would be noise).
MAX_CHART_DOTS = 200
#: How many colours the service palette has (static/otelviewer.css, .svc-0 .. .svc-9).
SERVICE_COLOURS = 10
#: Indentation classes in the CSS go this deep; deeper spans share the last one.
MAX_INDENT = 24
#: The trace page draws at most this many spans: a browser stays responsive with a
#: few thousand rows (each with its detail); the JSON link has the whole trace.
MAX_WATERFALL_SPANS = 3000


# --------------------------------------------------------------------------- formatting


def format_duration(nanos: float) -> str:
    """Return a duration as Jaeger shows it: ``850μs``, ``1.24ms``, ``2.5s``, ``1m 3s``."""
    n = float(nanos)
    if n == 0:
        return "0"
    if n < 1_000:
        return f"{n:.0f}ns"
    if n < 1_000_000:
        return f"{n / 1_000:.3g}μs"
    if n < 1_000_000_000:
        return f"{n / 1_000_000:.3g}ms"
    if n < 60_000_000_000:
        return f"{n / 1_000_000_000:.3g}s"
    minutes, seconds = divmod(int(n // 1_000_000_000), 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


def format_time(unix_nano: int, *, precise: bool = False) -> str:
    """Return local date and time (``2025-05-01 12:34:56``; ``.789`` milliseconds if precise)."""
    t = datetime.fromtimestamp(unix_nano / 1e9)
    text = t.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{(unix_nano // 1_000_000) % 1000:03d}" if precise else text


def iso_time(unix_nano: int) -> str:
    """Return an ISO-8601 UTC time (for ``<time datetime>`` and tooltips)."""
    t = datetime.fromtimestamp(unix_nano / 1e9, tz=timezone.utc)
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


def attr_text(value: AttrValue) -> str:
    """Return an attribute value as text: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def short_id(trace_id: str) -> str:
    """Return the first 7 digits of a trace id, as Jaeger shows it (skipping 64-bit padding)."""
    return (trace_id[16:] if trace_id.startswith("0" * 16) else trace_id)[:7]


def service_colour(service: str) -> str:
    """Return the CSS class of a service's colour, stable across pages."""
    return f"svc-{zlib.crc32(service.encode()) % SERVICE_COLOURS}"


def severity_class(number: int) -> str:
    """Return the CSS class of a log severity."""
    if number >= 17:
        return "sev-error"
    if number >= 13:
        return "sev-warn"
    if number >= 9:
        return "sev-info"
    return "sev-debug"


def register_template_helpers(app: Flask) -> None:
    """Make the formatting helpers available in templates."""
    app.jinja_env.filters.update(
        duration=format_duration,
        short_id=short_id,
        time=format_time,
        iso=iso_time,
        attr=attr_text,
        colour=service_colour,
        severity=severity_class,
        kind=span_kind_name,
    )
    app.jinja_env.globals.update(
        StatusCode=StatusCode, MAX_INDENT=MAX_INDENT, tag_search_url=tag_search_url
    )


def tag_search_url(service: str, key: str, value: AttrValue) -> str:
    """Return the search page's URL for traces of ``service`` carrying ``key=value``."""
    return url_for("ui.search", service=service, tags=format_logfmt({key: attr_text(value)}))


# --------------------------------------------------------------------------- pages


def _trace_href(trace_id: str) -> str:
    return url_for("ui.trace", trace_id=trace_id)


@bp.get("/")
@bp.get("/search")
def search() -> tuple[str, int]:
    """Search traces and show the scatter plot and the list."""
    service = query_service()
    services = service.services()
    args = request.args.to_dict(flat=False)
    form = {
        "service": request.args.get("service", ""),
        "operation": request.args.get("operation", ""),
        "tags": request.args.get("tags", ""),
        "lookback": request.args.get("lookback", DEFAULT_LOOKBACK),
        "minDuration": request.args.get("minDuration", ""),
        "maxDuration": request.args.get("maxDuration", ""),
        "limit": request.args.get("limit", str(DEFAULT_SEARCH_LIMIT)),
    }
    error: QueryError | None = None
    summaries: list[TraceSummary] = []
    status = 200
    try:
        tags = parse_logfmt(form["tags"])
        args.pop("tags", None)
        args.setdefault("lookback", [DEFAULT_LOOKBACK])
        parsed = parse_trace_search(
            args, require_service=False, default_limit=DEFAULT_SEARCH_LIMIT
        ).params
        params = dataclasses.replace(parsed, attributes=tags)
        traces = service.find_traces(params)
        summaries = sorted(
            (summarize_trace(t) for t in traces), key=lambda s: s.start_unix_nano, reverse=True
        )
    except QueryError as exc:
        error, status = exc, 400
    operations = (
        sorted({op.name for op in service.operations(form["service"])}) if form["service"] else []
    )
    chart = scatter(summaries, href=_trace_href, duration_label=format_duration)
    return render_template(
        "search.html",
        form=form,
        services=services,
        operations=operations,
        lookbacks=LOOKBACKS,
        summaries=summaries,
        chart=chart,
        error=error,
    ), status


def _span_context(spans: list[Span]) -> dict[str, Any]:
    waterfall = build_waterfall(spans)
    start = waterfall.summary.start_unix_nano
    ticks = [(pct, format_duration(waterfall.summary.duration_nanos * pct / 100)) for pct in
             (0, 25, 50, 75, 100)]  # fmt: skip
    rows = waterfall.rows[:MAX_WATERFALL_SPANS]
    hidden = len(waterfall.rows) - len(rows)
    return {
        "waterfall": waterfall,
        "rows": rows,
        "hidden_spans": hidden,
        "trace_start": start,
        "ruler": ticks,
    }


@bp.get("/trace/<trace_id>")
def trace(trace_id: str) -> str:
    """Show one trace: waterfall, span details, logs."""
    try:
        tid = normalize_trace_id(trace_id)
    except QueryError:
        abort(404, description=f"{trace_id!r} is not a trace id.")
    service = query_service()
    spans = service.get_trace(tid)
    if not spans:
        abort(404, description=f"No trace with id {tid} is stored (yet).")
    logs = service.logs(LogQueryParams(trace_id=tid, limit=MAX_LOG_LIMIT))
    logs.sort(key=lambda r: r.time_unix_nano)
    return render_template("trace.html", trace_id=tid, logs=logs, **_span_context(spans))


@bp.get("/jump")
def jump() -> Response:
    """Open the trace whose id was typed in the top bar."""
    text = request.args.get("traceID", "").strip()
    if not text:
        return redirect(url_for("ui.search"))
    try:
        tid = normalize_trace_id(text)
    except QueryError:
        abort(404, description=f"{text!r} is not a trace id (1 to 32 hex digits).")
    return redirect(url_for("ui.trace", trace_id=tid))


@bp.get("/logs")
def logs() -> tuple[str, int]:
    """Search log records."""
    service = query_service()
    form = {
        key: request.args.get(key, "")
        for key in ("service", "minSeverity", "text", "traceID", "limit")
    }
    records: list[LogRecord] = []
    error: QueryError | None = None
    status = 200
    try:
        records = service.logs(parse_log_query(request.args.to_dict(flat=False)))
    except QueryError as exc:
        error, status = exc, 400
    return render_template(
        "logs.html",
        form=form,
        services=service.services(),
        severities=SEVERITIES,
        records=records,
        error=error,
    ), status


@bp.get("/metrics")
def metrics() -> tuple[str, int]:
    """Chart one series of one metric."""
    service = query_service()
    metric_list = service.metric_names()
    name = request.args.get("name", "")
    lookback = request.args.get("lookback", DEFAULT_METRIC_LOOKBACK)
    selected = next((m for m in metric_list if m.name == name), None)
    error: QueryError | None = None
    status = 200
    series = []
    try:
        lookback_nanos = parse_lookback(lookback)
    except QueryError as exc:
        error, status, lookback_nanos = exc, 400, 0
    if name and selected is None:
        status = 404
    if selected is not None and error is None:
        series = service.metric_series(
            MetricQueryParams(name=name, start_min_unix_nano=time.time_ns() - lookback_nanos)
        )
    wanted = request.args.get("series", "")
    current = next((s for s in series if s.id == wanted), series[0] if series else None)
    chart = None
    if current is not None:
        values = [(p.time_unix_nano, point_value(p)) for p in current.points]
        unit = selected.unit if selected else ""

        def label(v: float) -> str:
            text = f"{v:.4g}"
            return f"{text} {unit}" if unit and not unit.startswith("{") else text

        chart = line_chart([(t, v) for t, v in values if v is not None], value_label=label)
    return render_template(
        "metrics.html",
        metrics=metric_list,
        selected=selected,
        name=name,
        series=series,
        current=current,
        chart=chart,
        lookbacks=LOOKBACKS,
        lookback=lookback,
        error=error,
        histogram=selected is not None and selected.kind is MetricKind.HISTOGRAM,
        max_dots=MAX_CHART_DOTS,
    ), status
