"""The application factory: configuration, secret key, migrations at startup, entry points."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask

from tests.postgres import on_all_databases
from tests.support import free_port, running, venv_env, wait_for_http
from todo import config, create_app
from todo.db import Base, db

MakeApp = Callable[..., Flask]
HEAD = "0001"

#: How many processes start on one fresh database at the same moment.
CONCURRENT_STARTS = 3


def alembic_versions(url: str) -> list[str]:
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.scalars(sqlalchemy.text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()


def test_factory_registers_blueprints_and_extensions(app: Flask) -> None:
    assert set(app.blueprints) == {"pages", "api", "health"}
    assert {"sqlalchemy", "migrate", "csrf"} <= set(app.extensions)
    assert app.config["MAX_CONTENT_LENGTH"] == 16 * 1024
    assert app.config["WTF_CSRF_ENABLED"] is False  # the test config's choice
    assert create_app.__doc__


def test_csrf_is_on_by_default(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    app = create_app({"TESTING": True})
    assert app.config["WTF_CSRF_ENABLED"] is True
    assert app.test_client().post("/add", data={"description": "x"}).status_code == 400
    with app.app_context():
        db.engine.dispose()


def test_default_database_is_sqlite_in_the_instance_folder(app: Flask) -> None:
    expected = f"sqlite:///{Path(app.instance_path) / 'todo.sqlite'}"
    assert config.defaults(app)["SQLALCHEMY_DATABASE_URI"] == expected


def test_environment_overrides_defaults_and_test_config_overrides_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_db = f"sqlite:///{tmp_path / 'from-env.sqlite'}"
    monkeypatch.setenv("DATABASE_URL", env_db)
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    app = create_app({"TESTING": True})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == env_db
    assert app.config["SECRET_KEY"] == "from-the-environment"
    assert (tmp_path / "from-env.sqlite").exists()  # created, with its schema
    assert alembic_versions(env_db) == [HEAD]

    test_db = f"sqlite:///{tmp_path / 'from-test.sqlite'}"
    other = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": test_db, "SECRET_KEY": "t"})
    assert other.config["SQLALCHEMY_DATABASE_URI"] == test_db
    assert other.config["SECRET_KEY"] == "t"
    for each in (app, other):
        with each.app_context():
            db.engine.dispose()


def test_without_secret_key_production_gets_a_random_key_and_a_warning(
    monkeypatch: pytest.MonkeyPatch, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with caplog.at_level(logging.WARNING, logger="todo.config"):
        first = create_app({"SQLALCHEMY_DATABASE_URI": db_url})
        second = create_app({"SQLALCHEMY_DATABASE_URI": db_url})
    keys = [first.config["SECRET_KEY"], second.config["SECRET_KEY"]]
    assert all(len(key) == 64 for key in keys)
    assert keys[0] != keys[1]
    assert config.DEV_SECRET_KEY not in keys
    warnings = [r.getMessage() for r in caplog.records if r.name == "todo.config"]
    assert (
        warnings
        == [
            "SECRET_KEY is not set: using a random key for this process; forms stop working "
            "after a restart and across worker processes. Set SECRET_KEY for production."
        ]
        * 2
    )
    for app in (first, second):
        with app.app_context():
            db.engine.dispose()


@pytest.mark.parametrize("setting", [{"DEBUG": True}, {"TESTING": True}])
def test_development_and_tests_use_the_dev_key_quietly(
    monkeypatch: pytest.MonkeyPatch,
    make_app: MakeApp,
    caplog: pytest.LogCaptureFixture,
    setting: dict[str, bool],
) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with caplog.at_level(logging.WARNING, logger="todo.config"):
        app = make_app(**{"SECRET_KEY": None, "TESTING": False, **setting})
    assert app.config["SECRET_KEY"] == config.DEV_SECRET_KEY
    assert not [r for r in caplog.records if r.name == "todo.config"]


@on_all_databases
def test_schema_is_migrated_at_startup_and_matches_the_models(app: Flask, db_url: str) -> None:
    assert alembic_versions(db_url) == [HEAD]
    engine = sqlalchemy.create_engine(db_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


@on_all_databases
def test_restart_keeps_data_and_migrates_nothing(make_app: MakeApp, db_url: str) -> None:
    first = make_app()
    first.test_client().post("/api/tasks", json={"description": "survives a restart"})
    second = make_app()
    tasks = second.test_client().get("/api/tasks").get_json()["tasks"]
    assert [t["description"] for t in tasks] == ["survives a restart"]
    assert alembic_versions(db_url) == [HEAD]


def test_flask_db_commands_use_the_shipped_migrations(app: Flask, db_url: str) -> None:
    runner = app.test_cli_runner()

    def flask_db(*args: str) -> None:
        result = runner.invoke(args=["db", *args])
        assert result.exit_code == 0, (args, result.output, result.exception)

    flask_db("check")  # exits 1 when the models and the migrations disagree
    flask_db("downgrade", "base")
    assert alembic_versions(db_url) == []
    engine = sqlalchemy.create_engine(db_url, poolclass=sqlalchemy.pool.NullPool)
    assert "tasks" not in sqlalchemy.inspect(engine).get_table_names()
    engine.dispose()
    flask_db("upgrade")
    assert alembic_versions(db_url) == [HEAD]
    flask_db("upgrade")  # again: nothing to do
    assert alembic_versions(db_url) == [HEAD]
    assert app.test_client().post("/api/tasks", json={"description": "x"}).status_code == 201


STARTER = """
import sys, time
from pathlib import Path
from todo import api, create_app, telemetry, views  # import first: start together below
barrier = Path(sys.argv[1])
(barrier / f"ready-{sys.argv[2]}").touch()
while not (barrier / "go").exists():
    time.sleep(0.005)
