"""Fixtures for the To-Do app's tests: a fresh app and database per test.

Fixtures other suites can use:

- ``db_url``: the SQLAlchemy URL of a fresh, empty database. SQLite (a file in
  ``tmp_path``) unless the test is parametrized with
  ``tests.postgres.on_all_databases``, which runs it on PostgreSQL as well.
- ``make_app``: ``make_app(**config)`` creates an app on ``db_url`` with test
  settings (CSRF off unless ``WTF_CSRF_ENABLED=True``; providers injectable with
  ``TELEMETRY_TRACER_PROVIDER=...``); its connections are closed after the test.
- ``app`` / ``client``: ``make_app()`` and its test client.
- ``rows``: ``rows()`` counts the tasks in ``db_url`` through its own engine.
- ``get_csrf_token``: ``get_csrf_token(client)`` loads ``/`` and returns the
  forms' CSRF token (for apps made with ``WTF_CSRF_ENABLED=True``).
- ``postgres``: the session's throwaway PostgreSQL cluster
  (:class:`tests.postgres.PostgresCluster`), started on first use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
import sqlalchemy.pool
from flask import Flask
from flask.testing import FlaskClient

from tests.postgres import PostgresCluster, postgres_cluster, require_postgres
from todo import create_app
from todo.db import db

#: Settings of every test app, before the test's own.
TEST_CONFIG: dict[str, Any] = {
    "TESTING": True,
    "SECRET_KEY": "test-secret-key",
    "WTF_CSRF_ENABLED": False,
}

CSRF_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')

MakeApp = Callable[..., Flask]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """Start one throwaway PostgreSQL cluster for the whole run."""
    require_postgres()
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return the URL of a fresh database: SQLite, or PostgreSQL when parametrized."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'todo.sqlite'}"
    if backend == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        return cluster.create_database()
    raise ValueError(f"unknown database backend {backend!r}")


@pytest.fixture
def make_app(db_url: str) -> Iterator[MakeApp]:
    """Return a factory of test apps on ``db_url``; close their connections afterwards."""
    apps: list[Flask] = []

    def make(**config: Any) -> Flask:
        app = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": db_url, **config})
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def app(make_app: MakeApp) -> Flask:
    """Return a test app on a fresh database, CSRF checks off."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Return a test client of ``app``."""
    return app.test_client()


@pytest.fixture
def rows(db_url: str) -> Iterator[Callable[[], int]]:
    """Return a function that counts the rows of the tasks table, through its own engine."""
    engine = sqlalchemy.create_engine(db_url, poolclass=sqlalchemy.pool.NullPool)

    def count() -> int:
        with engine.connect() as conn:
            return int(conn.scalar(sqlalchemy.text("SELECT count(*) FROM tasks")) or 0)

    yield count
    engine.dispose()


@pytest.fixture
def get_csrf_token() -> Callable[[FlaskClient], str]:
    """Return a function that loads the list page and returns its forms' CSRF token."""

    def get(client: FlaskClient) -> str:
        page = client.get("/").get_data(as_text=True)
        match = CSRF_TOKEN.search(page)
        assert match, "no csrf_token field on the list page"
        return match.group(1)

    return get
