"""The database: Flask-SQLAlchemy, the declarative base, and migrations at startup.

Usage:
    The application factory calls :func:`init_app`, which binds the ``db`` and
    ``migrate`` extensions to the app and upgrades the schema to the newest
    migration. Code outside :mod:`todo.tasks` never queries the database.

Configuration:
    ``SQLALCHEMY_DATABASE_URI`` (env ``DATABASE_URL``) picks the database: a SQLite
    file in the instance folder by default, or PostgreSQL with
    ``postgresql+psycopg://user:password@host/dbname``.

Migrations:
    The Alembic migrations ship inside the package (``todo/migrations``), so an
    installed app can create its own schema. Every start runs ``upgrade head``,
    which does nothing once the schema is current. Several processes may start
    at once (gunicorn workers): the upgrade runs inside a transaction that first
    takes a database-wide lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock
    on PostgreSQL), so one process migrates and the others then find the schema
    current. The same lock is taken by ``flask db upgrade``. To add a migration
    after changing a model::

        flask db migrate -m "what changed"   # then review the generated file
        flask db upgrade
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.orm import DeclarativeBase

logger = logging.getLogger(__name__)

#: The Alembic environment and revisions, shipped as package data.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Key of the PostgreSQL advisory lock that serialises schema upgrades. Any
#: constant works as long as nothing else in the database uses it: 0x746F646F is
#: "todo" in ASCII.
MIGRATION_LOCK_KEY = 0x746F646F

#: Names for constraints and indexes, so migrations can refer to them by a name
#: that is the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The declarative base of every model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# expire_on_commit=False: a task returned by the service layer stays readable
# after its transaction committed, so templates never trigger a hidden query.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate(directory=str(MIGRATIONS_DIR), compare_type=True, render_as_batch=True)


def init_app(app: Flask) -> None:
    """Bind the database extensions to ``app`` and upgrade its schema to head."""
    db.init_app(app)
    migrate.init_app(app, db)
    with app.app_context():
        upgrade_schema()


def upgrade_schema() -> None:
    """Upgrade the schema of the current app's database to the newest migration.

    Safe to call again and from several processes at once (see the module docs).
    Needs an app context.
    """
    from flask import current_app

    config = current_app.extensions["migrate"].migrate.get_config()
    command.upgrade(config, "head")


def lock_for_migration(connection: Connection) -> None:
    """Begin a transaction on ``connection`` that holds the migration lock.

    The lock is released when the transaction ends. Other processes that call
    this wait until then (SQLite: up to the driver's busy timeout).
    """
    dialect = connection.dialect.name
    if dialect == "sqlite":
        # pysqlite does not begin a transaction before DDL by itself; an
        # IMMEDIATE transaction takes SQLite's write lock at once.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        logger.warning("no migration lock for %s; start one process first", dialect)
        connection.begin()
