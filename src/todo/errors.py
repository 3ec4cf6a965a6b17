"""Error answers: an HTML page for the pages, JSON ``{"error": ...}`` for ``/api/...``.

Every error answer carries a message for people and never a stack trace:

- 400 bad input (an unacceptable description, malformed JSON, a missing or
  wrong CSRF token), 404 unknown page or task, 405 wrong method (with
  ``Allow``), 413 body over ``MAX_CONTENT_LENGTH``, 415 API body that is not JSON;
- 500 anything unexpected: the session is rolled back (no partial write), the
  exception is logged with its traceback and recorded on the request's span,
  and the client gets a generic message.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError  # type: ignore[import-untyped]
from opentelemetry import trace
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from todo.db import db
from todo.tasks import TaskError, TaskNotFound

logger = logging.getLogger(__name__)

#: URL prefix of the JSON API: errors there are answered in JSON.
API_PREFIX = "/api/"

#: What people read for each status, unless the code raising it said more.
MESSAGES = {
    400: "The request could not be understood. Check what you sent and try again.",
    404: "There is nothing at this address.",
    405: "This address does not accept this kind of request.",
    413: "The request is too large.",
    415: "The request body is in a format this address does not accept.",
    500: "Something went wrong on our side. It has been logged; please try again.",
}

#: The message for a missing, wrong or expired CSRF token.
CSRF_MESSAGE = "The form expired or was not sent from this site; reload the page and try again."


def init_app(app: Flask) -> None:
    """Register the error handlers on ``app``."""
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(TaskError, handle_task_error)
    app.register_error_handler(Exception, handle_unexpected_error)


def handle_csrf_error(error: CSRFError) -> tuple[Response | str, int]:
    """Answer a missing or wrong CSRF token with 400."""
    logger.info("refused a form post: %s", error.description)
    return error_response(400, CSRF_MESSAGE)


def handle_http_exception(
    error: HTTPException,
) -> tuple[Response | str, int, list[tuple[str, str]]]:
    """Answer an HTTP error (404, 405, 413, ...) in the client's format."""
    code = error.code or 500
    if code >= 500:
        return (*handle_unexpected_error(error), [])
    custom = error.description != type(error).description
    message = error.description if custom and error.description else MESSAGES.get(code)
    if message is None:
        message = error.description or error.name
    if code == 413 and not custom and request.max_content_length:
        message = (
            f"The request is too large: the limit is {request.max_content_length // 1024} KiB."
        )
    if isinstance(error, MethodNotAllowed) and not custom:
        allowed = [m for m in error.valid_methods or [] if m not in {"HEAD", "OPTIONS"}]
        message = f"{request.path} does not accept {request.method} requests"
        message += f"; use {' or '.join(allowed)}." if allowed else "."
    # Keep the headers the error brings (Allow on 405), not its content type.
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    return (*error_response(code, message), headers)


def handle_task_error(error: TaskError) -> tuple[Response | str, int]:
    """Answer an unknown task with 404, any other refused request (bad input) with 400."""
    return error_response(404 if isinstance(error, TaskNotFound) else 400, str(error))


def handle_unexpected_error(error: Exception) -> tuple[Response | str, int]:
    """Roll back, log and record the error; answer 500 without any detail."""
    try:
        db.session.rollback()
    except SQLAlchemyError:  # a dead connection: the pool replaces it
        logger.warning("could not roll back after an error", exc_info=True)
    logger.error("unexpected error in %s %s", request.method, request.path, exc_info=error)
    span = trace.get_current_span()
    span.record_exception(error)
    span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
    return error_response(500, MESSAGES[500])


def error_response(code: int, message: str) -> tuple[Response | str, int]:
    """Return ``message`` as JSON for the API, as an error page otherwise."""
    if request.path.startswith(API_PREFIX) or request.path == API_PREFIX.rstrip("/"):
        return jsonify(error=message), code
    title = HTTPStatus(code).phrase
    return render_template("errors/error.html", code=code, title=title, message=message), code
