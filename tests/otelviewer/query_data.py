"""Fixture telemetry for the query API and UI tests, written through ``Writer.write``.

Times are relative to ``now`` so that the store's age-based retention keeps them
and lookbacks mean something. Every id and value here is asserted somewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from otelviewer.model import (
    Batch,
    HistogramValue,
    LogRecord,
    MetricKind,
    MetricPoint,
    Resource,
    Scope,
    Span,
    SpanEvent,
    SpanKind,
    SpanLink,
    StatusCode,
)

MS = 1_000_000
S = 1_000 * MS

TODO = Resource("todo", {"service.name": "todo", "service.version": "0.1.0", "host.name": "laptop"})
CLIENT = Resource("todo-client", {"service.name": "todo-client", "host.name": "laptop"})
XSS = Resource("xss-test", {"service.name": "xss-test", "<script>res</script>": "<b>bold</b>"})
FLASK = Scope("opentelemetry.instrumentation.flask", "0.66b1")
TODO_SCOPE = Scope("todo", "0.1.0")

# Trace ids (32 hex) and span ids (16 hex), named for what they are.
ADD_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ADD_SERVER, ADD_INTERNAL, ADD_DB = "00f067aa0ba902b7", "1111aa0ba902b701", "2222aa0ba902b702"
LIST_TRACE = "0af7651916cd43dd8448eb211c80319c"
LIST_SERVER, LIST_INTERNAL = "b7ad6b7169203331", "c7ad6b7169203332"
ERROR_TRACE = "5b8efff798038103d269b633813fc60c"
ERROR_SERVER, ERROR_INTERNAL = "eee19b7ec3c1b174", "eee19b7ec3c1b175"
CALL_TRACE = "6e0c63257de34c92bf9efcd03927272e"
CALL_CLIENT, CALL_SERVER = "a1a2a3a4a5a6a7a8", "b1b2b3b4b5b6b7b8"
SPLIT_TRACE = "7a2190356c3fc94b"  # a 64-bit (Jaeger-style) id, stored zero-padded
SPLIT_TRACE_FULL = SPLIT_TRACE.rjust(32, "0")
SPLIT_SERVER, SPLIT_CHILD = "0102030405060708", "0102030405060709"
BOTH_TRACE = "8b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e"
BOTH_SERVER = "0a0b0c0d0e0f1011"
OLD_TRACE = "9c9c9c9c9c9c9c9c9c9c9c9c9c9c9c9c"
OLD_SERVER = "0909090909090909"
XSS_TRACE = "dddddddddddddddddddddddddddddddd"
XSS_SPAN = "0d0d0d0d0d0d0d0d"
MISSING_TRACE = "ffffffffffffffffffffffffffffffff"

SCRIPT_NAME = "<script>alert('name')</script>"
SCRIPT_KEY = "<script>alert('key')</script>"
SCRIPT_VALUE = "<script>alert('value')</script><img src=x onerror=alert(1)>"


@dataclass(frozen=True)
class Fixture:
    """The written telemetry and the times it was written around."""

    now: int
    batch: Batch


def _span(
    trace_id: str,
    span_id: str,
    parent: str | None,
    name: str,
    kind: SpanKind,
    start: int,
    duration: int,
    resource: Resource = TODO,
    **kwargs: object,
) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_unix_nano=start,
        end_unix_nano=start + duration,
        resource=resource,
        **kwargs,  # type: ignore[arg-type]
    )


def build(now: int) -> Fixture:
    """Return the fixture telemetry for a store written at ``now`` (nanoseconds)."""
    t_add = now - 60 * S
    t_list = now - 30 * S
    t_err = now - 20 * S
    t_call = now - 10 * S
    t_split = now - 8 * S
    t_both = now - 6 * S
    t_old = now - 3 * 3600 * S
    t_xss = now - 4 * S
    spans = (
        # The seed's case: a todo SERVER span with http.target=/add.
        _span(
            ADD_TRACE, ADD_SERVER, None, "POST /add", SpanKind.SERVER, t_add, 12 * MS + 500_000,
            scope=FLASK,
            attributes={
                "http.method": "POST",
                "http.target": "/add",
                "http.route": "/add",
                "http.status_code": 302,
            },
        ),
        _span(
            ADD_TRACE, ADD_INTERNAL, ADD_SERVER, "todo.tasks.add", SpanKind.INTERNAL,
            t_add + 2 * MS, 8 * MS,
            scope=TODO_SCOPE,
            attributes={
                "todo.task.id": 7,
                "todo.ratio": 0.25,
                "todo.flag": True,
                "todo.tags": ["a", "b"],
                "todo.meta": {"k": 1},
            },
            events=(SpanEvent(t_add + 3 * MS, "validated", {"todo.length": 12}),),
            status_code=StatusCode.OK,
        ),
        _span(
            ADD_TRACE, ADD_DB, ADD_INTERNAL, "INSERT todo.db", SpanKind.CLIENT,
            t_add + 4 * MS, 1 * MS,
            attributes={"db.system": "sqlite", "db.statement": "INSERT INTO task ..."},
        ),
        _span(
            LIST_TRACE, LIST_SERVER, None, "GET /", SpanKind.SERVER, t_list, 3 * MS,
            scope=FLASK,
            attributes={"http.method": "GET", "http.target": "/", "http.status_code": 200},
        ),
        _span(
            LIST_TRACE, LIST_INTERNAL, LIST_SERVER, "todo.tasks.list", SpanKind.INTERNAL,
            t_list + MS, MS, attributes={"todo.task.count": 3},
        ),
        _span(
            ERROR_TRACE, ERROR_SERVER, None, "POST /toggle/<int:task_id>", SpanKind.SERVER,
            t_err, 40 * MS,
            scope=FLASK,
            attributes={"http.method": "POST", "http.target": "/toggle/99"},
        ),
        _span(
            ERROR_TRACE, ERROR_INTERNAL, ERROR_SERVER, "todo.tasks.toggle", SpanKind.INTERNAL,
            t_err + 5 * MS, 30 * MS,
            attributes={"todo.task.id": 99},
            status_code=StatusCode.ERROR,
            status_message="task 99 not found",
            events=(
                SpanEvent(
                    t_err + 34 * MS,
                    "exception",
                    {"exception.type": "LookupError", "exception.message": "task 99 not found"},
                ),
            ),
        ),
        # Two services: todo-client calls todo; the client span links to the add trace.
        _span(
            CALL_TRACE, CALL_CLIENT, None, "POST", SpanKind.CLIENT, t_call, 1200 * MS,
            resource=CLIENT,
            attributes={"http.method": "POST", "http.url": "http://127.0.0.1:5000/api/tasks"},
            links=(SpanLink(ADD_TRACE, ADD_SERVER, {"link.reason": "retry"}),),
            trace_state="vendor=1",
        ),
        _span(
            CALL_TRACE, CALL_SERVER, CALL_CLIENT, "POST /api/tasks", SpanKind.SERVER,
            t_call + 100 * MS, 1000 * MS,
            attributes={"http.method": "POST", "http.target": "/api/tasks"},
        ),
        # The one-span rule: http.method=GET and custom.flag=yes on different spans.
        _span(
            SPLIT_TRACE_FULL, SPLIT_SERVER, None, "GET /api/tasks", SpanKind.SERVER,
            t_split, 5 * MS,
            attributes={"http.method": "GET", "http.target": "/api/tasks"},
        ),
        _span(
            SPLIT_TRACE_FULL, SPLIT_CHILD, SPLIT_SERVER, "todo.tasks.list", SpanKind.INTERNAL,
            t_split + MS, 2 * MS,
            attributes={"custom.flag": "yes"},
        ),
        # ... and both on one span.
        _span(
            BOTH_TRACE, BOTH_SERVER, None, "GET /api/tasks", SpanKind.SERVER, t_both, 4 * MS,
            attributes={"http.method": "GET", "custom.flag": "yes", "http.target": "/api/tasks"},
        ),
        # Three hours old: outside a 1h lookback, inside 4h.
        _span(
            OLD_TRACE, OLD_SERVER, None, "GET /", SpanKind.SERVER, t_old, 2 * MS,
            attributes={"http.method": "GET", "http.target": "/"},
        ),
        # Markup everywhere it could be rendered.
        _span(
            XSS_TRACE, XSS_SPAN, None, SCRIPT_NAME, SpanKind.SERVER, t_xss, 2 * MS,
            resource=XSS,
            attributes={SCRIPT_KEY: SCRIPT_VALUE, "plain": "</td></tr><script>x()</script>"},
            events=(SpanEvent(t_xss + MS, "<script>event()</script>", {"e": "<i>e</i>"}),),
            status_code=StatusCode.ERROR,
            status_message="<script>status()</script>",
        ),
    )  # fmt: skip
    logs = (
        LogRecord(
            time_unix_nano=t_add + 5 * MS,
            observed_time_unix_nano=t_add + 6 * MS,
            severity_number=9,
            severity_text="INFO",
            body="task 7 added",
            resource=TODO,
            scope=Scope("todo.tasks"),
            attributes={"code.function": "add"},
            trace_id=ADD_TRACE,
            span_id=ADD_INTERNAL,
        ),
        LogRecord(
            time_unix_nano=t_add + 9 * MS,
            observed_time_unix_nano=t_add + 9 * MS,
            severity_number=13,
            severity_text="WARNING",
            body="description was trimmed",
            resource=TODO,
            trace_id=ADD_TRACE,
            span_id=ADD_SERVER,
        ),
        LogRecord(
            time_unix_nano=t_err + 34 * MS,
            observed_time_unix_nano=t_err + 34 * MS,
            severity_number=17,
            severity_text="ERROR",
            body="task 99 not found",
            resource=TODO,
            trace_id=ERROR_TRACE,
            span_id=ERROR_INTERNAL,
        ),
        LogRecord(
            time_unix_nano=now - 5 * S,
            observed_time_unix_nano=now - 5 * S,
            severity_number=9,
            severity_text="INFO",
            body="todo-client started",
            resource=CLIENT,
        ),
        LogRecord(
            time_unix_nano=t_xss + MS,
            observed_time_unix_nano=t_xss + MS,
            severity_number=17,
            severity_text="ERROR",
            body="<script>alert('log')</script>",
            resource=XSS,
            trace_id=XSS_TRACE,
            span_id=XSS_SPAN,
        ),
    )
    metrics = []
    for i, (route, method, value) in enumerate(
        [("/add", "POST", 1.0), ("/add", "POST", 3.0), ("/add", "POST", 4.0), ("/", "GET", 5.0),
         ("/", "GET", 9.0)]
    ):  # fmt: skip
        metrics.append(
            MetricPoint(
                name="todo.requests",
                kind=MetricKind.SUM,
                resource=TODO,
                time_unix_nano=now - (50 - i * 10) * S,
                start_time_unix_nano=now - 100 * S,
                description="Requests handled",
                unit="{request}",
                scope=TODO_SCOPE,
                attributes={"http.route": route, "http.request.method": method},
                value=value,
                is_monotonic=True,
                temporality=2,
            )
        )
    for i, (count, total) in enumerate([(2, 0.03), (4, 0.1)]):
        metrics.append(
            MetricPoint(
                name="http.server.duration",
                kind=MetricKind.HISTOGRAM,
                resource=TODO,
                time_unix_nano=now - (40 - i * 20) * S,
                start_time_unix_nano=now - 100 * S,
                unit="s",
                attributes={"http.route": "/add"},
                temporality=2,
                histogram=HistogramValue(
                    count=count,
                    sum=total,
                    bucket_counts=(count, 0),
                    explicit_bounds=(0.05,),
                    min=0.01,
                    max=0.04,
                ),
            )
        )
    return Fixture(now=now, batch=Batch(spans=spans, logs=logs, metrics=tuple(metrics)))
