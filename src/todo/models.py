"""The data model: one table of tasks.

Timestamps are timezone-aware UTC in Python on every database: SQLite has no
time zone type, so :class:`UTCDateTime` stores UTC and hands back aware values.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime, Dialect, String, false
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from todo.db import db

#: Longest task description, in characters (after stripping surrounding
#: whitespace). A task is one line on a to-do list; 256 fits any sensible one
#: and keeps the page readable.
MAX_DESCRIPTION_LENGTH = 256


def utcnow() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A ``DateTime(timezone=True)`` that always returns aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store aware datetimes converted to UTC; refuse naive ones."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware one")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        """Return the stored value as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite: stored as UTC without an offset
            return value.replace(tzinfo=timezone.utc)  # type: ignore[no-any-return]
        return value.astimezone(timezone.utc)  # type: ignore[no-any-return]


class Task(db.Model):  # type: ignore[name-defined,misc]
    """One item on the to-do list."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    description: Mapped[str] = mapped_column(String(MAX_DESCRIPTION_LENGTH))
    done: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def to_dict(self) -> dict[str, Any]:
        """Return the task as the JSON API shows it."""
        return {
            "id": self.id,
            "description": self.description,
            "done": self.done,
            "created_at": self.created_at.isoformat(),
        }

    def __repr__(self) -> str:
        return f"<Task {self.id} done={self.done} {self.description!r}>"
