"""The store contract (``otelviewer.store.contract``) checked against SqliteStore.

Driven by small fixture traces built here; every assertion is on exact values.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from otelviewer.model import (
    UNKNOWN_SERVICE,
    AttrValue,
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
from otelviewer.store import sql
from otelviewer.store import sqlite as sqlite_store
from otelviewer.store.contract import (
    DependencyLink,
    LogQueryParams,
    MetricDescriptor,
    MetricQueryParams,
    Operation,
    StoreUnavailable,
    TraceQueryParams,
)
from otelviewer.store.sqlite import SchemaError, SqliteStore
from tests.support import eventually

T0 = 1_700_000_000_000_000_000  # a fixed "now" in Unix nanoseconds
MS = 1_000_000

TODO = Resource("todo", {"service.name": "todo", "service.version": "1.2.0", "host.name": "box"})
CLIENT = Resource("todo-client", {"service.name": "todo-client", "host.name": "box"})


def tid(n: int) -> str:
    return f"{n:032x}"


def sid(n: int) -> str:
    return f"{n:016x}"


def span(
    trace: int,
    span_no: int,
    *,
    parent: int | None = None,
    name: str = "GET /",
    kind: SpanKind = SpanKind.SERVER,
    start: int = T0,
    duration: int = 10 * MS,
    resource: Resource = TODO,
    attributes: dict[str, AttrValue] | None = None,
    status: StatusCode = StatusCode.UNSET,
) -> Span:
    return Span(
        trace_id=tid(trace),
        span_id=sid(span_no),
        parent_span_id=sid(parent) if parent is not None else None,
        name=name,
        kind=kind,
        start_unix_nano=start,
        end_unix_nano=start + duration,
        resource=resource,
        attributes=attributes or {},
        status_code=status,
    )


def log(
    body: AttrValue, *, time: int = T0, severity: int = 9, trace: int | None = None
) -> LogRecord:
    return LogRecord(
        time_unix_nano=time,
        observed_time_unix_nano=time + 1,
        severity_number=severity,
        severity_text="INFO" if severity < 13 else "WARN" if severity < 17 else "ERROR",
        body=body,
        resource=TODO,
        scope=Scope("todo", "1.2.0"),
        attributes={"code.lineno": 42},
        trace_id=tid(trace) if trace is not None else None,
        span_id=sid(1) if trace is not None else None,
    )


def point(value: float, *, time: int = T0, name: str = "todo.requests") -> MetricPoint:
    return MetricPoint(
        name=name,
        kind=MetricKind.SUM,
        resource=TODO,
        time_unix_nano=time,
        start_time_unix_nano=T0 - 60 * 1_000 * MS,
        description="Requests served",
        unit="{request}",
        scope=Scope("todo"),
        attributes={"http.route": "/"},
        value=value,
        is_monotonic=True,
        temporality=2,
    )


# --- round trip ----------------------------------------------------------------------


def test_a_span_comes_back_with_every_field(store: SqliteStore) -> None:
    full = Span(
        trace_id=tid(1),
        span_id=sid(2),
        parent_span_id=sid(1),
        name="todo.tasks.add",
        kind=SpanKind.INTERNAL,
        start_unix_nano=T0,
        end_unix_nano=T0 + 1234,
        resource=TODO,
        scope=Scope("todo", "1.2.0"),
        attributes={
            "todo.task.id": 7,
            "ratio": 0.5,
            "done": False,
            "tags": ["a", "b"],
            "nested": {"k": [1, 2]},
            "nothing": None,
            "text": "café <b>",
        },
        events=(SpanEvent(T0 + 5, "exception", {"exception.type": "ValueError"}),),
        links=(SpanLink(tid(9), sid(9), {"link.kind": "follows"}),),
        status_code=StatusCode.ERROR,
        status_message="boom",
        trace_state="vendor=1",
    )
    store.write(Batch(spans=(full,)))
    assert store.get_traces([tid(1)]) == [[full]]
    assert full.duration_nanos == 1234


def test_non_finite_floats_are_kept_as_text(store: SqliteStore) -> None:
    store.write(Batch(spans=(span(1, 1, attributes={"x": float("nan"), "y": float("inf")}),)))
    assert store.get_traces([tid(1)])[0][0].attributes == {"x": "nan", "y": "inf"}


def test_writing_the_same_span_twice_keeps_one_copy(store: SqliteStore) -> None:
    batch = Batch(spans=(span(1, 1), span(1, 2, parent=1)))
    store.write(batch)
    store.write(batch)
    store.write(Batch(spans=(span(1, 2, parent=1, name="changed"),)))
    [trace] = store.get_traces([tid(1)])
    assert [(s.span_id, s.name) for s in trace] == [(sid(1), "GET /"), (sid(2), "GET /")]
    assert store.find_trace_ids(TraceQueryParams(service="todo")) == [tid(1)]


def test_a_batch_of_old_and_new_spans_adds_and_indexes_only_the_new(store: SqliteStore) -> None:
    store.write(Batch(spans=(span(1, 1, attributes={"k": "a"}), span(1, 2, attributes={"k": "b"}))))
    store.write(
        Batch(
            spans=(
                span(1, 2, attributes={"k": "b"}),
                span(1, 3, attributes={"k": "c"}),
                span(1, 1, attributes={"k": "a"}),
                span(2, 1, attributes={"k": "c"}),
            )
        )
    )
    assert [len(t) for t in store.get_traces([tid(1), tid(2)])] == [3, 1]
    for value, expected in (("a", [1]), ("b", [1]), ("c", [2, 1])):
        query = TraceQueryParams(attributes={"k": value})
        assert store.find_trace_ids(query) == [tid(n) for n in expected]
    _assert_intact(store.path)


def test_logs_and_metric_points_written_twice_are_kept_once(store: SqliteStore) -> None:
    batch = Batch(logs=(log("hello", trace=1),), metrics=(point(3.0),))
    store.write(batch)
    store.write(batch)
    assert len(store.find_logs(LogQueryParams())) == 1
    assert len(store.get_metric_points(MetricQueryParams(name="todo.requests"))) == 1


def test_a_failing_batch_writes_nothing(store: SqliteStore) -> None:
    too_big_for_sqlite = 2**64
    bad = Batch(spans=(span(1, 1),), logs=(log("x", time=too_big_for_sqlite),))
    with pytest.raises(OverflowError):
        store.write(bad)
    assert store.get_traces([tid(1)]) == []
    assert store.get_services() == []
    store.write(Batch(spans=(span(1, 1),)))  # and the store still works
    assert len(store.get_traces([tid(1)])[0]) == 1


# --- not found ------------------------------------------------------------------------


def test_not_found_is_empty_not_an_error(store: SqliteStore) -> None:
    store.write(Batch(spans=(span(1, 1),)))
    assert store.get_traces([tid(404), "not-hex", "abcd", ""]) == []
    assert store.find_trace_ids(TraceQueryParams(service="nope")) == []
    assert store.find_trace_ids(TraceQueryParams(service="todo", attributes={"a": "b"})) == []
    assert store.get_operations("nope") == []
    assert store.find_logs(LogQueryParams(trace_id="zz")) == []
    assert store.get_metric_points(MetricQueryParams(name="nope")) == []
    assert store.get_dependencies(T0, 1) == []


def test_an_empty_store_answers_every_read(store: SqliteStore) -> None:
    assert store.get_services() == []
    assert store.find_trace_ids(TraceQueryParams()) == []
    assert store.get_metric_names() == []
    assert store.find_logs(LogQueryParams(text="x")) == []


# --- services, operations, ordering --------------------------------------------------------


def test_services_and_operations_are_sorted(store: SqliteStore) -> None:
    store.write(
        Batch(
            spans=(
                span(1, 1, name="POST /add"),
                span(1, 2, parent=1, name="todo.tasks.add", kind=SpanKind.INTERNAL),
                span(1, 3, parent=2, name="INSERT", kind=SpanKind.CLIENT),
                span(2, 1, name="GET /", resource=CLIENT, kind=SpanKind.CLIENT),
                span(3, 1, name="GET /"),
            )
        )
    )
    assert store.get_services() == ["todo", "todo-client"]
    assert store.get_operations("todo") == [
        Operation("GET /", SpanKind.SERVER),
        Operation("INSERT", SpanKind.CLIENT),
        Operation("POST /add", SpanKind.SERVER),
        Operation("todo.tasks.add", SpanKind.INTERNAL),
    ]
    assert store.get_operations("todo", SpanKind.CLIENT) == [Operation("INSERT", SpanKind.CLIENT)]


def test_search_returns_newest_first_up_to_the_limit(store: SqliteStore) -> None:
    store.write(Batch(spans=tuple(span(n, 1, start=T0 + n * MS) for n in (3, 1, 2, 5, 4))))
    assert store.find_trace_ids(TraceQueryParams(service="todo")) == [
        tid(n) for n in (5, 4, 3, 2, 1)
    ]
    assert store.find_trace_ids(TraceQueryParams(service="todo", limit=2)) == [tid(5), tid(4)]
    assert store.find_trace_ids(TraceQueryParams(service="todo", limit=0)) == []


def test_traces_come_in_the_order_asked_with_spans_by_start_time(store: SqliteStore) -> None:
    store.write(
        Batch(
            spans=(
                span(1, 2, parent=1, start=T0 + 2),
                span(1, 1, start=T0),
                span(2, 1, start=T0 + 1),
            )
        )
    )
    traces = store.get_traces([tid(2), tid(1)])
    assert [[s.span_id for s in t] for t in traces] == [[sid(1)], [sid(1), sid(2)]]
    assert traces[1][1].parent_span_id == sid(1)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (TraceQueryParams(service="todo", operation="POST /add"), [2]),
        (TraceQueryParams(service="todo", operation="GET"), [3]),
        (TraceQueryParams(operation="todo.tasks.add"), [2]),
        (TraceQueryParams(service="todo", span_kind=SpanKind.CLIENT), [2]),
        (TraceQueryParams(service="todo", duration_min_nanos=50 * MS), [3]),
        (TraceQueryParams(service="todo", duration_max_nanos=1 * MS), [2]),
        (TraceQueryParams(service="todo", start_min_unix_nano=T0 + 2 * MS), [3]),
        (TraceQueryParams(service="todo", start_max_unix_nano=T0 + 1 * MS), [2]),
        (TraceQueryParams(start_max_unix_nano=T0 + 1 * MS), [2, 1]),
        (TraceQueryParams(service="todo-client"), [1]),
        (TraceQueryParams(), [3, 2, 1]),
    ],
)
def test_search_criteria(store: SqliteStore, query: TraceQueryParams, expected: list[int]) -> None:
    store.write(
        Batch(
            spans=(
                span(1, 1, name="GET /", resource=CLIENT, kind=SpanKind.CLIENT, start=T0),
                span(2, 1, name="POST /add", start=T0 + 1 * MS),
                span(
                    2,
                    2,
                    parent=1,
                    name="todo.tasks.add",
                    kind=SpanKind.INTERNAL,
                    start=T0 + 1 * MS + 1,
                ),
                span(
                    2,
                    3,
                    parent=2,
                    name="INSERT",
                    kind=SpanKind.CLIENT,
                    duration=MS // 2,
                    start=T0 + 1 * MS + 2,
                ),
                span(3, 1, name="GET", duration=100 * MS, start=T0 + 3 * MS),
            )
        )
    )
    assert store.find_trace_ids(query) == [tid(n) for n in expected]


# --- tag search (Jaeger semantics) ----------------------------------------------------------

LONG = "x" * 3000

TAGGED = (
    # trace 1: a server span and a DB span, each with part of the tags
    span(1, 1, start=T0 + 1, attributes={"http.route": "/api/tasks", "http.status_code": 200}),
    span(
        1,
        2,
        parent=1,
        kind=SpanKind.CLIENT,
        start=T0 + 2,
        attributes={"db.system": "sqlite", "db.statement": LONG},
    ),
    # trace 2: one span with everything, an error
    span(
        2,
        1,
        start=T0 + 3,
        attributes={
            "http.route": "/api/tasks/<int:task_id>",
            "http.status_code": 404,
            "ok": False,
            "ratio": 0.25,
            "name": 'say "hi"\nbye',
            "city": "Zürich",
            "slash": "/",
        },
        status=StatusCode.ERROR,
    ),
    # trace 3: another service on the same host
    span(
        3,
        1,
        start=T0 + 4,
        resource=CLIENT,
        kind=SpanKind.CLIENT,
        attributes={"http.route": "/api/tasks"},
    ),
)


@pytest.mark.parametrize(
    ("service", "tags", "expected"),
    [
        ("todo", {"http.route": "/api/tasks"}, [1]),
        (None, {"http.route": "/api/tasks"}, [3, 1]),
        ("todo", {"http.status_code": "200"}, [1]),  # an int, compared as text
        ("todo", {"ok": "false"}, [2]),  # a bool, as Jaeger writes it
        ("todo", {"ratio": "0.25"}, [2]),
        ("todo", {"name": 'say "hi"\nbye'}, [2]),
        ("todo", {"city": "Zürich"}, [2]),
        ("todo", {"city": "Zurich"}, []),  # exact, not folded
        ("todo", {"slash": "/"}, [2]),  # no letters or digits: checked exactly anyway
        ("todo", {"db.statement": LONG}, [1]),
        ("todo", {"db.statement": LONG[:-1]}, []),
        ("todo", {"http.route": "/api"}, []),  # a prefix is not a match
        ("todo", {"http.route": "/API/tasks"}, []),  # case matters
        ("todo", {"http.route": "/api/tasks", "db.system": "sqlite"}, []),  # two spans
        ("todo", {"http.route": "/api/tasks", "http.status_code": "200"}, [1]),
        # resource attributes count, together with the span's own
        ("todo", {"service.version": "1.2.0"}, [2, 1]),
        (None, {"host.name": "box"}, [3, 2, 1]),
        ("todo", {"host.name": "box", "http.status_code": "404"}, [2]),
        ("todo", {"service.version": "1.2.0", "db.system": "sqlite"}, [1]),
        ("todo-client", {"service.version": "1.2.0"}, []),
        # the tags Jaeger derives from span fields
        ("todo", {"error": "true"}, [2]),
        ("todo", {"otel.status_code": "ERROR"}, [2]),
        ("todo", {"span.kind": "client"}, [1]),
        ("todo", {"span.kind": "server", "error": "true"}, [2]),
        ("todo", {"span.kind": "client", "http.route": "/api/tasks"}, []),
        ("todo", {"http.status_code": "200", "error": "true"}, []),
    ],
)
def test_tag_search(
    store: SqliteStore, service: str | None, tags: dict[str, str], expected: list[int]
) -> None:
    store.write(Batch(spans=TAGGED))
    query = TraceQueryParams(service=service, attributes=tags)
    assert store.find_trace_ids(query) == [tid(n) for n in expected]


def test_a_span_attribute_named_like_a_derived_tag_matches_too(store: SqliteStore) -> None:
    store.write(Batch(spans=(span(1, 1, attributes={"error": True}), span(2, 1))))
    assert store.find_trace_ids(TraceQueryParams(service="todo", attributes={"error": "true"})) == [
        tid(1)
    ]


def test_tag_search_combines_with_operation_and_time(store: SqliteStore) -> None:
    store.write(Batch(spans=TAGGED))
    query = TraceQueryParams(
        service="todo",
        operation="GET /",
        attributes={"http.route": "/api/tasks"},
        start_min_unix_nano=T0,
        start_max_unix_nano=T0 + 10,
    )
    assert store.find_trace_ids(query) == [tid(1)]
    late = TraceQueryParams(
        service="todo", attributes={"http.route": "/api/tasks"}, start_min_unix_nano=T0 + 2
    )
    assert store.find_trace_ids(late) == []


# --- dependencies ---------------------------------------------------------------------------


def test_dependencies_count_calls_between_services(store: SqliteStore) -> None:
    store.write(
        Batch(
            spans=(
                span(1, 1, resource=CLIENT, kind=SpanKind.CLIENT),
                span(1, 2, parent=1),
                span(1, 3, parent=2, kind=SpanKind.INTERNAL),
                span(2, 1, resource=CLIENT, kind=SpanKind.CLIENT),
                span(2, 2, parent=1),
            )
        )
    )
    assert store.get_dependencies(T0 + 1, 10) == [DependencyLink("todo-client", "todo", 2)]
    assert store.get_dependencies(T0 - 1000, 10) == []


# --- logs and metrics -----------------------------------------------------------------------


def test_logs_by_trace_service_severity_and_text(store: SqliteStore) -> None:
    records = (
        log("Task added", time=T0 + 1, trace=1),
        log({"event": "deleted", "id": 3}, time=T0 + 2, severity=13, trace=2),
        log("Database ERROR: locked", time=T0 + 3, severity=17),
    )
    store.write(Batch(logs=records))
    assert store.find_logs(LogQueryParams()) == list(reversed(records))
    assert store.find_logs(LogQueryParams(trace_id=tid(1))) == [records[0]]
    assert store.find_logs(LogQueryParams(min_severity_number=13)) == [records[2], records[1]]
    assert store.find_logs(LogQueryParams(text="error")) == [records[2]]
    assert store.find_logs(LogQueryParams(text="DELETED")) == [records[1]]
    assert store.find_logs(LogQueryParams(service="todo", limit=1)) == [records[2]]
    assert store.find_logs(LogQueryParams(service="other")) == []
    assert store.find_logs(
        LogQueryParams(start_min_unix_nano=T0 + 2, start_max_unix_nano=T0 + 2)
    ) == [records[1]]


def test_metric_points_of_every_kind(store: SqliteStore) -> None:
    gauge = MetricPoint(
        name="todo.tasks.open",
        kind=MetricKind.GAUGE,
        resource=TODO,
        time_unix_nano=T0,
        unit="{task}",
        value=4.0,
    )
    histogram = MetricPoint(
        name="http.server.duration",
        kind=MetricKind.HISTOGRAM,
        resource=TODO,
        time_unix_nano=T0,
        start_time_unix_nano=T0 - 5,
        unit="ms",
        attributes={"http.route": "/"},
        temporality=2,
        histogram=HistogramValue(3, 12.5, (1, 2, 0), (5.0, 10.0), 1.5, 7.0),
    )
    sums = (point(1.0, time=T0 + 2), point(2.0, time=T0 + 1))
    store.write(Batch(metrics=(gauge, histogram, *sums)))
    assert store.get_metric_names() == [
        MetricDescriptor("http.server.duration", MetricKind.HISTOGRAM, "ms", ""),
        MetricDescriptor("todo.requests", MetricKind.SUM, "{request}", "Requests served"),
        MetricDescriptor("todo.tasks.open", MetricKind.GAUGE, "{task}", ""),
    ]
    assert store.get_metric_points(MetricQueryParams(name="todo.tasks.open")) == [gauge]
    assert store.get_metric_points(MetricQueryParams(name="http.server.duration")) == [histogram]
    assert store.get_metric_points(MetricQueryParams(name="todo.requests")) == [sums[1], sums[0]]
    later = MetricQueryParams(name="todo.requests", start_min_unix_nano=T0 + 2, service="todo")
    assert store.get_metric_points(later) == [sums[0]]


# --- retention ------------------------------------------------------------------------------


def test_retention_deletes_what_is_too_old(tmp_path: Path) -> None:
    day = 86_400 * 1_000_000_000
    with SqliteStore(tmp_path / "r.db", max_age_s=86_400, retention_interval_s=0) as store:
        store.write(
            Batch(
                spans=(
                    span(1, 1, start=T0 - 2 * day, attributes={"k": "old"}),
                    span(2, 1, start=T0, attributes={"k": "new"}),
                    span(3, 1, start=T0 - 2 * day, resource=CLIENT),
                ),
                logs=(log("old", time=T0 - 2 * day), log("new", time=T0)),
                metrics=(point(1.0, time=T0 - 2 * day), point(2.0, time=T0)),
            )
        )
        assert store.get_services() == ["todo", "todo-client"]
        deleted = store.enforce_retention(now_unix_nano=T0 + 1)
        assert deleted == {"spans": 2, "logs": 1, "metric_points": 1}
        assert store.get_services() == ["todo"]  # no spans left of todo-client
        assert store.get_traces([tid(1), tid(2)]) == [
            [span(2, 1, start=T0, attributes={"k": "new"})]
        ]
        assert store.find_trace_ids(TraceQueryParams(attributes={"k": "old"})) == []
        assert store.find_trace_ids(TraceQueryParams(attributes={"k": "new"})) == [tid(2)]
        assert [r.body for r in store.find_logs(LogQueryParams())] == ["new"]
        assert [
            p.value for p in store.get_metric_points(MetricQueryParams(name="todo.requests"))
        ] == [2.0]
        assert store.enforce_retention(now_unix_nano=T0 + 1) == {
            "spans": 0,
            "logs": 0,
            "metric_points": 0,
        }
        _assert_intact(store.path)
        store.write(Batch(spans=(span(3, 1, start=T0, resource=CLIENT),)))  # it comes back
        assert store.get_services() == ["todo", "todo-client"]


def test_retention_deletes_the_oldest_beyond_the_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("otelviewer.store.sqlite.RETENTION_BATCH_ROWS", 7)  # several batches
    with SqliteStore(
        tmp_path / "r.db", max_spans=20, max_logs=3, max_metric_points=2, retention_interval_s=0
    ) as store:
        for n in range(1, 51):  # inserted in this order; start times reversed on purpose
            store.write(Batch(spans=(span(n, 1, start=T0 - n, attributes={"n": n}),)))
        store.write(Batch(logs=tuple(log(f"l{n}", time=T0 + n) for n in range(5))))
        store.write(Batch(metrics=tuple(point(float(n), time=T0 + n) for n in range(5))))
        deleted = store.enforce_retention(now_unix_nano=T0)
        assert deleted == {"spans": 30, "logs": 2, "metric_points": 3}
        kept = store.find_trace_ids(TraceQueryParams(limit=100))
        assert sorted(kept) == sorted(tid(n) for n in range(31, 51))
        assert store.find_trace_ids(TraceQueryParams(attributes={"n": "30"})) == []
        assert store.find_trace_ids(TraceQueryParams(attributes={"n": "31"})) == [tid(31)]
        assert [r.body for r in store.find_logs(LogQueryParams())] == ["l4", "l3", "l2"]
        points = store.get_metric_points(MetricQueryParams(name="todo.requests"))
        assert [p.value for p in points] == [3.0, 4.0]
        _assert_intact(store.path)


def test_retention_runs_in_the_background(tmp_path: Path) -> None:
    now = time.time_ns()
    with SqliteStore(tmp_path / "r.db", max_spans=1, retention_interval_s=0.05) as store:
        store.write(Batch(spans=(span(1, 1, start=now), span(2, 1, start=now))))
        eventually(lambda: len(store.find_trace_ids(TraceQueryParams())) == 1)
        assert store.find_trace_ids(TraceQueryParams()) == [tid(2)]


def _assert_intact(path: str) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.execute("INSERT INTO span_search (span_search) VALUES ('integrity-check')")
    finally:
        conn.close()


# --- concurrency, availability, schema ------------------------------------------------------


def test_reads_do_not_wait_for_a_long_write(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with SqliteStore(path, retention_interval_s=0, write_timeout_s=0.2) as store:
        store.write(Batch(spans=(span(1, 1),)))
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another writer holds the lock...
            other.execute("DELETE FROM spans")
            result: list[list[str]] = []
            reader = threading.Thread(
                target=lambda: result.append(store.find_trace_ids(TraceQueryParams()))
            )
            reader.start()
            reader.join(timeout=5)
            assert result == [[tid(1)]]  # ...and reads see the last committed state
            assert store.get_traces([tid(1)])[0][0].span_id == sid(1)
            with pytest.raises(StoreUnavailable):  # a writer that cannot get in says so
                store.write(Batch(spans=(span(2, 1),)))
        finally:
            other.execute("ROLLBACK")
            other.close()
        store.write(Batch(spans=(span(2, 1),)))
        assert store.find_trace_ids(TraceQueryParams()) == [tid(2), tid(1)]


def test_concurrent_writers_each_commit_whole_batches(store: SqliteStore) -> None:
    def writer(base: int) -> None:
        for n in range(base, base + 20):
            store.write(Batch(spans=(span(n, 1), span(n, 2, parent=1))))

    threads = [threading.Thread(target=writer, args=(b,)) for b in (1000, 2000, 3000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = store.find_trace_ids(TraceQueryParams(limit=1000))
    assert len(ids) == 60
    assert all(len(t) == 2 for t in store.get_traces(ids))


def test_the_wal_stays_bounded_while_writes_never_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite starts a WAL over only once a checkpoint has copied all of it, which a
    # PASSIVE checkpoint never does while a writer keeps appending: the store must
    # restart it itself, or the file grows with everything ever written.
    monkeypatch.setattr(sqlite_store, "WAL_RESTART_BYTES", 256 * 1024)
    path = tmp_path / "w.db"
    attributes: dict[str, AttrValue] = {f"key.{k}": "v" * 40 for k in range(10)}
    with SqliteStore(path, retention_interval_s=0, checkpoint_interval_s=0.01) as store:
        for n in range(300):  # about 25 MB of WAL frames in all
            store.write(
                Batch(
                    spans=tuple(
                        span(n * 100 + k, 1, start=T0 + n * MS, attributes=attributes)
                        for k in range(100)
                    )
                )
            )
        wal_bytes = Path(f"{path}-wal").stat().st_size
        assert len(store.find_trace_ids(TraceQueryParams(limit=100_000))) == 30_000
    assert wal_bytes < 8 * 1024 * 1024
    _assert_intact(str(path))


def _commit_together(store: SqliteStore, batches: list[Batch]) -> list[BaseException | None]:
    """Commit ``batches`` in one call, as the ingest pipeline does; return each one's error."""
    writes = [store.prepare(b) for b in batches]
    store.commit(writes)
    assert all(w.finished.is_set() for w in writes)
    return [w.error for w in writes]


