"""The web UI's pages, rendered from a real SqliteStore (the browser tests drive them live)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from otelviewer.store.sqlite import SqliteStore
from otelviewer.web import CONTENT_SECURITY_POLICY, create_app
from tests.otelviewer import query_data as d


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    path = Path(tmp_path_factory.mktemp("web")) / "otelviewer.db"
    store = SqliteStore(path, retention_interval_s=0)
    store.write(d.build(time.time_ns()).batch)
    try:
        yield create_app(store).test_client()
    finally:
        store.close()


class _Page(HTMLParser):
    """Collect what the tests look for: tags, attributes, script sources, text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1
        self.text.append(data)

    def all_text(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.text))

    def hrefs(self) -> list[str]:
        return [a.get("href") or "" for t, a in self.tags if t == "a"]


def page(client: FlaskClient, url: str, status: int = 200) -> _Page:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    parsed = _Page()
    parsed.feed(response.get_data(as_text=True))
    # The CSP allows no inline script or style: the pages must not need any.
    assert parsed.inline_scripts == 0
    assert not [a for t, a in parsed.tags if "style" in a or any(k.startswith("on") for k in a)]
    assert [a.get("src") for t, a in parsed.tags if t == "script"] == ["/static/otelviewer.js"]
    return parsed


def trace_links(p: _Page) -> list[str]:
    return [h.removeprefix("/trace/") for h in p.hrefs() if h.startswith("/trace/")]


def test_search_page_lists_newest_first_with_a_scatter_plot(client: FlaskClient) -> None:
    p = page(client, "/search?service=todo&lookback=1h")
    # Each trace is linked twice: its dot in the plot and its line in the list.
    ids = trace_links(p)
    expected = [
        d.BOTH_TRACE,
        d.SPLIT_TRACE_FULL,
        d.CALL_TRACE,
        d.ERROR_TRACE,
        d.LIST_TRACE,
        d.ADD_TRACE,
    ]
    assert ids == expected * 2
    assert len([a for t, a in p.tags if t == "circle" and "dot" in (a.get("class") or "")]) == 6
    assert "6 traces" in p.all_text()
    text = p.all_text()
    # root name, services with span counts, span count, error count, duration
    assert "todo-client: POST" in text
    assert "todo-client (1)" in text
    assert "todo (1)" in text
    assert "todo: POST /toggle/<int:task_id>" in text
    assert "2 spans 1 error" in text
    assert "1.2s" in text
    assert "12.5ms" in text


def test_root_page_is_the_search_over_all_services(client: FlaskClient) -> None:
    ids = trace_links(page(client, "/"))
    assert d.XSS_TRACE in ids
    assert d.CALL_TRACE in ids
    assert d.OLD_TRACE not in ids  # the default lookback is one hour


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("service=todo&tags=http.target%3D%2Fadd", [d.ADD_TRACE]),
        ("service=todo&tags=http.method%3DGET+custom.flag%3Dyes", [d.BOTH_TRACE]),
        ("service=todo&tags=error%3Dtrue", [d.ERROR_TRACE]),
        ('tags=http.url%3D"http%3A%2F%2F127.0.0.1%3A5000%2Fapi%2Ftasks"', [d.CALL_TRACE]),
        ("service=todo&minDuration=999ms", [d.CALL_TRACE]),
        ("service=todo&operation=todo.tasks.list", [d.SPLIT_TRACE_FULL, d.LIST_TRACE]),
        ("service=todo&lookback=7d&limit=1", [d.BOTH_TRACE]),
    ],
)
def test_search_form_params(client: FlaskClient, query: str, expected: list[str]) -> None:
    ids = trace_links(page(client, f"/search?{query}"))
    assert ids == expected * 2


