"""The Python excerpts in docs chapters 100 to 400 are real code, copied verbatim.

An excerpt is a ```python block whose first line names its file, relative to the
repository root (``# src/todo/tasks.py``). The rest of the block must appear in
that file exactly as shown (indentation included), so an excerpt cannot go stale
without this test failing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.doccmd import ROOT

#: The chapters this test covers (other docs have their own owners and tests).
CHAPTERS = [
    ROOT / "docs" / "100-introduction.md",
    ROOT / "docs" / "200-requirements.md",
    *sorted((ROOT / "docs" / "300-building-our-application").glob("*.md")),
    ROOT / "docs" / "400-conclusion.md",
]
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SOURCE_LINE = re.compile(r"# ((?:src|tests)/[\w/.-]+\.py)")


@dataclass(frozen=True)
class Excerpt:
    doc: Path
    source: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.source}"


def _excerpts() -> list[Excerpt]:
    found = []
    for doc in CHAPTERS:
        for match in PYTHON_BLOCK.finditer(doc.read_text(encoding="utf-8")):
            first, _, code = match[1].partition("\n")
            source = SOURCE_LINE.fullmatch(first.strip())
            assert source, f"{doc.name}: a python block must start with '# <path of its file>'"
            found.append(Excerpt(doc, source[1], code))
    return found


EXCERPTS = _excerpts()


def test_the_chapters_show_code() -> None:
    assert len(EXCERPTS) >= 8


@pytest.mark.parametrize("excerpt", EXCERPTS, ids=lambda e: e.where)
def test_the_excerpt_is_in_its_file_verbatim(excerpt: Excerpt) -> None:
    source = (ROOT / excerpt.source).read_text(encoding="utf-8")
    assert excerpt.code in source, f"{excerpt.where}: the excerpt no longer matches the code"
