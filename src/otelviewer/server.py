"""Wiring and lifecycle of ``otelviewer serve``: the store, three listeners, shutdown.

Usage::

    config = ServeConfig(db_path=Path("otelviewer.db"))
    sys.exit(run(config))        # blocks until SIGINT or SIGTERM

What runs in the one process:

==========  ======================  =========================================
port        what                    served by
==========  ======================  =========================================
4317        OTLP/gRPC receiver      grpcio's server and its thread pool
4318        OTLP/HTTP receiver      waitress (threads), ``receiver.http``
16686       UI and Jaeger API       waitress (threads), ``otelviewer.web``
==========  ======================  =========================================

Both receivers hand each request to one ``receiver.ingest.Ingest``, which decodes
on a thread of its own and commits on another; all share one ``SqliteStore``:
the receivers write, the UI reads.
Every port is checked before anything starts, so a taken port is reported
clearly and nothing is left half-running. On SIGINT or SIGTERM the listeners
stop accepting, requests in flight finish (at most ``GRACE_S``), the ingest
pipeline and then the store are closed (the last write committed), and ``run``
returns 0.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from otelviewer.receiver import http as otlp_http
from otelviewer.receiver.grpc import GRACE_S, start_grpc_server
from otelviewer.receiver.ingest import Ingest
from otelviewer.receiver.otlp import DEFAULT_MAX_REQUEST_BYTES
from otelviewer.store.contract import Reader
from otelviewer.store.sqlite import DEFAULT_MAX_AGE_S, DEFAULT_MAX_SPANS, SqliteStore

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_GRPC_PORT = 4317
DEFAULT_HTTP_PORT = 4318
DEFAULT_UI_PORT = 16686
#: waitress worker threads for OTLP/HTTP: requests are short (decode + commit),
#: and the store serialises writes, so a few threads keep two cores busy.
HTTP_THREADS = 4
#: waitress worker threads for the UI and API: a person and a few tabs, plus
#: Grafana or a script polling the API.
UI_THREADS = 6

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class StartupError(Exception):
    """``otelviewer serve`` cannot start (a port is taken, the database is unusable)."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``otelviewer serve`` takes from its command line."""

    db_path: Path
    host: str = DEFAULT_HOST
    grpc_port: int = DEFAULT_GRPC_PORT
    http_port: int = DEFAULT_HTTP_PORT
    ui_port: int = DEFAULT_UI_PORT
    max_spans: int = DEFAULT_MAX_SPANS
    max_age_s: float = DEFAULT_MAX_AGE_S
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    cors_origin: str | None = None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def check_port(host: str, port: int, hint: str) -> None:
    """Raise ``StartupError`` with a clear message unless ``host:port`` can be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # The servers set SO_REUSEADDR too, so a port in TIME_WAIT is not "taken".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"port {port} on {host} is already in use (is another otelviewer or {hint}"
                    " running?)"
                ) from None
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _placeholder_ui(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = b"otelviewer: the web UI is not installed in this build; OTLP receivers are running.\n"
    start_response(
        "503 Service Unavailable",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


def ui_app(reader: Reader) -> WSGIApp:
    """Return ``otelviewer.web.create_app(reader)``, or a placeholder if it is missing."""
    try:
        from otelviewer import web
    except ModuleNotFoundError as exc:
        if exc.name not in ("otelviewer.web",):
            raise
        logger.warning("otelviewer.web is missing: the UI port answers 503")
        return _placeholder_ui
    app: WSGIApp = web.create_app(reader)
    return app


class _WaitressThread:
    """One waitress server running in a thread, stoppable from another thread."""

    def __init__(self, app: WSGIApp, host: str, port: int, *, threads: int, **options: Any) -> None:
        # Any: waitress's stubs lack the trigger and socket map that stop() uses.
        self.server: Any = create_server(
            app, host=host, port=port, threads=threads, ident="otelviewer", **options
        )
        self.thread = threading.Thread(
            target=self.server.run, name=f"otelviewer-waitress-{port}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float) -> None:
        """Close the listener and every connection (in the loop's own thread), then join."""
        sockets = self.server._map  # waitress keeps its socket map here

        def close_all() -> None:
            wasyncore.close_all(sockets)

        self.server.trigger.pull_trigger(close_all)
        self.thread.join(timeout)
        self.server.task_dispatcher.shutdown(timeout=int(timeout))


class Server:
    """The running ``otelviewer serve``; ``start()`` then ``stop()``."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.store: SqliteStore | None = None
        self._grpc: Any = None
        self._ingest: Ingest | None = None
        self._wsgi: list[_WaitressThread] = []

    def start(self) -> None:
        """Check the ports, open the store, start the listeners, log one line each.

        Raises:
            StartupError: a port is taken or the database cannot be used; nothing
                is left running.
        """
        c = self.config
        for port, hint in (
            (c.grpc_port, "collector"),
            (c.http_port, "collector"),
            (c.ui_port, "Jaeger"),
        ):
            check_port(c.host, port, hint)
        try:
            self.store = SqliteStore(c.db_path, max_spans=c.max_spans, max_age_s=c.max_age_s)
        except Exception as exc:
            raise StartupError(f"cannot use the database {c.db_path}: {exc}") from exc
        self._ingest = Ingest(self.store)
        try:
            self._grpc = start_grpc_server(
                self._ingest, c.host, c.grpc_port, max_request_bytes=c.max_request_bytes
            )
            logger.info("OTLP/gRPC listening on %s:%d", _url_host(c.host), c.grpc_port)
            receiver = otlp_http.create_app(
                self._ingest, cors_origin=c.cors_origin, max_body=c.max_request_bytes
            )
            http_server = _WaitressThread(
                receiver,
                c.host,
                c.http_port,
                threads=HTTP_THREADS,
                # waitress refuses longer bodies itself before buffering them.
                max_request_body_size=c.max_request_bytes,
            )
            self._wsgi.append(http_server)
            http_server.start()
            logger.info("OTLP/HTTP listening on http://%s:%d", _url_host(c.host), c.http_port)
            ui_server = _WaitressThread(ui_app(self.store), c.host, c.ui_port, threads=UI_THREADS)
            self._wsgi.append(ui_server)
            ui_server.start()
            logger.info("UI and Jaeger API on http://%s:%d", _url_host(c.host), c.ui_port)
        except OSError as exc:  # lost a race for a port checked free a moment ago
            self.stop()
            raise StartupError(f"cannot listen: {exc}") from exc
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish, and close the store."""
        if self._grpc is not None:
            self._grpc.stop(GRACE_S).wait()
            self._grpc = None
        for wsgi in self._wsgi:
            wsgi.stop(GRACE_S)
        self._wsgi.clear()
        if self._ingest is not None:
            self._ingest.close()
            self._ingest = None
        if self.store is not None:
            self.store.close()
            self.store = None


def run(config: ServeConfig) -> int:
    """Serve until SIGINT (Ctrl+C) or SIGTERM; return the exit status (0 when clean).

    Raises:
        StartupError: see ``Server.start``.
    """
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("stopping (%s)", signal.Signals(signum).name)
        stopping.set()
        # A second Ctrl+C while shutting down stops at once.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = Server(config)
    try:
        server.start()
        while not stopping.wait(3600):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("stopped")
    return 0
