"""The ingest pipeline: OTLP request bodies in, stored telemetry out, on two threads.

Usage (``otelviewer.server`` makes one; both receivers share it)::

    ingest = Ingest(store)
    decoded = ingest.export(TRACES, body)   # returns once stored
    ingest.close()

``export`` raises ``DecodeError`` for a body that is not an OTLP request and
``StoreUnavailable`` when the store cannot take it now (the sender retries); what
it returns says which items were rejected (``partial_success``).

Why threads of its own, rather than each receiver thread decoding and writing:
CPython runs the Python of one thread at a time. Decoding (protobuf to rows, all
Python) and committing (SQLite, which lets go of the interpreter while it works)
can overlap, and they overlap best when one thread does all the decoding and
another all the committing: the interpreter changes hands only when the
committing thread needs it for a moment, and each thread's data stays in one
core's cache. The decoding thread decodes each request and prepares its rows
(``SqliteStore.prepare``); the committing thread commits every request that is
ready in one transaction (``SqliteStore.commit``, a group commit). Measured on
two cores, about 15% more spans/s than receiver threads doing both (see
docs/benchmarks.md).

A writer that is not a ``StagedWriter`` (``prepare`` and ``commit``) is called
with ``write(batch)`` from the committing thread, one batch at a time.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from otelviewer.model import Batch
from otelviewer.receiver.otlp import Decoded, Signal
from otelviewer.store.contract import StoreUnavailable, Writer

logger = logging.getLogger(__name__)

#: Requests waiting to be decoded before ``export`` waits for room: the receivers'
#: threads (4 for gRPC, 4 for HTTP) each have at most one in the pipeline, so this
#: only bounds memory if a caller had more.
MAX_WAITING_REQUESTS = 16


@runtime_checkable
class StagedWriter(Protocol):
    """A ``Writer`` that can prepare a batch on one thread and commit it on another."""

    def prepare(self, batch: Batch) -> Any:
        """Return ``batch`` made ready for ``commit`` (pure computation)."""
        ...

    def commit(self, writes: Sequence[Any]) -> None:
        """Commit prepared writes together, setting each one's ``error`` if it failed."""
        ...


@dataclass(eq=False)
class _Job:
    """One request on its way through the pipeline."""

    signal: Signal
    body: bytes
    is_json: bool
    decoded: Decoded | None = None
    prepared: Any = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Ingest:
    """Decodes and stores OTLP requests on two threads; see the module docstring."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self._staged = writer if isinstance(writer, StagedWriter) else None
        self._decode_queue: queue.Queue[_Job | None] = queue.Queue(MAX_WAITING_REQUESTS)
        self._commit_queue: queue.Queue[_Job | None] = queue.Queue()
        self._closed = False
        self._close_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._decode_loop, name="otelviewer-decode", daemon=True),
            threading.Thread(target=self._commit_loop, name="otelviewer-commit", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def export(self, signal: Signal, body: bytes, *, is_json: bool = False) -> Decoded:
        """Decode and store one request body; return what was decoded (and rejected).

        Raises:
            DecodeError: the body is not a valid request of ``signal``.
            StoreUnavailable: the store cannot take it now, or the pipeline is closed.
        """
        job = _Job(signal, body, is_json)
        with self._close_lock:
            if self._closed:
                raise StoreUnavailable("otelviewer is stopping")
        self._decode_queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.decoded is not None
        return job.decoded

    def close(self) -> None:
        """Finish the requests in the pipeline, then stop its threads."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._decode_queue.put(None)
        for thread in self._threads:
            thread.join()

    def _decode_loop(self) -> None:
        while (job := self._decode_queue.get()) is not None:
            try:
                job.decoded = job.signal.decode(job.body, is_json=job.is_json)
                batch = job.decoded.batch
                job.prepared = self._staged.prepare(batch) if self._staged else batch
            except Exception as exc:  # reported to the caller: DecodeError, read-only store
                job.error = exc
                job.done.set()
            else:
                self._commit_queue.put(job)
            self._decode_queue.task_done()  # (so that the queue's join() works)
        self._commit_queue.put(None)

    def _commit_loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._commit_queue.get()
            if first is None:
                return
            group = [first]
            while True:  # and every request that is ready too
                try:
                    job = self._commit_queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                group.append(job)
            self._commit(group)

    def _commit(self, group: list[_Job]) -> None:
        try:
            if self._staged is not None:
                self._staged.commit([job.prepared for job in group])
                for job in group:
                    job.error = job.prepared.error
            else:
                for job in group:
                    try:
                        self._writer.write(job.prepared)
                    except Exception as exc:
                        job.error = exc
        except Exception as exc:  # a bug: fail these requests, keep serving
            logger.exception("storing %d requests failed", len(group))
            for job in group:
                job.error = job.error or exc
        finally:
            for job in group:
                job.done.set()
