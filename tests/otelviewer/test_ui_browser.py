"""The web UI in Debian's Chromium: search, open a trace, fold the waterfall, read logs.

The app is served on a free loopback port by a real WSGI server, reading a real
SqliteStore. Screenshots go to test-artifacts/otelviewer-*.png for a person to look at.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from werkzeug.serving import make_server

from otelviewer.store.sqlite import SqliteStore
from otelviewer.web import create_app
from tests.otelviewer import query_data as d
from tests.support import free_port, wait_for_http

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
#: How long a step waits for the page: everything is local, so a few seconds is plenty.
UI_TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = Path(tmp_path_factory.mktemp("ui-browser")) / "otelviewer.db"
    store = SqliteStore(path, retention_interval_s=0)
    store.write(d.build(time.time_ns()).batch)
    port = free_port()
    server = make_server("127.0.0.1", port, create_app(store), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="ui-browser-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/api/services")
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        store.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A desktop-sized page that fails the test on any console error or dialog."""
    context = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    context.set_default_timeout(UI_TIMEOUT_MS)
    p = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":  # a CSP violation or a script error
            problems.append(message.text)

    p.on("console", on_console)
    p.on("pageerror", lambda error: problems.append(str(error)))
    p.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    try:
        yield p
        assert problems == []
    finally:
        context.close()


def visible_rows(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        ".wf-item:not([hidden])", "rows => rows.map(r => r.dataset.spanId)"
    )
    return ids


def test_search_by_service(page: Page, base_url: str, artifacts: Path) -> None:
    page.goto(f"{base_url}/search")
    page.select_option("#service", "todo")
    # The operations of the chosen service are fetched from the API.
    page.wait_for_selector("#operation option[value='todo.tasks.add']", state="attached")
    page.click("button:has-text('Find traces')")
    page.wait_for_url("**/search?service=todo*")
    items = page.locator(".trace-item")
    assert items.count() == 6
    assert page.locator("h1#results-title").inner_text() == "6 traces"
    assert items.first.locator(".op-name").inner_text() == "GET /api/tasks"
    assert page.locator(".scatter circle.dot").count() == 6
    assert page.locator(".scatter circle.dot-error").count() == 1
    page.screenshot(path=str(artifacts / "otelviewer-search.png"), full_page=True)


def test_search_by_url_tag_then_open_the_trace(page: Page, base_url: str, artifacts: Path) -> None:
    page.goto(f"{base_url}/search?service=todo")
    page.fill("#tags", "http.target=/add")
    page.press("#tags", "Enter")
    page.wait_for_url("**tags=http.target%3D%2Fadd*")
    assert page.locator(".trace-item").count() == 1
    assert page.locator(".trace-item .op-name").inner_text() == "POST /add"
    page.click(".trace-item a")
    page.wait_for_url(f"**/trace/{d.ADD_TRACE}")
    assert page.locator("h1").inner_text() == "todo: POST /add"
    assert visible_rows(page) == [d.ADD_SERVER, d.ADD_INTERNAL, d.ADD_DB]
    page.screenshot(path=str(artifacts / "otelviewer-trace.png"), full_page=True)


def test_waterfall_collapses_and_expands(page: Page, base_url: str, artifacts: Path) -> None:
    page.goto(f"{base_url}/trace/{d.ADD_TRACE}")
    root_toggle = page.locator(f"#span-{d.ADD_SERVER} .wf-toggle")
    inner_toggle = page.locator(f"#span-{d.ADD_INTERNAL} .wf-toggle")
    inner_toggle.click()
    assert visible_rows(page) == [d.ADD_SERVER, d.ADD_INTERNAL]
    root_toggle.click()
    assert visible_rows(page) == [d.ADD_SERVER]
    assert root_toggle.get_attribute("aria-expanded") == "false"
    # Expanding the root keeps its collapsed child collapsed.
    root_toggle.click()
    assert visible_rows(page) == [d.ADD_SERVER, d.ADD_INTERNAL]
    # The toggle folds; it does not open the span's detail.
    assert page.locator(f"#span-{d.ADD_SERVER} details").get_attribute("open") is None
    page.click("button[data-action='collapse-all']")
    assert visible_rows(page) == [d.ADD_SERVER]
    page.click("button[data-action='expand-all']")
    assert visible_rows(page) == [d.ADD_SERVER, d.ADD_INTERNAL, d.ADD_DB]
    # Clicking a row opens its detail: attributes, resource, events, status.
    page.click(f"#span-{d.ADD_INTERNAL} summary .wf-op")
    detail = page.locator(f"#span-{d.ADD_INTERNAL} .span-detail")
    detail.wait_for(state="visible")
    text = detail.inner_text()
    for expected in ["todo.task.id", "7", "host.name", "laptop", "validated", "OK"]:
        assert expected in text
    page.screenshot(path=str(artifacts / "otelviewer-trace-detail.png"), full_page=True)


