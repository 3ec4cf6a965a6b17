"""Chapter 200 - Requirements: the tools are there, and `make help` shows what the chapter shows."""

from __future__ import annotations

import re

from tests.docs.chapters import doc_blocks, run_block, shell

CHAPTER = "200-requirements.md"


def test_make_help_lists_the_targets_the_chapter_shows() -> None:
    block = run_block(CHAPTER, "make help")
    result = shell(block.script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == block.output


def test_the_version_checks_print_what_the_chapter_says() -> None:
    (block,) = [b for b in doc_blocks(CHAPTER) if b.kind == "run" and "--version" in b.script]
    result = shell(block.script)
    assert result.returncode == 0, result.stderr
    python, make, git = result.stdout.splitlines()
    version = re.fullmatch(r"Python 3\.(\d+)\.\d+", python)
    assert version, python
    assert int(version[1]) >= 10, "the chapter promises Python 3.10 or newer"
    assert make.startswith("GNU Make ")
    assert git.startswith("git version ")
    shown = block.output
    assert [line.split()[0] for line in shown] == ["Python", "GNU", "git"]
