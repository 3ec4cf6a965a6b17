"""The SQLite store: one file, WAL mode, one writer and many readers.

Usage::

    store = SqliteStore("otelviewer.db", max_spans=1_000_000, max_age_s=7 * 86400)
    store.write(batch)                 # the receiver (store.Writer)
    store.find_trace_ids(query)        # the query layer (store.Reader)
    store.close()

How it keeps the contract in ``contract.py``:

* One ``write()`` is committed by one ``BEGIN IMMEDIATE ... COMMIT`` on the
  single writer connection; writers are serialised by a lock, and a write that
  cannot get the lock (or SQLite's) within ``write_timeout_s`` raises
  ``StoreUnavailable``. ``commit()`` writes several prepared batches in one
  transaction (group commit, used by ``receiver.ingest``), each still all or
  nothing.
* Durability: see ``sql.CONNECTION_PRAGMAS`` (WAL + synchronous=NORMAL: a
  committed write survives ``kill -9``).
* Idempotence: unique keys on a span's ``(start, span_id, trace_id)`` (a re-sent
  span has the same start; ``get_traces`` also keeps one span per span id), on a
  log record's ``(time, fingerprint)`` and on a metric point's ``(series, time)``,
  written with ``INSERT OR IGNORE``.
* Reads use one connection per thread, so they never wait for the writer: WAL
  gives them the last committed state.
* Retention runs in a background thread that deletes in small transactions of
  ``RETENTION_BATCH_ROWS`` rows, so a write waits at most for one small batch.
  WAL checkpoints run in another background thread, off the ingest path, and
  start the WAL over once it passes ``WAL_RESTART_BYTES``, so that it stays
  bounded while writes never pause.
* Tag search uses an SQLite FTS5 index over each span's attribute JSON to find
  candidate spans newest first, and checks the exact values on each candidate
  (``find_trace_ids``); see ``sql.py`` for the layout.

Speed, measured roughly on a busy 2-core machine (``make bench``,
docs/benchmarks.md): decode + write about 40,000 spans/s in one thread
(512-span requests, 10 attributes each, attribute values seen before), most of
it in ``commit`` (SQLite, 15-20 µs a span); at 1,000,000 spans a trace by id
takes a few milliseconds, a service or tag search a few to tens of milliseconds.

All SQL is in ``otelviewer.store.sql``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otelviewer.model import (
    UNKNOWN_SERVICE,
    AttrValue,
    Batch,
    EncodedAttributes,
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
    json_text,
)
from otelviewer.store import sql
from otelviewer.store.contract import (
    DependencyLink,
    LogQueryParams,
    MetricDescriptor,
    MetricQueryParams,
    Operation,
    StoreUnavailable,
    TraceQueryParams,
)

logger = logging.getLogger(__name__)

#: Spans kept before the oldest are deleted. A million spans is a few hundred MB
#: on disk and still answers every query well under the UI's patience (see
#: ``make bench``); a laptop's day of development traffic fits in it.
DEFAULT_MAX_SPANS = 1_000_000
#: Log records kept; same reasoning as spans.
DEFAULT_MAX_LOGS = 1_000_000
#: Metric points kept; one point per series per export interval adds up slower.
DEFAULT_MAX_METRIC_POINTS = 1_000_000
#: Telemetry older than this is deleted: a week is long enough to compare today's
#: run with last week's, short enough that a laptop's file stays small.
DEFAULT_MAX_AGE_S = 7 * 24 * 3600
#: How long a write waits for the writer (lock or SQLite busy) before telling the
#: sender to retry: below the SDK exporters' 10 s export timeout, far above one
#: OTLP request's commit (milliseconds) or one retention batch.
DEFAULT_WRITE_TIMEOUT_S = 5.0
#: How often retention looks for too old or too many rows. Limits are soft by at
#: most this many seconds of ingest.
RETENTION_INTERVAL_S = 5.0
#: How often a background thread copies the WAL into the database file. SQLite's
#: default (every 1000 pages, by the committing writer) would put that copy and
#: its fsync on the ingest path; once a second keeps the WAL to a second of ingest.
CHECKPOINT_INTERVAL_S = 1.0
#: A WAL longer than this is started over after the next checkpoint (see
#: ``_checkpoint_loop``): about a second of ingest at full speed, so the pause it
#: costs the writer (copying what the last PASSIVE pass left) stays short.
WAL_RESTART_BYTES = 64 * 1024 * 1024
#: Rows deleted per retention transaction: small enough that a waiting write is
#: delayed by milliseconds, large enough to keep up with 30,000 spans/s.
RETENTION_BATCH_ROWS = 2_000
#: Operations remembered to skip re-inserting them; cleared when full, so a
#: sender that puts ids in span names cannot grow memory without bound.
OPERATION_CACHE_SIZE = 100_000
#: Resource and series ids remembered; cleared when full for the same reason.
ID_CACHE_SIZE = 100_000

#: Rows per multi-row INSERT: an SDK batch (512) goes in one statement, and so do
#: the three or four that a group commit writes together (SQLite's own limit of
#: 32,766 bound values allows 1,927 span rows).
MAX_ROWS_PER_INSERT = 2_048
#: SQLite's bound-parameter limit before 3.32, assumed where it cannot be asked.
SQLITE_MIN_MAX_VARIABLES = 999

_NANOS_PER_SECOND = 1_000_000_000

_loads = json.loads


class SchemaError(RuntimeError):
    """The database file was written by a newer otelviewer (or is not ours)."""


def _insert_rows(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], row: str | None = None
) -> None:
    """Insert ``rows`` with as few multi-row statements as SQLite's limits allow.

    ``row`` is the placeholders of one row (``sql.values_row``); plain ``?`` for
    each column when None.
    """
    columns = len(rows[0])
    row = row or sql.values_row(columns)
    per_statement = _rows_per_statement(conn, columns)
    for first in range(0, len(rows), per_statement):
        chunk = rows[first : first + per_statement]
        params = [value for row_values in chunk for value in row_values]
        conn.execute(sql.rows_insert(head, row, len(chunk)), params)


def _unavailable(exc: sqlite3.OperationalError) -> StoreUnavailable:
    """Log a write SQLite could not make (disk full, I/O error, busy); return what to raise."""
    logger.warning("write failed, the sender will retry: %s", exc)
    return StoreUnavailable(f"the database cannot take writes: {exc}")


def _rows_per_statement(conn: sqlite3.Connection, columns: int) -> int:
    """Return how many rows of ``columns`` values one INSERT may carry."""
    return max(1, min(MAX_ROWS_PER_INSERT, _max_variables(conn) // columns))


def _max_variables(conn: sqlite3.Connection) -> int:
    getlimit = getattr(conn, "getlimit", None)  # Python 3.11+
    category = getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER", None)
    if getlimit is None or category is None:
        return SQLITE_MIN_MAX_VARIABLES
    return int(getlimit(category))


def _split_script(script: str) -> Iterator[str]:
    """Yield the complete SQL statements of ``script`` (triggers contain ``;``)."""
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if statement != ";":
                yield statement


def _connect(path: str, *, timeout_s: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    for pragma in sql.CONNECTION_PRAGMAS:
        conn.execute(pragma)
    return conn


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema to ``sql.SCHEMA_VERSION`` in one transaction."""
    if conn.execute("PRAGMA user_version").fetchone()[0] == sql.SCHEMA_VERSION:
        return  # the usual case: no need to take the write lock
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > sql.SCHEMA_VERSION:
            raise SchemaError(
                f"{path} has schema version {version}, newer than this otelviewer's "
                f"{sql.SCHEMA_VERSION}: upgrade otelviewer or use another --db"
            )
        if version == 0 and conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]:
            raise SchemaError(f"{path} is an SQLite database, but not an otelviewer one")
        for target in range(version, sql.SCHEMA_VERSION):
            for statement in _split_script(sql.MIGRATIONS[target]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target + 1}")
        if version == 0:
            logger.info("created the database %s", path)
        elif version < sql.SCHEMA_VERSION:
            logger.info("upgraded the database %s to schema version %d", path, sql.SCHEMA_VERSION)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def tag_text(value: AttrValue) -> str:
    """Return an attribute value as the text tag search compares (Jaeger's rules).

    Strings are themselves, booleans ``true``/``false``, numbers their decimal
    text, arrays and maps their JSON.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return ""
    return json_text(value)


#: Jaeger's ``span.kind`` tag values.
_KIND_TAGS = {kind.name.lower(): kind for kind in SpanKind if kind != SpanKind.UNSPECIFIED}
#: Jaeger's ``otel.status_code`` tag values.
_STATUS_TAGS = {"OK": StatusCode.OK, "ERROR": StatusCode.ERROR}


def _derived_condition(key: str, value: str) -> tuple[str, int] | None:
    """Return the SQL condition on span fields for a tag Jaeger derives, if it is one."""
    if key == "span.kind" and value in _KIND_TAGS:
        return sql.COND_KIND_IS, int(_KIND_TAGS[value])
    if key == "otel.status_code" and value in _STATUS_TAGS:
        return sql.COND_STATUS_IS, int(_STATUS_TAGS[value])
    if key == "error" and value == "true":
        return sql.COND_STATUS_IS, int(StatusCode.ERROR)
    return None


def _derived_match(key: str, value: str, kind: int, status_code: int) -> bool:
    derived = _derived_condition(key, value)
    if derived is None:
        return False
    return (kind if derived[0] == sql.COND_KIND_IS else status_code) == derived[1]


def _phrase(column: str, text: str, *, anchored: bool = False) -> str | None:
    """Return an FTS5 query for ``text`` as a phrase in ``column`` (None: no tokens).

    The ``ascii`` tokenizer splits on every ASCII character but letters and
    digits, the same way for the stored JSON and for this phrase, so the phrase
    finds every exact match (and some near ones, which the caller checks).
    """
    if not any(ch.isalnum() or not ch.isascii() for ch in text):
        return None
    quoted = text.replace('"', '""')
    return f'{column} : {"^" if anchored else ""}"{quoted}"'


def _hex(raw: bytes | None) -> str | None:
    return raw.hex() if raw is not None else None


def _bytes_id(hex_id: str | None) -> bytes | None:
    return bytes.fromhex(hex_id) if hex_id else None


def _log_text(body: AttrValue) -> tuple[str, str | None]:
    """Return (searchable text, JSON or None when the body is a plain string)."""
    if isinstance(body, str):
        return body, None
    encoded = json_text(body)
    return encoded, encoded


@dataclass(slots=True)
class _Rows:
    """One or more batches as rows, ready to insert (resource ids still fingerprints)."""

    #: Resource fingerprint -> resource, for the resources the rows refer to.
    resources: dict[str, Resource]
    spans: list[list[Any]]
    operations: set[tuple[str, str, int]]
    logs: list[list[Any]]
    series: list[list[Any]]
    points: list[list[Any]]

    @classmethod
    def merge(cls, parts: Sequence[_Rows]) -> _Rows:
        """Return the rows of several batches, to be written in one transaction."""
        if len(parts) == 1:
            return parts[0]
        series: dict[str, list[Any]] = {}
        for part in parts:
            for row in part.series:
                series.setdefault(row[0], row)
        return cls(
            resources={k: v for part in parts for k, v in part.resources.items()},
            spans=[row for part in parts for row in part.spans],
            operations={op for part in parts for op in part.operations},
            logs=[row for part in parts for row in part.logs],
            series=list(series.values()),
            points=[row for part in parts for row in part.points],
        )


@dataclass(slots=True, eq=False)
class PreparedWrite:
    """A batch turned into rows by ``SqliteStore.prepare``, and how its commit ended."""

    batch: Batch
    rows: _Rows
    finished: threading.Event = field(default_factory=threading.Event)
    #: Set when the commit failed: ``StoreUnavailable`` (retry later) or the error.
    error: BaseException | None = None


class SqliteStore:
    """Stores telemetry in one SQLite file; implements ``Reader`` and ``Writer``.

    Args:
        path: The database file; created (with its folder) if missing.
        max_spans: Spans kept; the oldest-inserted beyond it are deleted.
        max_age_s: Telemetry whose time is older than this is deleted.
        max_logs: Log records kept.
        max_metric_points: Metric points kept.
        write_timeout_s: How long ``write`` waits for the writer before raising
            ``StoreUnavailable``.
        retention_interval_s: Seconds between retention passes; 0 disables the
            background thread (call ``enforce_retention`` yourself).
        checkpoint_interval_s: Seconds between WAL checkpoints run by a
            background thread; 0 lets each commit checkpoint when the WAL is full
            (SQLite's default, which puts the copy and its fsync on the ingest path).
        read_only: Open for reading only (a second process looking at a live
            database): no retention, and ``write`` raises ``StoreUnavailable``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_spans: int = DEFAULT_MAX_SPANS,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        max_logs: int = DEFAULT_MAX_LOGS,
        max_metric_points: int = DEFAULT_MAX_METRIC_POINTS,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
        retention_interval_s: float = RETENTION_INTERVAL_S,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
        read_only: bool = False,
    ) -> None:
        self.path = str(path)
        if self.path == ":memory:" or self.path.startswith("file:"):
            raise ValueError("SqliteStore needs a file path: every thread opens its own connection")
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.max_spans = max_spans
        self.max_age_s = max_age_s
        self.max_logs = max_logs
        self.max_metric_points = max_metric_points
        self.read_only = read_only
        self._write_timeout_s = write_timeout_s
        self._write_lock = threading.Lock()
        self._closed = False
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._resource_ids: dict[str, int] = {}
        self._series_ids: dict[str, int] = {}
        self._operations: set[tuple[str, str, int]] = set()
        self._resources: dict[int, Resource] = {}

        self._writer = _connect(self.path, timeout_s=write_timeout_s)
        try:
            _migrate(self._writer, self.path)
        except BaseException:
            self._writer.close()
            raise
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if not read_only and retention_interval_s > 0:
            self._start_thread("otelviewer-retention", self._retention_loop, retention_interval_s)
        if not read_only and checkpoint_interval_s > 0:
            self._writer.execute("PRAGMA wal_autocheckpoint = 0")
            self._start_thread(
                "otelviewer-checkpoint", self._checkpoint_loop, checkpoint_interval_s
            )

    def _start_thread(self, name: str, target: Any, interval_s: float) -> None:
        thread = threading.Thread(target=target, args=(interval_s,), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # --- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        """Stop retention, wait for a write in progress, and close every connection."""
        if self._closed:
            return
        self._stop.set()
        for thread in self._threads:
            thread.join()
        with self._write_lock:
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("PRAGMA optimize")
            self._writer.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(
        self, after_commit: Callable[[], None] | None = None, *, locked: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """Hold the writer for one transaction, or raise ``StoreUnavailable``.

        ``after_commit`` runs after a successful COMMIT, still holding the writer
        (to update caches that must agree with what is committed). ``locked``:
        the caller already holds the writer.
        """
        if self.read_only:
            raise StoreUnavailable("the store is open read-only")
        if not locked and not self._write_lock.acquire(timeout=self._write_timeout_s):
            raise StoreUnavailable(f"the store was busy for {self._write_timeout_s:g}s")
        try:
            if self._closed:
                raise StoreUnavailable("the store is closed")
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:  # another process holds the lock
                raise StoreUnavailable(f"the database is busy: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):  # disk full, I/O error, busy
                    raise _unavailable(exc) from exc
                raise
            if after_commit is not None:
                after_commit()
        finally:
            if not locked:
                self._write_lock.release()

    def write(self, batch: Batch) -> None:
        """Store ``batch`` in one transaction; raise ``StoreUnavailable`` to ask for a retry."""
        write = self.prepare(batch)
        self.commit([write])
        if write.error is not None:
            raise write.error

    # The same in two steps, for a caller that runs them on threads of its own
    # (receiver.ingest): prepare() is pure Python, commit() mostly SQLite, and
    # several writes can share a commit (a group commit: fewer commits, and fewer,
    # larger segments for the full-text index).

    def prepare(self, batch: Batch) -> PreparedWrite:
        """Turn ``batch`` into rows for ``commit``; raise ``StoreUnavailable`` if read-only."""
        if self.read_only:
            raise StoreUnavailable("the store is open read-only")
        return PreparedWrite(batch, self._prepare(batch))

    def commit(self, writes: Sequence[PreparedWrite]) -> None:
        """Commit ``writes`` together; each one's ``error`` tells if it failed.

        Like ``write`` for each, but with no exception: a write that failed has
        ``error`` set (``StoreUnavailable`` when the store is busy or closed).
        """
        if not self._write_lock.acquire(timeout=self._write_timeout_s):
            for w in writes:
                w.error = StoreUnavailable(f"the store was busy for {self._write_timeout_s:g}s")
                w.finished.set()
            return
        try:
            self._commit_group(list(writes))
        finally:
            self._write_lock.release()

    def _commit_group(self, group: list[PreparedWrite]) -> None:
        """Commit ``group`` in one transaction (the caller holds the writer).

        If that transaction fails for a reason other than the store being
        unavailable (a value SQLite refuses, say), each batch is tried alone, so
        that only the faulty one fails.
        """
        try:
            try:
                self._commit(_Rows.merge([p.rows for p in group]))
            except StoreUnavailable as exc:
                for p in group:
                    p.error = StoreUnavailable(str(exc))
            except Exception:
                if len(group) == 1:
                    raise
                for p in group:
                    try:
                        self._commit(self._prepare(p.batch))
                    except Exception as exc:  # this batch's own failure, for its caller
                        p.error = exc
        except BaseException as exc:
            for p in group:
                p.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for p in group:
                p.finished.set()

    def _prepare(self, batch: Batch) -> _Rows:
        """Turn ``batch`` into rows (resource ids still to be filled in)."""
        resources: dict[int, tuple[str, Resource]] = {}
        span_rows = self._span_rows(batch.spans, resources) if batch.spans else []
        log_rows = self._log_rows(batch.logs, resources) if batch.logs else []
        series_rows, point_rows = (
            self._metric_rows(batch.metrics, resources) if batch.metrics else ([], [])
        )
        return _Rows(
            resources=dict(resources.values()),
            spans=span_rows,
            operations={(s.resource.service_name, s.name, int(s.kind)) for s in batch.spans},
            logs=log_rows,
            series=series_rows,
            points=point_rows,
        )

    def _commit(self, rows: _Rows) -> None:
        """Write ``rows`` in one transaction (the caller holds the writer)."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        if self._commit_spans_in_one_statement(rows):
            return
        operations = rows.operations
        new_resources: dict[str, int] = {}
        new_series: dict[str, int] = {}

        def remember() -> None:
            # Only after COMMIT may other writes rely on these ids and operations.
            self._remember(self._resource_ids, new_resources)
            self._remember(self._series_ids, new_series)
            if len(self._operations) + len(operations) > OPERATION_CACHE_SIZE:
                self._operations.clear()
            self._operations |= operations

        with self._transaction(after_commit=remember, locked=True) as conn:
            new_resources = self._resolve_ids(
                conn, rows.resources.items(), self._resource_ids, rows.spans, rows.logs, rows.series
            )
            if rows.spans:
                _insert_rows(conn, sql.INSERT_SPANS, rows.spans, sql.SPAN_ROW)
            operations -= self._operations  # under the writer: retention may clear it
            if operations:
                _insert_rows(conn, sql.INSERT_OPERATIONS, list(operations))
            if rows.logs:
                _insert_rows(conn, sql.INSERT_LOGS, rows.logs)
            if rows.series:
                new_series = self._resolve_series(conn, rows.series, rows.points)
                _insert_rows(conn, sql.INSERT_POINTS, rows.points)

    def _commit_spans_in_one_statement(self, rows: _Rows) -> bool:
        """Write the common case, spans only, as one INSERT; return False if it is not.

        Spans of known resources and operations that fit one statement need no
        other statement: in SQLite's autocommit mode that INSERT (with the trigger
        that indexes each span) is a transaction by itself, committed when it
        returns. Each statement costs the writer a wait for the interpreter
        (``sql._V2``), so this saves three such waits per write.
        """
        if rows.logs or rows.series or not rows.spans:
            return False
        conn = self._writer
        if len(rows.spans) > _rows_per_statement(conn, len(rows.spans[0])):
            return False
        ids = self._resource_ids
        if not rows.operations <= self._operations or any(fp not in ids for fp in rows.resources):
            return False
        for row in rows.spans:
            row[10] = ids[row[10]]
        try:
            _insert_rows(conn, sql.INSERT_SPANS, rows.spans, sql.SPAN_ROW)
        except sqlite3.OperationalError as exc:  # disk full, I/O error, busy
            raise _unavailable(exc) from exc
        return True

    @staticmethod
    def _remember(cache: dict[str, int], new: dict[str, int]) -> None:
        if len(cache) + len(new) > ID_CACHE_SIZE:
            cache.clear()
        cache.update(new)

    @staticmethod
    def _fingerprint(resource: Resource, resources: dict[int, tuple[str, Resource]]) -> str:
        key = id(resource)
        known = resources.get(key)
        if known is None:
            known = (
                json_text([resource.service_name, resource.attributes], sort_keys=True),
                resource,
            )
            resources[key] = known
        return known[0]

    def _span_rows(
        self, spans: Sequence[Span], resources: dict[int, tuple[str, Resource]]
    ) -> list[list[Any]]:
        # Ids as bytearray and '' for NULL: binding them costs least (sql.SPAN_ROW).
        rows: list[list[Any]] = []
        append = rows.append
        fromhex = bytearray.fromhex
        fingerprint = self._fingerprint
        for s in spans:
            attributes = s.attributes
            events = (
                json_text([[e.time_unix_nano, e.name, e.attributes] for e in s.events])
                if s.events
                else ""
            )
            links = (
                json_text([[k.trace_id, k.span_id, k.attributes] for k in s.links])
                if s.links
                else ""
            )
            append(
                [
                    fromhex(s.trace_id),
                    fromhex(s.span_id),
                    fromhex(s.parent_span_id) if s.parent_span_id else "",
                    s.resource.service_name,
                    s.name,
                    int(s.kind),
                    s.start_unix_nano,
                    s.end_unix_nano - s.start_unix_nano,
                    int(s.status_code),
                    s.status_message,
                    fingerprint(s.resource, resources),  # replaced by the resource id
                    s.scope.name,
                    s.scope.version,
                    s.trace_state,
                    attributes.json()  # the receiver's: no dict needed
                    if isinstance(attributes, EncodedAttributes)
                    else json_text(attributes),
                    events,
                    links,
                ]
            )
        return rows

    def _log_rows(
        self, logs: Sequence[LogRecord], resources: dict[int, tuple[str, Resource]]
    ) -> list[list[Any]]:
        rows: list[list[Any]] = []
        for r in logs:
            text, body_json = _log_text(r.body)
            fingerprint = self._fingerprint(r.resource, resources)
            attributes = json_text(r.attributes)
            identity = json_text(
                [
                    r.time_unix_nano,
                    r.observed_time_unix_nano,
                    r.severity_number,
                    r.severity_text,
                    text,
                    fingerprint,
                    r.scope.name,
                    r.scope.version,
                    attributes,
                    r.trace_id,
                    r.span_id,
                ]
            )
            digest = hashlib.blake2b(identity.encode(), digest_size=8).digest()
            rows.append(
                [
                    int.from_bytes(digest, "big", signed=True),
                    r.time_unix_nano or r.observed_time_unix_nano,
                    r.time_unix_nano,
                    r.observed_time_unix_nano,
                    r.severity_number,
                    r.severity_text,
                    text,
                    body_json,
                    r.resource.service_name,
                    fingerprint,  # replaced by the resource id
                    r.scope.name,
                    r.scope.version,
                    attributes,
                    _bytes_id(r.trace_id),
                    _bytes_id(r.span_id),
                ]
            )
        return rows

    def _metric_rows(
        self, points: Sequence[MetricPoint], resources: dict[int, tuple[str, Resource]]
    ) -> tuple[list[list[Any]], list[list[Any]]]:
        series_rows: dict[str, list[Any]] = {}
        point_rows: list[list[Any]] = []
        for p in points:
            resource_fp = self._fingerprint(p.resource, resources)
            attributes = json_text(p.attributes, sort_keys=True)
            series_fp = json_text(
                [
                    p.name,
                    p.kind.value,
                    p.unit,
                    p.description,
                    resource_fp,
                    p.scope.name,
                    p.scope.version,
                    attributes,
                    p.is_monotonic,
                    p.temporality,
                ]
            )
            if series_fp not in series_rows:
                series_rows[series_fp] = [
                    series_fp,
                    p.name,
                    p.kind.value,
                    p.unit,
                    p.description,
                    p.resource.service_name,
                    resource_fp,  # replaced by the resource id
                    p.scope.name,
                    p.scope.version,
                    attributes,
                    p.is_monotonic,
                    p.temporality,
                ]
            h = p.histogram
            histogram = (
                json_text(
                    [h.count, h.sum, list(h.bucket_counts), list(h.explicit_bounds), h.min, h.max]
                )
                if h is not None
                else None
            )
            point_rows.append(
                [series_fp, p.time_unix_nano, p.start_time_unix_nano, p.value, histogram]
            )
        return list(series_rows.values()), point_rows

    def _resolve_ids(
        self,
        conn: sqlite3.Connection,
        resources: Iterable[tuple[str, Resource]],
        cache: dict[str, int],
        span_rows: list[list[Any]],
        log_rows: list[list[Any]],
        series_rows: list[list[Any]],
    ) -> dict[str, int]:
        """Put resource ids into the rows (inserting new resources); return the new ids."""
        ids: dict[str, int] = {}
        new: dict[str, int] = {}
        for fingerprint, resource in resources:
            rid = cache.get(fingerprint)
            if rid is None:
                conn.execute(
                    sql.INSERT_RESOURCE,
                    (fingerprint, resource.service_name, json_text(resource.attributes)),
                )
                rid = int(conn.execute(sql.SELECT_RESOURCE_ID, (fingerprint,)).fetchone()[0])
                new[fingerprint] = rid
            ids[fingerprint] = rid
        for row in span_rows:
            row[10] = ids[row[10]]
        for row in log_rows:
            row[9] = ids[row[9]]
        for row in series_rows:
            row[6] = ids[row[6]]
        return new

    def _resolve_series(
        self, conn: sqlite3.Connection, series_rows: list[list[Any]], point_rows: list[list[Any]]
    ) -> dict[str, int]:
        """Put series ids into the point rows (inserting new series); return the new ids."""
        ids: dict[str, int] = {}
        new: dict[str, int] = {}
        for row in series_rows:
            fingerprint = row[0]
            sid = self._series_ids.get(fingerprint)
            if sid is None:
                conn.execute(sql.INSERT_SERIES, row)
                sid = int(conn.execute(sql.SELECT_SERIES_ID, (fingerprint,)).fetchone()[0])
                new[fingerprint] = sid
            ids[fingerprint] = sid
        for point in point_rows:
            point[0] = ids[point[0]]
        return new

    # --- retention -----------------------------------------------------------------

    def _restart_wal(self, conn: sqlite3.Connection) -> None:
        """Finish copying the WAL while holding the writer, so that it starts over."""
        if not self._write_lock.acquire(timeout=self._write_timeout_s):
            return  # a write is stuck: try again next time
        try:
            if not self._closed:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        finally:
            self._write_lock.release()

    def _checkpoint_loop(self, interval_s: float) -> None:
        """Copy the WAL into the database now and then, off the ingest path.

        A PASSIVE checkpoint runs alongside the writer and the readers without
        waiting for either. But SQLite starts the WAL over only once every frame
        in it has been copied, which never happens while writes keep coming: under
        sustained ingest the WAL would grow without end. So once it is longer
        than ``WAL_RESTART_BYTES``, a second PASSIVE pass copies what came in
        meanwhile, and a RESTART checkpoint, holding the writer, copies the last
        few frames and lets the next write start the WAL from its beginning.
        """
        conn = _connect(self.path, timeout_s=self._write_timeout_s)
        try:
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            while not self._stop.wait(interval_s):
                try:
                    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames * page_size > WAL_RESTART_BYTES:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        self._restart_wal(conn)
                except sqlite3.Error as exc:
                    logger.warning("WAL checkpoint failed; it will try again: %s", exc)
        finally:
            conn.close()

    def _retention_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.enforce_retention()
            except StoreUnavailable as exc:
                logger.debug("retention skipped this round: %s", exc)
            except Exception:
                logger.exception("retention failed; it will try again")

    def enforce_retention(self, *, now_unix_nano: int | None = None) -> dict[str, int]:
        """Delete what is too old or too much, in small transactions.

        Rows to delete are looked up on a read connection (no lock held), then
        deleted by key under the writer, ``RETENTION_BATCH_ROWS`` at a time.

        Returns:
            How many spans, logs and metric points were deleted.
        """
        now = time.time_ns() if now_unix_nano is None else now_unix_nano
        cutoff = now - int(self.max_age_s * _NANOS_PER_SECOND)
        batch = RETENTION_BATCH_ROWS
        reader = self._reader()
        deleted = {"spans": 0, "logs": 0, "metric_points": 0}

        def delete_batch(what: str, select: str, args: tuple[Any, ...], delete: str) -> int:
            """Delete one batch of the rows ``select`` finds; return how many it found."""
            keys = [row[0] if len(row) == 1 else list(row) for row in reader.execute(select, args)]
            if keys:
                with self._transaction() as conn:
                    deleted[what] += conn.execute(delete, (json_text(keys),)).rowcount
            return len(keys)

        too_old: list[tuple[str, str, tuple[Any, ...], str]] = [
            ("spans", sql.SELECT_OLD_SPANS, (service, cutoff, batch), sql.DELETE_SPANS)
            for service in self.get_services()
        ]
        too_old.append(("logs", sql.SELECT_OLD_LOGS, (cutoff, batch), sql.DELETE_LOGS))
        too_old.append(("metric_points", sql.SELECT_OLD_POINTS, (cutoff, batch), sql.DELETE_POINTS))
        for what, select, args, delete in too_old:
            while not self._stop.is_set() and delete_batch(what, select, args, delete) == batch:
                pass
        for what, count, select, delete, limit in (
            ("spans", sql.COUNT_SPANS, sql.SELECT_OLDEST_SPANS, sql.DELETE_SPANS, self.max_spans),
            ("logs", sql.COUNT_LOGS, sql.SELECT_OLDEST_LOGS, sql.DELETE_LOGS, self.max_logs),
            (
                "metric_points",
                sql.COUNT_POINTS,
                sql.SELECT_OLDEST_POINTS,
                sql.DELETE_POINTS,
                self.max_metric_points,
            ),
        ):
            excess = int(reader.execute(count).fetchone()[0]) - limit
            while excess > 0 and not self._stop.is_set():
                found = delete_batch(what, select, (min(batch, excess),), delete)
                if not found:
                    break
                excess -= found
        if deleted["spans"]:
            self._forget_empty_services()
        if any(deleted.values()):
            logger.info(
                "retention deleted %(spans)d spans, %(logs)d logs, %(metric_points)d points",
                deleted,
            )
        return deleted

    def _forget_empty_services(self) -> None:
        """Drop the operations of services that have no spans left."""
        reader = self._reader()
        empty = [
            service
            for service in self.get_services()
            if reader.execute(sql.SELECT_ANY_SPAN_OF_SERVICE, (service,)).fetchone() is None
        ]
        if empty:

            def forget() -> None:
                self._operations.clear()

            with self._transaction(after_commit=forget) as conn:
                conn.execute(sql.DELETE_OPERATIONS_OF_SERVICES, (json_text(empty),))
            logger.info("retention: no spans left of %s", ", ".join(empty))

    # --- reading -------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        """Return this thread's read connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreUnavailable("the store is closed")
            conn = _connect(self.path, timeout_s=self._write_timeout_s)
            conn.execute("PRAGMA query_only = 1")
            with self._readers_lock:
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    def _resource(self, resource_id: int) -> Resource:
        resource = self._resources.get(resource_id)
        if resource is None:
            row = self._reader().execute(sql.SELECT_RESOURCE, (resource_id,)).fetchone()
            if row is None:  # cannot happen: resources are never deleted
                return Resource(UNKNOWN_SERVICE)
            resource = Resource(row[0], _loads(row[1]))
            if len(self._resources) > ID_CACHE_SIZE:
                self._resources.clear()
            self._resources[resource_id] = resource
        return resource

    def get_services(self) -> list[str]:
        """Return every service name seen (in spans), sorted."""
        return [row[0] for row in self._reader().execute(sql.SELECT_SERVICES)]

    def get_operations(self, service: str, span_kind: SpanKind | None = None) -> list[Operation]:
        """Return the span names of ``service`` (of one kind if given), sorted by name."""
        if span_kind is None:
            rows = self._reader().execute(sql.SELECT_OPERATIONS, (service,))
        else:
            rows = self._reader().execute(sql.SELECT_OPERATIONS_OF_KIND, (service, int(span_kind)))
        return [Operation(name, SpanKind(kind)) for name, kind in rows]

    def find_trace_ids(self, query: TraceQueryParams) -> list[str]:
        """Return up to ``query.limit`` matching trace ids, newest matching span first.

        A trace matches when one of its spans satisfies every criterion; a tag
        matches a span when the span or its resource has that attribute with that
        value as text (see ``tag_text``), or when it is one of the tags Jaeger
        derives from span fields: ``span.kind`` (``server``...),
        ``otel.status_code`` (``OK``/``ERROR``) and ``error`` (``true``).
        """
        if query.limit <= 0:
            return []
        conn = self._reader()
        text_terms: list[str] = []  # FTS5 phrases that every match contains
        conditions: list[str] = []
        params: list[Any] = []
        resources_with: dict[str, set[int]] = {}
        for key, value in query.attributes.items():
            rids = [r[0] for r in conn.execute(sql.SELECT_RESOURCES_WITH_TAG, (key, value))]
            resources_with[key] = set(rids)
            derived = _derived_condition(key, value)
            phrase = _phrase("attributes", f"{json_text(key)} {json_text(value)}")
            if not rids and derived is None:
                if phrase is not None:
                    text_terms.append(phrase)
                continue  # a phrase-less tag ("/"): only the exact check below
            if phrase is None:
                continue  # any span might carry it: only the exact check below
            parts = [sql.COND_TEXT_MATCH]
            params.append(phrase)
            if rids:
                parts.append(sql.COND_RESOURCE_IN)
                params.append(json_text(rids))
            if derived is not None:
                parts.append(derived[0])
                params.append(derived[1])
            conditions.append(f" AND ({' OR '.join(parts)})")
        operation_phrase = (
            _phrase("name", query.operation, anchored=True) if query.operation is not None else None
        )
        if operation_phrase is not None:
            text_terms.append(operation_phrase)

        head: list[str] = []
        head_params: list[Any] = []
        if text_terms:
            head.append(sql.SEARCH_BY_TEXT)
            head_params.append(" AND ".join(text_terms))
            if query.service is not None:
                head.append(sql.COND_SERVICE)
                head_params.append(query.service)
            order = sql.SEARCH_BY_TEXT_ORDER
        elif query.service is not None:
            head.append(sql.SEARCH_BY_SERVICE)
            head_params.append(query.service)
            order = sql.SEARCH_BY_SERVICE_ORDER
        else:
            head.append(sql.SEARCH_ALL)
            order = sql.SEARCH_ALL_ORDER
        for bound, clause in (
            (query.operation, sql.COND_OPERATION),
            (int(query.span_kind) if query.span_kind is not None else None, sql.COND_KIND),
            (query.start_min_unix_nano, sql.COND_START_MIN),
            (query.start_max_unix_nano, sql.COND_START_MAX),
            (query.duration_min_nanos, sql.COND_DURATION_MIN),
            (query.duration_max_nanos, sql.COND_DURATION_MAX),
        ):
            if bound is not None:
                head.append(clause)
                head_params.append(bound)
        statement = "".join([*head, *conditions, order])

        tags = list(query.attributes.items())
        found: dict[bytes, None] = {}
        cursor = conn.execute(statement, [*head_params, *params])
        try:
            for trace_id, kind, status_code, resource_id, attributes in cursor:
                if trace_id in found:
                    continue
                if tags:
                    attrs = _loads(attributes)
                    if not all(
                        (key in attrs and tag_text(attrs[key]) == value)
                        or resource_id in resources_with[key]
                        or _derived_match(key, value, kind, status_code)
                        for key, value in tags
                    ):
                        continue
                found[trace_id] = None
                if len(found) >= query.limit:
                    break
        finally:
            cursor.close()
        return [t.hex() for t in found]

    def get_traces(self, trace_ids: Sequence[str]) -> list[list[Span]]:
        """Return the spans of each trace found, in the order asked; unknown ids are left out."""
        conn = self._reader()
        traces: list[list[Span]] = []
        for trace_id in trace_ids:
            try:
                raw = bytes.fromhex(trace_id)
            except ValueError:
                continue
            if len(raw) != 16:
                continue
            spans: dict[str, Span] = {}
            for row in conn.execute(sql.SELECT_TRACE, (f'trace_hex : "{raw.hex()}"',)):
                span = self._span(row)
                # A sender bug can store one span id twice (with two start times).
                spans.setdefault(span.span_id, span)
            if spans:
                traces.append(list(spans.values()))
        return traces

    def _span(self, row: Sequence[Any]) -> Span:
        (
            trace_id,
            span_id,
            parent,
            name,
            kind,
            start,
            duration,
            status_code,
            status_message,
            resource_id,
            scope_name,
            scope_version,
            trace_state,
            attributes,
            events,
            links,
        ) = row
        trace_hex = trace_id.hex()
        return Span(
            trace_id=trace_hex,
            span_id=span_id.hex(),
            parent_span_id=_hex(parent),
            name=name,
            kind=SpanKind(kind),
            start_unix_nano=start,
            end_unix_nano=start + duration,
            resource=self._resource(resource_id),
            scope=Scope(scope_name, scope_version),
            attributes=_loads(attributes),
            events=tuple(SpanEvent(t, n, a) for t, n, a in _loads(events)) if events else (),
            links=tuple(SpanLink(t, s, a) for t, s, a in _loads(links)) if links else (),
            status_code=StatusCode(status_code),
            status_message=status_message,
            trace_state=trace_state,
        )

    def get_dependencies(self, end_unix_nano: int, lookback_nanos: int) -> list[DependencyLink]:
        """Return service-to-service call counts for spans that started in the window.

        A call is a span whose parent (also started in the window) belongs to
        another service.
        """
        rows = (
            self._reader()
            .execute(sql.SELECT_DEPENDENCY_SPANS, (end_unix_nano - lookback_nanos, end_unix_nano))
            .fetchall()
        )
        service_of = {(trace_id, span_id): service for trace_id, span_id, _, service in rows}
        calls: Counter[tuple[str, str]] = Counter()
        for trace_id, _, parent_id, service in rows:
            if parent_id is not None:
                parent = service_of.get((trace_id, parent_id))
                if parent is not None and parent != service:
                    calls[parent, service] += 1
        return [DependencyLink(p, c, n) for (p, c), n in sorted(calls.items())]

    def find_logs(self, query: LogQueryParams) -> list[LogRecord]:
        """Return matching log records, newest first."""
        if query.limit <= 0:
            return []
        text = [sql.SELECT_LOGS]
        params: list[Any] = []
        if query.trace_id is not None:
            try:
                raw = bytes.fromhex(query.trace_id)
            except ValueError:
                return []
            text.append(sql.LOG_COND_TRACE)
            params.append(raw)
        for value, clause in (
            (query.service, sql.LOG_COND_SERVICE),
            (query.min_severity_number, sql.LOG_COND_SEVERITY),
            (query.text or None, sql.LOG_COND_TEXT),
            (query.start_min_unix_nano, sql.LOG_COND_START_MIN),
            (query.start_max_unix_nano, sql.LOG_COND_START_MAX),
        ):
            if value is not None:
                text.append(clause)
                params.append(value)
        text.append(sql.LOG_ORDER)
        params.append(query.limit)
        records: list[LogRecord] = []
        for row in self._reader().execute("".join(text), params):
            (
                time_ns,
                observed_ns,
                severity_number,
                severity_text,
                body_text,
                body_json,
                resource_id,
                scope_name,
                scope_version,
                attributes,
                trace_id,
                span_id,
            ) = row
            records.append(
                LogRecord(
                    time_unix_nano=time_ns,
                    observed_time_unix_nano=observed_ns,
                    severity_number=severity_number,
                    severity_text=severity_text,
                    body=_loads(body_json) if body_json is not None else body_text,
                    resource=self._resource(resource_id),
                    scope=Scope(scope_name, scope_version),
                    attributes=_loads(attributes),
                    trace_id=_hex(trace_id),
                    span_id=_hex(span_id),
                )
            )
        return records

    def get_metric_names(self) -> list[MetricDescriptor]:
        """Return every metric seen, sorted by name."""
        return [
            MetricDescriptor(name, MetricKind(kind), unit, description)
            for name, kind, unit, description in self._reader().execute(sql.SELECT_METRIC_NAMES)
        ]

    def get_metric_points(self, query: MetricQueryParams) -> list[MetricPoint]:
        """Return the points of one metric, oldest first (for charting)."""
        if query.limit <= 0:
            return []
        text = [sql.SELECT_POINTS]
        params: list[Any] = [query.name]
        for value, clause in (
            (query.service, sql.POINTS_COND_SERVICE),
            (query.start_min_unix_nano, sql.POINTS_COND_START_MIN),
            (query.start_max_unix_nano, sql.POINTS_COND_START_MAX),
        ):
            if value is not None:
                text.append(clause)
                params.append(value)
        text.append(sql.POINTS_ORDER)
        params.append(query.limit)
        points: list[MetricPoint] = []
        for row in self._reader().execute("".join(text), params):
            (
                name,
                kind,
                unit,
                description,
                resource_id,
                scope_name,
                scope_version,
                attributes,
                is_monotonic,
                temporality,
                time_ns,
                start_ns,
                value,
                histogram,
            ) = row
            hist: HistogramValue | None = None
            if histogram is not None:
                count, total, buckets, bounds, low, high = _loads(histogram)
                hist = HistogramValue(count, total, tuple(buckets), tuple(bounds), low, high)
            points.append(
                MetricPoint(
                    name=name,
                    kind=MetricKind(kind),
                    resource=self._resource(resource_id),
                    time_unix_nano=time_ns,
                    start_time_unix_nano=start_ns,
                    description=description,
                    unit=unit,
                    scope=Scope(scope_name, scope_version),
                    attributes=_loads(attributes),
                    value=value,
                    is_monotonic=None if is_monotonic is None else bool(is_monotonic),
                    temporality=temporality,
                    histogram=hist,
                )
            )
        return points
