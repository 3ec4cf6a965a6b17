"""Every SQL statement of the SQLite store, in one place, all parameterised.

The schema is versioned with ``PRAGMA user_version``: ``MIGRATIONS[i]`` takes a
database from version ``i`` to ``i + 1``, and ``SCHEMA_VERSION`` is the version this
code reads and writes. A database made by a newer otelviewer is refused rather
than misread. To change the schema, append a migration; never edit a released one.

Layout (version 1, and what version 2 changed):

* ``resources``: one row per distinct resource (service name + attributes),
  shared by spans, logs and metric series; ``resource_tags`` indexes their
  attributes for tag search.
* ``spans``: one row per span, ids as raw bytes. Attributes, events and links
  are JSON text. The unique ``(start_ns, span_id, trace_id)`` index makes writes
  idempotent (a re-sent span has the same start) and serves time-ordered scans.
  There is deliberately no B-tree index on the random trace id: at a million
  spans, every insert into one dirties a different page (measured: ingest at
  half speed, four times the WAL traffic). Time-ordered indexes only append.
* ``span_search``: an FTS5 index over each span's trace id (as hex), name and
  attribute JSON. It is an external-content table (the text stays in ``spans``,
  the index holds compact posting lists) and, like any LSM, it writes new entries
  in sorted runs instead of in place, which keeps ingest fast. A trace id is one
  token, so trace lookup is one posting list. Tag search asks for spans holding
  the tag's tokens as a phrase, newest first, and checks the exact value on each
  candidate. The ``ascii`` tokenizer (the JSON is ASCII: other characters are
  escaped) and no column sizes (nothing is ranked) make indexing about 40%
  cheaper than the defaults. Since version 2 a trigger indexes each inserted span
  and segments are merged 16 at a time (see ``_V2``); since version 3 those
  merges are always spread over later writes (see ``_V3``).
* ``operations``: ``(service, name, kind)`` seen, for the service and operation lists.
* ``logs``: log records; a unique ``(time, fingerprint)`` makes re-sent records
  idempotent.
* ``metric_series`` and ``metric_points``: a series is a metric name + resource +
  scope + attributes; a point is keyed ``(series_id, time_ns)``, so re-sent points
  are kept once.
"""

from __future__ import annotations

import functools

#: The schema version this code reads and writes (``PRAGMA user_version``).
SCHEMA_VERSION = 3

# How a JSON scalar from json_each() becomes the text that tag search compares:
# booleans as Jaeger writes them ("true"/"false"), everything else as SQLite's text
# of the value (strings as they are, 200 -> "200"). sqlite.tag_text() is the same
# rule in Python.
_TAG_TEXT = (
    "CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(value AS TEXT) END"
)
_SCALAR = "type NOT IN ('array', 'object', 'null')"

