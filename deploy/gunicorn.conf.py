"""gunicorn configuration for the To-Do app, with OpenTelemetry in every worker.

Usage:
    From the repository root (``make serve`` does the first)::

        gunicorn -c deploy/gunicorn.conf.py
        gunicorn -c deploy/gunicorn.conf.py --bind 127.0.0.1:8000 --workers 4

    The config names the app (``todo.wsgi:app``), so no app argument is needed.
    Command-line options override the values here.

Configuration:
    ``GUNICORN_BIND``
        Address to listen on (``host:port``; several separated by commas).
        Default ``127.0.0.1:5000``: this machine only. Containers set
        ``0.0.0.0:5000`` and publish the port on the host's loopback.
    ``WEB_CONCURRENCY``
        Number of worker processes (the variable gunicorn itself and most
        platforms use). Default: 2 per CPU + 1, at most 8.
    ``OTEL_*``
        The standard OpenTelemetry variables (``OTEL_SERVICE_NAME``,
        ``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ...), read by
        :func:`todo.telemetry.configure_sdk` in each worker. With none of them set
        the app runs without telemetry.

Telemetry and fork safety:
    gunicorn starts one master process that forks the workers. The
    OpenTelemetry SDK must be set up *after* the fork, in each worker
    (``post_fork``), never in the master:

    * the export machinery does not survive ``fork()`` intact: threads are not
      copied into the child (the SDK restarts its own batch threads there), and
      a gRPC channel opened in the master must not be used by its children
      (gRPC's fork support is off by default: exports would hang or fail);
    * each worker needs its own ``service.instance.id``. Workers are separate
      processes with separate counters; under one shared identity their
      cumulative metrics would overwrite each other in the backend. With one id
      each, every worker is its own series (Prometheus ``instance`` label) and
      its own process in a trace viewer.

    For that the app is not preloaded in the master (``preload_app = False``),
    and this file imports nothing from the SDK at module level.
    ``worker_exit`` flushes and shuts the SDK down when a worker stops, so a
    graceful stop (SIGTERM to the master, ``docker stop``) loses no telemetry
    that was recorded. (The SDK's exit handler would also flush at the end of
    the process; the hook makes it explicit, ordered and logged.) Do not run
    gunicorn under ``opentelemetry-instrument``: the agent would set the SDK up
    in the master, before the fork.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

#: Environment variable with the listen address(es).
BIND_ENV = "GUNICORN_BIND"
#: Environment variable with the number of workers (gunicorn's own convention).
WORKERS_ENV = "WEB_CONCURRENCY"
#: Loopback only unless told otherwise: security by default.
DEFAULT_BIND = "127.0.0.1:5000"
#: Cap on the default worker count. gunicorn's rule of thumb (2 x CPUs + 1)
#: suits a dedicated server; each worker also holds its own telemetry SDK and
#: database pool, so on a big shared machine the default stays modest. Set
#: WEB_CONCURRENCY to go higher on purpose.
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """Return gunicorn's rule of thumb, 2 workers per CPU plus one, capped."""
    return min(2 * (os.cpu_count() or 1) + 1, MAX_DEFAULT_WORKERS)


def workers_from_env() -> int:
    """Return the worker count from ``WEB_CONCURRENCY``, or the default."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if not raw:
        return default_workers()
    try:
        count = int(raw)
    except ValueError:
        raise SystemExit(f"{WORKERS_ENV} must be a whole number, not {raw!r}") from None
    if count < 1:
        raise SystemExit(f"{WORKERS_ENV} must be at least 1, not {count}")
    return count


def bind_from_env() -> list[str]:
    """Return the listen addresses from ``GUNICORN_BIND``, or the default."""
    raw = os.environ.get(BIND_ENV, "")
    addresses = [address.strip() for address in raw.split(",") if address.strip()]
    return addresses or [DEFAULT_BIND]


# --- gunicorn settings (https://docs.gunicorn.org/en/stable/settings.html) ---

wsgi_app = "todo.wsgi:app"
bind = bind_from_env()
workers = workers_from_env()
#: Sync workers: one request at a time per process, the model the app (and its
#: SQLAlchemy sessions) is written for. Scale with workers.
worker_class = "sync"
#: The app is imported in each worker after the fork, never in the master, so
#: nothing of the telemetry SDK exists before the fork (see the module docs).
preload_app = False
#: A worker that does not answer for 30 s is killed and replaced (gunicorn's
#: default; the app's requests take milliseconds).
timeout = 30
#: On SIGTERM a worker finishes its request and flushes its telemetry within
#: this time before it is killed. The SDK's exporters give up after 10 s
#: (OTEL_EXPORTER_OTLP_TIMEOUT), so a flush to an unreachable collector still
#: ends well inside it.
graceful_timeout = 30
proc_name = "todo"
#: No control socket (gunicorn 25+'s ``gunicornc`` interface). Its default path is
#: one per user (~/.gunicorn/gunicorn.ctl), so two servers on one machine (tests,
#: the benchmark, a second app) would fight over it, and the image's user has no
#: writable home. Signals (TERM, HUP, TTIN/TTOU) manage the master instead.
control_socket_disable = True
#: The app's requests are traced; an access log line per request adds nothing
#: but volume. Use --access-logfile - to see them anyway.
accesslog = None
errorlog = "-"
loglevel = "info"


def post_fork(server: Arbiter, worker: Worker) -> None:
    """Set up the telemetry SDK in a new worker, with its own service.instance.id."""
    from todo import telemetry  # imported here: in the worker, after the fork

    # A random UUID, as the semantic conventions recommend: unique across
    # machines and across restarts of a worker (pids are reused).
    instance_id = str(uuid.uuid4())
    installed = telemetry.configure_sdk(resource_attributes={"service.instance.id": instance_id})
    if installed:
        server.log.info("worker %s: telemetry on, service.instance.id=%s", worker.pid, instance_id)
    else:
        server.log.info(
            "worker %s: telemetry not set up here (no OTEL_* exporter asked for it, "
            "or an SDK was already installed)",
            worker.pid,
        )


def worker_exit(server: Arbiter, worker: Worker) -> None:
    """Flush and shut down the worker's telemetry SDK as the worker stops."""
    from todo import telemetry

    telemetry.shutdown_sdk()
    server.log.info("worker %s: telemetry flushed", worker.pid)