def test_trace_logs_link_to_their_span(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/trace/{d.ADD_TRACE}")
    logs = page.locator("#logs .log-row")
    assert logs.count() == 2
    assert "task 7 added" in logs.nth(0).inner_text()  # oldest first in a trace
    page.click("button[data-action='collapse-all']")
    logs.nth(0).locator(f"a[href='#span-{d.ADD_INTERNAL}']").click()
    # The span is revealed (its parent expanded) and its detail opened.
    assert d.ADD_INTERNAL in visible_rows(page)
    page.locator(f"#span-{d.ADD_INTERNAL} .span-detail").wait_for(state="visible")


def test_logs_page_searches_and_links_to_traces(page: Page, base_url: str, artifacts: Path) -> None:
    page.goto(f"{base_url}/logs")
    assert page.locator(".log-row").count() == 5
    page.select_option("#minSeverity", "13")
    page.select_option("#service", "todo")
    page.click("button:has-text('Search logs')")
    page.wait_for_url("**minSeverity=13*")
    assert page.locator(".log-row").count() == 2
    page.screenshot(path=str(artifacts / "otelviewer-logs.png"), full_page=True)
    page.locator(".log-row", has_text="task 99 not found").locator("a").click()
    page.wait_for_url(f"**/trace/{d.ERROR_TRACE}#span-{d.ERROR_INTERNAL}")
    detail = page.locator(f"#span-{d.ERROR_INTERNAL} .span-detail")
    detail.wait_for(state="visible")
    assert "ERROR: task 99 not found" in detail.inner_text()


def test_metrics_page_charts_a_series(page: Page, base_url: str, artifacts: Path) -> None:
    page.goto(f"{base_url}/metrics")
    page.click("text=todo.requests")
    page.wait_for_url("**name=todo.requests*")
    assert page.locator(".chart polyline").count() == 1
    assert page.locator(".chart circle.series-dot").count() == 2
    page.select_option("#series", label="todo http.request.method=POST http.route=/add (3 points)")
    page.wait_for_url("**series=*")
    assert page.locator(".chart circle.series-dot").count() == 3
    page.screenshot(path=str(artifacts / "otelviewer-metrics.png"), full_page=True)


def test_script_in_telemetry_shows_as_text(page: Page, base_url: str, artifacts: Path) -> None:
    page.goto(f"{base_url}/trace/{d.XSS_TRACE}")
    assert page.locator("h1").inner_text() == f"xss-test: {d.SCRIPT_NAME}"
    page.click(f"#span-{d.XSS_SPAN} summary .wf-op")
    detail = page.locator(f"#span-{d.XSS_SPAN} .span-detail")
    detail.wait_for(state="visible")
    text = detail.inner_text()
    for raw in [d.SCRIPT_KEY, d.SCRIPT_VALUE, "<b>bold</b>", "<script>event()</script>"]:
        assert raw in text
    # No element came from the telemetry: the only scripts are ours.
    assert page.locator("script").count() == 1
    assert page.locator("img").count() == 0
    assert page.locator("b").count() == 0
    assert "<script>alert('log')</script>" in page.locator("#logs").inner_text()
    page.screenshot(path=str(artifacts / "otelviewer-escaped.png"), full_page=True)
    # The page fixture fails the test if any dialog opened.


def test_phone_sized_window(browser: Browser, base_url: str, artifacts: Path) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)  # type: ignore[arg-type]
    try:
        context.set_default_timeout(UI_TIMEOUT_MS)
        p = context.new_page()
        for path, name in [
            ("/search?service=todo", "search"),
            (f"/trace/{d.CALL_TRACE}", "trace"),
            ("/logs", "logs"),
        ]:
            p.goto(f"{base_url}{path}")
            overflow = p.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
            p.screenshot(path=str(artifacts / f"otelviewer-phone-{name}.png"), full_page=True)
        # The waterfall still folds by touch.
        p.goto(f"{base_url}/trace/{d.CALL_TRACE}")
        p.tap(f"#span-{d.CALL_CLIENT} .wf-toggle")
        assert p.eval_on_selector_all(".wf-item:not([hidden])", "r => r.length") == 1
        p.tap(f"#span-{d.CALL_CLIENT} .wf-op")
        p.locator(f"#span-{d.CALL_CLIENT} .span-detail").wait_for(state="visible")
        p.screenshot(path=str(artifacts / "otelviewer-phone-detail.png"), full_page=True)
    finally:
        context.close()
