"""The JSON API under ``/api/tasks``.

Routes:
    ``GET /api/tasks``            ``200 {"tasks": [task, ...]}``, oldest first
    ``POST /api/tasks``           ``{"description": str}`` -> ``201 task`` and ``Location``
    ``GET /api/tasks/<id>``       ``200 task``
    ``PATCH /api/tasks/<id>``     ``{"description"?: str, "done"?: bool}`` -> ``200 task``
    ``DELETE /api/tasks/<id>``    ``204``

A task is ``{"id": int, "description": str, "done": bool, "created_at": str}``
(``created_at`` in ISO 8601, UTC). Request bodies must be JSON objects sent as
``Content-Type: application/json`` (415 otherwise) with only the fields above.
Errors are ``{"error": "<message for people>"}`` with status 400, 404, 405, 413
or 415 (see :mod:`todo.errors`).

The API is exempt from CSRF tokens: browsers only send ``application/json``
cross-site after a CORS preflight, which this app never grants.

Example::

    curl -X POST -H 'Content-Type: application/json' \\
         -d '{"description": "Buy milk"}' http://127.0.0.1:5000/api/tasks
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request, url_for
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from todo import tasks
from todo.security import csrf

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)

#: Methods whose requests carry a body, which must be JSON.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@bp.before_request
def require_json() -> None:
    """Refuse a request body that is not declared as JSON (415)."""
    if request.method in BODY_METHODS and not request.is_json:
        raise UnsupportedMediaType(
            "Send the body as JSON, with the header Content-Type: application/json."
        )


@bp.get("/tasks")
def list_tasks() -> dict[str, Any]:
    """List all tasks."""
    return {"tasks": [task.to_dict() for task in tasks.list_tasks()]}


@bp.post("/tasks")
def create_task() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Create a task from ``{"description": ...}``."""
    body = _json_object(allowed={"description"})
    if "description" not in body:
        raise BadRequest('The field "description" is required.')
    task = tasks.add_task(_string(body, "description"))
    location = url_for("api.get_task", task_id=task.id)
    return task.to_dict(), 201, {"Location": location}


@bp.get("/tasks/<int:task_id>")
def get_task(task_id: int) -> dict[str, Any]:
    """Show one task."""
    return tasks.get_task(task_id).to_dict()


@bp.patch("/tasks/<int:task_id>")
def update_task(task_id: int) -> dict[str, Any]:
    """Change the description and/or the done state of a task."""
    body = _json_object(allowed={"description", "done"})
    if not body:
        raise BadRequest('Send at least one of the fields "description" and "done".')
    description = _string(body, "description") if "description" in body else None
    done = body.get("done")
    if "done" in body and not isinstance(done, bool):
        raise BadRequest('The field "done" must be true or false.')
    return tasks.update_task(task_id, description=description, done=done).to_dict()


@bp.delete("/tasks/<int:task_id>")
def delete_task(task_id: int) -> Response:
    """Delete a task."""
    tasks.delete_task(task_id)
    return Response(status=204)


def _json_object(*, allowed: set[str]) -> dict[str, Any]:
    """Return the request body: a JSON object with no fields besides ``allowed``."""
    try:
        body = request.get_json()
    except BadRequest:
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest('The body must be a JSON object, like {"description": "Buy milk"}.')
    if unknown := sorted(set(body) - allowed):
        names = ", ".join(f'"{name}"' for name in unknown)
        raise BadRequest(f"Unknown field(s): {names}. Allowed: {', '.join(sorted(allowed))}.")
    return body


def _string(body: dict[str, Any], field: str) -> str:
    value = body[field]
    if not isinstance(value, str):
        raise BadRequest(f'The field "{field}" must be a string.')
    return value