_V1 = f"""
CREATE TABLE resources (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    service     TEXT NOT NULL,
    attributes  TEXT NOT NULL
);
CREATE TABLE resource_tags (
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    resource_id INTEGER NOT NULL,
    PRIMARY KEY (key, value, resource_id)
) WITHOUT ROWID;
CREATE TRIGGER resources_tags AFTER INSERT ON resources BEGIN
    INSERT OR IGNORE INTO resource_tags (key, value, resource_id)
    SELECT key, {_TAG_TEXT}, NEW.id FROM json_each(NEW.attributes) WHERE {_SCALAR};
END;

CREATE TABLE spans (
    pk             INTEGER PRIMARY KEY,
    trace_id       BLOB NOT NULL,
    span_id        BLOB NOT NULL,
    parent_span_id BLOB,
    service        TEXT NOT NULL,
    name           TEXT NOT NULL,
    kind           INTEGER NOT NULL,
    start_ns       INTEGER NOT NULL,
    duration_ns    INTEGER NOT NULL,
    status_code    INTEGER NOT NULL,
    status_message TEXT NOT NULL,
    resource_id    INTEGER NOT NULL,
    scope_name     TEXT NOT NULL,
    scope_version  TEXT NOT NULL,
    trace_state    TEXT NOT NULL,
    attributes     TEXT NOT NULL,
    events         TEXT,
    links          TEXT,
    trace_hex      TEXT GENERATED ALWAYS AS (lower(hex(trace_id))) VIRTUAL
);
CREATE UNIQUE INDEX spans_identity ON spans (start_ns, span_id, trace_id);
CREATE INDEX spans_service_start ON spans (service, start_ns);

CREATE VIRTUAL TABLE span_search USING fts5 (
    trace_hex, name, attributes, content = 'spans', content_rowid = 'pk',
    tokenize = 'ascii', columnsize = 0
);
CREATE TRIGGER spans_search_delete AFTER DELETE ON spans BEGIN
    INSERT INTO span_search (span_search, rowid, trace_hex, name, attributes)
    VALUES ('delete', OLD.pk, OLD.trace_hex, OLD.name, OLD.attributes);
END;

CREATE TABLE operations (
    service TEXT NOT NULL,
    name    TEXT NOT NULL,
    kind    INTEGER NOT NULL,
    PRIMARY KEY (service, name, kind)
) WITHOUT ROWID;

CREATE TABLE logs (
    pk             INTEGER PRIMARY KEY,
    fingerprint    INTEGER NOT NULL,
    sort_ns        INTEGER NOT NULL,
    time_ns        INTEGER NOT NULL,
    observed_ns    INTEGER NOT NULL,
    severity_number INTEGER NOT NULL,
    severity_text  TEXT NOT NULL,
    body_text      TEXT NOT NULL,
    body_json      TEXT,
    service        TEXT NOT NULL,
    resource_id    INTEGER NOT NULL,
    scope_name     TEXT NOT NULL,
    scope_version  TEXT NOT NULL,
    attributes     TEXT NOT NULL,
    trace_id       BLOB,
    span_id        BLOB
);
CREATE UNIQUE INDEX logs_identity ON logs (sort_ns, fingerprint);
CREATE INDEX logs_service_sort ON logs (service, sort_ns);
CREATE INDEX logs_trace ON logs (trace_id) WHERE trace_id IS NOT NULL;

CREATE TABLE metric_series (
    id            INTEGER PRIMARY KEY,
    fingerprint   TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    unit          TEXT NOT NULL,
    description   TEXT NOT NULL,
    service       TEXT NOT NULL,
    resource_id   INTEGER NOT NULL,
    scope_name    TEXT NOT NULL,
    scope_version TEXT NOT NULL,
    attributes    TEXT NOT NULL,
    is_monotonic  INTEGER,
    temporality   INTEGER NOT NULL
);
CREATE INDEX metric_series_name ON metric_series (name, service);
CREATE TABLE metric_points (
    series_id INTEGER NOT NULL,
    time_ns   INTEGER NOT NULL,
    start_ns  INTEGER NOT NULL,
    value     REAL,
    histogram TEXT,
    PRIMARY KEY (series_id, time_ns)
) WITHOUT ROWID;
CREATE INDEX metric_points_time ON metric_points (time_ns);
"""  # noqa: S608 - constant fragments, no values

# Version 2:
# * The full-text index merges its segments 16 at a time instead of 4. FTS5 writes
#   each transaction's entries as a new segment and merges segments of one level
#   into the next; merging wider rewrites each entry fewer times (about log16
#   instead of log4 of the spans stored). Measured: the index's share of a write
#   falls from about half to a fifth; a lookup reads a few more segments.
# * A trigger indexes each inserted span, so that the common write (spans only) is
#   one INSERT statement, one transaction by itself (see SqliteStore._commit):
#   Python's sqlite3 gives up the interpreter for every statement and must get it
#   back from the threads decoding the next requests, a wait that cost more than
#   the trigger does.
_V2 = """
INSERT INTO span_search (span_search, rank) VALUES ('automerge', 16);
CREATE TRIGGER spans_search_insert AFTER INSERT ON spans BEGIN
    INSERT INTO span_search (rowid, trace_hex, name, attributes)
    VALUES (NEW.pk, NEW.trace_hex, NEW.name, NEW.attributes);
END;
"""

