"""The service layer: every read and write of tasks, and the only code that queries the DB.

Usage:
    Call these functions inside a request or app context::

        task = tasks.add_task("Buy milk")
        tasks.toggle_task(task.id)
        tasks.delete_task(task.id)

    Failures raise :class:`TaskNotFound` or :class:`InvalidDescription` (both
    :class:`TaskError`); the caller turns them into 404 and 400 answers. A
    database error rolls the session back and propagates.

Telemetry:
    Each operation runs inside an INTERNAL span of the ``todo`` tracer, a child of
    the request's server span and the parent of the database spans:
    ``todo.tasks.list`` (attribute ``todo.task.count``), ``todo.tasks.get``,
    ``todo.tasks.add``, ``todo.tasks.update``, ``todo.tasks.toggle`` and
    ``todo.tasks.delete`` (``todo.task.id``; toggle and update also
    ``todo.task.done``). An exception ends the span with status ERROR and an
    ``exception`` event. Each task added counts 1 on ``todo.tasks.created``.
    Adding, changing and deleting a task logs one INFO record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from todo import telemetry
from todo.db import db
from todo.models import MAX_DESCRIPTION_LENGTH, Task

logger = logging.getLogger(__name__)

#: Characters a description may not contain: the C0 controls (line breaks,
#: tabs, NUL...) and DEL.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

#: Span attribute: the id of the task an operation works on.
ATTR_TASK_ID = "todo.task.id"
#: Span attribute: whether the task is done after the operation.
ATTR_TASK_DONE = "todo.task.done"
#: Span attribute: how many tasks a listing returned.
ATTR_TASK_COUNT = "todo.task.count"


class TaskError(Exception):
    """A request about tasks that cannot be carried out; the message is for people."""


class TaskNotFound(TaskError):
    """No task has the given id."""

    def __init__(self, task_id: int) -> None:
        super().__init__(f"There is no task {task_id}; it may have been deleted.")
        self.task_id = task_id


class InvalidDescription(TaskError, ValueError):
    """The description is missing, blank, too long, or not one line of text."""


def validate_description(description: str | None) -> str:
    """Return ``description`` without surrounding whitespace, if it is acceptable.

    Raises:
        InvalidDescription: it is missing, blank, longer than
            :data:`~todo.models.MAX_DESCRIPTION_LENGTH` characters, or holds
            control characters (it is one line of text).
    """
    if description is None:
        raise InvalidDescription("A description is required.")
    cleaned = description.strip()
    if not cleaned:
        raise InvalidDescription("Describe the task: the description cannot be empty.")
    if CONTROL_CHARACTERS.search(cleaned):
        # One line of text; PostgreSQL cannot even store NUL.
        raise InvalidDescription("The description must be one line, without control characters.")
    if len(cleaned) > MAX_DESCRIPTION_LENGTH:
        raise InvalidDescription(
            f"The description is too long: at most {MAX_DESCRIPTION_LENGTH} characters,"
            f" this one has {len(cleaned)}."
        )
    return cleaned


def list_tasks() -> list[Task]:
    """Return all tasks, oldest first."""
    with _span("todo.tasks.list") as span:
        found = list(db.session.scalars(select(Task).order_by(Task.id)))
        span.set_attribute(ATTR_TASK_COUNT, len(found))
        return found


def count_open() -> int:
    """Return how many tasks are not done yet (for the open-tasks gauge)."""
    count = db.session.scalar(select(func.count()).select_from(Task).where(Task.done.is_(False)))
    return int(count or 0)


def get_task(task_id: int) -> Task:
    """Return the task with id ``task_id``.

    Raises:
        TaskNotFound: there is none.
    """
    with _span("todo.tasks.get") as span:
        span.set_attribute(ATTR_TASK_ID, task_id)
        return _load(task_id)


def add_task(description: str | None) -> Task:
    """Add a task that is not done yet, and return it.

    Raises:
        InvalidDescription: see :func:`validate_description`.
    """
    with _span("todo.tasks.add") as span:
        task = Task(description=validate_description(description), done=False)
        with _writing():
            db.session.add(task)
            db.session.commit()
        span.set_attribute(ATTR_TASK_ID, task.id)
        telemetry.instruments().tasks_created.add(1)
        logger.info("added task %d: %r", task.id, task.description)
        return task


def update_task(task_id: int, *, description: str | None = None, done: bool | None = None) -> Task:
    """Change the description and/or the done state of a task, and return it.

    Raises:
        TaskNotFound: there is no such task.
        InvalidDescription: ``description`` is given and not acceptable.
    """
    with _span("todo.tasks.update") as span:
        span.set_attribute(ATTR_TASK_ID, task_id)
        cleaned = None if description is None else validate_description(description)
        task = _load(task_id)
        with _writing():
            if cleaned is not None:
                task.description = cleaned
            if done is not None:
                task.done = done
            db.session.commit()
        span.set_attribute(ATTR_TASK_DONE, task.done)
        logger.info("updated task %d: done=%s %r", task.id, task.done, task.description)
        return task


def toggle_task(task_id: int) -> Task:
    """Mark a task done if it was open, open if it was done; return it.

    Raises:
        TaskNotFound: there is no such task.
    """
    with _span("todo.tasks.toggle") as span:
        span.set_attribute(ATTR_TASK_ID, task_id)
        task = _load(task_id)
        with _writing():
            task.done = not task.done
            db.session.commit()
        span.set_attribute(ATTR_TASK_DONE, task.done)
        logger.info(
            "marked task %d %s: %r", task.id, "done" if task.done else "open", task.description
        )
        return task


def delete_task(task_id: int) -> Task:
    """Delete a task and return it (detached, still readable).

    Raises:
        TaskNotFound: there is no such task.
    """
    with _span("todo.tasks.delete") as span:
        span.set_attribute(ATTR_TASK_ID, task_id)
        task = _load(task_id)
        with _writing():
            db.session.delete(task)
            db.session.commit()
        logger.info("deleted task %d: %r", task.id, task.description)
        return task


def _load(task_id: int) -> Task:
    task = db.session.get(Task, task_id)
    if task is None:
        raise TaskNotFound(task_id)
    return task


@contextmanager
def _writing() -> Iterator[None]:
    """Roll the session back when a write fails, so nothing is half-written."""
    try:
        yield
    except SQLAlchemyError:
        db.session.rollback()
        raise


@contextmanager
def _span(name: str) -> Iterator[trace.Span]:
    """Run the block in an INTERNAL span ``name`` that records any exception."""
    tracer = telemetry.tracer()
    with tracer.start_as_current_span(name, kind=trace.SpanKind.INTERNAL) as span:
        yield span
