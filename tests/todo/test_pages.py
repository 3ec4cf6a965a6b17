"""The HTML pages: the list, adding, completing and deleting tasks, flash messages."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.postgres import on_all_databases

TASK_ITEM = re.compile(r'<li class="task( is-done)?" id="task-(\d+)">')


def tasks_on_page(client: FlaskClient) -> list[tuple[int, bool]]:
    """Return (id, done) of each task on the list page, in page order."""
    page = client.get("/").get_data(as_text=True)
    return [(int(task_id), bool(done)) for done, task_id in TASK_ITEM.findall(page)]


def test_empty_list(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<title>To-Do List</title>" in page
    assert "Nothing to do yet. Add your first task above." in page
    assert "0 open · 0 done" in page
    assert '<form class="add-form" method="post" action="/add">' in page


@on_all_databases
def test_add_toggle_delete(client: FlaskClient) -> None:
    response = client.post("/add", data={"description": "  Water the plants "})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"

    page = client.get("/").get_data(as_text=True)
    assert '<li class="flash flash-success">Added “Water the plants”.</li>' in page
    assert '<span class="description">Water the plants</span>' in page
    assert "1 open · 0 done" in page
    [(task_id, done)] = tasks_on_page(client)
    assert done is False
    # The flash message is shown once.
    assert "Added “Water the plants”." not in client.get("/").get_data(as_text=True)

    response = client.post(f"/toggle/{task_id}")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert "Marked “Water the plants” as done." in page
    assert "0 open · 1 done" in page
    assert tasks_on_page(client) == [(task_id, True)]

    client.post(f"/toggle/{task_id}")
    page = client.get("/").get_data(as_text=True)
    assert "Marked “Water the plants” as not done." in page
    assert tasks_on_page(client) == [(task_id, False)]

    response = client.post(f"/delete/{task_id}")
    assert response.status_code == 303
    page = client.get("/").get_data(as_text=True)
    assert "Deleted “Water the plants”." in page
    assert tasks_on_page(client) == []
    assert "Nothing to do yet." in page


def test_list_shows_oldest_first_with_timestamps(client: FlaskClient) -> None:
    for name in ("first", "second", "third"):
        client.post("/add", data={"description": name})
    client.post("/toggle/2")
    page = client.get("/").get_data(as_text=True)
    assert tasks_on_page(client) == [(1, False), (2, True), (3, False)]
    assert page.index("first") < page.index("second") < page.index("third")
    assert "2 open · 1 done" in page
    stamps = re.findall(r'<time datetime="([^"]+)">Added (\S+ \S+) UTC</time>', page)
    assert len(stamps) == 3
    for iso, shown in stamps:
        assert iso.endswith("+00:00")
        assert iso.replace("T", " ").startswith(shown)


def test_html_in_description_is_shown_as_text(client: FlaskClient) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    client.post("/add", data={"description": evil})
    page = client.get("/").get_data(as_text=True)
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
    assert f'<span class="description">{escaped}</span>' in page
    assert f"Added “{escaped}”." in page
    assert "<script" not in page
    assert "<img" not in page


def test_rejected_html_is_escaped_when_re_rendered(client: FlaskClient) -> None:
    evil = '"><script>alert(1)</script>' + "x" * 300
    response = client.post("/add", data={"description": evil})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "<script" not in page
    assert 'value="&#34;&gt;&lt;script&gt;' in page


def test_every_form_posts_with_a_csrf_field(client: FlaskClient) -> None:
    client.post("/add", data={"description": "one"})
    client.post("/add", data={"description": "two"})
    page = client.get("/").get_data(as_text=True)
    forms = re.findall(r"<form\b.*?</form>", page, flags=re.S)
    assert len(forms) == 1 + 2 * 2  # add, and toggle + delete per task
    for form in forms:
        assert 'method="post"' in form
        assert re.search(r'<input type="hidden" name="csrf_token" value="[^"]+">', form)


def test_no_get_link_mutates(client: FlaskClient) -> None:
    client.post("/add", data={"description": "one"})
    page = client.get("/").get_data(as_text=True)
    links = re.findall(r'href="([^"]+)"', page)
    assert links, "the page has links (stylesheet, icon, home)"
    assert not [href for href in links if re.match(r"/(add|toggle|delete)\b", href)]


def test_stylesheet_and_icon_are_served(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    for asset, mimetype in [("style.css", "text/css"), ("favicon.svg", "image/svg+xml")]:
        assert f'href="/static/{asset}"' in page
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200
        assert response.mimetype == mimetype


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
