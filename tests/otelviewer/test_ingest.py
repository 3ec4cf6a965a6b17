"""The ingest pipeline (``otelviewer.receiver.ingest``): decode on one thread, commit on another.

Driven with real OTLP request bodies and the real SqliteStore; the receivers'
own tests (gRPC, HTTP) run through it too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otelviewer.model import Batch
from otelviewer.receiver.ingest import Ingest, StagedWriter
from otelviewer.receiver.otlp import TRACES, DecodeError
from otelviewer.store.contract import StoreUnavailable, TraceQueryParams
from otelviewer.store.sqlite import PreparedWrite, SqliteStore
from tests.support import eventually

T0 = 1_700_000_000_000_000_000


def request(trace: int, spans: int = 2) -> bytes:
    """An OTLP/protobuf trace export: ``spans`` spans of trace number ``trace``."""
    req = ExportTraceServiceRequest()
    resource_spans = req.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="todo"))
    )
    scope_spans = resource_spans.scope_spans.add()
    for n in range(1, spans + 1):
        scope_spans.spans.append(
            Span(
                trace_id=trace.to_bytes(16, "big"),
                span_id=n.to_bytes(8, "big"),
                parent_span_id=(n - 1).to_bytes(8, "big") if n > 1 else b"",
                name="GET /",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=T0 + trace,
                end_time_unix_nano=T0 + trace + 1_000,
                attributes=[KeyValue(key="n", value=AnyValue(int_value=n))],
            )
        )
    return req.SerializeToString()


def tid(n: int) -> str:
    return f"{n:032x}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "i.db", retention_interval_s=0, write_timeout_s=0.5) as s:
        yield s


@pytest.fixture
def ingest(store: SqliteStore) -> Iterator[Ingest]:
    pipeline = Ingest(store)
    yield pipeline
    pipeline.close()


def test_a_request_is_stored_when_export_returns(store: SqliteStore, ingest: Ingest) -> None:
    assert isinstance(store, StagedWriter)
    decoded = ingest.export(TRACES, request(1))
    assert (len(decoded.batch.spans), decoded.rejected) == (2, 0)
    [trace] = store.get_traces([tid(1)])
    assert [(s.span_id, s.parent_span_id, s.attributes) for s in trace] == [
        ("0000000000000001", None, {"n": 1}),
        ("0000000000000002", "0000000000000001", {"n": 2}),
    ]


def test_an_undecodable_body_raises_and_the_pipeline_goes_on(
    store: SqliteStore, ingest: Ingest
) -> None:
    with pytest.raises(DecodeError, match="not a valid ExportTraceServiceRequest"):
        ingest.export(TRACES, b"\xff\xff not protobuf")
    with pytest.raises(DecodeError, match="not valid JSON"):
        ingest.export(TRACES, b"{", is_json=True)
    ingest.export(TRACES, request(2))
    assert store.find_trace_ids(TraceQueryParams()) == [tid(2)]


def test_a_busy_store_is_unavailable_and_nothing_is_half_written(
    store: SqliteStore, ingest: Ingest
) -> None:
    with store._write_lock, pytest.raises(StoreUnavailable, match="busy"):
        ingest.export(TRACES, request(3))
    assert store.find_trace_ids(TraceQueryParams()) == []
    ingest.export(TRACES, request(3))  # the sender's retry
    assert len(store.get_traces([tid(3)])[0]) == 2


def test_requests_ready_together_are_committed_together(tmp_path: Path) -> None:
    # A writer that waits as long as it must for the lock (the test holds it), so
    # that the first request waits in the committing thread while the others queue.
    with SqliteStore(tmp_path / "g.db", retention_interval_s=0, write_timeout_s=60) as store:
        ingest = Ingest(store)
        try:
            ingest.export(TRACES, request(1))  # the resource and operation are known from now on
            statements: list[str] = []
            store._writer.set_trace_callback(statements.append)
            done: list[int] = []
            prepared: list[object] = []
            real_prepare = store.prepare

            def counting_prepare(batch: Batch) -> PreparedWrite:
                write = real_prepare(batch)
                prepared.append(write)
                return write

            store.prepare = counting_prepare  # type: ignore[method-assign]

            def export(n: int) -> None:
                ingest.export(TRACES, request(n))
                done.append(n)

            threads = [threading.Thread(target=export, args=(n,)) for n in (10, 11, 12)]
            with store._write_lock:  # the committing thread waits for the writer...
                for t in threads:
                    t.start()
                # ...while the decoding thread gets all three ready for it.
                eventually(
                    lambda: len(prepared) == 3 and ingest._decode_queue.unfinished_tasks == 0
                )
            for t in threads:
                t.join(timeout=30)
            store._writer.set_trace_callback(None)
        finally:
            ingest.close()
        assert sorted(done) == [10, 11, 12]
        # (SQLite reports a statement again for each trigger it runs: count distinct ones.)
        inserts = {s for s in statements if s.lstrip().startswith("INSERT OR IGNORE INTO spans")}
        # One by one would be three; the committing thread may have taken the first
        # alone before the others were ready.
        assert len(inserts) <= 2
        ids = store.find_trace_ids(TraceQueryParams(limit=10))
        assert sorted(ids) == [tid(1), tid(10), tid(11), tid(12)]


class ListWriter:
    """The simplest Writer of the contract: write() only, a list for a store."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.fail_next = False

    def write(self, batch: Batch) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("a bug in the writer")
        self.batches.append(batch)


def test_a_plain_writer_is_called_with_each_batch_and_its_errors_reach_the_caller() -> None:
    writer = ListWriter()
    assert not isinstance(writer, StagedWriter)
    pipeline = Ingest(writer)
    try:
        pipeline.export(TRACES, request(1))
        writer.fail_next = True
        with pytest.raises(RuntimeError, match="a bug in the writer"):
            pipeline.export(TRACES, request(2))
        pipeline.export(TRACES, request(3))
    finally:
        pipeline.close()
    assert [b.spans[0].trace_id for b in writer.batches] == [tid(1), tid(3)]


def test_after_close_exports_are_refused(store: SqliteStore) -> None:
    pipeline = Ingest(store)
    pipeline.export(TRACES, request(1))
    pipeline.close()
    pipeline.close()  # twice is fine
    with pytest.raises(StoreUnavailable, match="stopping"):
        pipeline.export(TRACES, request(2))
    assert store.find_trace_ids(TraceQueryParams()) == [tid(1)]
    assert not any(t.is_alive() for t in pipeline._threads)
