"""The JSON API under /api/tasks: shapes, status codes and headers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from flask.testing import FlaskClient

from tests.postgres import on_all_databases


def create(client: FlaskClient, description: str) -> dict[str, object]:
    response = client.post("/api/tasks", json={"description": description})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


@on_all_databases
def test_crud_round_trip(client: FlaskClient) -> None:
    assert client.get("/api/tasks").get_json() == {"tasks": []}

    response = client.post("/api/tasks", json={"description": "  Buy milk  "})
    assert response.status_code == 201
    task = response.get_json()
    assert set(task) == {"id", "description", "done", "created_at"}
    assert task["description"] == "Buy milk"  # stripped
    assert task["done"] is False
    assert isinstance(task["id"], int)
    assert response.headers["Location"] == f"/api/tasks/{task['id']}"

    assert client.get(response.headers["Location"]).get_json() == task
    assert client.get("/api/tasks").get_json() == {"tasks": [task]}

    patched = client.patch(f"/api/tasks/{task['id']}", json={"done": True})
    assert patched.status_code == 200
    assert patched.get_json() == {**task, "done": True}

    renamed = client.patch(f"/api/tasks/{task['id']}", json={"description": " Buy oat milk "})
    assert renamed.get_json() == {**task, "done": True, "description": "Buy oat milk"}

    both = client.patch(f"/api/tasks/{task['id']}", json={"description": "Milk", "done": False})
    assert both.get_json() == {**task, "done": False, "description": "Milk"}

    deleted = client.delete(f"/api/tasks/{task['id']}")
    assert deleted.status_code == 204
    assert deleted.get_data() == b""
    assert client.get(f"/api/tasks/{task['id']}").status_code == 404
    assert client.get("/api/tasks").get_json() == {"tasks": []}


@on_all_databases
def test_created_at_is_utc_iso_8601_and_now(client: FlaskClient) -> None:
    before = datetime.now(timezone.utc)
    task = create(client, "Timestamp me")
    after = datetime.now(timezone.utc)
    created = datetime.fromisoformat(str(task["created_at"]))
    assert created.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= created <= after + timedelta(seconds=1)
    # The stored value reads back identically (no time zone drift through the DB).
    assert client.get(f"/api/tasks/{task['id']}").get_json()["created_at"] == task["created_at"]


def test_list_is_oldest_first(client: FlaskClient) -> None:
    ids = [create(client, name)["id"] for name in ("one", "two", "three")]
    listed = client.get("/api/tasks").get_json()["tasks"]
    assert [t["id"] for t in listed] == ids
    assert [t["description"] for t in listed] == ["one", "two", "three"]


def test_json_with_charset_is_accepted(client: FlaskClient) -> None:
    response = client.post(
        "/api/tasks",
        data='{"description": "Käse"}'.encode(),
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 201
    assert response.get_json()["description"] == "Käse"


def test_unicode_and_html_are_returned_verbatim(client: FlaskClient) -> None:
    text = "<b>bold</b> & ünïcødé ✓"
    assert create(client, text)["description"] == text


def test_exactly_max_length_is_accepted(client: FlaskClient) -> None:
    assert create(client, "x" * 256)["description"] == "x" * 256


def test_api_is_csrf_exempt(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    task = create(client, "no token needed for JSON")
    assert client.patch(f"/api/tasks/{task['id']}", json={"done": True}).status_code == 200
    assert client.delete(f"/api/tasks/{task['id']}").status_code == 204


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/tasks/999"), ("PATCH", "/api/tasks/999"), ("DELETE", "/api/tasks/999")],
)
def test_unknown_task_is_json_404(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method, json={"done": True})
    assert response.status_code == 404
    assert response.get_json() == {"error": "There is no task 999; it may have been deleted."}


def test_unknown_api_url_is_json_404(client: FlaskClient) -> None:
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.is_json
    assert response.get_json() == {"error": "There is nothing at this address."}
