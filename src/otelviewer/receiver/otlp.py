"""OTLP decoding: request bytes (protobuf or OTLP/JSON) to ``model.Batch``.

Both receivers (gRPC and HTTP) use this module, so they accept and repair the
same things:

* Protobuf is parsed by the generated classes of ``opentelemetry-proto``; OTLP/JSON
  by ``google.protobuf.json_format`` after the one OTLP-specific rewrite: trace and
  span ids are hex strings in OTLP/JSON, not base64 (``docs/specification.md`` of
  opentelemetry-proto). Enums as integers, lowerCamelCase or snake_case names,
  64-bit integers as strings or numbers, and unknown fields are all accepted.
* Repaired, as Jaeger does: a resource without ``service.name`` is stored as
  ``unknown_service``; a span that ends before it starts ends when it starts;
  invalid UTF-8 in strings becomes U+FFFD.
* Rejected item by item (counted in ``partial_success``, the rest is stored):
  spans with a missing, all-zero or wrong-length trace or span id, log records
  with wrong-length ids, metric points without a name, with no value, with
  inconsistent buckets, or of a type otelviewer does not store (exponential
  histograms, summaries), and any item with a time after April 2262 (beyond a
  signed 64-bit integer, which SQLite cannot hold).
* A request that cannot be parsed at all raises ``DecodeError`` (HTTP 400,
  gRPC INVALID_ARGUMENT).

Span attributes, half of ingest's Python time when decoded, are left encoded:
trace requests are parsed into a twin class whose ``Span.attributes`` is
``repeated bytes`` (``_with_encoded_attributes``), and each span gets an
``OtlpAttributes`` that decodes itself when read and gives the store its JSON
from cached per-attribute fragments (see ``_FRAGMENTS``).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otelviewer.model import (
    UNKNOWN_SERVICE,
    AttrValue,
    Batch,
    EncodedAttributes,
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
    json_text,
)

logger = logging.getLogger(__name__)

#: The largest request accepted, after decompression (gRPC and HTTP alike). The
#: SDKs send batches of 512 spans, about 0.2-0.5 MB; the Collector's own limits are
#: 4 MiB (gRPC) and 20 MiB (HTTP). 16 MiB takes big log bodies and still bounds
#: what one request can make the process hold (times the worker threads).
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024

#: How deep OTLP/JSON may nest (AnyValue arrays in maps in arrays...). protobuf's
#: own default; deeper requests are refused as undecodable rather than exhausting
#: the stack.
MAX_JSON_DEPTH = 100

#: The latest time a store can hold (SQLite's largest INTEGER, in Unix nanoseconds:
#: April 2262). OTLP times are unsigned 64-bit, so a sender can send later ones;
#: items with such times are rejected, counted in ``partial_success``.
MAX_TIME_UNIX_NANO = 2**63 - 1
_TOO_LATE = "with a time after the year 2262 (more than 2**63 - 1 ns)"

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)
_KINDS = tuple(SpanKind)
_STATUSES = tuple(StatusCode)


class DecodeError(ValueError):
    """The request body is not a valid OTLP message of the expected type."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one request carried, and what was rejected from it (and why)."""

    batch: Batch
    rejected: int = 0
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class Signal:
    """One OTLP signal: its messages, and how its requests become a ``Batch``."""

    name: str
    request: type[Message]
    response: type[Message]
    #: The ``partial_success`` field of the response, and its counter.
    partial_field: str
    rejected_field: str
    convert: Callable[[Any], Decoded]
    #: The class requests are parsed into when not ``request`` itself: a twin with
    #: the same wire format that ``convert`` reads faster (see ``_with_encoded_attributes``).
    parse_as: type[Message] | None = None

    def parse(self, data: bytes) -> Any:
        """Parse a protobuf request, repairing invalid UTF-8; raise ``DecodeError``."""
        try:
            return _parse_repairing_utf8(self.parse_as or self.request, data, self.request)
        except ProtobufDecodeError as exc:
            raise DecodeError(f"not a valid {self.request.DESCRIPTOR.name}: {exc}") from None

    def parse_json(self, data: bytes) -> Any:
        """Parse an OTLP/JSON request; raise ``DecodeError``."""
        text = data.decode("utf-8", errors="replace")
        try:
            tree = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise DecodeError(f"not valid JSON: {exc}") from None
        if not isinstance(tree, dict):
            raise DecodeError(f"not a valid {self.request.DESCRIPTOR.name}: expected a JSON object")
        if _ESCAPED_SURROGATE.search(text):
            tree = _replace_lone_surrogates(tree)
        _hex_ids_to_base64(tree)
        message = self.request()
        try:
            json_format.ParseDict(
                tree, message, ignore_unknown_fields=True, max_recursion_depth=MAX_JSON_DEPTH
            )
        except (json_format.ParseError, RecursionError, TypeError, ValueError) as exc:
            raise DecodeError(f"not a valid {self.request.DESCRIPTOR.name}: {exc}") from None
        if self.parse_as is not None:
            return self.parse_as.FromString(message.SerializeToString())
        return message

    def decode(self, data: bytes, *, is_json: bool = False) -> Decoded:
        """Parse and convert one request body."""
        message = self.parse_json(data) if is_json else self.parse(data)
        return self.convert(message)

    def response_for(self, decoded: Decoded) -> Message:
        """Return the Export response: empty, or with ``partial_success`` filled in."""
        response = self.response()
        if decoded.rejected or decoded.error_message:
            partial = getattr(response, self.partial_field)
            setattr(partial, self.rejected_field, decoded.rejected)
            partial.error_message = decoded.error_message
        return response


