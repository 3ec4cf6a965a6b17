"""The OTLP/HTTP receiver (port 4318): ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs``.

Usage::

    app = create_app(store, cors_origin=None, max_body=DEFAULT_MAX_REQUEST_BYTES)
    waitress.serve(app, host="127.0.0.1", port=4318)

A plain WSGI application (no framework: it has three routes and is on the ingest
path). Bodies are ``application/x-protobuf`` or ``application/json`` (OTLP/JSON),
optionally ``Content-Encoding: gzip`` (or ``deflate``). The response is in the
request's content type: the Export response on success, a ``google.rpc.Status``
on failure (OTLP/HTTP specification).

========================================  ======  ==================================
what happened                             status  the sender...
========================================  ======  ==================================
stored (maybe with rejected items)        200     reads ``partial_success``
body undecodable (protobuf, JSON, gzip)   400     drops the batch
body over ``max_body`` (after inflating)  413     drops the batch
not protobuf or JSON, unknown encoding    415     drops the batch
not POST                                  405     -
store busy or closed                      503     retries after ``Retry-After``
========================================  ======  ==================================

Inflating is bounded: ``zlib.decompressobj.decompress(data, max_length)`` never
produces more than ``max_body + 1`` bytes, so a small gzip bomb costs at most
that much memory before it is refused with 413.

No CORS headers unless ``cors_origin`` is given; then that one origin (and only
it) may send from a browser: preflight ``OPTIONS`` and ``Access-Control-Allow-Origin``.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2  # type: ignore[import-untyped]

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

WSGIEnviron = dict[str, Any]
StartResponse = Callable[..., Any]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ROUTES: dict[str, Signal] = {"/v1/traces": TRACES, "/v1/metrics": METRICS, "/v1/logs": LOGS}
#: Seconds a sender is asked to wait when the store is busy: long enough for a
#: retention batch or another process's write to finish, short enough that the
#: SDK's export timeout (10 s) allows a few tries.
RETRY_AFTER_S = 2
#: How long a browser may cache a CORS preflight answer.
CORS_MAX_AGE_S = 600
#: Read the body in pieces of this size, so an over-long body is cut off early.
READ_CHUNK_BYTES = 256 * 1024

_HTTP_STATUS = {
    200: "200 OK",
    204: "204 No Content",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    413: "413 Content Too Large",
    415: "415 Unsupported Media Type",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}
_RPC_CODE = {
    400: code_pb2.INVALID_ARGUMENT,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    500: code_pb2.INTERNAL,
    503: code_pb2.UNAVAILABLE,
}


class HttpError(Exception):
    """A request refused with an HTTP status and a human message."""

    def __init__(self, status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


def _read_body(environ: WSGIEnviron, limit: int) -> bytes:
    """Read the request body, refusing (413) one longer than ``limit`` bytes."""
    length_text = environ.get("CONTENT_LENGTH") or ""
    if length_text.strip():
        try:
            length = int(length_text)
        except ValueError:
            raise HttpError(400, "Content-Length is not a number") from None
        if length > limit:
            raise HttpError(413, f"the body is {length} bytes; the limit is {limit}")
    stream = environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(READ_CHUNK_BYTES)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def inflate(data: bytes, encoding: str, limit: int) -> bytes:
    """Decompress a gzip or deflate body, never holding more than ``limit + 1`` bytes of it.

    Raises:
        HttpError: 413 when the output would pass ``limit``; 400 when it is not
            valid compressed data.
    """
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    out: list[bytes] = []
    produced = 0
    rest = data
    try:
        while rest:  # a gzip body may hold several members, one after another
            inflater = zlib.decompressobj(wbits)
            piece = inflater.decompress(rest, limit - produced + 1)
            produced += len(piece)
            if produced > limit or inflater.unconsumed_tail:
                raise HttpError(413, f"the body inflates past the limit of {limit} bytes")
            if not inflater.eof:
                raise HttpError(400, f"the {encoding} body is truncated")
            out.append(piece)
            rest = inflater.unused_data
    except zlib.error as exc:
        raise HttpError(400, f"the body is not valid {encoding}: {exc}") from None
    return b"".join(out)


class OtlpHttpApp:
    """The WSGI application; see the module docstring."""

    def __init__(
        self,
        ingest: Ingest,
        *,
        cors_origin: str | None = None,
        max_body: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self.ingest = ingest
        self.cors_origin = cors_origin.rstrip("/") if cors_origin else None
        self.max_body = max_body

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        """Handle one request."""
        headers: list[tuple[str, str]] = []
        if self.cors_origin:
            headers.append(("Vary", "Origin"))
            if environ.get("HTTP_ORIGIN") == self.cors_origin:
                headers.append(("Access-Control-Allow-Origin", self.cors_origin))
        content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        as_json = content_type != PROTOBUF
        try:
            status, body, kind = self._handle(environ, content_type, headers)
        except HttpError as exc:
            if exc.status >= 500:
                logger.warning("OTLP/HTTP %s: %s", exc.status, exc.message)
            headers.extend(exc.headers)
            status, body, kind = (
                exc.status,
                _status_body(exc, as_json),
                JSON if as_json else PROTOBUF,
            )
        except Exception:
            logger.exception("OTLP/HTTP request failed")
            error = HttpError(500, "internal error; see the otelviewer log")
            status, body, kind = 500, _status_body(error, as_json), JSON if as_json else PROTOBUF
        if kind:
            headers.append(("Content-Type", kind))
        headers.append(("Content-Length", str(len(body))))
        start_response(_HTTP_STATUS[status], headers)
        return [body]

    def _handle(
        self, environ: WSGIEnviron, content_type: str, headers: list[tuple[str, str]]
    ) -> tuple[int, bytes, str]:
        signal = ROUTES.get(environ.get("PATH_INFO", ""))
        if signal is None:
            raise HttpError(
                404, "not found; OTLP/HTTP takes POST /v1/traces, /v1/metrics, /v1/logs"
            )
        method = environ.get("REQUEST_METHOD", "GET")
        allowed = "POST, OPTIONS" if self.cors_origin else "POST"
        if method == "OPTIONS" and self.cors_origin:
            if environ.get("HTTP_ORIGIN") == self.cors_origin:
                headers += [
                    ("Access-Control-Allow-Methods", allowed),
                    ("Access-Control-Allow-Headers", "Content-Type, Content-Encoding"),
                    ("Access-Control-Max-Age", str(CORS_MAX_AGE_S)),
                ]
            return 204, b"", ""
        if method != "POST":
            raise HttpError(405, f"{method} is not allowed; send POST", [("Allow", allowed)])
        if content_type not in (PROTOBUF, JSON):
            raise HttpError(
                415, f"Content-Type must be {PROTOBUF} or {JSON}, not {content_type or 'missing'}"
            )
        encoding = (environ.get("HTTP_CONTENT_ENCODING") or "identity").strip().lower()
        if encoding not in ("identity", "gzip", "deflate"):
            raise HttpError(
                415, f"Content-Encoding must be gzip, deflate or identity, not {encoding}"
            )
        body = _read_body(environ, self.max_body)
        if encoding != "identity":
            body = inflate(body, encoding, self.max_body)
        as_json = content_type == JSON
        try:
            decoded = self.ingest.export(signal, body, is_json=as_json)
        except DecodeError as exc:
            raise HttpError(400, str(exc)) from None
        except StoreUnavailable as exc:
            raise HttpError(
                503, f"the store is busy, retry later: {exc}", [("Retry-After", str(RETRY_AFTER_S))]
            ) from None
        if decoded.rejected:
            logger.info("OTLP/HTTP %s: %s", signal.name, decoded.error_message)
        return 200, _encode(signal.response_for(decoded), as_json), content_type


def _encode(message: Message, as_json: bool) -> bytes:
    if as_json:
        return json_format.MessageToJson(message, indent=None).encode("utf-8")
    return message.SerializeToString()


def _status_body(error: HttpError, as_json: bool) -> bytes:
    status = status_pb2.Status(
        code=_RPC_CODE.get(error.status, code_pb2.UNKNOWN), message=error.message
    )
    return _encode(status, as_json)


def create_app(
    ingest: Ingest, *, cors_origin: str | None = None, max_body: int = DEFAULT_MAX_REQUEST_BYTES
) -> OtlpHttpApp:
    """Return the OTLP/HTTP WSGI application storing through ``ingest``."""
    return OtlpHttpApp(ingest, cors_origin=cors_origin, max_body=max_body)