def test_writes_committed_together_are_one_transaction(store: SqliteStore) -> None:
    statements: list[str] = []
    store._writer.set_trace_callback(statements.append)
    errors = _commit_together(
        store, [Batch(spans=(span(n, 1), span(n, 2, parent=1))) for n in (1, 2, 3)]
    )
    store._writer.set_trace_callback(None)
    assert errors == [None, None, None]
    assert statements.count("COMMIT") == 1
    ids = store.find_trace_ids(TraceQueryParams(limit=100))
    assert sorted(ids) == [tid(1), tid(2), tid(3)]
    assert all(len(t) == 2 for t in store.get_traces(ids))


def test_spans_of_known_resources_and_operations_are_one_insert_statement(
    store: SqliteStore,
) -> None:
    statements: list[str] = []
    store._writer.set_trace_callback(statements.append)
    store.write(Batch(spans=(span(1, 1),)))  # a new resource and operation: a transaction
    first = list(statements)
    statements.clear()
    store.write(Batch(spans=(span(2, 1), span(2, 2, parent=1))))  # nothing new: one INSERT
    store._writer.set_trace_callback(None)
    assert first[0] == "BEGIN IMMEDIATE"
    assert first[-1] == "COMMIT"
    assert any(s.startswith("INSERT OR IGNORE INTO resources") for s in first)
    # ("-- " marks what SQLite runs inside a statement: the full-text index's own SQL.)
    ours = {s.strip().split(" (")[0] for s in statements if not s.startswith("-- ")}
    assert ours == {"INSERT OR IGNORE INTO spans"}
    # The trigger indexed them: tag search and trace lookup find them.
    assert store.find_trace_ids(TraceQueryParams(attributes={"span.kind": "server"})) == [
        tid(2),
        tid(1),
    ]
    assert [s.span_id for s in store.get_traces([tid(2)])[0]] == [sid(1), sid(2)]


