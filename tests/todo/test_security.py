"""Security headers on every response, no inline code, cookies, no network at run time."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

import todo

PACKAGE = Path(todo.__file__).parent

EXPECTED_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "object-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@pytest.fixture
def app_with_failure(make_app: Callable[..., Flask]) -> Flask:
    app = make_app()

    def explode() -> str:
        raise RuntimeError("boom")

    app.add_url_rule("/test-only/explode", view_func=explode)
    return app


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/", {}, 200),
        ("POST", "/add", {"data": {"description": "x"}}, 303),
        ("POST", "/add", {"data": {"description": ""}}, 400),
        ("GET", "/api/tasks", {}, 200),
        ("POST", "/api/tasks", {"json": {"description": "x"}}, 201),
        ("DELETE", "/api/tasks/1", {}, 204),
        ("GET", "/api/tasks/999", {}, 404),
        ("POST", "/api/tasks", {"data": "x"}, 415),
        ("GET", "/healthz", {}, 200),
        ("GET", "/static/style.css", {}, 200),
        ("GET", "/static/favicon.svg", {}, 200),
        ("GET", "/static/missing.css", {}, 404),
        ("GET", "/missing", {}, 404),
        ("GET", "/add", {}, 405),
        ("POST", "/add", {"data": {"description": "x" * 20_000}}, 413),
        ("GET", "/test-only/explode", {}, 500),
    ],
)
def test_security_headers_on_every_response(
    app_with_failure: Flask, method: str, path: str, kwargs: dict[str, object], status: int
) -> None:
    client = app_with_failure.test_client()
    client.post("/api/tasks", json={"description": "x"})  # task 1, for the DELETE case
    response = client.open(path, method=method, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, name


def test_csrf_failure_response_has_headers(make_app: Callable[..., Flask]) -> None:
    response = make_app(WTF_CSRF_ENABLED=True).test_client().post("/add", data={})
    assert response.status_code == 400
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value


def test_csp_allows_no_inline_code() -> None:
    policy = EXPECTED_HEADERS["Content-Security-Policy"]
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy


def templates_and_assets() -> list[Path]:
    files = sorted((PACKAGE / "templates").rglob("*.html")) + sorted(
        (PACKAGE / "static").rglob("*")
    )
    assert len(files) >= 5
    return files


def test_templates_have_no_inline_script_or_style() -> None:
    for path in templates_and_assets():
        if path.suffix != ".html":
            continue
        text = path.read_text()
        assert "<script" not in text, path
        assert "<style" not in text, path
        assert not re.search(r"\sstyle=", text), path
        assert not re.search(r"\son[a-z]+=", text), path  # onclick= and friends


def test_nothing_is_loaded_from_the_network() -> None:
    for path in templates_and_assets():
        text = path.read_text()
        # The SVG namespace is an identifier, not a download.
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), path
        assert "@import" not in text, path


def test_session_cookie_is_httponly_and_samesite(make_app: Callable[..., Flask]) -> None:
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    response = client.get("/")  # the CSRF token puts its secret in the session
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_cross_site_form_to_api_is_refused(client: FlaskClient) -> None:
    # What a hostile page can send without a CORS preflight: a form post.
    for content_type in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data"):
        response = client.post(
            "/api/tasks", data="description=pwned", headers={"Content-Type": content_type}
        )
        assert response.status_code == 415
    assert client.get("/api/tasks").get_json() == {"tasks": []}


def test_no_cors_headers(client: FlaskClient) -> None:
    response = client.options("/api/tasks", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
