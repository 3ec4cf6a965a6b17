"""The query service: what the HTTP API and the web UI ask of the store.

It sits between ``otelviewer.web`` and a ``store.Reader`` and does two jobs:

* **Parsing** the parameters users and Jaeger clients send into the store's typed
  query objects, with Jaeger's rules and Jaeger's error messages (each naming the
  parameter at fault). ``QueryError`` carries the message; the API answers it with
  ``400`` and the UI shows it next to the form.
* **Shaping** what the store returns for people: trace summaries for a result list,
  the waterfall tree of one trace, metric points grouped into series.

It never talks SQL and never loops over the store: a search is one
``find_trace_ids`` and one ``get_traces`` call, whatever the number of traces.

Usage::

    service = QueryService(reader)
    search = parse_trace_search({"service": ["todo"], "tags": ['{"http.target": "/add"}']})
    traces = service.find_traces(search.params)

Durations are Go durations, as Jaeger takes them (``1.2ms``, ``500us``, ``1m30s``);
lookbacks also take days and weeks (``2d``, ``1w``), as the Jaeger UI sends them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from otelviewer.model import (
    AttrValue,
    LogRecord,
    MetricKind,
    MetricPoint,
    Span,
    SpanKind,
    StatusCode,
)
from otelviewer.store.contract import (
    DependencyLink,
    LogQueryParams,
    MetricDescriptor,
    MetricQueryParams,
    Operation,
    Reader,
    TraceQueryParams,
)

logger = logging.getLogger(__name__)

#: A search without ``limit`` returns this many traces, as Jaeger's query service does.
API_DEFAULT_LIMIT = 100
#: The most traces one search returns: the Jaeger UI's own ceiling. A larger
#: ``limit`` is lowered to it, so that one request cannot make the server build
#: megabytes of JSON from the whole store.
MAX_SEARCH_LIMIT = 1500
#: Without ``start`` (or ``lookback``), a search looks this far back: Jaeger's default.
DEFAULT_TRACE_LOOKBACK_NANOS = 2 * 24 * 3600 * 1_000_000_000
#: Without ``lookback``, /api/dependencies covers this window: Jaeger's default.
DEFAULT_DEPENDENCY_LOOKBACK_NANOS = 24 * 3600 * 1_000_000_000
#: A log search without ``limit`` returns this many records.
DEFAULT_LOG_LIMIT = 100
#: The most log records one request returns (a trace rarely has more; a page
#: with more is not readable anyway).
MAX_LOG_LIMIT = 1000
#: The most points one metric request reads: enough for a day of 10-second
#: exports of a few dozen series, small enough to chart in one SVG.
MAX_METRIC_POINTS = 20_000
#: Times and durations are stored as signed 64-bit nanoseconds (SQLite INTEGER):
#: anything past this cannot be compared with them.
MAX_NANOS = 2**63 - 1
#: The longest tag key or value we accept in a search (Jaeger has no limit;
#: ours keeps a typo'd paste of a whole log line from reaching the store).
MAX_TAG_TEXT = 1024

_NANOS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign, as Go accepts
    "\u03bcs": 1_000,  # Greek small letter mu, as Go accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_LOOKBACK_NANOS = {**_NANOS, "d": 24 * _NANOS["h"], "w": 7 * 24 * _NANOS["h"]}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)([a-z\u00b5\u03bc]+)")

#: OTLP severity numbers of the names people type (the first of each range).
SEVERITY_NUMBERS = {
    "TRACE": 1,
    "DEBUG": 5,
    "INFO": 9,
    "WARN": 13,
    "WARNING": 13,
    "ERROR": 17,
    "FATAL": 21,
    "CRITICAL": 21,
}

_SPAN_KINDS = {
    "unspecified": SpanKind.UNSPECIFIED,
    "internal": SpanKind.INTERNAL,
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}

Args = Mapping[str, Sequence[str]]
"""Request parameters: each name with every value given (``request.args.to_dict(flat=False)``)."""


class QueryError(ValueError):
    """A parameter that cannot be understood; ``str()`` is the message for the user."""

    def __init__(self, param: str | None, message: str) -> None:
        """Remember which parameter was wrong (None when it is the combination)."""
        super().__init__(message)
        self.param = param


# --------------------------------------------------------------------------- parsing


def _first(args: Args, name: str) -> str:
    values = args.get(name) or ()
    return values[0].strip() if values else ""


def _parse_units(text: str, units: Mapping[str, int], param: str, example: str) -> int:
    """Parse a Go-style duration (``1h30m``, ``1.2ms``) with the given units into nanoseconds."""
    s = text.strip()
    if s in ("0", "+0"):
        return 0
    if s.startswith("-"):
        raise QueryError(param, f"unable to parse param '{param}': {text!r} is negative")
    s = s.removeprefix("+")
    total = Decimal(0)
    pos = 0
    while pos < len(s):
        match = _DURATION_PART.match(s, pos)
        if match is None or match.group(2) not in units:
            raise QueryError(
                param,
                f"unable to parse param '{param}': {text!r} is not a duration like {example}",
            )
        try:
            total += Decimal(match.group(1)) * units[match.group(2)]
        except InvalidOperation as exc:  # pragma: no cover - the regex only lets numbers in
            raise QueryError(param, f"unable to parse param '{param}': {text!r}") from exc
        pos = match.end()
    if not s:
        raise QueryError(param, f"unable to parse param '{param}': empty duration")
    if total > MAX_NANOS:
        raise QueryError(param, f"invalid param '{param}': {text!r} is too long")
    return int(total)


def parse_go_duration(text: str, *, param: str = "duration") -> int:
    """Return the nanoseconds of a Go duration (``1.2ms``, ``500us``, ``1m30s``, ``0``).

    Raises:
        QueryError: naming ``param`` when ``text`` is not a non-negative Go duration.
    """
    return _parse_units(text, _NANOS, param, "1.2ms, 500us or 1s")


def parse_lookback(text: str, *, param: str = "lookback") -> int:
    """Return the nanoseconds of a lookback: a Go duration or days/weeks (``2d``, ``1w``)."""
    return _parse_units(text, _LOOKBACK_NANOS, param, "1h, 2d or 30m")


def _parse_int(text: str, param: str, *, minimum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise QueryError(
            param, f"unable to parse param '{param}': {text!r} is not a whole number"
        ) from None
    if minimum is not None and value < minimum:
        raise QueryError(param, f"invalid param '{param}': {value} is less than {minimum}")
    return value


def _clean_tag(param: str, key: str, value: str) -> tuple[str, str]:
    if not key:
        raise QueryError(param, f"malformed '{param}' parameter: a tag needs a key")
    if len(key) > MAX_TAG_TEXT or len(value) > MAX_TAG_TEXT:
        raise QueryError(param, f"malformed '{param}' parameter: tags are {MAX_TAG_TEXT} chars max")
    return key, value


def _json_scalar_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return None


def parse_tags(simple_tags: Sequence[str], json_tags: Sequence[str]) -> dict[str, str]:
    """Parse Jaeger's ``tag=key:value`` (repeatable) and ``tags={"key": "value"}`` parameters.

    JSON numbers and booleans are taken as their text (``{"http.status_code": 200}``
    means ``"200"``): the store compares tag values as text.

    Raises:
        QueryError: on a ``tag`` without a colon, or ``tags`` that is not a JSON object
            of scalar values.
    """
    tags: dict[str, str] = {}
    for tag in simple_tags:
        key, sep, value = tag.partition(":")
        if not sep:
            raise QueryError(
                "tag", f"malformed 'tag' parameter, expecting key:value, received: {tag}"
            )
        k, v = _clean_tag("tag", key, value)
        tags[k] = v
    for raw in json_tags:
        if not raw.strip():
            continue
        try:
            # Keep numbers as the text the user wrote: 1.50 stays "1.50".
            decoded = json.loads(raw, parse_int=str, parse_float=str, parse_constant=str)
        except ValueError as exc:
            raise QueryError(
                "tags", f"malformed 'tags' parameter, cannot unmarshal JSON: {exc}"
            ) from None
        if not isinstance(decoded, dict):
            raise QueryError("tags", "malformed 'tags' parameter: expecting a JSON object")
        for key, value in decoded.items():
            text = _json_scalar_text(value)
            if text is None:
                raise QueryError(
                    "tags",
                    f"malformed 'tags' parameter: the value of {key!r} must be a string",
                )
            k, v = _clean_tag("tags", key, text)
            tags[k] = v
    return tags


_LOGFMT_TOKEN = re.compile(
    r"""\s*(?P<key>[^\s="]+)(?:=(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s"]*)))?"""
)


def parse_logfmt(text: str, *, param: str = "tags") -> dict[str, str]:
    """Parse the search form's tags in logfmt, as the Jaeger UI does.

    ``http.target=/add error=true msg="hello world"``: pairs separated by spaces,
    values quoted when they hold spaces (``\\"`` escapes a quote); a bare key means
    ``true``.

    Raises:
        QueryError: naming ``param`` when the text is not logfmt.
    """
    tags: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _LOGFMT_TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise QueryError(
                param,
                f"malformed '{param}': expected key=value pairs (logfmt), near {text[pos:]!r}",
            )
        key = match.group("key")
        quoted = match.group("quoted")
        bare = match.group("bare")
        if quoted is not None:
            value = re.sub(r"\\(.)", r"\1", quoted)
        elif bare is not None:
            value = bare
        else:
            value = "true"
        k, v = _clean_tag(param, key, value)
        tags[k] = v
        pos = match.end()
        if pos < len(text) and not text[pos].isspace():
            after = text[match.start() : pos].strip()
            if text[pos] == '"':
                raise QueryError(
                    param, f"malformed '{param}': a quote after {after!r} is not closed"
                )
            raise QueryError(param, f"malformed '{param}': expected a space after {after!r}")
    return tags


def format_logfmt(tags: Mapping[str, str]) -> str:
    """Return ``tags`` as logfmt (the inverse of ``parse_logfmt``), quoting where needed."""
    parts = []
    for key, value in tags.items():
        if value == "" or re.search(r'[\s"=\\]', value):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'{key}="{escaped}"')
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts)


def normalize_trace_id(text: str, *, param: str = "traceID") -> str:
    """Return a trace id as 32 lowercase hex digits; shorter ids are zero-padded, as Jaeger does.

    Raises:
        QueryError: when ``text`` is not 1 to 32 hex digits.
    """
    s = text.strip().lower()
    if not 0 < len(s) <= 32 or any(c not in "0123456789abcdef" for c in s):
        raise QueryError(param, f"invalid param '{param}': {text!r} is not a trace id (hex)")
    return s.rjust(32, "0")


def parse_span_kind(text: str, *, param: str = "spanKind") -> SpanKind | None:
    """Return the span kind named by ``text`` (``server``, ``client``...), None for empty."""
    s = text.strip().lower()
    if not s:
        return None
    kind = _SPAN_KINDS.get(s.removeprefix("span_kind_"))
    if kind is None:
        names = ", ".join(k for k in _SPAN_KINDS if k != "unspecified")
        raise QueryError(param, f"invalid param '{param}': {text!r} is not one of {names}")
    return kind


def span_kind_name(kind: SpanKind) -> str:
    """Return the Jaeger name of a span kind (``server``); empty for UNSPECIFIED."""
    return "" if kind is SpanKind.UNSPECIFIED else kind.name.lower()


def parse_severity(text: str, *, param: str = "minSeverity") -> int | None:
    """Return the OTLP severity number of ``text`` (a number 1-24 or a name such as WARN)."""
    s = text.strip().upper()
    if not s:
        return None
    if s in SEVERITY_NUMBERS:
        return SEVERITY_NUMBERS[s]
    if s.isdigit() and 1 <= int(s) <= 24:
        return int(s)
    raise QueryError(
        param,
        f"invalid param '{param}': {text!r} is not a severity (1-24, or TRACE, DEBUG, INFO, "
        "WARN, ERROR, FATAL)",
    )


@dataclass(frozen=True, slots=True)
class TraceSearch:
    """A parsed /api/traces request: either a search or a list of trace ids."""

    params: TraceQueryParams
    trace_ids: tuple[str, ...] = ()


def _scaled(text: str, param: str, unit_nanos: int, *, minimum: int | None = None) -> int:
    """Parse a whole number of ``unit_nanos`` into nanoseconds that fit in 64 bits."""
    nanos = _parse_int(text, param, minimum=minimum) * unit_nanos
    if abs(nanos) > MAX_NANOS:
        raise QueryError(param, f"invalid param '{param}': {text} is out of range")
    return nanos


def _micros_param(args: Args, name: str) -> int | None:
    text = _first(args, name)
    return None if not text else _scaled(text, name, 1000)


def parse_trace_search(
    args: Args,
    *,
    now_unix_nano: int | None = None,
    require_service: bool = True,
    default_limit: int = API_DEFAULT_LIMIT,
) -> TraceSearch:
    """Parse the parameters of Jaeger's ``GET /api/traces``.

    ``service``, ``operation``, ``spanKind``, ``tag=key:value`` (repeatable),
    ``tags`` (a JSON map), ``start``/``end`` (microseconds), ``lookback`` (when
    ``start`` is absent: ``1h``, ``2d``), ``minDuration``/``maxDuration`` (Go
    durations), ``limit``, and ``traceID`` (repeatable; then the rest is ignored).

    Args:
        args: the request's parameters, every value of each.
        now_unix_nano: "now", for tests; the clock when None.
        require_service: Jaeger insists on a service; the web UI searches all.
        default_limit: the limit when the request gives none.

    Raises:
        QueryError: for the first parameter that is wrong.
    """
    now = time.time_ns() if now_unix_nano is None else now_unix_nano
    trace_ids = tuple(normalize_trace_id(t) for t in args.get("traceID") or () if t.strip())
    service = _first(args, "service") or None
    operation = _first(args, "operation") or None
    span_kind = parse_span_kind(_first(args, "spanKind"))
    end = _micros_param(args, "end")
    start = _micros_param(args, "start")
    lookback_text = _first(args, "lookback")
    if end is None:
        end = now
    if start is None:
        lookback = DEFAULT_TRACE_LOOKBACK_NANOS
        # The Jaeger UI sends lookback=custom together with start and end.
        if lookback_text and lookback_text != "custom":
            lookback = parse_lookback(lookback_text)
        start = end - lookback
    if start > end:
        raise QueryError("start", "invalid params: 'start' is after 'end'")
    tags = parse_tags(args.get("tag") or (), args.get("tags") or ())
    limit_text = _first(args, "limit")
    limit = default_limit if not limit_text else _parse_int(limit_text, "limit", minimum=0)
    # 0 means "the default" to Jaeger's storage backends.
    limit = min(limit or default_limit, MAX_SEARCH_LIMIT)
    min_text, max_text = _first(args, "minDuration"), _first(args, "maxDuration")
    min_duration = parse_go_duration(min_text, param="minDuration") if min_text else None
    max_duration = parse_go_duration(max_text, param="maxDuration") if max_text else None
    if not trace_ids and require_service and service is None:
        raise QueryError("service", "parameter 'service' is required")
    if min_duration and max_duration and max_duration < min_duration:
        raise QueryError("maxDuration", "'maxDuration' should be greater than 'minDuration'")
    params = TraceQueryParams(
        service=service,
        operation=operation,
        span_kind=span_kind,
        attributes=tags,
        start_min_unix_nano=start,
        start_max_unix_nano=end,
        duration_min_nanos=min_duration or None,
        duration_max_nanos=max_duration or None,
        limit=limit,
    )
    return TraceSearch(params=params, trace_ids=trace_ids)


def parse_dependencies(args: Args, *, now_unix_nano: int | None = None) -> tuple[int, int]:
    """Parse ``/api/dependencies``: ``endTs`` and ``lookback``, both in milliseconds.

    Returns:
        ``(end_unix_nano, lookback_nanos)``.
    """
    now = time.time_ns() if now_unix_nano is None else now_unix_nano
    end_text, lookback_text = _first(args, "endTs"), _first(args, "lookback")
    end = now if not end_text else _scaled(end_text, "endTs", 1_000_000, minimum=0)
    lookback = (
        DEFAULT_DEPENDENCY_LOOKBACK_NANOS
        if not lookback_text
        else _scaled(lookback_text, "lookback", 1_000_000, minimum=1)
    )
    return end, lookback


def parse_log_query(args: Args) -> LogQueryParams:
    """Parse ``/api/v1/logs``: ``traceID`` (or ``trace_id``), ``service``, ``minSeverity``,
    ``text``, ``start``/``end`` (microseconds) and ``limit``."""
    trace_text = _first(args, "traceID") or _first(args, "trace_id")
    limit_text = _first(args, "limit")
    limit = DEFAULT_LOG_LIMIT if not limit_text else _parse_int(limit_text, "limit", minimum=1)
    start, end = _micros_param(args, "start"), _micros_param(args, "end")
    if start is not None and end is not None and start > end:
        raise QueryError("start", "invalid params: 'start' is after 'end'")
    return LogQueryParams(
        trace_id=normalize_trace_id(trace_text, param="traceID") if trace_text else None,
        service=_first(args, "service") or None,
        min_severity_number=parse_severity(_first(args, "minSeverity")),
        text=_first(args, "text") or None,
        start_min_unix_nano=start,
        start_max_unix_nano=end,
        limit=min(limit, MAX_LOG_LIMIT),
    )


def parse_metric_query(name: str, args: Args) -> MetricQueryParams:
    """Parse ``/api/v1/metrics/<name>/series``: ``service``, ``start``/``end`` (microseconds)."""
    start, end = _micros_param(args, "start"), _micros_param(args, "end")
    if start is not None and end is not None and start > end:
        raise QueryError("start", "invalid params: 'start' is after 'end'")
    return MetricQueryParams(
        name=name,
        service=_first(args, "service") or None,
        start_min_unix_nano=start,
        start_max_unix_nano=end,
        limit=MAX_METRIC_POINTS,
    )


# --------------------------------------------------------------------------- shaping


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One line of a search result."""

    trace_id: str
    root_name: str
    root_service: str
    #: (service, span count), most spans first.
    services: tuple[tuple[str, int], ...]
    span_count: int
    error_count: int
    start_unix_nano: int
    duration_nanos: int


def _roots(spans: Sequence[Span]) -> list[Span]:
    ids = {s.span_id for s in spans}
    return [s for s in spans if not s.parent_span_id or s.parent_span_id not in ids]


def summarize_trace(spans: Sequence[Span]) -> TraceSummary:
    """Summarize a non-empty trace: its root (the earliest span without a parent here),
    its services, span and error counts, start and duration."""
    roots = _roots(spans) or list(spans)
    root = min(roots, key=lambda s: (s.start_unix_nano, s.parent_span_id is not None))
    start = min(s.start_unix_nano for s in spans)
    end = max(s.end_unix_nano for s in spans)
    counts = Counter(s.resource.service_name for s in spans)
    return TraceSummary(
        trace_id=root.trace_id,
        root_name=root.name,
        root_service=root.resource.service_name,
        services=tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        span_count=len(spans),
        error_count=sum(1 for s in spans if s.status_code is StatusCode.ERROR),
        start_unix_nano=start,
        duration_nanos=max(0, end - start),
    )


@dataclass(frozen=True, slots=True)
class WaterfallRow:
    """One span of a trace's waterfall, in depth-first order."""

    span: Span
    depth: int
    child_count: int
    #: Where the bar starts and how wide it is, in thousandths of the trace's duration.
    offset: float
    width: float
    #: Event times, in thousandths of the trace's duration.
    event_offsets: tuple[float, ...] = ()
    #: Set when the span's parent is not in the trace (lost, or not yet received).
    orphan: bool = False


@dataclass(frozen=True, slots=True)
class Waterfall:
    """A trace laid out for display."""

    summary: TraceSummary
    rows: tuple[WaterfallRow, ...]


#: The waterfall's bars are drawn on a 0..WATERFALL_SCALE axis (SVG user units).
WATERFALL_SCALE = 1000.0


def build_waterfall(spans: Sequence[Span]) -> Waterfall:
    """Lay out a non-empty trace: parents before children, siblings by start time."""
    summary = summarize_trace(spans)
    start, total = summary.start_unix_nano, max(summary.duration_nanos, 1)
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[Span]] = {}
    for s in spans:
        if s.parent_span_id and s.parent_span_id in by_id:
            children.setdefault(s.parent_span_id, []).append(s)
    for kids in children.values():
        kids.sort(key=lambda s: (s.start_unix_nano, s.name))

    def scale(t: int) -> float:
        return round((t - start) * WATERFALL_SCALE / total, 3)

    rows: list[WaterfallRow] = []
    seen: set[str] = set()
    roots = sorted(_roots(spans), key=lambda s: (s.start_unix_nano, s.name))
    # Iterative depth-first walk: a deep trace must not hit Python's recursion limit.
    stack: list[tuple[Span, int]] = [(r, 0) for r in reversed(roots)]
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:  # a cycle of parent ids: show each span once
            continue
        seen.add(span.span_id)
        kids = children.get(span.span_id, [])
        rows.append(
            WaterfallRow(
                span=span,
                depth=depth,
                child_count=len(kids),
                offset=scale(span.start_unix_nano),
                width=round(span.duration_nanos * WATERFALL_SCALE / total, 3),
                event_offsets=tuple(scale(e.time_unix_nano) for e in span.events),
                orphan=bool(span.parent_span_id) and span.parent_span_id not in by_id,
            )
        )
        stack.extend((k, depth + 1) for k in reversed(kids))
    # Spans caught in a parent cycle never reach a root: list them at the top level.
    for span in sorted(spans, key=lambda s: s.start_unix_nano):
        if span.span_id not in seen:
            seen.add(span.span_id)
            rows.append(
                WaterfallRow(
                    span=span,
                    depth=0,
                    child_count=0,
                    offset=scale(span.start_unix_nano),
                    width=round(span.duration_nanos * WATERFALL_SCALE / total, 3),
                    orphan=True,
                )
            )
    return Waterfall(summary=summary, rows=tuple(rows))


