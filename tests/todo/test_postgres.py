"""The app on PostgreSQL (``DATABASE_URL=postgresql+psycopg://...``) and the cluster helper.

The app's other tests marked with ``on_all_databases`` run on PostgreSQL too;
these check what is specific to it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import psycopg
import pytest
import sqlalchemy
from flask import Flask
from flask.testing import FlaskClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.postgres import PostgresCluster, postgres_cluster, require_postgres
from todo import create_app
from todo.db import db

pytestmark = pytest.mark.postgres


def test_cluster_runs_unprivileged_on_loopback(postgres: PostgresCluster) -> None:
    with psycopg.connect(postgres.conninfo()) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("15")  # type: ignore[index]
        data_directory = conn.execute("SHOW data_directory").fetchone()[0]  # type: ignore[index]
    if os.geteuid() == 0:
        # PostgreSQL refuses root; the helper runs it as the postgres user.
        import pwd

        assert os.stat(data_directory).st_uid == pwd.getpwnam("postgres").pw_uid


def test_database_url_selects_postgresql(
    postgres: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.create_database()
    monkeypatch.setenv("DATABASE_URL", url)
    app = create_app({"TESTING": True})
    try:
        with app.app_context():
            assert db.engine.dialect.name == "postgresql"
            assert db.engine.dialect.driver == "psycopg"
            columns = {c["name"]: c for c in sqlalchemy.inspect(db.engine).get_columns("tasks")}
        assert str(columns["created_at"]["type"]) == "TIMESTAMP"
        assert columns["created_at"]["type"].timezone is True  # type: ignore[attr-defined]
        assert str(columns["description"]["type"]) == "VARCHAR(256)"
        client = app.test_client()
        assert client.post("/api/tasks", json={"description": "on PostgreSQL"}).status_code == 201
        assert client.get("/api/tasks").get_json()["tasks"][0]["description"] == "on PostgreSQL"
    finally:
        with app.app_context():
            db.engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_db_spans_say_postgresql(make_app: Callable[..., Flask]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = make_app(TELEMETRY_TRACER_PROVIDER=provider).test_client()
    exporter.clear()
    client.post("/api/tasks", json={"description": "traced"})
    spans = exporter.get_finished_spans()
    [add] = [s for s in spans if s.name == "todo.tasks.add"]
    db_spans = [s for s in spans if s.parent and s.parent.span_id == add.context.span_id]
    assert db_spans
    assert {(s.attributes or {}).get("db.system") for s in db_spans} == {"postgresql"}
    provider.shutdown()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_longest_unicode_description_fits(client: FlaskClient) -> None:
    # 256 characters (766 bytes in UTF-8), some outside the BMP.
    text = "ß✓😀" * 85 + "x"
    response = client.post("/api/tasks", json={"description": text})
    assert response.status_code == 201
    assert client.get(response.headers["Location"]).get_json()["description"] == text


def test_cluster_is_stopped_and_removed_afterwards() -> None:
    require_postgres()
    with postgres_cluster() as cluster:
        root, port = cluster.socket_dir, cluster.port
        assert root.exists()
        with psycopg.connect(cluster.conninfo()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not root.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
