"""``kill -9`` during ingest: no acknowledged batch is lost, the database stays intact.

A sender process exports batches over OTLP/gRPC in a loop and prints the number
of each batch the server acknowledged. The server is killed with SIGKILL in the
middle of the stream; then the database is opened again and checked: SQLite's
integrity check passes, every acknowledged batch is there, and no batch is there
in part (one request is one transaction).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from otelviewer.store.contract import TraceQueryParams
from otelviewer.store.sqlite import SqliteStore
from tests.otelviewer.conftest import start_viewer
from tests.support import eventually, venv_env

pytestmark = pytest.mark.e2e

SPANS_PER_BATCH = 50
#: Acknowledged batches to wait for before the kill: enough that the kill lands
#: mid-stream, with requests in flight.
ACKED_BEFORE_KILL = 30

SENDER = r"""
import sys, grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as g
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

port, per_batch = int(sys.argv[1]), int(sys.argv[2])
stub = g.TraceServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
for batch in range(1, 100_000):
    req = ts.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value={"string_value": "crash"}))
    spans = rs.scope_spans.add().spans
    for n in range(per_batch):
        spans.append(Span(
            trace_id=batch.to_bytes(16, "big"), span_id=(n + 1).to_bytes(8, "big"),
            name=f"span {n}", start_time_unix_nano=1, end_time_unix_nano=2,
            attributes=[KeyValue(key="batch", value={"int_value": batch})]))
    try:
        stub.Export(req, timeout=10)
    except grpc.RpcError:
        sys.exit(0)  # the server is gone
    print(batch, flush=True)
"""


def test_kill_9_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    acked_path = tmp_path / "acked.txt"
    with start_viewer(tmp_path) as viewer, open(acked_path, "wb") as acked_file:
        sender = subprocess.Popen(
            [sys.executable, "-c", SENDER, str(viewer.grpc_port), str(SPANS_PER_BATCH)],
            stdout=acked_file,
            stderr=subprocess.DEVNULL,
            env=venv_env(),
        )
        try:
            eventually(lambda: len(acked_path.read_text().split()) >= ACKED_BEFORE_KILL, timeout=60)
            os.killpg(viewer.proc.pid, signal.SIGKILL)
            assert viewer.proc.wait(timeout=10) == -signal.SIGKILL
            assert sender.wait(timeout=30) == 0
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
    acked = [int(line) for line in acked_path.read_text().split()]
    assert acked == list(range(1, len(acked) + 1))
    assert len(acked) >= ACKED_BEFORE_KILL

    conn = sqlite3.connect(viewer.db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.execute("INSERT INTO span_search (span_search) VALUES ('integrity-check')")
    finally:
        conn.close()
    with SqliteStore(viewer.db_path, retention_interval_s=0) as store:
        stored = store.find_trace_ids(TraceQueryParams(service="crash", limit=1_000_000))
        traces = store.get_traces(stored)
        batches = {int(trace[0].trace_id, 16): len(trace) for trace in traces}
        assert set(acked) <= set(batches), "an acknowledged batch is missing"
        assert set(batches.values()) == {SPANS_PER_BATCH}, "a batch was stored in part"
        # at most the one request in flight at the kill got committed without its ack
        assert len(batches) - len(acked) <= 1
        assert store.find_trace_ids(TraceQueryParams(attributes={"batch": str(acked[-1])})) == [
            f"{acked[-1]:032x}"
        ]
