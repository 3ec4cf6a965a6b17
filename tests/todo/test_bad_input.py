"""The bad-input table of issue 2: right status, a message for people, no partial write.

Every failing request below must leave the database as it was (row counts and
contents) and must not show a stack trace.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy
from flask import Flask
from flask.testing import FlaskClient

from tests.postgres import on_all_databases
from todo.config import MAX_CONTENT_LENGTH

MakeApp = Callable[..., Flask]
Rows = Callable[[], int]

TOO_LONG = "x" * 257
EMPTY_MESSAGE = "Describe the task: the description cannot be empty."
TOO_LONG_MESSAGE = "The description is too long: at most 256 characters, this one has 257."
CONTROL_MESSAGE = "The description must be one line, without control characters."
MISSING_MESSAGE = "A description is required."
NOT_FOUND_MESSAGE = "There is no task 999; it may have been deleted."
CSRF_MESSAGE = "The form expired or was not sent from this site; reload the page and try again."
SERVER_ERROR_MESSAGE = "Something went wrong on our side. It has been logged; please try again."
OVERSIZED = "x" * (MAX_CONTENT_LENGTH + 1)

#: Signs of a stack trace or debugger page that must never reach a client.
TRACE_MARKERS = ("Traceback", 'File "', "werkzeug.debug", "sqlalchemy.exc", "Error:")


def assert_no_stack_trace(body: str) -> None:
    for marker in TRACE_MARKERS:
        assert marker not in body, f"{marker!r} leaked into the response"


def seed(client: FlaskClient) -> dict[str, Any]:
    """Add one task through the API so failing requests have something to spoil."""
    response = client.post("/api/tasks", json={"description": "Existing task"})
    assert response.status_code == 201
    return response.get_json()


# --- The pages ----------------------------------------------------------------

PAGE_DESCRIPTION_CASES = [
    pytest.param({"description": ""}, EMPTY_MESSAGE, id="empty"),
    pytest.param({"description": "  \t \n "}, EMPTY_MESSAGE, id="whitespace"),
    pytest.param({"description": TOO_LONG}, TOO_LONG_MESSAGE, id="too-long"),
    pytest.param({}, MISSING_MESSAGE, id="missing-field"),
    pytest.param({"description": "nul\x00byte"}, CONTROL_MESSAGE, id="nul-byte"),
]


@pytest.mark.parametrize(("form", "message"), PAGE_DESCRIPTION_CASES)
def test_add_page_bad_description(
    client: FlaskClient, rows: Rows, form: dict[str, str], message: str
) -> None:
    existing = seed(client)
    response = client.post("/add", data=form)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    # The message sits next to the form, tied to the field for screen readers,
    # and what was typed is kept.
    assert f'<p id="description-error" class="field-error" role="alert">{message}</p>' in page
    assert 'aria-describedby="description-error"' in page
    if form.get("description") and "\x00" not in form["description"]:
        assert f'value="{html.escape(form["description"])}"' in page
    # The list is still shown under the form.
    assert existing["description"] in page
    assert rows() == 1
    assert_no_stack_trace(page)


@pytest.mark.parametrize("action", ["toggle", "delete"])
def test_page_unknown_task_is_404(client: FlaskClient, rows: Rows, action: str) -> None:
    seed(client)
    response = client.post(f"/{action}/999")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert NOT_FOUND_MESSAGE in page
    assert "<h1>Not Found</h1>" in page
    assert rows() == 1


@pytest.mark.parametrize("path", ["/add", "/toggle/1", "/delete/1"])
def test_get_on_mutating_route_is_405(client: FlaskClient, rows: Rows, path: str) -> None:
    task = seed(client)
    response = client.get(path)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
    assert f"{path} does not accept GET requests; use POST." in response.get_data(as_text=True)
    assert rows() == 1
    assert client.get(f"/api/tasks/{task['id']}").get_json() == task  # not toggled


def test_unknown_url_is_404_page(client: FlaskClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "There is nothing at this address." in response.get_data(as_text=True)


def test_page_body_over_limit_is_413(client: FlaskClient, rows: Rows) -> None:
    response = client.post("/add", data={"description": OVERSIZED})
    assert response.status_code == 413
    assert "The request is too large: the limit is 16 KiB." in response.get_data(as_text=True)
    assert rows() == 0


# --- CSRF (enabled, as in production) ---------------------------------------------


@pytest.fixture
def csrf_client(make_app: MakeApp) -> FlaskClient:
    return make_app(WTF_CSRF_ENABLED=True).test_client()


@pytest.mark.parametrize(
    "path", ["/add", "/toggle/{id}", "/delete/{id}"], ids=["add", "toggle", "delete"]
)
@pytest.mark.parametrize("token", [None, "", "forged-token"], ids=["no", "empty", "wrong"])
def test_form_without_valid_csrf_token_is_400(
    csrf_client: FlaskClient,
    get_csrf_token: Callable[[FlaskClient], str],
    rows: Rows,
    path: str,
    token: str | None,
) -> None:
    task = seed(csrf_client)
    get_csrf_token(csrf_client)  # a real session exists; only the token is bad
    form = {"description": "Sneaky"}
    if token is not None:
        form["csrf_token"] = token
    response = csrf_client.post(path.format(id=task["id"]), data=form)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert CSRF_MESSAGE in page
    assert_no_stack_trace(page)
    assert rows() == 1
    assert csrf_client.get(f"/api/tasks/{task['id']}").get_json() == task


def test_csrf_token_from_another_session_is_400(
    make_app: MakeApp, get_csrf_token: Callable[[FlaskClient], str], rows: Rows
) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    token = get_csrf_token(app.test_client())
    other = app.test_client()
    response = other.post("/add", data={"description": "Sneaky", "csrf_token": token})
    assert response.status_code == 400
    assert CSRF_MESSAGE in response.get_data(as_text=True)
    assert rows() == 0


def test_csrf_token_from_the_page_works(
    csrf_client: FlaskClient, get_csrf_token: Callable[[FlaskClient], str], rows: Rows
) -> None:
    token = get_csrf_token(csrf_client)
    response = csrf_client.post("/add", data={"description": "Legit", "csrf_token": token})
    assert response.status_code == 303
    task_id = csrf_client.get("/api/tasks").get_json()["tasks"][0]["id"]
    assert csrf_client.post(f"/toggle/{task_id}", data={"csrf_token": token}).status_code == 303
    assert csrf_client.post(f"/delete/{task_id}", data={"csrf_token": token}).status_code == 303
    assert rows() == 0


# --- The JSON API -----------------------------------------------------------------

API_CASES = [
    pytest.param("POST", "/api/tasks", {"description": ""}, EMPTY_MESSAGE, id="empty"),
    pytest.param("POST", "/api/tasks", {"description": " \t "}, EMPTY_MESSAGE, id="whitespace"),
    pytest.param("POST", "/api/tasks", {"description": TOO_LONG}, TOO_LONG_MESSAGE, id="too-long"),
    pytest.param("POST", "/api/tasks", {"description": "a\x00b"}, CONTROL_MESSAGE, id="nul-byte"),
    pytest.param("POST", "/api/tasks", {"description": "a\nb"}, CONTROL_MESSAGE, id="newline"),
    pytest.param(
        "POST", "/api/tasks", {}, 'The field "description" is required.', id="missing-field"
    ),
    pytest.param(
        "POST", "/api/tasks", {"description": None}, 'The field "description" must be a string.',
        id="null-description",
    ),
    pytest.param(
        "POST", "/api/tasks", {"description": 42}, 'The field "description" must be a string.',
        id="number-description",
    ),
    pytest.param(
        "POST", "/api/tasks", ["Buy milk"],
        'The body must be a JSON object, like {"description": "Buy milk"}.', id="not-an-object",
    ),
    pytest.param(
        "POST", "/api/tasks", {"description": "ok", "priority": 1},
        'Unknown field(s): "priority". Allowed: description.', id="unknown-field",
    ),
    pytest.param(
        "PATCH", "/api/tasks/{id}", {},
        'Send at least one of the fields "description" and "done".', id="patch-nothing",
    ),
    pytest.param(
        "PATCH", "/api/tasks/{id}", {"done": "yes"}, 'The field "done" must be true or false.',
        id="patch-done-not-bool",
    ),
    pytest.param(
        "PATCH", "/api/tasks/{id}", {"done": 1}, 'The field "done" must be true or false.',
        id="patch-done-number",
    ),
    pytest.param(
        "PATCH", "/api/tasks/{id}", {"description": "  "}, EMPTY_MESSAGE, id="patch-empty"
    ),
    pytest.param(
        "PATCH", "/api/tasks/{id}", {"description": TOO_LONG}, TOO_LONG_MESSAGE,
        id="patch-too-long",
    ),
    # Valid description, invalid done: nothing may be written.
    pytest.param(
        "PATCH", "/api/tasks/{id}", {"description": "Changed", "done": "yes"},
        'The field "done" must be true or false.', id="patch-half-valid",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "message"), API_CASES)
def test_api_bad_input_is_json_400(
    client: FlaskClient, rows: Rows, method: str, path: str, body: Any, message: str
) -> None:
    task = seed(client)
    response = client.open(path.format(id=task["id"]), method=method, json=body)
    assert response.status_code == 400
    assert response.get_json() == {"error": message}
    assert rows() == 1
    assert client.get(f"/api/tasks/{task['id']}").get_json() == task


@pytest.mark.parametrize(
    "data",
    ["{", '{"description": "x",}', "\xff\xfe"],
    ids=["truncated", "trailing-comma", "binary"],
)
def test_api_invalid_json_is_400(client: FlaskClient, rows: Rows, data: str) -> None:
    response = client.post("/api/tasks", data=data, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json() == {"error": "The body is not valid JSON."}
    assert rows() == 0


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/x-www-form-urlencoded", "description=Buy+milk"),
        ("text/plain", '{"description": "Buy milk"}'),
        ("multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="a"\r\n'),
        (None, '{"description": "Buy milk"}'),
    ],
    ids=["form", "text", "multipart", "no-content-type"],
)
def test_api_non_json_body_is_415(
    client: FlaskClient, rows: Rows, method: str, content_type: str | None, data: str
) -> None:
    task = seed(client)
    path = "/api/tasks" if method == "POST" else f"/api/tasks/{task['id']}"
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.open(path, method=method, data=data, headers=headers)
    assert response.status_code == 415
    assert response.get_json() == {
        "error": "Send the body as JSON, with the header Content-Type: application/json."
    }
    assert rows() == 1


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/tasks", "GET, HEAD, OPTIONS, POST"),
        ("DELETE", "/api/tasks", "GET, HEAD, OPTIONS, POST"),
        ("POST", "/api/tasks/1", "DELETE, GET, HEAD, OPTIONS, PATCH"),
        ("PUT", "/api/tasks/1", "DELETE, GET, HEAD, OPTIONS, PATCH"),
    ],
)
def test_api_wrong_method_is_json_405(
    client: FlaskClient, rows: Rows, method: str, path: str, allow: str
) -> None:
    seed(client)
    response = client.open(path, method=method, json={"description": "x"})
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == set(allow.split(", "))
    assert response.get_json()["error"].startswith(f"{path} does not accept {method} requests")
    assert rows() == 1


def test_api_body_over_limit_is_json_413(client: FlaskClient, rows: Rows) -> None:
    response = client.post("/api/tasks", json={"description": OVERSIZED})
    assert response.status_code == 413
    assert response.get_json() == {"error": "The request is too large: the limit is 16 KiB."}
    assert rows() == 0


# --- Failures inside the app: 500 without details, and it keeps serving ----------


def test_unexpected_exception_is_generic_500(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()

    def explode() -> str:
        raise RuntimeError("secret internals: password=hunter2")

    app.add_url_rule("/test-only/explode", view_func=explode)
    app.add_url_rule("/api/test-only/explode", "api_explode", view_func=explode)
    client = app.test_client()

    with caplog.at_level(logging.ERROR, logger="todo.errors"):
        page = client.get("/test-only/explode")
        api = client.get("/api/test-only/explode")

    assert page.status_code == 500
    body = page.get_data(as_text=True)
    assert SERVER_ERROR_MESSAGE in body
    assert "hunter2" not in body
    assert "RuntimeError" not in body
    assert_no_stack_trace(body)

    assert api.status_code == 500
    assert api.get_json() == {"error": SERVER_ERROR_MESSAGE}

    # The details go to the log (with the traceback), not to the client.
    logged = [r for r in caplog.records if r.name == "todo.errors"]
    assert [r.getMessage() for r in logged] == [
        "unexpected error in GET /test-only/explode",
        "unexpected error in GET /api/test-only/explode",
    ]
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in logged)

    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/").status_code == 200


REFUSE_SQL = {
    # The database refuses one description, as a constraint or a failing disk
    # would, after the app has validated it and started writing.
    "sqlite": [
        "CREATE TRIGGER refuse_insert BEFORE INSERT ON tasks WHEN NEW.description = 'refused' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END",
        "CREATE TRIGGER refuse_update BEFORE UPDATE ON tasks WHEN NEW.description = 'refused' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END",
    ],
    "postgresql": ["ALTER TABLE tasks ADD CONSTRAINT refuse CHECK (description <> 'refused')"],
}


@on_all_databases
def test_write_refused_by_the_database_leaves_nothing_behind(
    client: FlaskClient, db_url: str, rows: Rows
) -> None:
    task = seed(client)
    engine = sqlalchemy.create_engine(db_url, poolclass=sqlalchemy.pool.NullPool)
    with engine.begin() as conn:
        for statement in REFUSE_SQL[engine.dialect.name]:
            conn.execute(sqlalchemy.text(statement))
    engine.dispose()

    refused = [
        ("POST", "/add", {"data": {"description": "refused"}}),
        ("POST", "/api/tasks", {"json": {"description": "refused"}}),
        # Both changes or neither: done must not flip when the description fails.
        ("PATCH", f"/api/tasks/{task['id']}", {"json": {"description": "refused", "done": True}}),
    ]
    for method, path, kwargs in refused:
        response = client.open(path, method=method, **kwargs)
        assert response.status_code == 500, (method, path)
        assert SERVER_ERROR_MESSAGE in response.get_data(as_text=True)
        assert_no_stack_trace(response.get_data(as_text=True))
        assert rows() == 1
        assert client.get(f"/api/tasks/{task['id']}").get_json() == task

    # The session was rolled back: the next writes of the same client work.
    assert client.post("/api/tasks", json={"description": "accepted"}).status_code == 201
    assert client.patch(f"/api/tasks/{task['id']}", json={"done": True}).status_code == 200
    assert rows() == 2


@on_all_databases
def test_database_failure_is_500_and_the_app_recovers(
    client: FlaskClient, db_url: str, rows: Rows
) -> None:
    task = seed(client)
    engine = sqlalchemy.create_engine(db_url, poolclass=sqlalchemy.pool.NullPool)

    def rename(old: str, new: str) -> None:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"ALTER TABLE {old} RENAME TO {new}"))

    rename("tasks", "tasks_away")
    try:
        for method, path, kwargs in [
            ("GET", "/", {}),
            ("POST", "/add", {"data": {"description": "Lost"}}),
            ("GET", "/api/tasks", {}),
            ("POST", "/api/tasks", {"json": {"description": "Lost"}}),
        ]:
            response = client.open(path, method=method, **kwargs)
            assert response.status_code == 500, (method, path)
            body = response.get_data(as_text=True)
            assert SERVER_ERROR_MESSAGE in body
            assert "tasks" not in body.replace("the task list", "")
            assert_no_stack_trace(body)
            assert client.get("/healthz").status_code == 200
    finally:
        rename("tasks_away", "tasks")
        engine.dispose()

    # The pool and the session are healthy again, and nothing was half-written.
    assert rows() == 1
    assert client.get("/api/tasks").get_json() == {"tasks": [task]}
    assert client.post("/add", data={"description": "Works again"}).status_code == 303
    assert rows() == 2
