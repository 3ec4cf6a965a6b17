"""The links between docs chapters 100 to 400 lead somewhere: files exist, anchors are headings.

Anchors follow GitHub's rule: the heading in lower case, punctuation other than
``-`` and ``_`` dropped, spaces turned into ``-``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.doccmd import ROOT

CHAPTERS = [
    ROOT / "docs" / "100-introduction.md",
    ROOT / "docs" / "200-requirements.md",
    *sorted((ROOT / "docs" / "300-building-our-application").glob("*.md")),
    ROOT / "docs" / "400-conclusion.md",
    ROOT / "docs" / "REFERENCES.md",
    ROOT / "docs" / "GLOSSARY.md",
]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCED.sub("", path.read_text(encoding="utf-8"))
    return {_slug(h) for h in HEADING.findall(text)}


def _links() -> list[tuple[Path, str]]:
    found = []
    for doc in CHAPTERS:
        text = FENCED.sub("", doc.read_text(encoding="utf-8"))
        found += [(doc, target) for target in LINK.findall(text)]
    return found


LINKS = [(d, t) for d, t in _links() if not re.match(r"[a-z]+:", t)]


def test_the_chapters_link_to_each_other() -> None:
    assert len(LINKS) >= 30


@pytest.mark.parametrize(("doc", "target"), LINKS, ids=[f"{d.name}->{t}" for d, t in LINKS])
def test_the_link_resolves(doc: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    destination = (doc.parent / path).resolve() if path else doc
    assert destination.exists(), f"{doc.name}: {target} points to a missing file"
    if anchor:
        assert anchor in _anchors(destination), f"{doc.name}: no heading for #{anchor}"
