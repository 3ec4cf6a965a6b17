"""The storage contract: what the receiver writes and the query layer reads.

Modelled on Jaeger's ``tracestore`` Reader/Writer. Rules every implementation
keeps (``tests/otelviewer/test_store_contract.py`` checks them):

* ``Writer.write`` stores one ``Batch`` in one transaction: all of it or none of
  it (writes made at the same time may share that transaction). Once it
  returns, the batch survives a crash (``kill -9``).
* Writes are idempotent: writing the same span (same trace id and span id) twice
  keeps one copy.
* "Not found" is an empty result, never an exception.
* Reads never wait for writes (SQLite WAL: readers see the last committed state).
* A full or unavailable store raises ``StoreUnavailable``; the receiver answers
  503 / UNAVAILABLE so that the sender retries.
* Results are ordered newest first unless a method says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from otelviewer.model import Batch, LogRecord, MetricKind, MetricPoint, Span, SpanKind

#: The default number of traces a search returns (Jaeger UI's default is 20).
DEFAULT_SEARCH_LIMIT = 20


class StoreUnavailable(Exception):
    """The store cannot take the write now (busy, full, closed); retry later."""


@dataclass(frozen=True, slots=True)
class TraceQueryParams:
    """One trace search, as Jaeger's ``TraceQueryParams``.

    A trace matches when one of its spans satisfies every given criterion at
    once; ``attributes`` are exact matches on span or resource attributes (the
    value compared as text, so ``{"http.status_code": "200"}`` matches the int 200,
    and ``{"retry": "true"}`` the bool), or on the tags Jaeger derives from span
    fields: ``span.kind`` (``server``, ``client``...), ``otel.status_code``
    (``OK``, ``ERROR``) and ``error`` (``true``).
    """

    service: str | None = None
    operation: str | None = None
    span_kind: SpanKind | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    start_min_unix_nano: int | None = None
    start_max_unix_nano: int | None = None
    duration_min_nanos: int | None = None
    duration_max_nanos: int | None = None
    limit: int = DEFAULT_SEARCH_LIMIT


@dataclass(frozen=True, slots=True)
class Operation:
    """A span name seen for a service, with its kind."""

    name: str
    span_kind: SpanKind


@dataclass(frozen=True, slots=True)
class DependencyLink:
    """Calls from one service to another (a span whose parent is in another service)."""

    parent: str
    child: str
    call_count: int


@dataclass(frozen=True, slots=True)
class LogQueryParams:
    """One log search; every given criterion must hold."""

    trace_id: str | None = None
    service: str | None = None
    min_severity_number: int | None = None
    #: A case-insensitive substring of the body.
    text: str | None = None
    start_min_unix_nano: int | None = None
    start_max_unix_nano: int | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class MetricDescriptor:
    """A metric name seen, with its kind, unit and description."""

    name: str
    kind: MetricKind
    unit: str
    description: str


@dataclass(frozen=True, slots=True)
class MetricQueryParams:
    """Points of one metric, optionally of one service, in a time range."""

    name: str
    service: str | None = None
    start_min_unix_nano: int | None = None
    start_max_unix_nano: int | None = None
    limit: int = 10_000


class Writer(Protocol):
    """Stores what the receiver decoded."""

    def write(self, batch: Batch) -> None:
        """Store ``batch`` in one transaction; raise ``StoreUnavailable`` to ask for a retry."""
        ...


class Reader(Protocol):
    """Answers the query layer. Never raises for "not found"."""

    def get_services(self) -> list[str]:
        """Return every service name seen, sorted."""
        ...

    def get_operations(self, service: str, span_kind: SpanKind | None = None) -> list[Operation]:
        """Return the span names of ``service`` (of one kind if given), sorted by name."""
        ...

    def find_trace_ids(self, query: TraceQueryParams) -> list[str]:
        """Return up to ``query.limit`` matching trace ids, newest trace first.

        "Newest" is by the matching span's start time for a service search, and
        by arrival for tag and operation searches (the same for live traffic);
        sort the traces you fetch by their start time to show them.
        """
        ...

    def get_traces(self, trace_ids: Sequence[str]) -> list[list[Span]]:
        """Return the spans of each trace found, in the order asked; unknown ids are left out."""
        ...

    def get_dependencies(self, end_unix_nano: int, lookback_nanos: int) -> list[DependencyLink]:
        """Return service-to-service call counts for spans that started in the window."""
        ...

    def find_logs(self, query: LogQueryParams) -> list[LogRecord]:
        """Return matching log records, newest first."""
        ...

    def get_metric_names(self) -> list[MetricDescriptor]:
        """Return every metric seen, sorted by name."""
        ...

    def get_metric_points(self, query: MetricQueryParams) -> list[MetricPoint]:
        """Return the points of one metric, oldest first (for charting)."""
        ...
