"""The ``otelviewer`` command (also ``python -m otelviewer``).

Usage::

    otelviewer serve [--host 127.0.0.1] [--grpc-port 4317] [--http-port 4318]
                     [--ui-port 16686] [--db PATH] [--max-spans 1000000]
                     [--max-age 7d] [--max-request-size 16MiB] [--cors-origin ORIGIN]

``serve`` prints one line per listener, then runs until Ctrl+C or SIGTERM and
exits 0. It exits 1 with a one-line message when it cannot start (a port is
taken, the database belongs to a newer otelviewer), and 2 on a usage error.

Configuration:
    --db: the SQLite file; default ``$XDG_DATA_HOME/otelviewer/otelviewer.db``
        (``~/.local/share/otelviewer/otelviewer.db``), created if missing.
    --max-age: a number with a unit, ``s``, ``m``, ``h`` or ``d`` (``24h``, ``7d``).
    --max-request-size: bytes, or with ``KB``/``MB``/``KiB``/``MiB`` (``16MiB``).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from otelviewer import __version__
from otelviewer.receiver.otlp import DEFAULT_MAX_REQUEST_BYTES
from otelviewer.server import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HOST,
    DEFAULT_HTTP_PORT,
    DEFAULT_UI_PORT,
    ServeConfig,
    StartupError,
    run,
)
from otelviewer.store.sqlite import DEFAULT_MAX_AGE_S, DEFAULT_MAX_SPANS

logger = logging.getLogger(__name__)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3}


def default_db_path() -> Path:
    """Return the per-user default database: ``$XDG_DATA_HOME/otelviewer/otelviewer.db``."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "otelviewer" / "otelviewer.db"


def parse_duration(text: str) -> float:
    """Return seconds for ``30s``, ``90m``, ``24h``, ``7d`` or a plain number of seconds."""
    match = _DURATION.match(text)
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 24h or 7d")
    return float(match[1]) * _DURATION_UNITS[match[2].lower()]


def parse_size(text: str) -> int:
    """Return bytes for ``1048576``, ``512KiB``, ``16MiB``, ``20MB``..."""
    match = _SIZE.match(text)
    if not match or int(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 16MiB")
    unit = (match[2] or "").lower()
    factor = 1024 ** " kmg".index(unit[0]) if "i" in unit else _SIZE_UNITS[unit[:1]]
    return int(match[1]) * factor


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be above zero")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``otelviewer`` command."""
    parser = argparse.ArgumentParser(
        prog="otelviewer",
        description="A local OpenTelemetry backend: OTLP receiver, SQLite store, trace viewer.",
    )
    parser.add_argument("--version", action="version", version=f"otelviewer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="receive OTLP and serve the UI until Ctrl+C",
        description="Receive OTLP on gRPC and HTTP, store it in SQLite, serve the UI and "
        "the Jaeger-compatible API.",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (%(default)s)")
    serve.add_argument(
        "--grpc-port", type=_port, default=DEFAULT_GRPC_PORT, help="OTLP/gRPC (%(default)s)"
    )
    serve.add_argument(
        "--http-port", type=_port, default=DEFAULT_HTTP_PORT, help="OTLP/HTTP (%(default)s)"
    )
    serve.add_argument(
        "--ui-port", type=_port, default=DEFAULT_UI_PORT, help="UI and Jaeger API (%(default)s)"
    )
    serve.add_argument(
        "--db",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"SQLite database file ({default_db_path()})",
    )
    serve.add_argument(
        "--max-spans",
        type=_positive_int,
        default=DEFAULT_MAX_SPANS,
        help="spans kept; the oldest go first (%(default)s)",
    )
    serve.add_argument(
        "--max-age",
        type=parse_duration,
        default=DEFAULT_MAX_AGE_S,
        metavar="DURATION",
        help="telemetry older than this is deleted, e.g. 24h or 7d (7d)",
    )
    serve.add_argument(
        "--max-request-size",
        type=parse_size,
        default=DEFAULT_MAX_REQUEST_BYTES,
        metavar="SIZE",
        help="largest OTLP request, after decompression, e.g. 16MiB (16MiB)",
    )
    serve.add_argument(
        "--cors-origin",
        default=None,
        metavar="ORIGIN",
        help="let a browser app at ORIGIN (e.g. http://localhost:3000) send OTLP/HTTP",
    )
    return parser


class _Formatter(logging.Formatter):
    """``otelviewer: message``, with the level for warnings and errors."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"otelviewer: {record.levelname.lower()}: {text}"
        return f"otelviewer: {text}"


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("otelviewer").setLevel(logging.INFO)
    # "Task queue depth is N" on every burst: normal for a busy receiver, not news.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``otelviewer`` command; return its exit status."""
    args = build_parser().parse_args(argv)
    _configure_logging()
    config = ServeConfig(
        db_path=args.db if args.db is not None else default_db_path(),
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        ui_port=args.ui_port,
        max_spans=args.max_spans,
        max_age_s=args.max_age,
        max_request_bytes=args.max_request_size,
        cors_origin=args.cors_origin,
    )
    try:
        return run(config)
    except StartupError as exc:
        print(f"otelviewer: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
