"""otelviewer's ingest speed: spans/s over OTLP/gRPC, against the one-thread ceiling.

Method (issue 3, section 7):

* The payload is one serialised ``ExportTraceServiceRequest`` of 512 realistic
  spans (:mod:`bench.spans`: 64 traces of 8 spans, about ten attributes each,
  about 200 KB). Each send gets fresh trace and span ids and later timestamps
  by byte substitution (:class:`bench.spans.IdTemplate`), so every span is new
  to the store, each request's spans follow the previous request's in time as a
  live app's batches do, and the sender does no protobuf work.
* **Ceiling**: in this process, one thread, no network: parse the bytes, turn
  them into otelviewer's model with the receiver's own decoding function, and
  ``SqliteStore.write`` them into a fresh database, as fast as it goes.
* **Sustained**: a real ``otelviewer serve`` on a fresh database; a separate
  sender process (:mod:`bench.ingest_sender`, pinned to the load generator's
  core) keeps several gRPC streams busy for a warm-up and then a measured
  window; spans/s = spans acknowledged in the window / its length.
* **Uncached ceiling**: the receiver caches the JSON of each attribute it has
  seen (``otlp.OtlpAttributes``), and the template's attribute values repeat from
  request to request. Once per run, next to the first ceiling, the ceiling is
  also measured with nothing cached, as if every attribute value were new: the
  worst case, for comparison.
* **Rounds**: the full run measures ceiling and sustained rate three times, one
  after the other on the same server, and reports the medians (of the rates,
  and of each round's ratio): the shared machine's speed drifts by a fifth from
  minute to minute, and a round's two figures are taken a few seconds apart.
* **No loss at 10,000 spans/s**: the sender paces requests at that rate for a
  few seconds; afterwards every trace id it sent is looked up in the database
  (read through ``SqliteStore``) and the stored span count must equal the
  acknowledged count, with no request refused for good.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import free_port, running, wait_for_port

from bench.common import LOAD_CPU, ROOT, VENV_BIN, Goal, emit, median, pinned, ratio, rounded
from bench.spans import IdTemplate, TraceGenerator
from otelviewer.model import Batch

logger = logging.getLogger(__name__)

#: Spans per OTLP request: the SDK's default export batch (OTEL_BSP_MAX_EXPORT_BATCH_SIZE).
SPANS_PER_REQUEST = 512
#: Goals from issue 3.
SPANS_PER_S_GOAL = 30_000.0
RATIO_TO_CEILING_GOAL = 0.5
PACED_RATE = 10_000.0
#: Sequence numbers (id prefixes) of each phase, far apart so no two phases share ids.
CEILING_SEQUENCE = 0
SUSTAINED_SEQUENCE = 1_000_000
PACED_SEQUENCE = 2_000_000


#: Request sequence numbers each round may use (far more than a round sends).
ROUND_SEQUENCES = 100_000


@dataclass(frozen=True)
class Settings:
    """How long each phase runs, and how many rounds of ceiling + sustained."""

    ceiling_s: float
    warmup_s: float
    sustained_s: float
    paced_s: float
    #: Rounds of (ceiling, sustained), side by side; the medians are reported,
    #: as the machine's speed drifts from minute to minute.
    rounds: int
    #: Concurrent gRPC streams (each its own channel), as several apps would send.
    streams: int = 4


FULL = Settings(ceiling_s=4.0, warmup_s=2.0, sustained_s=8.0, paced_s=10.0, rounds=3)
QUICK = Settings(ceiling_s=3.0, warmup_s=1.0, sustained_s=4.0, paced_s=3.0, rounds=1)


def decoder() -> Callable[[bytes], Batch]:
    """Return the receiver's own decoding, from request bytes to a ``Batch``."""
    from otelviewer.receiver.otlp import TRACES

    def decode(body: bytes) -> Batch:
        return TRACES.decode(body).batch

    return decode


def template() -> IdTemplate:
    """Return the 512-span payload (the same in every run: seeded)."""
    generator = TraceGenerator(seed=42, start_unix_nano=time.time_ns())
    batch = [s for trace in generator.spans(SPANS_PER_REQUEST) for s in trace]
    return IdTemplate(batch[:SPANS_PER_REQUEST], seed=43)


