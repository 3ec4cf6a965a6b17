"""otelviewer's query speed at 1,000,000 stored spans, over the Jaeger-compatible HTTP API.

Method (issue 3, section 7):

* A database of realistic traces (:mod:`bench.spans`: 8 spans per trace, about
  ten attributes each, four services) is written through
  ``SqliteStore.write`` in large batches, and cached in bench/results/ under a
  name that carries the store's schema version and the generator's version, so
  later runs start at once.
* A real ``otelviewer serve`` opens it (retention set so that it deletes
  nothing), and one client on the load generator's side asks, over keep-alive
  HTTP, for: a trace by id (``/api/traces/{id}``), a service search
  (``/api/traces?service=...&limit=20``) and a tag search
  (``/api/traces?service=...&tags={"http.target": "..."}&limit=20``), each with
  explicit ``start``/``end`` that cover the stored data. Ids, services and tag
  values are drawn from what was stored (plus a few tag values that match
  nothing), weighted as a developer's searches would be.
* Before the server starts, the database file is read once from start to end,
  so that it is in the operating system's cache, as it is for a viewer that has
  been running (and writing it): the benchmark measures queries, not a cold
  disk. (The run before it writes gigabytes, which can push the file out.)
* The 95th percentile of the wall-clock time per request, JSON body read, is
  reported for each kind.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import random
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.support import free_port, running, wait_for_http

from bench.common import RESULTS, VENV_BIN, Goal, emit, percentile, rounded
from bench.spans import SERVICES, SPANS_PER_TRACE, TraceGenerator

logger = logging.getLogger(__name__)

#: Bump when bench/spans.py changes what it generates: cached databases are rebuilt.
GENERATOR_VERSION = 1
#: Spans per ``SqliteStore.write`` while building: big transactions make it fast.
BUILD_BATCH_SPANS = 20_000
#: Every this-many traces, one trace id and its URL are kept as query samples.
SAMPLE_EVERY = 250
#: Time between two consecutive traces in the generated data (1 ms): a million
#: spans span a few minutes, as a busy local app's would.
TRACE_SPACING_NANOS = 1_000_000
#: Goals from issue 3 (p95, milliseconds).
TRACE_BY_ID_GOAL_MS = 50.0
SERVICE_SEARCH_GOAL_MS = 100.0
TAG_SEARCH_GOAL_MS = 300.0
#: Retention for the benchmark's server: keep everything that was generated.
KEEP_SPANS = 10_000_000
KEEP_AGE_DAYS = 3650
KEEP_AGE_S = KEEP_AGE_DAYS * 24 * 3600
#: The search limit the Jaeger UI sends by default.
SEARCH_LIMIT = 20
#: Tag values that match no span: a search that must find out quickly that nothing matches.
MISSING_TARGETS = ("/x", "/api/tasks/999999999")


@dataclass(frozen=True)
class Settings:
    """Database size and requests per kind of query."""

    spans: int
    requests: int
    warmup_requests: int = 10


FULL = Settings(spans=1_000_000, requests=200)
QUICK = Settings(spans=100_000, requests=60)


@dataclass
class Dataset:
    """What the generated database holds, for building queries (stored next to it)."""

    spans: int
    schema: str
    generator_version: int
    start_unix_nano: int
    end_unix_nano: int
    #: (trace id, service, http.target) of one trace in every SAMPLE_EVERY.
    samples: list[tuple[str, str, str]]
    build_s: float


def schema_key() -> str:
    """Return the store's schema version plus a digest of its DDL.

    The digest catches a schema edited during development without a version bump,
    so a cached database is never read by code that expects another layout.
    """
    from otelviewer.store import sql

    digest = hashlib.sha256("\n".join(sql.MIGRATIONS).encode()).hexdigest()[:10]
    return f"schema{sql.SCHEMA_VERSION}-{digest}"


def dataset_path(spans: int, schema: str) -> Path:
    """Return the cache file of a database of ``spans`` spans for ``schema``."""
    return RESULTS / f"query-{spans}-{schema}-gen{GENERATOR_VERSION}.db"


def build(path: Path, spans: int, schema: str) -> Dataset:
    """Write ``spans`` generated spans into a new database at ``path``."""
    from otelviewer.model import Batch
    from otelviewer.store.sqlite import SqliteStore

    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    traces = -(-spans // SPANS_PER_TRACE)
    start = time.time_ns() - traces * TRACE_SPACING_NANOS
    generator = TraceGenerator(seed=20_240_601, start_unix_nano=start)
    samples: list[tuple[str, str, str]] = []
    began = time.monotonic()
    written = 0
    with SqliteStore(
        path, max_spans=KEEP_SPANS, max_age_s=KEEP_AGE_S, retention_interval_s=0
    ) as store:
        chunk: list[Any] = []
        for n, trace in enumerate(generator.spans(spans)):
            if n % SAMPLE_EVERY == 0:
                server = trace[1]
                samples.append(
                    (
                        server.trace_id,
                        server.resource.service_name,
                        str(server.attributes["http.target"]),
                    )
                )
            chunk.extend(trace)
            if len(chunk) >= BUILD_BATCH_SPANS:
                store.write(Batch(spans=tuple(chunk)))
                written += len(chunk)
                chunk = []
        if chunk:
            store.write(Batch(spans=tuple(chunk)))
            written += len(chunk)
    build_s = time.monotonic() - began
    dataset = Dataset(
        spans=written,
        schema=schema,
        generator_version=GENERATOR_VERSION,
        start_unix_nano=start,
        end_unix_nano=start + (traces + 1) * TRACE_SPACING_NANOS + 10**9,
        samples=samples,
        build_s=build_s,
    )
    path.with_suffix(".json").write_text(json.dumps(asdict(dataset)), encoding="utf-8")
    return dataset


def dataset(spans: int) -> tuple[Path, Dataset, bool]:
    """Return the cached database of ``spans`` spans (built when missing); and if it was built."""
    schema = schema_key()
    path = dataset_path(spans, schema)
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        raw = json.loads(meta.read_text(encoding="utf-8"))
        raw["samples"] = [tuple(s) for s in raw["samples"]]
        found = Dataset(**raw)
        if found.spans >= spans and found.schema == schema:
            return path, found, False
    RESULTS.mkdir(parents=True, exist_ok=True)
    # Databases of the same size for another schema are useless now: free the disk.
    for stale in RESULTS.glob(f"query-{spans}-*"):
        if not stale.name.startswith(path.stem):
            stale.unlink()
    logger.info("building a database of %d spans in %s (cached for later runs)", spans, path)
    return path, build(path, spans, schema), True


@contextlib.contextmanager
def otelviewer(db: Path, log: Path) -> Iterator[int]:
    """Run ``otelviewer serve`` on ``db`` (free ports); yield the UI/API port."""
    ui = free_port()
    args = [
        str(VENV_BIN / "otelviewer"),
        "serve",
        "--host",
        "127.0.0.1",
        "--grpc-port",
        str(free_port()),
        "--http-port",
        str(free_port()),
        "--ui-port",
        str(ui),
        "--db",
        str(db),
        "--max-spans",
        str(KEEP_SPANS),
        "--max-age",
        f"{KEEP_AGE_DAYS}d",
    ]
    with running(args, stdout_path=log):
        wait_for_http(f"http://127.0.0.1:{ui}/api/services", timeout=60)
        yield ui


class Client:
    """One keep-alive HTTP connection that times each GET."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> tuple[float, Any]:
        """Return the seconds the request took (body read and decoded) and the JSON."""
        began = time.perf_counter()
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - began
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
        return elapsed, json.loads(body)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def queries(data: Dataset, rng: random.Random) -> dict[str, Callable[[], str]]:
    """Return, per kind, a function that draws the next request path."""
    window = {"start": data.start_unix_nano // 1000, "end": data.end_unix_nano // 1000}
    services = [s for s, _ in SERVICES]
    weights = [w for _, w in SERVICES]

    def trace_by_id() -> str:
        return f"/api/traces/{rng.choice(data.samples)[0]}"

    def service_search() -> str:
        service = rng.choices(services, weights)[0]
        params = {"service": service, "limit": SEARCH_LIMIT, **window}
        return "/api/traces?" + urllib.parse.urlencode(params)

    def tag_search() -> str:
        _, service, target = rng.choice(data.samples)
        roll = rng.random()
        if roll < 0.05:
            target = rng.choice(MISSING_TARGETS)
        elif roll < 0.15:
            target = "/api/tasks"
        tags = json.dumps({"http.target": target})
        params = {"service": service, "tags": tags, "limit": SEARCH_LIMIT, **window}
        return "/api/traces?" + urllib.parse.urlencode(params)

    return {
        "trace_by_id": trace_by_id,
        "service_search": service_search,
        "tag_search": tag_search,
    }


def measure(port: int, data: Dataset, settings: Settings) -> dict[str, list[float]]:
    """Run every kind of query; return the seconds per request, per kind."""
    rng = random.Random(7)
    client = Client(port)
    timings: dict[str, list[float]] = {}
    try:
        for kind, draw in queries(data, rng).items():
            for _ in range(settings.warmup_requests):
                client.get(draw())
            found = 0
            times: list[float] = []
            for _ in range(settings.requests):
                elapsed, body = client.get(draw())
                times.append(elapsed)
                found += len(body.get("data") or [])
            if found == 0:
                raise RuntimeError(f"{kind}: no request found anything; the data is not there")
            timings[kind] = times
    finally:
        client.close()
    return timings


#: Bytes read at a time when bringing the database into the OS cache.
READ_CHUNK_BYTES = 8 * 1024 * 1024


def read_through(path: Path) -> None:
    """Read ``path`` (and its WAL, if any) once, into the operating system's cache."""
    for file in (path, path.with_name(path.name + "-wal")):
        if file.exists():
            with file.open("rb") as f:
                while f.read(READ_CHUNK_BYTES):
                    pass


def run(*, quick: bool) -> list[Goal]:
    """Run the query benchmark, print its line, and return the goal checks."""
    settings = QUICK if quick else FULL
    path, data, built = dataset(settings.spans)
    if built:
        emit(
            {
                "bench": "query_build",
                "spans": data.spans,
                "build_s": rounded(data.build_s, 1),
                "spans_per_s": rounded(data.spans / data.build_s, 0),
            }
        )
    read_through(path)
    with otelviewer(path, RESULTS / "query-otelviewer.log") as port:
        timings = measure(port, data, settings)
    p95 = {kind: percentile(times, 95) * 1e3 for kind, times in timings.items()}
    emit(
        {
            "bench": "query",
            "spans": data.spans,
            "requests_per_kind": settings.requests,
            "trace_by_id_p95_ms": rounded(p95["trace_by_id"], 2),
            "service_search_p95_ms": rounded(p95["service_search"], 2),
            "tag_search_p95_ms": rounded(p95["tag_search"], 2),
            "trace_by_id_p50_ms": rounded(percentile(timings["trace_by_id"], 50) * 1e3, 2),
            "service_search_p50_ms": rounded(percentile(timings["service_search"], 50) * 1e3, 2),
            "tag_search_p50_ms": rounded(percentile(timings["tag_search"], 50) * 1e3, 2),
        }
    )
    label = f"query @{data.spans:,} spans"
    return [
        Goal(f"{label} trace by id p95", p95["trace_by_id"], TRACE_BY_ID_GOAL_MS, "max", " ms"),
        Goal(
            f"{label} service search p95",
            p95["service_search"],
            SERVICE_SEARCH_GOAL_MS,
            "max",
            " ms",
        ),
        Goal(f"{label} tag search p95", p95["tag_search"], TAG_SEARCH_GOAL_MS, "max", " ms"),
    ]
