"""The telemetry data model shared by the receiver, the store and the query layer.

These are plain values decoded from OTLP, to be treated as immutable. Ids are
lowercase hex strings (32 characters for a trace id, 16 for a span id), times are
integer nanoseconds since the Unix epoch, and attribute values are the
JSON-compatible form of OTLP's ``AnyValue`` (``bytes`` values are kept as base64
strings). A span's attributes, fresh from the receiver, are an
``EncodedAttributes`` mapping that decodes itself when read.

``Span``, ``LogRecord`` and ``MetricPoint`` are not ``frozen`` dataclasses: one is
made per item on the ingest path, and a frozen dataclass takes about four times as
long to construct (30,000 spans/s leaves about 30 microseconds per span in all).
"""

from __future__ import annotations

import abc
import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

AttrValue: TypeAlias = "str | bool | int | float | list[AttrValue] | dict[str, AttrValue] | None"
Attributes = Mapping[str, AttrValue]

#: What a resource without ``service.name`` is stored under (Jaeger does the same).
UNKNOWN_SERVICE = "unknown_service"

# Compact JSON, ASCII only (other characters escaped). The store keeps attributes
# in this form: SQLite's full-text index tokenizes it with its fast "ascii"
# tokenizer, and tag search builds its phrases with the same encoder.
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_dumps_sorted = json.JSONEncoder(separators=(",", ":"), allow_nan=False, sort_keys=True).encode


def json_text(value: Any, *, sort_keys: bool = False) -> str:
    """Return ``value`` as compact ASCII JSON; NaN and infinities become strings.

    JSON has no such numbers: they are written as ``"nan"``, ``"inf"`` and
    ``"-inf"``.
    """
    dumps = _dumps_sorted if sort_keys else _dumps
    try:
        return dumps(value)
    except ValueError:
        return dumps(_finite(value))


def _finite(value: Any) -> Any:
    """Return ``value`` with NaN and infinities as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class EncodedAttributes(Mapping[str, AttrValue]):
    """Attributes kept as the sender encoded them, decoded only when read.

    The receiver makes one per span (``receiver.otlp.OtlpAttributes``) so that
    storing a span needs no dict of its attributes: ``json()`` gives their JSON
    text straight from the encoded form.
    """

    __slots__ = ()

    @abc.abstractmethod
    def json(self) -> str:
        """Return ``json_text`` of these attributes as a dict, keys in the order sent.

        (A key sent twice, which OTLP forbids, appears twice; a JSON reader keeps
        the last, as the dict does.)
        """


class SpanKind(enum.IntEnum):
    """OTLP ``Span.SpanKind`` values."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode(enum.IntEnum):
    """OTLP ``Status.StatusCode`` values."""

    UNSET = 0
    OK = 1
    ERROR = 2


class MetricKind(enum.Enum):
    """The metric point types otelviewer stores."""

    SUM = "sum"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class Resource:
    """The entity that produced the telemetry; ``service_name`` is never empty."""

    service_name: str
    attributes: Attributes = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scope:
    """The instrumentation scope (library) that produced the telemetry."""

    name: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """A timed event on a span (Jaeger shows them as span logs)."""

    time_unix_nano: int
    name: str
    attributes: Attributes = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanLink:
    """A link from a span to another span (Jaeger: a FOLLOWS_FROM reference)."""

    trace_id: str
    span_id: str
    attributes: Attributes = field(default_factory=dict)


@dataclass(slots=True)
class Span:
    """One span, with its resource and scope."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: SpanKind
    start_unix_nano: int
    end_unix_nano: int
    resource: Resource
    scope: Scope = field(default_factory=Scope)
    attributes: Attributes = field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()
    links: tuple[SpanLink, ...] = ()
    status_code: StatusCode = StatusCode.UNSET
    status_message: str = ""
    trace_state: str = ""

    @property
    def duration_nanos(self) -> int:
        """Return the span's duration (never negative: the receiver repairs end < start)."""
        return self.end_unix_nano - self.start_unix_nano


@dataclass(slots=True)
class LogRecord:
    """One log record; ``trace_id`` and ``span_id`` are None when not correlated."""

    time_unix_nano: int
    observed_time_unix_nano: int
    severity_number: int
    severity_text: str
    body: AttrValue
    resource: Resource
    scope: Scope = field(default_factory=Scope)
    attributes: Attributes = field(default_factory=dict)
    trace_id: str | None = None
    span_id: str | None = None


@dataclass(frozen=True, slots=True)
class HistogramValue:
    """An explicit-bucket histogram data point's value."""

    count: int
    sum: float | None
    bucket_counts: tuple[int, ...]
    explicit_bounds: tuple[float, ...]
    min: float | None = None
    max: float | None = None


@dataclass(slots=True)
class MetricPoint:
    """One metric data point (a sum, a gauge, or a histogram)."""

    name: str
    kind: MetricKind
    resource: Resource
    time_unix_nano: int
    start_time_unix_nano: int = 0
    description: str = ""
    unit: str = ""
    scope: Scope = field(default_factory=Scope)
    attributes: Attributes = field(default_factory=dict)
    #: The value of a sum or gauge point; None for a histogram.
    value: float | None = None
    #: For a sum: monotonic or not; None for other kinds.
    is_monotonic: bool | None = None
    #: OTLP AggregationTemporality (1 delta, 2 cumulative); 0 for a gauge.
    temporality: int = 0
    histogram: HistogramValue | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """What one OTLP export request carries: written in one transaction."""

    spans: tuple[Span, ...] = ()
    logs: tuple[LogRecord, ...] = ()
    metrics: tuple[MetricPoint, ...] = ()
