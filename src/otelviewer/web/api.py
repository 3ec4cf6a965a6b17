"""Jaeger's HTTP JSON query API, and our own JSON for logs and metrics.

Every answer is Jaeger's envelope::

    {"data": ..., "total": 0, "limit": 0, "offset": 0, "errors": null}

A bad parameter answers ``400`` with ``errors: [{"code": 400, "msg": "..."}]`` (the
message names the parameter); an unknown trace id answers ``404`` with
``{"code": 404, "msg": "trace not found"}``.

Jaeger endpoints (the Jaeger UI and Grafana's Jaeger data source use these):

``GET /api/services``
    Service names, sorted.
``GET /api/services/<service>/operations``
    The span names of a service, sorted.
``GET /api/operations?service=S&spanKind=server``
    ``[{"name", "spanKind"}]``; ``service`` is required.
``GET /api/traces?service=S&operation=O&tags={"k":"v"}&lookback=1h&minDuration=1.2ms&limit=20``
    Also ``tag=k:v`` (repeatable), ``start``/``end``, ``maxDuration``, ``spanKind``.
    Matching traces, newest first. ``start``/``end`` are microseconds since the
    epoch; durations are Go durations. ``traceID=<id>`` (repeatable) fetches
    those traces instead, with an ``errors`` entry for each one not found.
``GET /api/traces/<traceID>``
    One trace, as ``data: [trace]``.
``GET /api/dependencies?endTs=<ms>&lookback=<ms>``
    ``[{"parent", "child", "callCount"}]``.

Our endpoints (times in microseconds since the epoch, as Jaeger's):

``GET /api/v1/logs?traceID=&service=&minSeverity=WARN&text=&start=&end=&limit=``
    Log records, newest first.
``GET /api/v1/metrics``
    ``[{"name", "kind", "unit", "description"}]``.
``GET /api/v1/metrics/<name>/series?service=&start=&end=``
    The metric's points grouped into series by resource and attributes, each
    ``{"id", "label", "serviceName", "resource", "attributes", "points"}``, each point
    ``{"timestamp", "value"}`` (a histogram's value is its mean; ``histogram`` has the rest).

Add ``prettyPrint=true`` to any of them for indented JSON.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, request

from otelviewer import jaeger
from otelviewer.query import (
    QueryError,
    normalize_trace_id,
    parse_dependencies,
    parse_log_query,
    parse_metric_query,
    parse_span_kind,
    parse_trace_search,
)
from otelviewer.web.context import query_service

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

TRACE_NOT_FOUND = "trace not found"


def _json(body: dict[str, Any], status: int = 200) -> Response:
    pretty = request.args.get("prettyPrint", "") not in ("", "false")
    if pretty:
        text = json.dumps(body, indent=4, ensure_ascii=False)
    else:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return current_app.response_class(text, status=status, mimetype="application/json")


def envelope(
    data: Any,
    *,
    total: int | None = None,
    limit: int = 0,
    errors: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> Response:
    """Return Jaeger's ``{"data", "total", "limit", "offset", "errors"}`` response."""
    if total is None:
        total = len(data) if isinstance(data, list) else 0
    body = {"data": data, "total": total, "limit": limit, "offset": 0, "errors": errors or None}
    return _json(body, status)


def envelope_error(code: int, message: str) -> Response:
    """Return Jaeger's error response: no data, one ``{"code", "msg"}`` error."""
    body = {
        "data": None,
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": [{"code": code, "msg": message}],
    }
    return _json(body, code)


@bp.errorhandler(QueryError)
def _bad_request(error: QueryError) -> Response:
    return envelope_error(400, str(error))


def _args() -> dict[str, list[str]]:
    return request.args.to_dict(flat=False)


@bp.get("/services")
def services() -> Response:
    """List every service seen."""
    return envelope(query_service().services())


@bp.get("/services/<path:service>/operations")
def service_operations(service: str) -> Response:
    """List the span names of one service (Jaeger's legacy endpoint)."""
    names = sorted({op.name for op in query_service().operations(service)})
    return envelope(names)


@bp.get("/operations")
def operations() -> Response:
    """List ``{"name", "spanKind"}`` of one service, of one kind if ``spanKind`` is given."""
    service = request.args.get("service", "").strip()
    if not service:
        raise QueryError("service", "parameter 'service' is required")
    kind = parse_span_kind(request.args.get("spanKind", ""))
    ops = query_service().operations(service, kind)
    return envelope([jaeger.operation_to_json(op) for op in ops])


@bp.get("/traces")
def search_traces() -> Response:
    """Search traces (or fetch the ``traceID`` ones), newest first."""
    search = parse_trace_search(_args())
    service = query_service()
    errors: list[dict[str, Any]] = []
    if search.trace_ids:
        ids = list(dict.fromkeys(search.trace_ids))
        traces = service.get_traces(ids)
        found = {t[0].trace_id for t in traces}
        errors = [{"msg": TRACE_NOT_FOUND, "traceID": i} for i in ids if i not in found]
    else:
        traces = service.find_traces(search.params)
    data = [jaeger.trace_to_json(t) for t in traces]
    return envelope(data, limit=0 if search.trace_ids else search.params.limit, errors=errors)


@bp.get("/traces/<trace_id>")
def get_trace(trace_id: str) -> Response:
    """Return one trace as ``data: [trace]``; 404 when it is not stored."""
    spans = query_service().get_trace(normalize_trace_id(trace_id))
    if not spans:
        return envelope_error(404, TRACE_NOT_FOUND)
    return envelope([jaeger.trace_to_json(spans)])


@bp.get("/dependencies")
def dependencies() -> Response:
    """Return service-to-service call counts in ``[endTs - lookback, endTs]``."""
    end, lookback = parse_dependencies(_args())
    links = query_service().dependencies(end, lookback)
    wanted = request.args.get("service", "").strip()
    if wanted:
        links = [link for link in links if wanted in (link.parent, link.child)]
    return envelope([jaeger.dependency_to_json(link) for link in links])


@bp.get("/v1/logs")
def logs() -> Response:
    """Search log records, newest first."""
    params = parse_log_query(_args())
    records = query_service().logs(params)
    return envelope([jaeger.log_to_json(r) for r in records], limit=params.limit)


@bp.get("/v1/metrics")
def metrics() -> Response:
    """List every metric seen."""
    names = query_service().metric_names()
    return envelope([jaeger.metric_descriptor_to_json(m) for m in names])


@bp.get("/v1/metrics/<path:name>/series")
def metric_series(name: str) -> Response:
    """Return one metric's points, grouped into series."""
    params = parse_metric_query(name, _args())
    series = query_service().metric_series(params)
    return envelope([jaeger.metric_series_to_json(s) for s in series])
