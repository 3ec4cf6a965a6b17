"""The To-Do List in a real browser: Debian's Chromium, driven by Playwright.

The app runs for real (werkzeug's server in a thread, a SQLite file, CSRF on) on
a free loopback port. Screenshots go to test-artifacts/todo-*.png.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.support import free_port, wait_for_http
from todo import create_app
from todo.db import db

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page

pytestmark = pytest.mark.browser

CSRF_MESSAGE = "The form expired or was not sent from this site; reload the page and try again."
EXPECTED_400 = "Failed to load resource: the server responded with a status of 400"
XSS = "<script>alert('xss')</script><img src=x onerror=alert(1)>"


class LiveApp:
    """The app served over HTTP on 127.0.0.1."""

    def __init__(self, app: Flask, url: str) -> None:
        self.app = app
        self.url = url

    def tasks(self) -> list[dict[str, object]]:
        client = self.app.test_client()
        return list(client.get("/api/tasks").get_json()["tasks"])


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    db_path = tmp_path_factory.mktemp("browser") / "todo.sqlite"
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}",
            "SECRET_KEY": "browser-test-secret",
            "WTF_CSRF_ENABLED": True,
        }
    )
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/healthz")
    try:
        yield LiveApp(app, url)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def page(browser: Browser, live_app: LiveApp) -> Iterator[Page]:
    """A fresh browser tab (own cookies) that fails the test on dialogs and console errors."""
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    tab = context.new_page()
    problems: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        # CSP violations and failed loads are reported here; the 400 pages the
        # tests ask for are not problems.
        if message.type == "error" and not message.text.startswith(EXPECTED_400):
            problems.append(f"console: {message.text}")

    tab.on("dialog", on_dialog)
    tab.on("console", on_console)
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield tab
    context.close()
    assert problems == []


def add(page: Page, description: str) -> None:
    page.fill("#description", description)
    page.click("button:has-text('Add')")


def test_add_complete_and_delete(page: Page, live_app: LiveApp, artifacts: Path) -> None:
    from playwright.sync_api import expect

    page.goto(live_app.url + "/")
    expect(page).to_have_title("To-Do List")
    expect(page.locator(".empty")).to_have_text("Nothing to do yet. Add your first task above.")
    # The stylesheet loaded under the CSP.
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(244, 246, 251)"

    add(page, "Buy milk")
    expect(page).to_have_url(live_app.url + "/")
    expect(page.locator(".flash")).to_have_text("Added “Buy milk”.")
    add(page, "Water the plants")
    add(page, "Write the OpenTelemetry chapter")
    expect(page.locator(".task .description")).to_have_text(
        ["Buy milk", "Water the plants", "Write the OpenTelemetry chapter"]
    )

    # Whitespace passes the browser's `required` check; the server refuses it and
    # shows why next to the field, keeping the input.
    add(page, "   ")
    error = page.locator("#description-error")
    expect(error).to_have_text("Describe the task: the description cannot be empty.")
    expect(page.locator("#description")).to_have_attribute("aria-invalid", "true")
    page.screenshot(path=str(artifacts / "todo-validation.png"))

    page.get_by_role("button", name="Mark as done: Buy milk").click()
    expect(page.locator(".flash")).to_have_text("Marked “Buy milk” as done.")
    expect(page.locator(".task.is-done .description")).to_have_text(["Buy milk"])
    expect(page.locator(".summary")).to_have_text("2 open · 1 done")
    page.screenshot(path=str(artifacts / "todo-list.png"), full_page=True)

    page.get_by_role("button", name="Mark as not done: Buy milk").click()
    expect(page.locator(".task.is-done")).to_have_count(0)

    page.get_by_role("button", name="Delete: Water the plants").click()
    expect(page.locator(".flash")).to_have_text("Deleted “Water the plants”.")
    expect(page.locator(".task .description")).to_have_text(
        ["Buy milk", "Write the OpenTelemetry chapter"]
    )
    descriptions = [task["description"] for task in live_app.tasks()]
    assert descriptions[-2:] == ["Buy milk", "Write the OpenTelemetry chapter"]
    assert "Water the plants" not in descriptions


def test_script_in_a_description_is_shown_as_text(page: Page, live_app: LiveApp) -> None:
    from playwright.sync_api import expect

    page.goto(live_app.url + "/")
    add(page, XSS)
    expect(page.locator(".task .description").last).to_have_text(XSS)
    expect(page.locator(".flash")).to_have_text(f"Added “{XSS}”.")
    assert page.locator("script").count() == 0
    assert page.locator("main img").count() == 0
    # The page fixture fails the test if an alert dialog opened.


def test_forged_cross_site_post_is_refused(page: Page, live_app: LiveApp, artifacts: Path) -> None:
    from playwright.sync_api import expect

    page.goto(live_app.url + "/")  # the victim has a session with the app
    before = live_app.tasks()

    # A request with the victim's cookies but without the page's token.
    response = page.request.post(live_app.url + "/add", form={"description": "forged"})
    assert response.status == 400
    assert CSRF_MESSAGE in response.text()

    # A hostile page elsewhere that submits a form to the app.
    page.set_content(
        f'<form id="evil" method="post" action="{live_app.url}/add">'
        '<input name="description" value="forged by another site"></form>'
    )
    with page.expect_navigation():
        page.evaluate("document.getElementById('evil').submit()")
    expect(page.locator(".error-message")).to_have_text(CSRF_MESSAGE)
    expect(page.locator("h1")).to_have_text("Bad Request")
    page.screenshot(path=str(artifacts / "todo-csrf-refused.png"))
    assert live_app.tasks() == before

    # The real form, with its token, still works.
    page.goto(live_app.url + "/")
    add(page, "Legit")
    expect(page.locator(".flash")).to_have_text("Added “Legit”.")


def test_small_screen(browser: Browser, live_app: LiveApp, artifacts: Path) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 760}, device_scale_factor=2)
    try:
        page = context.new_page()
        page.goto(live_app.url + "/")
        add(page, "Fits on a phone")
        expect(page.locator(".flash")).to_have_text("Added “Fits on a phone”.")
        # Nothing wider than the screen: no horizontal scrolling.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        page.screenshot(path=str(artifacts / "todo-mobile.png"), full_page=True)
    finally:
        context.close()