def ceiling(
    payload: IdTemplate,
    db: Path,
    duration_s: float,
    first_sequence: int,
    *,
    cache_attributes: bool = True,
) -> float:
    """Decode and store requests in one thread, no network; return spans/s.

    With ``cache_attributes=False`` the receiver keeps no attribute in its cache
    (``otlp.MAX_CACHED_ATTRIBUTE_BYTES``), as if every attribute value of every
    span were new: the worst case for a sender whose values never repeat.
    """
    from otelviewer.receiver import otlp
    from otelviewer.store.sqlite import SqliteStore

    decode = decoder()
    kept_bytes = otlp.MAX_CACHED_ATTRIBUTE_BYTES
    if not cache_attributes:
        otlp._FRAGMENTS.clear()
        otlp.MAX_CACHED_ATTRIBUTE_BYTES = -1
    try:
        with SqliteStore(db, retention_interval_s=0) as store:
            store.write(decode(payload.render(first_sequence)))  # schema and caches warm
            sent = 0
            busy = 0.0
            n = 1
            while busy < duration_s:
                body = payload.render(first_sequence + n)  # the sender's work: not timed
                n += 1
                began = time.perf_counter()
                store.write(decode(body))
                busy += time.perf_counter() - began
                sent += payload.span_count
            return sent / busy
    finally:
        otlp.MAX_CACHED_ATTRIBUTE_BYTES = kept_bytes


@contextlib.contextmanager
def otelviewer(db: Path, log: Path) -> Iterator[int]:
    """Run ``otelviewer serve`` on a fresh database; yield its OTLP/gRPC port."""
    grpc_port = free_port()
    args = [
        str(VENV_BIN / "otelviewer"),
        "serve",
        "--host",
        "127.0.0.1",
        "--grpc-port",
        str(grpc_port),
        "--http-port",
        str(free_port()),
        "--ui-port",
        str(free_port()),
        "--db",
        str(db),
    ]
    with running(args, stdout_path=log):
        wait_for_port(grpc_port, timeout=60)
        yield grpc_port


def send(
    port: int,
    template_file: Path,
    *,
    streams: int,
    warmup_s: float,
    duration_s: float,
    rate: float,
    first_sequence: int,
) -> dict[str, Any]:
    """Run the sender process to the end; return its report."""
    args = pinned(
        LOAD_CPU,
        [
            str(VENV_BIN / "python"),
            "-m",
            "bench.ingest_sender",
            "--target",
            f"127.0.0.1:{port}",
            "--template",
            str(template_file),
            "--streams",
            str(streams),
            "--warmup",
            str(warmup_s),
            "--duration",
            str(duration_s),
            "--rate",
            str(rate),
            "--first-sequence",
            str(first_sequence),
        ],
    )
    done = subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=warmup_s + duration_s + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the sender failed ({done.returncode}):\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def stored_spans(db: Path, payload: IdTemplate, first_sequence: int, requests: int) -> int:
    """Count the spans stored for requests ``first_sequence`` .. + ``requests``."""
    from otelviewer.store.sqlite import SqliteStore

    ids = [
        trace_id
        for n in range(first_sequence, first_sequence + requests)
        for trace_id in payload.trace_ids(n)
    ]
    with SqliteStore(db, read_only=True, retention_interval_s=0) as store:
        return sum(len(trace) for trace in store.get_traces(ids))