def test_search_keeps_the_form_filled(client: FlaskClient) -> None:
    p = page(client, "/search?service=todo&operation=GET+/&tags=a%3Db+c%3D%22d+e%22&lookback=6h")
    inputs = {a.get("name"): a.get("value") for t, a in p.tags if t == "input"}
    assert inputs["tags"] == 'a=b c="d e"'
    selected = {a.get("value") for t, a in p.tags if t == "option" and "selected" in a}
    assert {"todo", "GET /", "6h"} <= selected
    assert "No traces found" in p.all_text()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("service=todo&tags=a%3D%22open", "a quote after 'a=' is not closed"),
        ("service=todo&minDuration=fast", "unable to parse param 'minDuration'"),
        ("service=todo&limit=x", "unable to parse param 'limit'"),
    ],
)
def test_search_form_errors_show_on_the_page(client: FlaskClient, query: str, message: str) -> None:
    p = page(client, f"/search?{query}", 400)
    assert message in p.all_text()
    assert trace_links(p) == []


def test_trace_page_waterfall_details_and_logs(client: FlaskClient) -> None:
    p = page(client, f"/trace/{d.ADD_TRACE}")
    rows = [a for t, a in p.tags if t == "div" and "wf-item" in (a.get("class") or "")]
    assert [(r["id"], r["data-depth"]) for r in rows] == [
        (f"span-{d.ADD_SERVER}", "0"),
        (f"span-{d.ADD_INTERNAL}", "1"),
        (f"span-{d.ADD_DB}", "2"),
    ]
    # Only spans with children get a collapse toggle.
    assert (
        len([a for t, a in p.tags if t == "button" and "wf-toggle" in (a.get("class") or "")]) == 2
    )
    text = p.all_text()
    for expected in [
        "todo: POST /add",
        "todo.tasks.add",
        "INSERT todo.db",
        "todo.task.id 7",
        'todo.tags ["a", "b"]',
        "host.name laptop",  # resource
        "opentelemetry.instrumentation.flask 0.66b1",  # scope
        "validated",  # event
        "todo.length 12",
        "OK",
        "task 7 added",  # logs
        "description was trimmed",
    ]:
        assert expected in text
    assert f"#span-{d.ADD_INTERNAL}" in p.hrefs()  # the log links to its span
    # A tag links to a search for it.
    assert "/search?service=todo&tags=http.target%3D/add" in p.hrefs()


def test_trace_page_error_status_event_and_link(client: FlaskClient) -> None:
    text = page(client, f"/trace/{d.ERROR_TRACE}").all_text()
    assert "ERROR: task 99 not found" in text
    assert "exception.type LookupError" in text
    call = page(client, f"/trace/{d.CALL_TRACE}")
    assert f"/trace/{d.ADD_TRACE}#span-{d.ADD_SERVER}" in call.hrefs()
    assert "link.reason retry" in call.all_text()


def test_short_trace_id_opens_the_padded_trace(client: FlaskClient) -> None:
    p = page(client, f"/trace/{d.SPLIT_TRACE}")
    assert f"/api/traces/{d.SPLIT_TRACE_FULL}?prettyPrint=true" in p.hrefs()


def test_markup_in_telemetry_is_shown_as_text(client: FlaskClient) -> None:
    response = client.get(f"/trace/{d.XSS_TRACE}")
    html = response.get_data(as_text=True)
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in html
    p = _Page()
    p.feed(html)
    text = p.all_text()
    for raw in [
        d.SCRIPT_NAME,
        d.SCRIPT_KEY,
        d.SCRIPT_VALUE,
        "<b>bold</b>",
        "<script>status()</script>",
    ]:
        assert raw in text
    assert [a.get("src") for t, a in p.tags if t == "script"] == ["/static/otelviewer.js"]
    assert "&lt;script&gt;" in client.get("/search?service=xss-test").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#39;log&#39;)" in client.get("/logs").get_data(as_text=True)


@pytest.mark.parametrize("url", [f"/trace/{d.MISSING_TRACE}", "/trace/not-an-id", "/nowhere"])
def test_not_found_is_a_friendly_page(client: FlaskClient, url: str) -> None:
    p = page(client, url, 404)
    assert "Not found" in p.all_text()
    assert "/search" in p.hrefs()