# --- values --------------------------------------------------------------------------


def _any_value(value: Any) -> AttrValue:
    """Return the JSON-compatible form of an OTLP ``AnyValue``."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    result: AttrValue = getattr(value, which)
    return result


_SCALARS = frozenset(("string_value", "int_value", "bool_value", "double_value"))


def _attributes(pairs: Iterable[Any]) -> dict[str, AttrValue]:
    """Return OTLP ``KeyValue`` pairs as a dict.

    This is the hot path of ingest (ten attributes a span, a few hundred spans a
    request), so it reads a non-empty ``string_value`` first, the common case,
    which saves asking which of the oneof is set; other scalars are read inline.
    """
    return {
        kv.key: text
        if (text := (v := kv.value).string_value)
        else getattr(v, which)
        if (which := v.WhichOneof("value")) in _SCALARS
        else _any_value(v)
        for kv in pairs
    }


#: Attribute JSON fragments (``"key":value``) by the encoded ``KeyValue`` they came
#: from: most attributes repeat from span to span (a method, a status code, a
#: database system), and a hit costs a dict lookup instead of decoding and
#: encoding. Cleared when full, so that unique values cannot grow it without
#: bound; longer ``KeyValue``s (statements, messages) are not kept at all, which
#: bounds it to a few MB.
_FRAGMENTS: dict[bytes, str] = {}
MAX_CACHED_ATTRIBUTES = 16_384
MAX_CACHED_ATTRIBUTE_BYTES = 128
_cached_fragment = _FRAGMENTS.__getitem__
_encode_string = json.encoder.encode_basestring_ascii  # json_text's own, for one string


def _key_value(encoded: bytes) -> tuple[str, AttrValue]:
    """Decode one encoded ``KeyValue``, repairing invalid UTF-8."""
    kv = _parse_repairing_utf8(common_pb2.KeyValue, encoded)
    return kv.key, _any_value(kv.value)


def _json_fragment(encoded: bytes) -> str:
    """Return ``"key":value`` in ``json_text``'s encoding for one encoded ``KeyValue``."""
    fragment = _FRAGMENTS.get(encoded)
    if fragment is None:
        kv = _parse_repairing_utf8(common_pb2.KeyValue, encoded)
        value = kv.value
        if string := value.string_value:  # most are
            text = _encode_string(string)
        else:
            decoded = _any_value(value)
            # (json_text for a lone int is str() with a much longer way round)
            text = str(decoded) if type(decoded) is int else json_text(decoded)
        fragment = f"{_encode_string(kv.key)}:{text}"
        if len(encoded) <= MAX_CACHED_ATTRIBUTE_BYTES:
            if len(_FRAGMENTS) >= MAX_CACHED_ATTRIBUTES:
                _FRAGMENTS.clear()
            _FRAGMENTS[encoded] = fragment
    return fragment


