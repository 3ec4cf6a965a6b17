"""A minimal OTLP/gRPC sink: acknowledges every export and counts what it got.

The app-overhead benchmark points the instrumented app at this sink rather
than at otelviewer so that it measures what telemetry costs the *app*: the
sink does the least a backend can do (decode and acknowledge), it runs on the
load generator's core, and otelviewer's own ingest speed is measured by the
ingest benchmark. The counts let the benchmark check that every span of every
request really left the app (100 % sampling, nothing dropped).

Usage::

    python bench/otlp_sink.py --port 4317

On SIGINT or SIGTERM it prints one JSON line with the totals, e.g.
``{"spans": 1200, "log_records": 400, "metric_points": 36, "exports": 12}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from concurrent import futures
from dataclasses import asdict, dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

logger = logging.getLogger(__name__)

#: gRPC worker threads: a few exporters (traces, metrics, logs) call at once.
WORKERS = 4
#: The app's exporters send at most a few MiB per call (batch of 512 spans).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass
class Counts:
    """What the sink received."""

    spans: int = 0
    log_records: int = 0
    metric_points: int = 0
    exports: int = 0


def _points(request: ExportMetricsServiceRequest) -> int:
    total = 0
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    total += len(getattr(metric, kind).data_points)
    return total


class Sink:
    """The three OTLP Export methods, counting items under a lock."""

    def __init__(self) -> None:
        self.counts = Counts()
        self._lock = threading.Lock()

    def traces(self, request: ExportTraceServiceRequest, _: Any) -> ExportTraceServiceResponse:
        n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        with self._lock:
            self.counts.spans += n
            self.counts.exports += 1
        return ExportTraceServiceResponse()

    def logs(self, request: ExportLogsServiceRequest, _: Any) -> ExportLogsServiceResponse:
        n = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
        with self._lock:
            self.counts.log_records += n
            self.counts.exports += 1
        return ExportLogsServiceResponse()

    def metrics(self, request: ExportMetricsServiceRequest, _: Any) -> ExportMetricsServiceResponse:
        n = _points(request)
        with self._lock:
            self.counts.metric_points += n
            self.counts.exports += 1
        return ExportMetricsServiceResponse()


def _handler(service: str, method: Any, request_type: Any) -> grpc.GenericRpcHandler[Any, Any]:
    return grpc.method_handlers_generic_handler(
        service,
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                method,
                request_deserializer=request_type.FromString,
                response_serializer=lambda response: response.SerializeToString(),
            )
        },
    )


def serve(host: str, port: int) -> tuple[grpc.Server, Sink]:
    """Start the sink on ``host:port`` and return the server and its counters."""
    sink = Sink()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=WORKERS),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
    )
    server.add_generic_rpc_handlers(
        (
            _handler(
                "opentelemetry.proto.collector.trace.v1.TraceService",
                sink.traces,
                ExportTraceServiceRequest,
            ),
            _handler(
                "opentelemetry.proto.collector.logs.v1.LogsService",
                sink.logs,
                ExportLogsServiceRequest,
            ),
            _handler(
                "opentelemetry.proto.collector.metrics.v1.MetricsService",
                sink.metrics,
                ExportMetricsServiceRequest,
            ),
        )
    )
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise SystemExit(f"otlp_sink: cannot listen on {host}:{port}")
    server.start()
    return server, sink


def main() -> None:
    """Serve until SIGINT/SIGTERM, then print the totals as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server, sink = serve(args.host, args.port)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    server.stop(grace=1).wait()
    print(json.dumps(asdict(sink.counts)), flush=True)


if __name__ == "__main__":
    main()