# Version 3: FTS5 merges a level's segments in one go, inside the write that
# brings the level to "crisismerge" segments (16 by default); below that it merges
# a little in every write, but only from "automerge" segments up, which version 2
# made 16 too. So every merge was a crisis merge: under sustained ingest one write
# in a few hundred took 0.5-0.7 s (seen as the senders' p99). With room up to 64,
# the merges that start at 16 are spread over the following writes.
_V3 = """
INSERT INTO span_search (span_search, rank) VALUES ('crisismerge', 64);
"""

#: ``MIGRATIONS[i]`` upgrades a database at ``user_version`` i to i + 1.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3)
assert len(MIGRATIONS) == SCHEMA_VERSION

# --- connection set-up -------------------------------------------------------------

#: Pragmas for every connection. WAL lets readers see the last committed state
#: while one writer writes. synchronous=NORMAL in WAL mode makes a commit one
#: write() into the WAL file, without fsync: a committed transaction survives the
#: process being killed (kill -9: the data is in the OS page cache, which the kernel
#: writes out), but the last few commits can be lost on power loss or an OS crash
#: (the database stays consistent). For a local development backend that is the
#: right trade: FULL would fsync every OTLP request and cap ingest at the disk's
#: flush rate.
CONNECTION_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA temp_store = MEMORY",
    # 64 MiB of page cache per connection: the random-order indexes (trace ids,
    # tags) stay in memory up to a few million spans instead of being re-read.
    "PRAGMA cache_size = -65536",
    # After a checkpoint, a WAL file larger than this is truncated back (the
    # space is reused anyway; this only returns a burst's worth to the disk).
    "PRAGMA journal_size_limit = 67108864",
)

# --- writes --------------------------------------------------------------------------

