"""The otelviewer web app: the Jaeger-compatible query API and the web UI (port 16686).

``create_app(reader)`` returns a Flask app with two blueprints over one
``QueryService``:

* ``api`` -- Jaeger's HTTP JSON API under ``/api/`` (``/api/services``,
  ``/api/services/<service>/operations``, ``/api/operations``, ``/api/traces``,
  ``/api/traces/<id>``, ``/api/dependencies``), so that the Jaeger UI, Grafana's
  Jaeger data source and Jaeger clients can read otelviewer; plus our own
  ``/api/v1/logs``, ``/api/v1/metrics`` and ``/api/v1/metrics/<name>/series``.
* ``ui`` -- server-rendered pages: ``/search`` (also ``/``), ``/trace/<id>``,
  ``/logs``, ``/metrics``.

Every answer carries a strict Content-Security-Policy (scripts and styles from
this server only, none inline); pages are autoescaped Jinja templates. Nothing
mutates on GET -- nothing mutates at all: the app only reads.

Usage::

    from otelviewer.store.sqlite import SqliteStore
    from otelviewer.web import create_app
    app = create_app(SqliteStore("otelviewer.db"))
    # serve it with waitress: waitress.serve(app, host="127.0.0.1", port=16686)
"""

from __future__ import annotations

import logging

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from otelviewer import __version__
from otelviewer.query import QueryService
from otelviewer.store.contract import Reader, StoreUnavailable
from otelviewer.web import api, ui
from otelviewer.web.api import envelope_error
from otelviewer.web.context import EXTENSION_KEY

logger = logging.getLogger(__name__)

#: Scripts, styles, images and fonts from this server only; nothing inline, no
#: frames, no plugins, forms only to us. SVG charts are markup, so they pass.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _wants_json() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def _handle_http_error(error: HTTPException) -> tuple[Response | str, int]:
    """Answer an HTTP error as JSON under /api/ (Jaeger's envelope), as a page elsewhere."""
    code = error.code or 500
    message = error.description or error.name
    if _wants_json():
        return envelope_error(code, message), code
    return render_template("error.html", code=code, title=error.name, message=message), code


#: What a client waits before asking again when the store is busy or closed.
RETRY_AFTER_S = 1


def _handle_unavailable(error: StoreUnavailable) -> tuple[Response | str, int, dict[str, str]]:
    """Answer 503 with Retry-After when the store cannot answer now."""
    logger.warning("store unavailable serving %s: %s", request.path, error)
    message = "The telemetry store is busy or closed; try again in a moment."
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if _wants_json():
        return envelope_error(503, message), 503, headers
    page = render_template("error.html", code=503, title="Service Unavailable", message=message)
    return page, 503, headers


def _handle_unexpected(error: Exception) -> tuple[Response | str, int]:
    """Log an unexpected failure; answer 500 without a stack trace."""
    logger.exception("unexpected error serving %s %s", request.method, request.path)
    message = "The viewer failed to answer this request; its log has the details."
    if _wants_json():
        return envelope_error(500, message), 500
    return render_template(
        "error.html", code=500, title="Internal Server Error", message=message
    ), 500


def create_app(reader: Reader) -> Flask:
    """Return the API + UI app reading from ``reader``.

    Args:
        reader: the store (``SqliteStore``); shared by every request thread.
    """
    app = Flask(__name__)
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION_KEY] = QueryService(reader)
    app.register_blueprint(api.bp)
    app.register_blueprint(ui.bp)
    ui.register_template_helpers(app)
    app.jinja_env.globals["otelviewer_version"] = __version__
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _handle_http_error)
    app.register_error_handler(StoreUnavailable, _handle_unavailable)
    app.register_error_handler(Exception, _handle_unexpected)
    return app
