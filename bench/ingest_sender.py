"""The ingest benchmark's load generator: pre-serialised OTLP/gRPC trace exports.

Runs as its own process (``python -m bench.ingest_sender ...``, started by
bench/ingest.py) so that it does not share a GIL with what it measures. Several
threads ("streams"), each with its own gRPC channel, send the same serialised
``ExportTraceServiceRequest`` with ids made unique and times later per request
by :meth:`bench.spans.IdTemplate.render` (byte substitutions, no protobuf work).

Without ``--rate`` it sends as fast as the server acknowledges, for
``--warmup`` + ``--duration`` seconds, and reports the spans acknowledged inside
the measured window. With ``--rate`` it paces requests to that many spans per
second and sends exactly ``rate * duration`` spans (rounded to whole requests).
A request the server turns away with UNAVAILABLE or RESOURCE_EXHAUSTED is
retried after a pause, as the SDK's exporter does. One JSON line on stdout
reports the totals.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from bench.common import percentile, rounded
from bench.spans import IdTemplate

logger = logging.getLogger(__name__)

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#: Codes after which the SDK's exporter retries (the server asks for it).
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
#: Pause before a retry: short, so that a busy server is probed often.
RETRY_PAUSE_S = 0.05
#: Per-call deadline: an export that takes longer has failed.
CALL_TIMEOUT_S = 30.0
#: Room for a 512-span request (about 200 KB) with margin.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass
class Report:
    """What one sender run did."""

    requests: int = 0
    spans: int = 0
    #: Spans acknowledged inside the measured window (after the warm-up).
    window_spans: int = 0
    window_s: float = 0.0
    retries: int = 0
    failed_requests: int = 0
    rejected_spans: int = 0
    elapsed_s: float = 0.0
    call_ms: list[float] = field(default_factory=list)


class Sender:
    """Shared state of the sending threads."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.template = IdTemplate.load(Path(args.template))
        self.spans_per_request = self.template.span_count
        self.report = Report()
        self.lock = threading.Lock()
        self.next_request = 0
        self.t0 = 0.0
        rate = float(args.rate)
        self.interval = self.spans_per_request / rate if rate > 0 else 0.0
        self.total = (
            max(1, round(rate * args.duration / self.spans_per_request)) if rate > 0 else None
        )
        self.window_start = args.warmup
        self.window_end = args.warmup + args.duration

    def _take(self) -> int | None:
        """Return the next request number, or None when the run is over."""
        with self.lock:
            n = self.next_request
            if self.total is not None and n >= self.total:
                return None
            if self.total is None and time.monotonic() - self.t0 >= self.window_end:
                return None
            self.next_request += 1
            return n

    def stream(self) -> None:
        """Send requests until the run is over (one thread, one channel)."""
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        with grpc.insecure_channel(self.args.target, options=options) as channel:
            export = channel.unary_unary(EXPORT_METHOD, None, None)
            while (n := self._take()) is not None:
                if self.interval:
                    delay = self.t0 + n * self.interval - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                body = self.template.render(self.args.first_sequence + n)
                self._send(export, body)

    def _send(self, export: grpc.UnaryUnaryMultiCallable[bytes, bytes], body: bytes) -> None:
        while True:
            started = time.monotonic()
            try:
                answer = export(body, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as error:
                code = error.code() if isinstance(error, grpc.Call) else None
                if code in RETRYABLE:
                    with self.lock:
                        self.report.retries += 1
                    time.sleep(RETRY_PAUSE_S)
                    continue
                logger.warning("export failed: %s", error)
                with self.lock:
                    self.report.failed_requests += 1
                return
            done = time.monotonic()
            response = ExportTraceServiceResponse.FromString(answer)
            with self.lock:
                r = self.report
                r.requests += 1
                r.spans += self.spans_per_request
                r.rejected_spans += response.partial_success.rejected_spans
                r.call_ms.append((done - started) * 1e3)
                if self.window_start <= done - self.t0 <= self.window_end:
                    r.window_spans += self.spans_per_request
            return

    def run(self) -> Report:
        """Run every stream to the end and return the report."""
        threads = [
            threading.Thread(target=self.stream, name=f"stream-{i}")
            for i in range(self.args.streams)
        ]
        self.t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.report.elapsed_s = time.monotonic() - self.t0
        self.report.window_s = self.args.duration if self.total is None else self.report.elapsed_s
        if self.total is not None:
            self.report.window_spans = self.report.spans
        return self.report


def main() -> None:
    """Parse the arguments, send, and print the report as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port of the OTLP/gRPC receiver")
    parser.add_argument("--template", required=True, help="a file of IdTemplate.save()")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=0.0, help="spans/s; 0: as fast as acked")
    parser.add_argument("--first-sequence", type=int, default=0)
    args = parser.parse_args()
    report = Sender(args).run()
    out = asdict(report)
    calls = out.pop("call_ms")
    out["call_p50_ms"] = rounded(percentile(calls, 50) if calls else float("nan"), 2)
    out["call_p99_ms"] = rounded(percentile(calls, 99) if calls else float("nan"), 2)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