SELECT_RESOURCE_ID = "SELECT id FROM resources WHERE fingerprint = ?"
INSERT_RESOURCE = (
    "INSERT OR IGNORE INTO resources (fingerprint, service, attributes) VALUES (?, ?, ?)"
)
# Rows are inserted with one multi-row statement per batch (see rows_insert()),
# not executemany(): Python's sqlite3 releases the GIL around every row's step,
# and each re-acquisition can wait for a decoding thread's whole switch interval.
#
# Span rows bind no bytes and no None: Python's sqlite3 binds int, float, str and
# bytearray directly, but looks for an adapter for every other value, which made
# binding a large share of the interpreter's time in a write. Ids come as
# bytearray, and the columns that may be NULL take '' for NULL (nullif below).
INSERT_SPANS = """
INSERT OR IGNORE INTO spans (
    trace_id, span_id, parent_span_id, service, name, kind, start_ns, duration_ns,
    status_code, status_message, resource_id, scope_name, scope_version, trace_state,
    attributes, events, links)
VALUES"""
INSERT_OPERATIONS = "INSERT OR IGNORE INTO operations (service, name, kind) VALUES"
INSERT_LOGS = """
INSERT OR IGNORE INTO logs (
    fingerprint, sort_ns, time_ns, observed_ns, severity_number, severity_text,
    body_text, body_json, service, resource_id, scope_name, scope_version, attributes,
    trace_id, span_id)
VALUES"""
SELECT_SERIES_ID = "SELECT id FROM metric_series WHERE fingerprint = ?"
INSERT_SERIES = """
INSERT OR IGNORE INTO metric_series (
    fingerprint, name, kind, unit, description, service, resource_id, scope_name,
    scope_version, attributes, is_monotonic, temporality)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
INSERT_POINTS = """
INSERT OR IGNORE INTO metric_points (series_id, time_ns, start_ns, value, histogram)
VALUES"""


def values_row(columns: int, *, empty_is_null: tuple[int, ...] = ()) -> str:
    """Return one row of placeholders, ``(?, ?, ...)``.

    The columns numbered in ``empty_is_null`` (from 0) store NULL for ''.
    """
    return (
        "("
        + ", ".join("nullif(?, '')" if n in empty_is_null else "?" for n in range(columns))
        + ")"
    )


#: One span row: parent_span_id, events and links take '' for NULL.
SPAN_ROW = values_row(17, empty_is_null=(2, 15, 16))


@functools.lru_cache(maxsize=64)
def rows_insert(head: str, row: str, rows: int) -> str:
    """Return ``head`` followed by ``rows`` copies of ``row`` (from ``values_row``)."""
    return head + " " + ", ".join([row] * rows)


# --- retention -----------------------------------------------------------------------

SELECT_ANY_SPAN_OF_SERVICE = "SELECT 1 FROM spans WHERE service = ? LIMIT 1"
DELETE_OPERATIONS_OF_SERVICES = (
    "DELETE FROM operations WHERE service IN (SELECT value FROM json_each(?))"
)
COUNT_SPANS = "SELECT count(*) FROM spans"
COUNT_LOGS = "SELECT count(*) FROM logs"
COUNT_POINTS = "SELECT count(*) FROM metric_points"
#: Spans of one service that are too old (found on a read connection, so the
#: search holds no lock; deleted by pk under the writer).
SELECT_OLD_SPANS = "SELECT pk FROM spans WHERE service = ? AND start_ns < ? LIMIT ?"
#: The oldest-inserted spans, when there are too many: rowid order, no index needed.
SELECT_OLDEST_SPANS = "SELECT pk FROM spans ORDER BY pk LIMIT ?"
DELETE_SPANS = "DELETE FROM spans WHERE pk IN (SELECT value FROM json_each(?))"
SELECT_OLD_LOGS = "SELECT pk FROM logs WHERE sort_ns < ? LIMIT ?"
SELECT_OLDEST_LOGS = "SELECT pk FROM logs ORDER BY pk LIMIT ?"
DELETE_LOGS = "DELETE FROM logs WHERE pk IN (SELECT value FROM json_each(?))"
SELECT_OLD_POINTS = "SELECT series_id, time_ns FROM metric_points WHERE time_ns < ? LIMIT ?"
SELECT_OLDEST_POINTS = "SELECT series_id, time_ns FROM metric_points ORDER BY time_ns LIMIT ?"
DELETE_POINTS = """
DELETE FROM metric_points WHERE (series_id, time_ns) IN (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))
"""

# --- reads ---------------------------------------------------------------------------

SELECT_SERVICES = "SELECT DISTINCT service FROM operations ORDER BY service"
SELECT_OPERATIONS = "SELECT name, kind FROM operations WHERE service = ? ORDER BY name, kind"
SELECT_OPERATIONS_OF_KIND = (
    "SELECT name, kind FROM operations WHERE service = ? AND kind = ? ORDER BY name"
)
SELECT_RESOURCE = "SELECT service, attributes FROM resources WHERE id = ?"
#: Resource ids whose attributes hold one tag (resources are few: a small set).
SELECT_RESOURCES_WITH_TAG = "SELECT resource_id FROM resource_tags WHERE key = ? AND value = ?"

SPAN_COLUMNS = (
    "s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind, s.start_ns, s.duration_ns,"
    " s.status_code, s.status_message, s.resource_id, s.scope_name, s.scope_version,"
    " s.trace_state, s.attributes, s.events, s.links"
)
#: The spans of one trace: the full-text index finds them by the trace id's hex token.
SELECT_TRACE = (
    f"SELECT {SPAN_COLUMNS} FROM span_search f CROSS JOIN spans s ON s.pk = f.rowid"  # noqa: S608
    " WHERE span_search MATCH ? ORDER BY s.start_ns, s.pk"
)

# Trace search: a driving part that walks one index newest first, and conditions
# on the span row. find_trace_ids() in sqlite.py assembles them; every value is a
# bound parameter, the FTS5 query included. CROSS JOIN fixes the join order so the
# full-text index drives.
SEARCH_COLUMNS = "s.trace_id, s.kind, s.status_code, s.resource_id, s.attributes"
SEARCH_BY_TEXT = (
    f"SELECT {SEARCH_COLUMNS} FROM span_search f CROSS JOIN spans s ON s.pk = f.rowid"  # noqa: S608
    " WHERE span_search MATCH ?"
)
SEARCH_BY_TEXT_ORDER = " ORDER BY f.rowid DESC"
SEARCH_BY_SERVICE = (
    f"SELECT {SEARCH_COLUMNS} FROM spans s INDEXED BY spans_service_start"  # noqa: S608
    " WHERE s.service = ?"
)
SEARCH_BY_SERVICE_ORDER = " ORDER BY s.start_ns DESC"
SEARCH_ALL = f"SELECT {SEARCH_COLUMNS} FROM spans s INDEXED BY spans_identity WHERE 1"  # noqa: S608
SEARCH_ALL_ORDER = " ORDER BY s.start_ns DESC"
COND_SERVICE = " AND s.service = ?"
COND_OPERATION = " AND s.name = ?"
COND_KIND = " AND s.kind = ?"
COND_START_MIN = " AND s.start_ns >= ?"
COND_START_MAX = " AND s.start_ns <= ?"
COND_DURATION_MIN = " AND s.duration_ns >= ?"
COND_DURATION_MAX = " AND s.duration_ns <= ?"
# One tag that a resource or a span field may also carry: an OR of the parts that
# apply, each a complete parenthesised condition.
COND_RESOURCE_IN = "s.resource_id IN (SELECT value FROM json_each(?))"
COND_KIND_IS = "s.kind = ?"
COND_STATUS_IS = "s.status_code = ?"
COND_TEXT_MATCH = "s.pk IN (SELECT rowid FROM span_search WHERE span_search MATCH ?)"

#: Spans that started in a window, for the dependency graph (joined in Python).
SELECT_DEPENDENCY_SPANS = """
SELECT trace_id, span_id, parent_span_id, service FROM spans INDEXED BY spans_identity
 WHERE start_ns >= ? AND start_ns <= ?