def run(*, quick: bool) -> list[Goal]:
    """Run the ingest benchmark, print its lines, and return the goal checks."""
    settings = QUICK if quick else FULL
    payload = template()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    rounds: list[dict[str, Any]] = []
    try:
        template_file = workdir / "template.json"
        payload.save(template_file)
        db = workdir / "served.db"
        with otelviewer(db, workdir / "otelviewer.log") as port:
            for n in range(settings.rounds):
                offset = n * ROUND_SEQUENCES
                ceiling_spans_per_s = ceiling(
                    payload,
                    workdir / f"ceiling-{n}.db",
                    settings.ceiling_s,
                    CEILING_SEQUENCE + offset,
                )
                if n == 0:  # next to the first ceiling, while the server is idle
                    uncached = ceiling(
                        payload,
                        workdir / "ceiling-uncached.db",
                        settings.ceiling_s,
                        CEILING_SEQUENCE + settings.rounds * ROUND_SEQUENCES,
                        cache_attributes=False,
                    )
                    uncached_ratio = ratio(uncached, ceiling_spans_per_s)
                sustained = send(
                    port,
                    template_file,
                    streams=settings.streams,
                    warmup_s=settings.warmup_s,
                    duration_s=settings.sustained_s,
                    rate=0,
                    first_sequence=SUSTAINED_SEQUENCE + offset,
                )
                spans_per_s = sustained["window_spans"] / sustained["window_s"]
                rounds.append(
                    {
                        "bench": "ingest_round",
                        "round": n + 1,
                        "spans_per_s": rounded(spans_per_s, 0),
                        "ceiling_spans_per_s": rounded(ceiling_spans_per_s, 0),
                        "ratio_to_ceiling": rounded(ratio(spans_per_s, ceiling_spans_per_s)),
                        "window_s": sustained["window_s"],
                        "retries": sustained["retries"],
                        "failed_requests": sustained["failed_requests"],
                        "call_p50_ms": sustained["call_p50_ms"],
                        "call_p99_ms": sustained["call_p99_ms"],
                    }
                )
                emit(rounds[-1])
            paced = send(
                port,
                template_file,
                streams=settings.streams,
                warmup_s=0,
                duration_s=settings.paced_s,
                rate=PACED_RATE,
                first_sequence=PACED_SEQUENCE,
            )
        stored = stored_spans(
            db, payload, PACED_SEQUENCE, paced["requests"] + paced["failed_requests"]
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    spans_per_s = median([r["spans_per_s"] for r in rounds])
    to_ceiling = median([r["ratio_to_ceiling"] for r in rounds])
    emit(
        {
            "bench": "ingest",
            "spans_per_s": rounded(spans_per_s, 0),
            "ratio_to_ceiling": rounded(to_ceiling),
            "ceiling_spans_per_s": rounded(median([r["ceiling_spans_per_s"] for r in rounds]), 0),
            "rounds": len(rounds),
            "spans_per_request": payload.span_count,
            "request_bytes": len(payload.payload),
            "streams": settings.streams,
            "window_s": settings.sustained_s,
            "retries": sum(r["retries"] for r in rounds),
            "failed_requests": sum(r["failed_requests"] for r in rounds),
        }
    )
    emit(
        {
            "bench": "ingest_ceiling_uncached",
            "ceiling_spans_per_s": rounded(uncached, 0),
            "ratio_to_cached_ceiling": rounded(uncached_ratio),
            "note": "no attribute cached: every attribute value new (the worst case)",
        }
    )
    paced_rate = paced["spans"] / paced["elapsed_s"] if paced["elapsed_s"] else 0.0
    # Spans of every request sent, acknowledged or refused for good, minus those stored.
    lost = (paced["requests"] + paced["failed_requests"]) * payload.span_count - stored
    emit(
        {
            "bench": "ingest_paced",
            "target_spans_per_s": PACED_RATE,
            "achieved_spans_per_s": rounded(paced_rate, 0),
            "sent_spans": paced["spans"],
            "stored_spans": stored,
            "failed_requests": paced["failed_requests"],
            "retries": paced["retries"],
            "lost_spans": lost,
            "call_p99_ms": paced["call_p99_ms"],
        }
    )
    return [
        Goal("ingest spans/s (OTLP/gRPC, sustained)", spans_per_s, SPANS_PER_S_GOAL, "min"),
        Goal("ingest ratio to one-thread ceiling", to_ceiling, RATIO_TO_CEILING_GOAL, "min"),
        Goal("ingest spans lost at 10,000 spans/s", float(lost), 0.0, "max"),
        Goal("ingest paced rate reached (spans/s)", paced_rate, PACED_RATE * 0.95, "min"),
    ]
