"""Chapter 320 - The app: `flask routes` and the JSON API walkthrough."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.doccmd import doc_command, doc_output
from tests.docs.chapters import App, localise, shell
from tests.support import venv_env

pytestmark = pytest.mark.e2e

#: created_at differs on every run; everything else in the answers must match.
CREATED_AT = re.compile(r'"created_at":"[^"]+"')


def test_flask_routes_lists_the_rules_the_chapter_shows(tmp_path: Path) -> None:
    env = venv_env(DATABASE_URL=f"sqlite:///{tmp_path / 'todo.sqlite'}")
    result = shell(doc_command("320-flask-routes"), env=env)
    assert result.returncode == 0, result.stderr
    assert [line.rstrip() for line in result.stdout.splitlines()] == doc_output("320-flask-routes")


def test_the_json_api_answers_as_shown(plain_app: App) -> None:
    script = localise(doc_command("320-api"), app=plain_app.port, tmp=plain_app.tmp)
    result = shell(script)
    assert result.returncode == 0, result.stderr
    answers = [CREATED_AT.sub('"created_at":"…"', line) for line in result.stdout.splitlines()]
    shown = [CREATED_AT.sub('"created_at":"…"', line) for line in doc_output("320-api")]
    assert answers == shown