class OtlpAttributes(EncodedAttributes):
    """A span's attributes as OTLP ``KeyValue``s still encoded, decoded when read.

    Decoding every attribute into a dict and encoding the dict as JSON was half
    of ingest's Python time. The store only needs the JSON, which ``json()``
    joins from cached fragments; the mapping is decoded on first use.
    """

    __slots__ = ("_decoded", "_encoded")

    def __init__(self, encoded: Iterable[bytes]) -> None:
        self._encoded = encoded
        self._decoded: dict[str, AttrValue] | None = None

    def _dict(self) -> dict[str, AttrValue]:
        if self._decoded is None:
            self._decoded = dict(_key_value(b) for b in self._encoded)
        return self._decoded

    def __getitem__(self, key: str) -> AttrValue:
        return self._dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return f"OtlpAttributes({self._dict()!r})"

    def json(self) -> str:
        """Return the attributes' ``json_text``; see ``EncodedAttributes.json``."""
        encoded = self._encoded
        try:
            return "{" + ",".join(map(_cached_fragment, encoded)) + "}"
        except KeyError:  # one not seen (or not kept) yet
            return "{" + ",".join([_json_fragment(b) for b in encoded]) + "}"


def _resource(resource: Any) -> Resource:
    attributes = _attributes(resource.attributes)
    service = attributes.get("service.name")
    if not isinstance(service, str) or not service:
        service = UNKNOWN_SERVICE
    return Resource(service, attributes)


def _scope(scope: Any) -> Scope:
    return Scope(scope.name, scope.version)


def _reason_text(counts: Counter[str], total: int, noun: str) -> str:
    rejected = sum(counts.values())
    reasons = ", ".join(f"{n} {reason}" for reason, n in counts.most_common())
    return f"rejected {rejected} of {total} {noun}: {reasons}"


# --- traces --------------------------------------------------------------------------

_BAD_TRACE_ID = "with a trace_id that is not 16 bytes or is all zero"
_BAD_SPAN_ID = "with a span_id that is not 8 bytes or is all zero"
_BAD_PARENT_ID = "with a parent_span_id that is not 8 bytes"


