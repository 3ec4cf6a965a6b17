"""Fixtures shared by the docs chapters' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.doccmd import doc_command
from tests.docs.chapters import FAST_BATCHES, App, started


@pytest.fixture(scope="session")
def plain_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The app started by hand as chapter 310 shows (`flask run`), with a fresh database.

    Shared by chapters 310 and 320. Tests that use it must not add tasks before
    chapter 320's API walkthrough, which expects the first task to get id 1;
    310's test only reads.
    """
    with started(doc_command("310-flask-run"), tmp_path_factory.mktemp("plain-app")) as app:
        yield app


@pytest.fixture(scope="session")
def seed_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The seed's agent command of chapter 330, after its `export`, left running.

    Shared by chapters 330 and 340, which look at what it prints while it runs
    (with the seed's plain `tee`, Ctrl+C loses the end of the output).
    """
    script = doc_command("330-export-deprecated") + "\n" + doc_command("330-agent-seed")
    with started(script, tmp_path_factory.mktemp("seed-agent"), **FAST_BATCHES) as app:
        yield app
