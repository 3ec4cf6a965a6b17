"""Convert the data model to the JSON of Jaeger's HTTP query API (what jaeger-ui reads).

The shapes follow Jaeger's ``model/json`` package and the OTLP-to-Jaeger
translation Jaeger applies to OpenTelemetry spans:

* a trace is ``{"traceID", "spans", "processes", "warnings"}``; each span names its
  process (``"p1"``...) and ``processes`` maps those to ``{"serviceName", "tags"}``
  built from the resource (``service.name`` itself is not repeated as a tag);
* ``startTime`` and ``duration`` are microseconds; ids are lowercase hex;
* the parent is a ``CHILD_OF`` reference and each link a ``FOLLOWS_FROM`` one;
* tags are typed ``{"key", "type", "value"}`` with ``type`` one of ``string``,
  ``bool``, ``int64``, ``float64`` or ``binary``; lists and maps become JSON text.
  Besides the span's attributes they carry ``otel.scope.name`` and
  ``otel.scope.version``, ``span.kind``, ``otel.status_code`` and
  ``otel.status_description``, ``error=true`` for an ERROR status, and
  ``w3c.tracestate``;
* span events are ``logs``: ``{"timestamp", "fields"}`` with the event's name as
  the ``event`` field, first.

Usage::

    from otelviewer.jaeger import trace_to_json
    body = {"data": [trace_to_json(spans)], ...}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from otelviewer.model import AttrValue, LogRecord, MetricPoint, Span, StatusCode
from otelviewer.query import MetricSeries, point_value, span_kind_name
from otelviewer.store.contract import DependencyLink, MetricDescriptor, Operation

logger = logging.getLogger(__name__)

JSON = dict[str, Any]

#: Jaeger's trace flag for a sampled span: every span that reached us was sampled.
SAMPLED_FLAG = 1


def micros(unix_nano: int) -> int:
    """Return nanoseconds as whole microseconds (Jaeger's unit), rounding down."""
    return unix_nano // 1000


_SCALAR_TYPES = {str: "string", bool: "bool", int: "int64", float: "float64"}


def tag(key: str, value: AttrValue) -> JSON:
    """Return one typed Jaeger tag for an attribute value."""
    # Exact type lookup first: this runs for every attribute of every span returned.
    kind = _SCALAR_TYPES.get(type(value))
    if kind is not None:
        return {"key": key, "type": kind, "value": value}
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    if value is None:
        return {"key": key, "type": "string", "value": ""}
    return {
        "key": key,
        "type": "string",
        "value": json.dumps(value, separators=(",", ":"), ensure_ascii=False),
    }


def tags(attributes: Mapping[str, AttrValue]) -> list[JSON]:
    """Return the typed tags of an attribute map, in its order."""
    return [tag(k, v) for k, v in attributes.items()]


def span_tags(span: Span) -> list[JSON]:
    """Return a span's tags: its attributes, then what OTLP keeps outside them."""
    out = tags(span.attributes)
    if span.scope.name:
        out.append(tag("otel.scope.name", span.scope.name))
    if span.scope.version:
        out.append(tag("otel.scope.version", span.scope.version))
    kind = span_kind_name(span.kind)
    if kind:
        out.append(tag("span.kind", kind))
    if span.status_code is not StatusCode.UNSET:
        out.append(tag("otel.status_code", span.status_code.name))
    if span.status_code is StatusCode.ERROR:
        out.append(tag("error", True))
    if span.status_message:
        out.append(tag("otel.status_description", span.status_message))
    if span.trace_state:
        out.append(tag("w3c.tracestate", span.trace_state))
    return out


def span_logs(span: Span) -> list[JSON]:
    """Return a span's events as Jaeger logs: the ``event`` name field, then the attributes."""
    logs = []
    for event in span.events:
        fields = []
        if event.name and "event" not in event.attributes:
            fields.append(tag("event", event.name))
        fields.extend(tags(event.attributes))
        logs.append({"timestamp": micros(event.time_unix_nano), "fields": fields})
    return logs


def references(span: Span) -> list[JSON]:
    """Return CHILD_OF for the parent, then FOLLOWS_FROM for each link."""
    refs = []
    if span.parent_span_id:
        refs.append(
            {"refType": "CHILD_OF", "traceID": span.trace_id, "spanID": span.parent_span_id}
        )
    refs.extend(
        {"refType": "FOLLOWS_FROM", "traceID": link.trace_id, "spanID": link.span_id}
        for link in span.links
    )
    return refs


def _process_key(span: Span) -> str:
    return json.dumps(
        [span.resource.service_name, span.resource.attributes], sort_keys=True, default=str
    )


def trace_to_json(spans: Sequence[Span]) -> JSON:
    """Return one trace (a non-empty list of its spans) as Jaeger's ``ui.Trace``.

    Spans are ordered by start time; processes are numbered in order of first use.
    A span whose parent is not in the trace gets a warning (the UI shows it as a root).
    """
    ordered = sorted(spans, key=lambda s: (s.start_unix_nano, s.span_id))
    ids = {s.span_id for s in ordered}
    processes: dict[str, JSON] = {}
    process_ids: dict[str, str] = {}
    out_spans = []
    keys: dict[int, str] = {}  # the store shares Resource objects: key each one once
    for span in ordered:
        key = keys.get(id(span.resource))
        if key is None:
            key = keys[id(span.resource)] = _process_key(span)
        pid = process_ids.get(key)
        if pid is None:
            pid = process_ids[key] = f"p{len(process_ids) + 1}"
            processes[pid] = {
                "serviceName": span.resource.service_name,
                "tags": tags(
                    {k: v for k, v in span.resource.attributes.items() if k != "service.name"}
                ),
            }
        warnings = None
        if span.parent_span_id and span.parent_span_id not in ids:
            warnings = [f"invalid parent span IDs={span.parent_span_id}; parent not in trace"]
        out_spans.append(
            {
                "traceID": span.trace_id,
                "spanID": span.span_id,
                "flags": SAMPLED_FLAG,
                "operationName": span.name,
                "references": references(span),
                "startTime": micros(span.start_unix_nano),
                "duration": max(0, span.duration_nanos) // 1000,
                "tags": span_tags(span),
                "logs": span_logs(span),
                "processID": pid,
                "warnings": warnings,
            }
        )
    return {
        "traceID": ordered[0].trace_id,
        "spans": out_spans,
        "processes": processes,
        "warnings": None,
    }


def operation_to_json(op: Operation) -> JSON:
    """Return ``{"name", "spanKind"}`` as Jaeger's /api/operations does."""
    return {"name": op.name, "spanKind": span_kind_name(op.span_kind)}


def dependency_to_json(link: DependencyLink) -> JSON:
    """Return ``{"parent", "child", "callCount"}``."""
    return {"parent": link.parent, "child": link.child, "callCount": link.call_count}


def log_to_json(record: LogRecord) -> JSON:
    """Return one log record for /api/v1/logs (times in microseconds, as Jaeger's)."""
    return {
        "timestamp": micros(record.time_unix_nano),
        "observedTimestamp": micros(record.observed_time_unix_nano),
        "severityNumber": record.severity_number,
        "severityText": record.severity_text,
        "body": record.body,
        "serviceName": record.resource.service_name,
        "resource": dict(record.resource.attributes),
        "scope": {"name": record.scope.name, "version": record.scope.version},
        "attributes": dict(record.attributes),
        "traceID": record.trace_id,
        "spanID": record.span_id,
    }


def metric_descriptor_to_json(metric: MetricDescriptor) -> JSON:
    """Return ``{"name", "kind", "unit", "description"}``."""
    return {
        "name": metric.name,
        "kind": metric.kind.value,
        "unit": metric.unit,
        "description": metric.description,
    }


def metric_point_to_json(point: MetricPoint) -> JSON:
    """Return one point: its time (microseconds) and value; histograms with their buckets."""
    out: JSON = {
        "timestamp": micros(point.time_unix_nano),
        "startTimestamp": micros(point.start_time_unix_nano),
        "value": point_value(point),
    }
    if point.histogram is not None:
        h = point.histogram
        out["histogram"] = {
            "count": h.count,
            "sum": h.sum,
            "min": h.min,
            "max": h.max,
            "bucketCounts": list(h.bucket_counts),
            "explicitBounds": list(h.explicit_bounds),
        }
    return out


def metric_series_to_json(series: MetricSeries) -> JSON:
    """Return one series: its id, service, resource, attributes and points (oldest first)."""
    first = series.points[0] if series.points else None
    return {
        "id": series.id,
        "label": series.label,
        "serviceName": series.service,
        "resource": dict(series.resource),
        "attributes": dict(series.attributes),
        "kind": first.kind.value if first else None,
        "unit": first.unit if first else "",
        "isMonotonic": first.is_monotonic if first else None,
        "temporality": first.temporality if first else 0,
        "points": [metric_point_to_json(p) for p in series.points],
    }
