"""Alembic environment of the To-Do app (run by Flask-Migrate and at startup).

It migrates the database of the current Flask app, inside one transaction that
holds the migration lock (see ``todo.db``), so concurrent starts are safe. It
leaves logging alone: the app's logging configuration stays as it is.
"""

from __future__ import annotations

from alembic import context
from flask import current_app

from todo.db import Base, lock_for_migration

config = context.config


def run_migrations_offline() -> None:
    """Print the SQL of the migrations (``flask db upgrade --sql``)."""
    url = current_app.extensions["migrate"].db.engine.url
    context.configure(
        url=url.render_as_string(hide_password=False),
        target_metadata=Base.metadata,
        literal_binds=True,
        **current_app.extensions["migrate"].configure_args,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the app's database, holding the migration lock."""
    conf_args = dict(current_app.extensions["migrate"].configure_args)

    def skip_empty_autogenerate(_context, _revision, directives):  # type: ignore[no-untyped-def]
        # `flask db migrate` with no model change writes no empty revision.
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []

    conf_args.setdefault("process_revision_directives", skip_empty_autogenerate)
    engine = current_app.extensions["migrate"].db.engine
    with engine.connect() as connection:
        lock_for_migration(connection)
        context.configure(connection=connection, target_metadata=Base.metadata, **conf_args)
        # The transaction begun with the lock is the migration's transaction:
        # Alembic sees it and does not begin its own.
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
