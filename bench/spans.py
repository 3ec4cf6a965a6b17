"""Realistic synthetic traces for the otelviewer benchmarks.

A trace looks like what ``make run`` produces: a ``todo-client`` CLIENT span,
the app's SERVER span (``GET /api/tasks/<int:task_id>``...), a custom INTERNAL
span (``todo.tasks.get``...) and SQLAlchemy CLIENT spans, 8 spans in all, each
with about ten attributes (HTTP, database, code and thread attributes). The
generator is seeded, so the same arguments give the same traces (the query
benchmark relies on that to know which trace ids and tags exist).

:func:`otlp_request` turns spans into an ``ExportTraceServiceRequest``; the
ingest benchmark sends the serialised bytes many times, making the ids unique
and its times later per request with :class:`IdTemplate` (byte substitutions: no
protobuf work per request, so the sender stays cheap).
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import struct
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Status
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from otelviewer.model import AttrValue, Resource, Scope, Span, SpanKind, StatusCode

logger = logging.getLogger(__name__)

#: Spans per generated trace (client, server, internal, five database calls).
SPANS_PER_TRACE = 8
#: Distinct task ids in URLs: the cardinality of ``http.target`` (tag search).
TASK_IDS = 2_000
#: Services and how often each one is the app's service name; "todo" dominates,
#: as one app does in a developer's viewer, and "billing" is a rare one.
SERVICES: tuple[tuple[str, int], ...] = (
    ("todo", 60),
    ("todo-admin", 25),
    ("todo-worker", 14),
    ("billing", 1),
)
CLIENT_SERVICE = "todo-client"

_ROUTES: tuple[tuple[str, str, str], ...] = (
    # method, route, internal span name
    ("GET", "/api/tasks/<int:task_id>", "todo.tasks.get"),
    ("PATCH", "/api/tasks/<int:task_id>", "todo.tasks.update"),
    ("DELETE", "/api/tasks/<int:task_id>", "todo.tasks.delete"),
    ("GET", "/api/tasks", "todo.tasks.list"),
    ("POST", "/api/tasks", "todo.tasks.add"),
)
_STATEMENTS = (
    "SELECT tasks.id, tasks.description, tasks.done FROM tasks WHERE tasks.id = ?",
    "SELECT count(*) AS count_1 FROM tasks WHERE tasks.done = 0",
    "UPDATE tasks SET done=? WHERE tasks.id = ?",
    "INSERT INTO tasks (description, done, created_at) VALUES (?, ?, ?)",
    "SELECT tasks.id, tasks.description FROM tasks ORDER BY tasks.created_at DESC",
)


def target_for(method: str, route: str, task_id: int) -> str:
    """Return the ``http.target`` a request to ``route`` for ``task_id`` carries."""
    return route.replace("<int:task_id>", str(task_id))


def _resource(service: str, instance: int) -> Resource:
    return Resource(
        service_name=service,
        attributes={
            "service.name": service,
            "service.version": "0.1.0",
            "service.instance.id": f"{service}-{instance}",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.version": "1.45.1",
            "host.name": "devbox",
        },
    )


@dataclass
class TraceGenerator:
    """Seeded source of realistic traces.

    Args:
        seed: the random seed; the same seed gives the same traces.
        start_unix_nano: the earliest trace start.
        spacing_nanos: the time between two consecutive traces' starts.
    """

    seed: int
    start_unix_nano: int
    spacing_nanos: int = 1_000_000

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._count = 0
        self._resources = {
            name: [_resource(name, i) for i in range(3)]
            for name in [s for s, _ in SERVICES] + [CLIENT_SERVICE]
        }
        self._names = [s for s, _ in SERVICES]
        self._weights = [w for _, w in SERVICES]
        self._scope_flask = Scope("opentelemetry.instrumentation.flask", "0.66b1")
        self._scope_todo = Scope("todo", "0.1.0")
        self._scope_sqla = Scope("opentelemetry.instrumentation.sqlalchemy", "0.66b1")
        self._scope_httpx = Scope("opentelemetry.instrumentation.httpx", "0.66b1")

    def _id(self, nbytes: int) -> str:
        return self._rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()

    def trace(self) -> list[Span]:
        """Return the next trace: :data:`SPANS_PER_TRACE` spans, parents first."""
        rng = self._rng
        n = self._count
        self._count += 1
        service = rng.choices(self._names, self._weights)[0]
        resource = rng.choice(self._resources[service])
        client_resource = rng.choice(self._resources[CLIENT_SERVICE])
        method, route, internal_name = _ROUTES[n % len(_ROUTES)]
        task_id = rng.randrange(1, TASK_IDS + 1)
        target = target_for(method, route, task_id)
        failed = rng.random() < 0.02
        status = 500 if failed else (201 if method == "POST" else 200)
        trace_id = self._id(16)
        start = self.start_unix_nano + n * self.spacing_nanos
        total = rng.randrange(2_000_000, 40_000_000)
        client_id, server_id, internal_id = self._id(8), self._id(8), self._id(8)
        thread = rng.randrange(130000000000000, 140000000000000)
        spans = [
            Span(
                trace_id=trace_id,
                span_id=client_id,
                parent_span_id=None,
                name=method,
                kind=SpanKind.CLIENT,
                start_unix_nano=start,
                end_unix_nano=start + total,
                resource=client_resource,
                scope=self._scope_httpx,
                attributes={
                    "http.method": method,
                    "http.url": f"http://127.0.0.1:5000{target}",
                    "http.status_code": status,
                    "net.peer.name": "127.0.0.1",
                    "net.peer.port": 5000,
                    "http.flavor": "1.1",
                    "user_agent.original": "todo-client/0.1.0",
                    "thread.id": thread,
                    "thread.name": "MainThread",
                    "todo.client.command": "traffic",
                },
                status_code=StatusCode.ERROR if failed else StatusCode.UNSET,
            ),
            Span(
                trace_id=trace_id,
                span_id=server_id,
                parent_span_id=client_id,
                name=f"{method} {route}",
                kind=SpanKind.SERVER,
                start_unix_nano=start + 300_000,
                end_unix_nano=start + total - 300_000,
                resource=resource,
                scope=self._scope_flask,
                attributes={
                    "http.method": method,
                    "http.scheme": "http",
                    "http.host": "127.0.0.1:5000",
                    "http.target": target,
                    "http.route": route,
                    "http.status_code": status,
                    "http.user_agent": "todo-client/0.1.0",
                    "http.flavor": "1.1",
                    "net.host.port": 5000,
                    "net.peer.ip": "127.0.0.1",
                },
                status_code=StatusCode.ERROR if failed else StatusCode.UNSET,
            ),
            Span(
                trace_id=trace_id,
                span_id=internal_id,
                parent_span_id=server_id,
                name=internal_name,
                kind=SpanKind.INTERNAL,
                start_unix_nano=start + 600_000,
                end_unix_nano=start + total - 600_000,
                resource=resource,
                scope=self._scope_todo,
                attributes={
                    "todo.task.id": task_id,
                    "todo.task.count": rng.randrange(0, 50),
                    "code.function": internal_name.rsplit(".", 1)[1],
                    "code.namespace": "todo.tasks",
                    "code.filepath": "src/todo/tasks.py",
                    "code.lineno": rng.randrange(20, 200),
                    "thread.id": thread,
                    "thread.name": "MainThread",
                    "todo.task.done": rng.random() < 0.5,
                    "todo.request.route": route,
                },
                status_code=StatusCode.ERROR if failed else StatusCode.UNSET,
                status_message="database is locked" if failed else "",
            ),
        ]
        step = (total - 1_200_000) // (SPANS_PER_TRACE - 3)
        for i in range(SPANS_PER_TRACE - 3):
            db_start = start + 600_000 + i * step
            statement = _STATEMENTS[(n + i) % len(_STATEMENTS)]
            spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=self._id(8),
                    parent_span_id=internal_id,
                    name=f"{statement.split(' ', 1)[0]} todo.db",
                    kind=SpanKind.CLIENT,
                    start_unix_nano=db_start,
                    end_unix_nano=db_start + step // 2,
                    resource=resource,
                    scope=self._scope_sqla,
                    attributes={
                        "db.system": "sqlite",
                        "db.name": "todo.db",
                        "db.statement": statement,
                        "db.operation": statement.split(" ", 1)[0],
                        "db.sql.table": "tasks",
                        "net.peer.name": "localhost",
                        "code.namespace": "sqlalchemy.engine",
                        "thread.id": thread,
                        "thread.name": "MainThread",
                        "db.rows": rng.randrange(0, 50),
                    },
                )
            )
        return spans

    def spans(self, count: int) -> Iterator[list[Span]]:
        """Yield whole traces until ``count`` spans (rounded up to whole traces) are out."""
        produced = 0
        while produced < count:
            trace = self.trace()
            produced += len(trace)
            yield trace


# --- OTLP ---------------------------------------------------------------------------


def _any_value(value: AttrValue) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def _key_values(attributes: Mapping[str, AttrValue]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_any_value(v)) for k, v in attributes.items()]


def otlp_request(spans: Sequence[Span]) -> ExportTraceServiceRequest:
    """Encode ``spans`` as one OTLP request, grouped by resource and scope as SDKs do."""
    # Resources hold a dict (unhashable): group by identity; the generator shares them.
    groups: dict[int, tuple[Resource, dict[Scope, list[Span]]]] = {}
    for span in spans:
        _, scopes = groups.setdefault(id(span.resource), (span.resource, {}))
        scopes.setdefault(span.scope, []).append(span)
    request = ExportTraceServiceRequest()
    for resource, scopes in groups.values():
        resource_spans = ResourceSpans(
            resource=PbResource(attributes=_key_values(resource.attributes))
        )
        for scope, members in scopes.items():
            scope_spans = ScopeSpans(
                scope=InstrumentationScope(name=scope.name, version=scope.version)
            )
            for s in members:
                scope_spans.spans.append(
                    PbSpan(
                        trace_id=bytes.fromhex(s.trace_id),
                        span_id=bytes.fromhex(s.span_id),
                        parent_span_id=bytes.fromhex(s.parent_span_id) if s.parent_span_id else b"",
                        name=s.name,
                        kind=PbSpan.SpanKind.ValueType(int(s.kind)),
                        start_time_unix_nano=s.start_unix_nano,
                        end_time_unix_nano=s.end_unix_nano,
                        attributes=_key_values(s.attributes),
                        status=Status(
                            code=Status.StatusCode.ValueType(int(s.status_code)),
                            message=s.status_message,
                        ),
                    )
                )
            resource_spans.scope_spans.append(scope_spans)
        request.resource_spans.append(resource_spans)
    return request


class IdTemplate:
    """Serialised OTLP request made new per send by byte substitution.

    Every trace id of the template starts with an 8-byte marker and every span id
    (and parent span id) with a 4-byte marker; :meth:`render` replaces both with
    bytes derived from a sequence number, so each rendered request carries new
    trace and span ids while staying a valid message of the same size.

    It also moves every timestamp (the spans' start and end) later
    by ``sequence * time_step_ns``, the time the template covers: request n + 1
    holds spans that started after those of request n, as the batches of a live
    app do. (Sending the same timestamps over and over would make every request
    land in the middle of the store's time-ordered indexes, a load no real sender
    produces.) Timestamps are fixed64 fields, so they are rewritten in place.

    :meth:`save` and :meth:`load` carry a template to the sender process.
    """

    def __init__(self, spans: Sequence[Span], *, seed: int) -> None:
        rng = random.Random(seed)
        self.trace_marker = rng.getrandbits(64).to_bytes(8, "big")
        self.span_marker = rng.getrandbits(32).to_bytes(4, "big")
        marked = [
            Span(
                trace_id=(self.trace_marker + bytes.fromhex(s.trace_id)[8:]).hex(),
                span_id=(self.span_marker + bytes.fromhex(s.span_id)[4:]).hex(),
                parent_span_id=(
                    (self.span_marker + bytes.fromhex(s.parent_span_id)[4:]).hex()
                    if s.parent_span_id
                    else None
                ),
                name=s.name,
                kind=s.kind,
                start_unix_nano=s.start_unix_nano,
                end_unix_nano=s.end_unix_nano,
                resource=s.resource,
                scope=s.scope,
                attributes=s.attributes,
                status_code=s.status_code,
                status_message=s.status_message,
            )
            for s in spans
        ]
        self.span_count = len(marked)
        self.trace_suffixes = sorted({bytes.fromhex(s.trace_id)[8:] for s in marked})
        self.payload = otlp_request(marked).SerializeToString()
        ids = sum(1 for s in marked if s.parent_span_id) + len(marked)
        # A marker that also occurs by chance elsewhere would corrupt the message.
        if self.payload.count(self.trace_marker) != len(marked) or (
            self.payload.count(self.span_marker) != ids
        ):
            raise ValueError("marker collision: pick another seed")
        self.times = _time_offsets(self.payload, marked)
        first = min(s.start_unix_nano for s in marked)
        last = max(s.end_unix_nano for s in marked)
        self.time_step_ns = last - first + 1

    def render(self, sequence: int) -> bytes:
        """Return the request with ids unique to ``sequence`` (0 <= sequence < 2**32)."""
        body = bytearray(render_ids(self.payload, self.trace_marker, self.span_marker, sequence))
        shift = sequence * self.time_step_ns
        pack_into = _FIXED64.pack_into
        for offset, value in self.times:
            pack_into(body, offset, value + shift)
        return bytes(body)

    def trace_ids(self, sequence: int) -> list[str]:
        """Return the trace ids (hex) that :meth:`render` gives for ``sequence``."""
        prefix = trace_prefix(sequence)
        return [(prefix + suffix).hex() for suffix in self.trace_suffixes]

    def save(self, path: Path) -> None:
        """Write the template to ``path`` (JSON), for :meth:`load` in another process."""
        path.write_text(
            json.dumps(
                {
                    "payload": base64.b64encode(self.payload).decode("ascii"),
                    "trace_marker": self.trace_marker.hex(),
                    "span_marker": self.span_marker.hex(),
                    "trace_suffixes": [s.hex() for s in self.trace_suffixes],
                    "span_count": self.span_count,
                    "times": self.times,
                    "time_step_ns": self.time_step_ns,
                }
            )
        )

    @classmethod
    def load(cls, path: Path) -> IdTemplate:
        """Read a template written by :meth:`save`."""
        saved = json.loads(path.read_text())
        template = cls.__new__(cls)
        template.payload = base64.b64decode(saved["payload"])
        template.trace_marker = bytes.fromhex(saved["trace_marker"])
        template.span_marker = bytes.fromhex(saved["span_marker"])
        template.trace_suffixes = [bytes.fromhex(s) for s in saved["trace_suffixes"]]
        template.span_count = int(saved["span_count"])
        template.times = [(int(offset), int(value)) for offset, value in saved["times"]]
        template.time_step_ns = int(saved["time_step_ns"])
        return template


_FIXED64 = struct.Struct("<Q")


def _time_offsets(payload: bytes, spans: Sequence[Span]) -> list[tuple[int, int]]:
    """Return (offset, value) of every timestamp of ``spans`` in their serialised request.

    Raises:
        ValueError: a timestamp's eight bytes occur more often than the spans
            hold it (by chance, inside other bytes): pick other times.
    """
    expected = Counter(t for s in spans for t in (s.start_unix_nano, s.end_unix_nano))
    found: list[tuple[int, int]] = []
    for value, count in expected.items():
        needle = _FIXED64.pack(value)
        offsets = [m.start() for m in re.finditer(re.escape(needle), payload)]
        if len(offsets) != count:
            raise ValueError(f"timestamp {value} occurs {len(offsets)} times, not {count}")
        found.extend((offset, value) for offset in offsets)
    return sorted(found)


def trace_prefix(sequence: int) -> bytes:
    """Return the first 8 bytes of every trace id of request number ``sequence``."""
    return (0x5EED_0000_0000_0000 | sequence).to_bytes(8, "big")


def render_ids(payload: bytes, trace_marker: bytes, span_marker: bytes, sequence: int) -> bytes:
    """Return ``payload`` with its id markers replaced by bytes unique to ``sequence``."""
    return payload.replace(trace_marker, trace_prefix(sequence)).replace(
        span_marker, sequence.to_bytes(4, "big")
    )