def test_a_write_sqlite_refuses_fails_alone_when_committed_together(store: SqliteStore) -> None:
    # A time past 2262 does not fit an SQLite INTEGER: that write fails, and the
    # others of its transaction are retried one by one and stored.
    good = [Batch(spans=(span(n, 1), span(n, 2, parent=1))) for n in (1, 2, 3)]
    bad = Batch(spans=(span(4, 1, start=2**63),))
    errors = _commit_together(store, [good[0], bad, good[1], good[2]])
    assert [type(e) for e in errors] == [type(None), OverflowError, type(None), type(None)]
    ids = store.find_trace_ids(TraceQueryParams(limit=100))
    assert sorted(ids) == [tid(1), tid(2), tid(3)]
    assert all(len(t) == 2 for t in store.get_traces(ids))
    store.write(Batch(spans=(span(5, 1),)))  # and the store goes on
    assert tid(5) in store.find_trace_ids(TraceQueryParams(limit=100))
    _assert_intact(store.path)


def test_a_closed_or_read_only_store_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path, retention_interval_s=0)
    store.write(Batch(spans=(span(1, 1),)))
    with SqliteStore(path, read_only=True) as reader:
        assert reader.find_trace_ids(TraceQueryParams()) == [tid(1)]
        with pytest.raises(StoreUnavailable):
            reader.write(Batch(spans=(span(2, 1),)))
    store.close()
    with pytest.raises(StoreUnavailable):
        store.write(Batch(spans=(span(2, 1),)))