@dataclass(frozen=True, slots=True)
class MetricSeries:
    """The points of one metric that share a resource and attributes."""

    id: str
    service: str
    resource: Mapping[str, AttrValue]
    attributes: Mapping[str, AttrValue]
    points: tuple[MetricPoint, ...] = field(default=())

    @property
    def label(self) -> str:
        """Return a short name for people: the service and the attributes."""
        attrs = " ".join(f"{k}={_attr_text(v)}" for k, v in sorted(self.attributes.items()))
        return f"{self.service} {attrs}".strip()


def _attr_text(value: AttrValue) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _series_key(point: MetricPoint) -> str:
    key = json.dumps(
        [point.resource.service_name, point.resource.attributes, point.attributes],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def group_series(points: Sequence[MetricPoint]) -> list[MetricSeries]:
    """Group points (oldest first) into series by resource and attributes, sorted by label."""
    grouped: dict[str, list[MetricPoint]] = {}
    for p in points:
        grouped.setdefault(_series_key(p), []).append(p)
    series = [
        MetricSeries(
            id=key,
            service=pts[0].resource.service_name,
            resource=pts[0].resource.attributes,
            attributes=pts[0].attributes,
            points=tuple(sorted(pts, key=lambda p: p.time_unix_nano)),
        )
        for key, pts in grouped.items()
    ]
    series.sort(key=lambda s: (s.label, s.id))
    return series


def point_value(point: MetricPoint) -> float | None:
    """Return the number to chart for a point: the value, or a histogram's mean."""
    if point.kind is MetricKind.HISTOGRAM:
        h = point.histogram
        if h is None or not h.count or h.sum is None:
            return None
        return h.sum / h.count
    return point.value


# --------------------------------------------------------------------------- service


class QueryService:
    """Answers the API and the UI from a ``Reader``, in bulk."""

    def __init__(self, reader: Reader) -> None:
        """Wrap ``reader`` (the store; shared, thread-safe)."""
        self.reader = reader

    def services(self) -> list[str]:
        """Return every service seen, sorted."""
        return self.reader.get_services()

    def operations(self, service: str, span_kind: SpanKind | None = None) -> list[Operation]:
        """Return the operations of ``service``, of one kind if given."""
        return self.reader.get_operations(service, span_kind)

    def find_traces(self, params: TraceQueryParams) -> list[list[Span]]:
        """Return the matching traces, newest first: one id query, one bulk fetch."""
        trace_ids = self.reader.find_trace_ids(params)
        if not trace_ids:
            return []
        return [t for t in self.reader.get_traces(trace_ids) if t]

    def get_traces(self, trace_ids: Sequence[str]) -> list[list[Span]]:
        """Return the traces found among ``trace_ids``, in the order asked."""
        if not trace_ids:
            return []
        return [t for t in self.reader.get_traces(trace_ids) if t]

    def get_trace(self, trace_id: str) -> list[Span]:
        """Return the spans of one trace; empty when it is unknown."""
        found = self.reader.get_traces([trace_id])
        return found[0] if found else []

    def dependencies(self, end_unix_nano: int, lookback_nanos: int) -> list[DependencyLink]:
        """Return service-to-service call counts, one link per (parent, child)."""
        merged: Counter[tuple[str, str]] = Counter()
        for link in self.reader.get_dependencies(end_unix_nano, lookback_nanos):
            merged[(link.parent, link.child)] += link.call_count
        return [DependencyLink(p, c, n) for (p, c), n in sorted(merged.items())]

    def logs(self, params: LogQueryParams) -> list[LogRecord]:
        """Return matching log records, newest first."""
        return self.reader.find_logs(params)

    def metric_names(self) -> list[MetricDescriptor]:
        """Return every metric seen, sorted by name."""
        return self.reader.get_metric_names()

    def metric_series(self, params: MetricQueryParams) -> list[MetricSeries]:
        """Return the points of one metric grouped into series."""
        return group_series(self.reader.get_metric_points(params))