def test_jump_to_trace(client: FlaskClient) -> None:
    response = client.get(f"/jump?traceID={d.ADD_TRACE.upper()}")
    assert (response.status_code, response.location) == (302, f"/trace/{d.ADD_TRACE}")
    assert client.get("/jump?traceID=zzz").status_code == 404


@pytest.mark.parametrize(
    ("query", "bodies"),
    [
        ("", 5),
        ("service=todo&minSeverity=13", 2),
        ("text=added", 1),
        (f"traceID={d.ERROR_TRACE}", 1),
    ],
)
def test_logs_page(client: FlaskClient, query: str, bodies: int) -> None:
    p = page(client, f"/logs?{query}")
    rows = [a for t, a in p.tags if t == "tr" and a.get("class") == "log-row"]
    assert len(rows) == bodies


def test_logs_link_to_their_trace_and_span(client: FlaskClient) -> None:
    p = page(client, "/logs?text=added")
    assert f"/trace/{d.ADD_TRACE}#span-{d.ADD_INTERNAL}" in p.hrefs()
    assert "task 7 added" in p.all_text()
    assert "invalid param 'minSeverity'" in page(client, "/logs?minSeverity=loud", 400).all_text()


def test_metrics_page_charts_a_series(client: FlaskClient) -> None:
    index = page(client, "/metrics")
    assert "/metrics?name=todo.requests&lookback=1h" in index.hrefs()
    p = page(client, "/metrics?name=todo.requests")
    polylines = [a for t, a in p.tags if t == "polyline"]
    assert len(polylines) == 1
    # The first series (by label) is GET / with two points.
    assert len((polylines[0]["points"] or "").split()) == 2
    series = client.get("/api/v1/metrics/todo.requests/series").get_json()["data"]
    selected = [a.get("value") for t, a in p.tags if t == "option" and "selected" in a]
    assert series[0]["id"] in selected
    text = p.all_text()
    assert "todo http.request.method=GET http.route=/ (2 points)" in text
    assert "todo http.request.method=POST http.route=/add (3 points)" in text


def test_metrics_page_picks_a_series_by_id(client: FlaskClient) -> None:
    series = client.get("/api/v1/metrics/todo.requests/series").get_json()["data"]
    post = next(s for s in series if "POST" in s["label"])
    p = page(client, f"/metrics?name=todo.requests&series={post['id']}")
    [polyline] = [a for t, a in p.tags if t == "polyline"]
    assert len((polyline["points"] or "").split()) == 3
    assert "value 4" in p.all_text()


def test_metrics_page_unknown_metric(client: FlaskClient) -> None:
    assert "No metric named" in page(client, "/metrics?name=nope", 404).all_text()


def test_static_assets_are_served(client: FlaskClient) -> None:
    for name, mimetype in [
        ("otelviewer.css", "text/css"),
        ("otelviewer.js", "text/javascript"),
        ("favicon.svg", "image/svg+xml"),
    ]:
        response = client.get(f"/static/{name}")
        assert (response.status_code, response.mimetype) == (200, mimetype)
        response.close()


def test_a_huge_trace_is_drawn_up_to_the_limit(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("otelviewer.web.ui.MAX_WATERFALL_SPANS", 2)
    p = page(client, f"/trace/{d.ADD_TRACE}")
    rows = [a for t, a in p.tags if t == "div" and "wf-item" in (a.get("class") or "")]
    assert len(rows) == 2
    assert "1 more spans are not drawn" in p.all_text()


def test_a_closed_store_answers_503_with_retry_after(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "closed.db", retention_interval_s=0)
    store.close()
    closed = create_app(store).test_client()
    response = closed.get("/api/services")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    assert response.get_json()["errors"][0]["code"] == 503
    html = closed.get("/search")
    assert html.status_code == 503
    assert "try again in a moment" in html.get_data(as_text=True)
    assert "Traceback" not in html.get_data(as_text=True)