app = create_app({"SQLALCHEMY_DATABASE_URI": sys.argv[3], "SECRET_KEY": "x"})
print("started")
"""


@on_all_databases
def test_concurrent_starts_on_a_fresh_database(db_url: str, tmp_path: Path) -> None:
    """Several workers starting at once on an empty database: one migrates, all start."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(tmp_path), str(i), db_url],
            env=venv_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(CONCURRENT_STARTS)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("ready-*"))) < CONCURRENT_STARTS:
            assert time.monotonic() < deadline, "the workers did not get ready"
            assert all(p.poll() is None for p in procs), "a worker died early"
            time.sleep(0.02)
        (tmp_path / "go").touch()
        outputs = [p.communicate(timeout=60)[0].decode() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output
        assert output.strip().endswith("started"), output
    assert alembic_versions(db_url) == [HEAD]


def test_wsgi_module_creates_the_app_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SECRET_KEY", "wsgi-secret")
    monkeypatch.delitem(sys.modules, "todo.wsgi", raising=False)
    wsgi = importlib.import_module("todo.wsgi")
    try:
        assert isinstance(wsgi.app, Flask)
        assert wsgi.app.config["SQLALCHEMY_DATABASE_URI"] == db_url
        assert wsgi.app.config["SECRET_KEY"] == "wsgi-secret"
        assert wsgi.app.test_client().get("/healthz").get_json() == {"status": "ok"}
    finally:
        with wsgi.app.app_context():
            db.engine.dispose()
        sys.modules.pop("todo.wsgi", None)


@pytest.mark.e2e
def test_flask_run_from_the_repository_root(tmp_path: Path) -> None:
    """`flask run` with only the repository's .flaskenv serves the To-Do List."""
    port = free_port()
    env = venv_env(DATABASE_URL=f"sqlite:///{tmp_path / 'todo.sqlite'}")
    for name in ("FLASK_APP", "FLASK_DEBUG", "SECRET_KEY"):
        env.pop(name, None)
    log = tmp_path / "flask.log"
    with running(["flask", "run", "-p", str(port), "--no-reload"], env=env, stdout_path=log):
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200
            page = response.read().decode()
            assert "<title>To-Do List</title>" in page
            assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    output = log.read_text()
    assert f"Running on http://127.0.0.1:{port}" in output
    assert "SECRET_KEY is not set" in output  # production-like run: warned, not hard-coded
    assert "Traceback" not in output
    assert os.path.exists(tmp_path / "todo.sqlite")