"""

LOG_COLUMNS = (
    "l.time_ns, l.observed_ns, l.severity_number, l.severity_text, l.body_text, l.body_json,"
    " l.resource_id, l.scope_name, l.scope_version, l.attributes, l.trace_id, l.span_id"
)
SELECT_LOGS = f"SELECT {LOG_COLUMNS} FROM logs l WHERE 1"  # noqa: S608
LOG_COND_TRACE = " AND l.trace_id = ?"
LOG_COND_SERVICE = " AND l.service = ?"
LOG_COND_SEVERITY = " AND l.severity_number >= ?"
LOG_COND_TEXT = " AND instr(lower(l.body_text), lower(?)) > 0"
LOG_COND_START_MIN = " AND l.sort_ns >= ?"
LOG_COND_START_MAX = " AND l.sort_ns <= ?"
LOG_ORDER = " ORDER BY l.sort_ns DESC, l.pk DESC LIMIT ?"

SELECT_METRIC_NAMES = """
SELECT name, kind, unit, description FROM metric_series
 GROUP BY name ORDER BY name
"""
SELECT_POINTS = """
SELECT m.name, m.kind, m.unit, m.description, m.resource_id, m.scope_name, m.scope_version,
       m.attributes, m.is_monotonic, m.temporality, p.time_ns, p.start_ns, p.value, p.histogram
  FROM metric_series m JOIN metric_points p ON p.series_id = m.id
 WHERE m.name = ?
"""
POINTS_COND_SERVICE = " AND m.service = ?"
POINTS_COND_START_MIN = " AND p.time_ns >= ?"
POINTS_COND_START_MAX = " AND p.time_ns <= ?"
POINTS_ORDER = " ORDER BY p.time_ns, m.id LIMIT ?"