def _convert_traces(request: Any) -> Decoded:
    spans: list[Span] = []
    append = spans.append
    problems: Counter[str] = Counter()
    total = 0
    for resource_spans in request.resource_spans:
        resource = _resource(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            scope = _scope(scope_spans.scope)
            for span in scope_spans.spans:
                total += 1
                trace_id = span.trace_id
                span_id = span.span_id
                parent = span.parent_span_id
                if len(trace_id) != 16 or trace_id == _ZERO_TRACE_ID:
                    problems[_BAD_TRACE_ID] += 1
                    continue
                if len(span_id) != 8 or span_id == _ZERO_SPAN_ID:
                    problems[_BAD_SPAN_ID] += 1
                    continue
                if parent and len(parent) != 8:
                    problems[_BAD_PARENT_ID] += 1
                    continue
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                if start > MAX_TIME_UNIX_NANO or end > MAX_TIME_UNIX_NANO:
                    problems[_TOO_LATE] += 1
                    continue
                kind = span.kind
                status = span.status
                code = status.code
                append(
                    Span(
                        trace_id.hex(),
                        span_id.hex(),
                        parent.hex() if parent and parent != _ZERO_SPAN_ID else None,
                        span.name,
                        _KINDS[kind] if 0 <= kind < 6 else SpanKind.UNSPECIFIED,
                        start,
                        end if end >= start else start,
                        resource,
                        scope,
                        OtlpAttributes(span.attributes),
                        tuple(
                            SpanEvent(e.time_unix_nano, e.name, _attributes(e.attributes))
                            for e in span.events
                        )
                        if span.events
                        else (),
                        _links(span.links) if span.links else (),
                        _STATUSES[code] if 0 <= code < 3 else StatusCode.UNSET,
                        status.message,
                        span.trace_state,
                    )
                )
    if not problems:
        return Decoded(Batch(spans=tuple(spans)))
    message = _reason_text(problems, total, "spans")
    return Decoded(Batch(spans=tuple(spans)), sum(problems.values()), message)


def _links(links: Iterable[Any]) -> tuple[SpanLink, ...]:
    """Return the valid links (a link to an invalid id points nowhere: it is left out)."""
    return tuple(
        SpanLink(link.trace_id.hex(), link.span_id.hex(), _attributes(link.attributes))
        for link in links
        if len(link.trace_id) == 16
        and link.trace_id != _ZERO_TRACE_ID
        and len(link.span_id) == 8
        and link.span_id != _ZERO_SPAN_ID
    )


# --- logs ----------------------------------------------------------------------------

_BAD_LOG_TRACE_ID = "with a trace_id that is not 16 bytes"
_BAD_LOG_SPAN_ID = "with a span_id that is not 8 bytes"


def _convert_logs(request: Any) -> Decoded:
    records: list[LogRecord] = []
    problems: Counter[str] = Counter()
    total = 0
    for resource_logs in request.resource_logs:
        resource = _resource(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            scope = _scope(scope_logs.scope)
            for record in scope_logs.log_records:
                total += 1
                trace_id = record.trace_id
                span_id = record.span_id
                # Empty or all-zero ids mean "not correlated" (the SDK sends zeros).
                if trace_id and len(trace_id) != 16:
                    problems[_BAD_LOG_TRACE_ID] += 1
                    continue
                if span_id and len(span_id) != 8:
                    problems[_BAD_LOG_SPAN_ID] += 1
                    continue
                if (
                    record.time_unix_nano > MAX_TIME_UNIX_NANO
                    or record.observed_time_unix_nano > MAX_TIME_UNIX_NANO
                ):
                    problems[_TOO_LATE] += 1
                    continue
                records.append(
                    LogRecord(
                        time_unix_nano=record.time_unix_nano,
                        observed_time_unix_nano=record.observed_time_unix_nano,
                        severity_number=record.severity_number,
                        severity_text=record.severity_text,
                        body=_any_value(record.body) if record.HasField("body") else None,
                        resource=resource,
                        scope=scope,
                        attributes=_attributes(record.attributes),
                        trace_id=trace_id.hex()
                        if trace_id and trace_id != _ZERO_TRACE_ID
                        else None,
                        span_id=span_id.hex() if span_id and span_id != _ZERO_SPAN_ID else None,
                    )
                )
    if not problems:
        return Decoded(Batch(logs=tuple(records)))
    message = _reason_text(problems, total, "log records")
    return Decoded(Batch(logs=tuple(records)), sum(problems.values()), message)


# --- metrics -------------------------------------------------------------------------

_NO_NAME = "of a metric without a name"
_NO_VALUE = "without a value"
_BAD_BUCKETS = "whose bucket_counts do not match explicit_bounds"
_NOT_STORED = "of exponential histograms or summaries (not stored)"


def _number(point: Any) -> float | None:
    which = point.WhichOneof("value")
    if which == "as_double":
        return float(point.as_double)
    if which == "as_int":
        return float(point.as_int)
    return None


def _convert_metrics(request: Any) -> Decoded:
    points: list[MetricPoint] = []
    problems: Counter[str] = Counter()
    total = 0
    for resource_metrics in request.resource_metrics:
        resource = _resource(resource_metrics.resource)
        for scope_metrics in resource_metrics.scope_metrics:
            scope = _scope(scope_metrics.scope)
            for metric in scope_metrics.metrics:
                which = metric.WhichOneof("data")
                if which is None:
                    continue
                data_points = getattr(metric, which).data_points
                total += len(data_points)
                if not metric.name:
                    problems[_NO_NAME] += len(data_points)
                    continue
                if which in ("exponential_histogram", "summary"):
                    problems[_NOT_STORED] += len(data_points)
                    continue
                common = {
                    "name": metric.name,
                    "resource": resource,
                    "description": metric.description,
                    "unit": metric.unit,
                    "scope": scope,
                }
                for dp in data_points:
                    if (
                        dp.time_unix_nano > MAX_TIME_UNIX_NANO
                        or dp.start_time_unix_nano > MAX_TIME_UNIX_NANO
                    ):
                        problems[_TOO_LATE] += 1
                        continue
                    if which == "histogram":
                        buckets = tuple(dp.bucket_counts)
                        bounds = tuple(dp.explicit_bounds)
                        if buckets and len(buckets) != len(bounds) + 1:
                            problems[_BAD_BUCKETS] += 1
                            continue
                        points.append(
                            MetricPoint(
                                kind=MetricKind.HISTOGRAM,
                                time_unix_nano=dp.time_unix_nano,
                                start_time_unix_nano=dp.start_time_unix_nano,
                                attributes=_attributes(dp.attributes),
                                temporality=metric.histogram.aggregation_temporality,
                                histogram=HistogramValue(
                                    count=dp.count,
                                    sum=dp.sum if dp.HasField("sum") else None,
                                    bucket_counts=buckets,
                                    explicit_bounds=bounds,
                                    min=dp.min if dp.HasField("min") else None,
                                    max=dp.max if dp.HasField("max") else None,
                                ),
                                **common,
                            )
                        )
                        continue
                    value = _number(dp)
                    if value is None:
                        problems[_NO_VALUE] += 1
                        continue
                    is_sum = which == "sum"
                    points.append(
                        MetricPoint(
                            kind=MetricKind.SUM if is_sum else MetricKind.GAUGE,
                            time_unix_nano=dp.time_unix_nano,
                            start_time_unix_nano=dp.start_time_unix_nano,
                            attributes=_attributes(dp.attributes),
                            value=value,
                            is_monotonic=metric.sum.is_monotonic if is_sum else None,
                            temporality=metric.sum.aggregation_temporality if is_sum else 0,
                            **common,
                        )
                    )
    if not problems:
        return Decoded(Batch(metrics=tuple(points)))
    message = _reason_text(problems, total, "data points")
    return Decoded(Batch(metrics=tuple(points)), sum(problems.values()), message)


def _copy_file(
    pool: descriptor_pool.DescriptorPool,
    file: Any,
    edit: Callable[[descriptor_pb2.FileDescriptorProto], None],
) -> None:
    """Add a .proto file (after the files it imports) to ``pool``, changed by ``edit``."""
    try:
        pool.FindFileByName(file.name)
        return
    except KeyError:
        pass
    for dependency in file.dependencies:
        _copy_file(pool, dependency, edit)
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    edit(proto)
    pool.Add(proto)


_SPAN = trace_pb2.Span.DESCRIPTOR.full_name


def _with_encoded_attributes(request: type[Message]) -> type[Message]:
    """Return a twin of a trace ``request`` in which ``Span.attributes`` is ``repeated bytes``.

    The wire format is the same (a message field and a bytes field are both
    length-delimited), but parsing leaves each span attribute an encoded
    ``KeyValue``: no Python objects per attribute until ``OtlpAttributes`` is read.
    """
    pool = descriptor_pool.DescriptorPool()
    changed = []

    def edit(proto: descriptor_pb2.FileDescriptorProto) -> None:
        for message in proto.message_type:
            if f"{proto.package}.{message.name}" == _SPAN:
                for field in message.field:
                    if field.name == "attributes":
                        field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                        field.ClearField("type_name")
                        changed.append(field.name)

    _copy_file(pool, request.DESCRIPTOR.file, edit)
    if not changed:
        raise RuntimeError(f"{_SPAN}.attributes not found in {request.DESCRIPTOR.file.name}")
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(request.DESCRIPTOR.full_name))


TRACES = Signal(
    name="traces",
    request=trace_service_pb2.ExportTraceServiceRequest,
    response=trace_service_pb2.ExportTraceServiceResponse,
    partial_field="partial_success",
    rejected_field="rejected_spans",
    convert=_convert_traces,
    parse_as=_with_encoded_attributes(trace_service_pb2.ExportTraceServiceRequest),
)
METRICS = Signal(
    name="metrics",
    request=metrics_service_pb2.ExportMetricsServiceRequest,
    response=metrics_service_pb2.ExportMetricsServiceResponse,
    partial_field="partial_success",
    rejected_field="rejected_data_points",
    convert=_convert_metrics,
)
LOGS = Signal(
    name="logs",
    request=logs_service_pb2.ExportLogsServiceRequest,
    response=logs_service_pb2.ExportLogsServiceResponse,
    partial_field="partial_success",
    rejected_field="rejected_log_records",
    convert=_convert_logs,
)
SIGNALS = {s.name: s for s in (TRACES, METRICS, LOGS)}


# --- OTLP/JSON ids ---------------------------------------------------------------------

# Where OTLP/JSON carries ids: (path of list fields, id fields), in both the
# lowerCamelCase and the original field names, as json_format accepts either.
_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
#: Stands in for an id that is not hex: one byte, so it fails the length check and
#: the item is rejected (partial success) instead of the whole request.
_INVALID_ID = base64.b64encode(b"\xff").decode("ascii")


def _items(node: Any, *names: str) -> list[Any]:
    """Return the list under the first of ``names`` present in ``node`` (or [])."""
    if isinstance(node, dict):
        for name in names:
            value = node.get(name)
            if isinstance(value, list):
                return value
    return []


def _fix_ids(node: Any) -> None:
    if not isinstance(node, dict):
        return
    for name in _ID_FIELDS:
        value = node.get(name)
        if isinstance(value, str):
            try:
                node[name] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError:
                node[name] = _INVALID_ID


def _hex_ids_to_base64(tree: dict[str, Any]) -> None:
    """Rewrite OTLP/JSON's hex ids in place into the base64 that json_format expects."""
    for rs in _items(tree, "resourceSpans", "resource_spans"):
        for ss in _items(rs, "scopeSpans", "scope_spans"):
            for span in _items(ss, "spans"):
                _fix_ids(span)
                for link in _items(span, "links"):
                    _fix_ids(link)
    for rl in _items(tree, "resourceLogs", "resource_logs"):
        for sl in _items(rl, "scopeLogs", "scope_logs"):
            for record in _items(sl, "logRecords", "log_records"):
                _fix_ids(record)
    for rm in _items(tree, "resourceMetrics", "resource_metrics"):
        for sm in _items(rm, "scopeMetrics", "scope_metrics"):
            for metric in _items(sm, "metrics"):
                if not isinstance(metric, dict):
                    continue
                for data in metric.values():
                    for dp in _items(data, "dataPoints", "data_points"):
                        for exemplar in _items(dp, "exemplars"):
                            _fix_ids(exemplar)


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _replace_lone_surrogates(node: Any) -> Any:
    """Return ``node`` with unpaired UTF-16 surrogates (from ``\\ud800``) as U+FFFD."""
    if isinstance(node, str):
        return node.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(node, list):
        return [_replace_lone_surrogates(v) for v in node]
    if isinstance(node, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in node.items()}
    return node


# --- invalid UTF-8 in protobuf ---------------------------------------------------------

_lenient_classes: dict[str, type[Message]] = {}
_lenient_pool = descriptor_pool.DescriptorPool()
#: Per message full name, the fields that are ``string`` in OTLP (``bytes`` here).
_string_fields: dict[str, frozenset[str]] = {}


def _strings_as_bytes(proto: descriptor_pb2.FileDescriptorProto) -> None:
    """Make every string field of a .proto file bytes, noting which were strings."""
    prefix = f"{proto.package}." if proto.package else ""

    def lenient(message: descriptor_pb2.DescriptorProto, scope: str) -> None:
        full_name = f"{scope}{message.name}"
        strings = set()
        for field in message.field:
            if field.type == descriptor_pb2.FieldDescriptorProto.TYPE_STRING:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                strings.add(field.name)
        _string_fields[full_name] = frozenset(strings)
        for nested in message.nested_type:
            lenient(nested, f"{full_name}.")

    for message in proto.message_type:
        lenient(message, prefix)


def _parse_repairing_utf8(
    cls: type[Message], data: bytes, schema: type[Message] | None = None
) -> Any:
    """Parse ``data`` as ``cls``, replacing invalid UTF-8 in strings with U+FFFD.

    ``schema`` is the OTLP class whose strings to check when ``cls`` is a twin
    of it (``_with_encoded_attributes``). Raises protobuf's ``DecodeError`` when
    ``data`` is not such a message at all.
    """
    try:
        return cls.FromString(data)
    except ProtobufDecodeError:
        pass
    # Slow path, only for broken senders: parse with strings as bytes, repair
    # them, and parse the repaired message normally.
    lenient = _lenient_class(schema or cls).FromString(data)
    _repair_utf8(lenient)
    return cls.FromString(lenient.SerializeToString())


def _lenient_class(request: type[Message]) -> type[Message]:
    """Return a twin of ``request`` whose string fields are bytes (accepts any bytes)."""
    name = request.DESCRIPTOR.full_name
    cls = _lenient_classes.get(name)
    if cls is None:
        _copy_file(_lenient_pool, request.DESCRIPTOR.file, _strings_as_bytes)
        cls = message_factory.GetMessageClass(_lenient_pool.FindMessageTypeByName(name))
        _lenient_classes[name] = cls
    return cls


def _repair_utf8(message: Message) -> None:
    """Replace invalid UTF-8 in the (bytes) string fields of a lenient message."""
    strings = _string_fields.get(message.DESCRIPTOR.full_name, frozenset())
    for field, value in message.ListFields():
        if field.name in strings:
            if field.is_repeated:
                fixed = [v.decode("utf-8", "replace").encode("utf-8") for v in value]
                del value[:]
                value.extend(fixed)
            else:
                setattr(message, field.name, value.decode("utf-8", "replace").encode("utf-8"))
        elif field.message_type is not None:
            if field.is_repeated:
                for item in value:
                    _repair_utf8(item)
            else:
                _repair_utf8(value)
