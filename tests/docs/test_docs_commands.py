"""Every shell command in README.md and docs/ is run by a test or marked illustrative."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.doccmd import ROOT, Block, all_blocks
from tests.support import venv_env

#: A `run` block is a quick command (make help, grep, curl on a closed port...).
RUN_TIMEOUT_S = 120

BLOCKS = all_blocks()


def _test_sources() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py"))


def test_docs_have_shell_blocks() -> None:
    assert len(BLOCKS) >= 5, "the docs lost their commands"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_every_block_is_classified(block: Block) -> None:
    assert block.kind, (
        f"{block.where}: precede this shell block with <!-- cmd: ID -->, <!-- run --> "
        "or <!-- illustrative --> (see tests/doccmd.py)"
    )


def test_cmd_ids_are_unique_and_used_by_a_test() -> None:
    ids = [b.cmd_id for b in BLOCKS if b.kind == "cmd"]
    assert len(ids) == len(set(ids)), f"duplicate cmd ids: {sorted(ids)}"
    sources = _test_sources()
    unused = [
        i for i in ids if not re.search(rf"doc_command\(\s*[\"']{re.escape(str(i))}[\"']", sources)
    ]
    assert not unused, f"no test loads these docs commands with doc_command(): {unused}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "run"], ids=lambda b: b.where)
def test_run_blocks_succeed(block: Block) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.script],
        cwd=ROOT,
        env=venv_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{block.where} failed:\n{result.stdout}\n{result.stderr}"
