"""The OTLP/gRPC receiver (port 4317): TraceService, MetricsService, LogsService.

Usage::

    server = start_grpc_server(store, "127.0.0.1", 4317)
    ...
    server.stop(GRACE_S).wait()

The servicers subclass the generated ones from ``opentelemetry-proto``, but are
registered with a raw-bytes request deserializer: that way a body that is not
protobuf gets INVALID_ARGUMENT (grpcio would answer INTERNAL), and strings with
invalid UTF-8 are repaired (``otlp.Signal.parse``) instead of failing the call.

Status codes, per the OTLP specification:

=========================================  =====================================
what happened                              status (the sender...)
=========================================  =====================================
stored (maybe with rejected items)         OK, ``partial_success`` (does not retry)
body is not an OTLP request                INVALID_ARGUMENT (drops it)
larger than ``max_request_bytes``          RESOURCE_EXHAUSTED (grpcio's own check)
store busy or closed                       UNAVAILABLE (retries with backoff)
=========================================  =====================================
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from otelviewer.receiver.ingest import Ingest
from otelviewer.receiver.otlp import (
    DEFAULT_MAX_REQUEST_BYTES,
    LOGS,
    METRICS,
    TRACES,
    DecodeError,
    Signal,
)
from otelviewer.store.contract import StoreUnavailable

logger = logging.getLogger(__name__)

#: Threads that decode and write requests. Two cores: one thread decodes while
#: another is inside SQLite (which releases the GIL); more threads only queue on
#: the store's writer lock.
GRPC_WORKERS = 4
#: Requests accepted at once (running or queued); beyond this the sender gets
#: RESOURCE_EXHAUSTED and retries. Bounds memory to this many request bodies.
MAX_CONCURRENT_RPCS = 32
#: Seconds in-flight requests get to finish when the server stops (they are
#: short: one decode and one commit).
GRACE_S = 5.0


class PortInUse(OSError):
    """The gRPC port could not be bound."""


def _export(signal: Signal, ingest: Ingest, request: bytes, context: grpc.ServicerContext) -> Any:
    try:
        decoded = ingest.export(signal, request)
    except DecodeError as exc:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    except StoreUnavailable as exc:
        context.abort(grpc.StatusCode.UNAVAILABLE, f"the store is busy, retry later: {exc}")
    if decoded.rejected:
        logger.info("OTLP/gRPC %s: %s", signal.name, decoded.error_message)
    return signal.response_for(decoded)


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """Stores exported spans."""

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Decode, store, and answer with the rejected count (if any)."""
        return _export(TRACES, self.ingest, request, context)


class MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    """Stores exported metric points."""

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Decode, store, and answer with the rejected count (if any)."""
        return _export(METRICS, self.ingest, request, context)


class LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    """Stores exported log records."""

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Decode, store, and answer with the rejected count (if any)."""
        return _export(LOGS, self.ingest, request, context)


def _handler(service: Any, servicer: Any, signal: Signal) -> grpc.GenericRpcHandler[Any, Any]:
    export = grpc.unary_unary_rpc_method_handler(
        servicer.Export,
        request_deserializer=None,  # raw bytes: see the module docstring
        response_serializer=signal.response.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(service.full_name, {"Export": export})


def start_grpc_server(
    ingest: Ingest,
    host: str,
    port: int,
    *,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> grpc.Server:
    """Start the OTLP/gRPC receiver on ``host:port`` and return the running server.

    Raises:
        PortInUse: the address could not be bound.
    """
    server = grpc.server(
        ThreadPoolExecutor(max_workers=GRPC_WORKERS, thread_name_prefix="otelviewer-grpc"),
        options=[
            ("grpc.max_receive_message_length", max_request_bytes),
            # grpcio sets SO_REUSEPORT by default, which would let a second
            # otelviewer (or collector) bind the same port and steal requests.
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
    )
    server.add_generic_rpc_handlers(
        (
            _handler(
                trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"],
                TraceService(ingest),
                TRACES,
            ),
            _handler(
                metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"],
                MetricsService(ingest),
                METRICS,
            ),
            _handler(
                logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"],
                LogsService(ingest),
                LOGS,
            ),
        )
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise PortInUse(f"cannot listen on {address}") from exc
    if not bound:
        raise PortInUse(f"cannot listen on {address}")
    server.start()
    return server