def test_the_schema_is_versioned(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    SqliteStore(path, retention_interval_s=0).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (sql.SCHEMA_VERSION,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.execute(f"PRAGMA user_version = {sql.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match="newer than this otelviewer"):
        SqliteStore(path)


def test_a_version_1_database_is_upgraded_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path, isolation_level=None)  # a span as the first release wrote it
    for statement in sqlite_store._split_script(sql.MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO resources (id, fingerprint, service, attributes) VALUES (1, 'r', 'todo', '{}')"
    )
    conn.execute(
        "INSERT INTO spans (trace_id, span_id, service, name, kind, start_ns, duration_ns,"
        " status_code, status_message, resource_id, scope_name, scope_version, trace_state,"
        " attributes) VALUES (?, ?, 'todo', 'GET /', 2, ?, 5, 0, '', 1, '', '', '', ?)",
        (bytes.fromhex(tid(1)), bytes.fromhex(sid(1)), T0, '{"http.route":"/"}'),
    )
    conn.execute(
        "INSERT INTO span_search (rowid, trace_hex, name, attributes)"
        " SELECT pk, trace_hex, name, attributes FROM spans"
    )
    conn.close()
    with SqliteStore(path, retention_interval_s=0) as store:
        store.write(Batch(spans=(span(2, 1, start=T0 + 1, attributes={"http.route": "/"}),)))
        assert store.find_trace_ids(TraceQueryParams(attributes={"http.route": "/"})) == [
            tid(2),
            tid(1),
        ]
        assert [s.span_id for s in store.get_traces([tid(1)])[0]] == [sid(1)]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (sql.SCHEMA_VERSION,)
    # Version 2: the full-text index merges 16 segments at a time; version 3: never
    # all at once before a level holds 64.
    config = dict(conn.execute("SELECT k, v FROM span_search_config"))
    assert config["automerge"] == 16
    assert config["crisismerge"] == 64
    conn.close()
    _assert_intact(str(path))


def test_a_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "todo.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY)")
    conn.close()
    with pytest.raises(SchemaError, match="not an otelviewer one"):
        SqliteStore(path)


def test_missing_folders_are_created(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "a" / "b" / "v.db", retention_interval_s=0) as store:
        store.write(Batch(spans=(span(1, 1, resource=Resource(UNKNOWN_SERVICE)),)))
        assert store.get_services() == [UNKNOWN_SERVICE]
