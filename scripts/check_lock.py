"""Fail when requirements*.txt disagree with pyproject.toml.

Every dependency that pyproject.toml declares (the runtime ones for
requirements.txt; runtime plus the ``dev`` extra for requirements-dev.txt) must
be pinned in the lock file with a version its specifier admits. Regenerate with
``make lock``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\],]+)==([^\s;]+)")


def read_pins(path: Path) -> dict[str, str]:
    """Return {canonical name: pinned version} from a pip-compile style lock file."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            name = match.group(1).split("[", 1)[0]
            pins[canonicalize_name(name)] = match.group(2)
    return pins


def check(lock: Path, requirements: list[str]) -> list[str]:
    """Return one message per requirement that ``lock`` does not satisfy."""
    pins = read_pins(lock)
    env = {k: str(v) for k, v in default_environment().items()}
    problems = []
    for text in requirements:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{lock.name}: {req.name} is not pinned (run `make lock`)")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{lock.name}: {req.name}=={pins[name]} does not satisfy '{text}'")
    return problems


def main() -> int:
    """Check both lock files and print what disagrees."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime: list[str] = project["dependencies"]
    dev: list[str] = project["optional-dependencies"]["dev"]
    problems = check(ROOT / "requirements.txt", runtime)
    problems += check(ROOT / "requirements-dev.txt", runtime + dev)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print("lock files agree with pyproject.toml")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
