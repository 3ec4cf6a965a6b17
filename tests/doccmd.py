"""Shell commands shown in README.md and docs/, for the tests that run them.

Every fenced shell block (```console, ```sh, ```bash, ```shell) in the docs is
preceded by an HTML comment that says how it is tested:

* ``<!-- cmd: ID -->``: a test runs it, loading the text with ``doc_command("ID")``,
  so the docs and the test can never drift apart;
* ``<!-- run -->``: tests/docs/test_docs_commands.py runs it as it is, from the
  repository root, and expects exit status 0;
* ``<!-- illustrative -->``: not run here (Docker, a production host, ...); the
  text around it says so.

In a ``console`` block the commands are the lines after ``$ `` (a line ending in
``\\`` continues on the next one); the other lines are sample output. In the
other kinds every line is part of the script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELL_LANGS = {"console", "sh", "bash", "shell"}
FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*(cmd:\s*([\w.-]+)|run|illustrative)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced shell block of a Markdown file."""

    path: Path
    line: int
    lang: str
    body: str
    #: "cmd", "run", "illustrative", or "" when the block is not classified.
    kind: str
    cmd_id: str | None

    @property
    def where(self) -> str:
        """Return ``file:line`` for messages."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def script(self) -> str:
        """Return the commands of the block as one shell script."""
        if self.lang != "console":
            return self.body
        commands: list[str] = []
        continuing = False
        for line in self.body.splitlines():
            if continuing:
                commands[-1] += "\n" + line
            elif line.startswith("$ "):
                commands.append(line[2:])
            else:
                continue
            continuing = line.endswith("\\")
        return "\n".join(commands)

    @property
    def output(self) -> list[str]:
        """Return the sample output lines of a ``console`` block (not the commands)."""
        lines: list[str] = []
        continuing = False
        for line in self.body.splitlines():
            is_command = continuing or line.startswith("$ ")
            continuing = is_command and line.endswith("\\")
            if not is_command:
                lines.append(line)
        return lines


def doc_files() -> list[Path]:
    """Return README.md and every Markdown file under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """Return the shell blocks of one Markdown file with their directives."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        lang, start = match.group(1), i
        end = start + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if lang in SHELL_LANGS:
            prev = start - 1
            while prev >= 0 and not lines[prev].strip():
                prev -= 1
            directive = DIRECTIVE.match(lines[prev].strip()) if prev >= 0 else None
            kind, cmd_id = "", None
            if directive:
                kind = directive.group(1).split(":", 1)[0]
                cmd_id = directive.group(2)
            body = "\n".join(lines[start + 1 : end])
            found.append(Block(path, start + 1, lang, body, kind, cmd_id))
        i = end + 1
    return found


def all_blocks() -> list[Block]:
    """Return every shell block in the docs."""
    return [b for path in doc_files() for b in blocks(path)]


def doc_block(cmd_id: str) -> Block:
    """Return the block marked ``<!-- cmd: cmd_id -->``."""
    matches = [b for b in all_blocks() if b.cmd_id == cmd_id]
    if len(matches) != 1:
        raise LookupError(f"expected one docs block marked 'cmd: {cmd_id}', found {len(matches)}")
    return matches[0]


def doc_command(cmd_id: str) -> str:
    """Return the script of the block marked ``<!-- cmd: cmd_id -->``."""
    return doc_block(cmd_id).script


def doc_output(cmd_id: str) -> list[str]:
    """Return the sample output shown in the block marked ``<!-- cmd: cmd_id -->``."""
    return doc_block(cmd_id).output
