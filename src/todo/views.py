"""The HTML pages: the task list and the forms that change it.

Routes:
    ``GET /``                  the list, with the form to add a task
    ``POST /add``              add a task (form field ``description``)
    ``POST /toggle/<id>``      mark a task done, or not done again
    ``POST /delete/<id>``      delete a task

Every POST answers with a redirect back to the list (303, so a reload does not
post again) and a flash message. An unacceptable description re-renders the
list with status 400, the message next to the form and the input kept. Every
form carries a CSRF token (see :mod:`todo.security`).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from todo import tasks
from todo.models import MAX_DESCRIPTION_LENGTH

bp = Blueprint("pages", __name__)


@bp.get("/")
def index() -> str:
    """Show the list of tasks and the form to add one."""
    return _render_list()


@bp.post("/add")
def add() -> Response | tuple[str, int]:
    """Add the task described in the form."""
    description = request.form.get("description")
    try:
        task = tasks.add_task(description)
    except tasks.InvalidDescription as error:
        return _render_list(description=description or "", error=str(error)), 400
    flash(f"Added “{task.description}”.", "success")
    return _back_to_list()


@bp.post("/toggle/<int:task_id>")
def toggle(task_id: int) -> Response:
    """Mark a task done, or not done again."""
    task = tasks.toggle_task(task_id)
    state = "done" if task.done else "not done"
    flash(f"Marked “{task.description}” as {state}.", "success")
    return _back_to_list()


@bp.post("/delete/<int:task_id>")
def delete(task_id: int) -> Response:
    """Delete a task."""
    task = tasks.delete_task(task_id)
    flash(f"Deleted “{task.description}”.", "success")
    return _back_to_list()


def _render_list(*, description: str = "", error: str | None = None) -> str:
    all_tasks = tasks.list_tasks()
    return render_template(
        "pages/index.html",
        tasks=all_tasks,
        open_count=sum(1 for task in all_tasks if not task.done),
        description=description,
        error=error,
        max_length=MAX_DESCRIPTION_LENGTH,
    )


def _back_to_list() -> Response:
    # 303 See Other: the browser follows with a GET, so reloading the page
    # after a POST does not send the form again.
    return redirect(url_for("pages.index"), code=303)
