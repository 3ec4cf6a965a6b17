"""Pieces every benchmark shares: result lines, statistics, processes, goals.

Each benchmark prints one JSON line per result as soon as it has it, e.g.
``{"bench": "query", "trace_by_id_p95_ms": 3.1, ...}``, and hands back the
:class:`Goal` checks that ``bench/run.py`` summarises at the end.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
#: Cached inputs (generated databases) and the last run's result lines; gitignored.
RESULTS = ROOT / "bench" / "results"
#: The venv's bin folder: gunicorn, opentelemetry-instrument and otelviewer live there.
VENV_BIN = Path(sys.executable).parent
#: The core the system under test is pinned to; the load generator gets the other one.
SERVER_CPU = "0"
LOAD_CPU = "1"


@dataclass(frozen=True)
class Goal:
    """One figure checked against its goal, for the summary at the end."""

    name: str
    value: float
    target: float
    #: "min": the value must be at least ``target``; "max": at most.
    direction: str
    unit: str = ""

    @property
    def met(self) -> bool:
        """Tell whether the figure reaches its goal."""
        if math.isnan(self.value):
            return False
        if self.direction == "min":
            return self.value >= self.target
        return self.value <= self.target

    def line(self) -> str:
        """Return one human-readable summary line."""
        sign = ">=" if self.direction == "min" else "<="
        verdict = "met" if self.met else "NOT MET"
        return (
            f"{self.name:<42} {self.value:>12,.3f}{self.unit}  "
            f"(goal {sign} {self.target:,g}{self.unit})  {verdict}"
        )


def emit(record: Mapping[str, Any]) -> None:
    """Print one result as a JSON line, at once, and append it to the results log."""
    line = json.dumps(record, sort_keys=False)
    print(line, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "last-run.jsonl").open("a", encoding="utf-8") as log:
        log.write(line + "\n")


def median(values: Sequence[float]) -> float:
    """Return the median of ``values`` (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], pct: float) -> float:
    """Return the ``pct`` percentile of ``values`` by the nearest-rank method (NaN when empty).

    Nearest rank is what latency tools report: the value below which ``pct`` percent
    of the samples fall, always one of the samples.
    """
    if not values:
        return math.nan
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {pct}")
    ordered = sorted(values)
    rank = math.ceil(pct / 100 * len(ordered))
    return ordered[rank - 1]


def ratio(numerator: float, denominator: float) -> float:
    """Return ``numerator / denominator``, NaN when the denominator is not positive."""
    if denominator <= 0 or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator


def rounded(value: float, digits: int = 3) -> float | None:
    """Round for a JSON line; NaN becomes null (JSON has no NaN)."""
    if math.isnan(value):
        return None
    return round(value, digits)


def pinned(cpu: str, args: Sequence[str]) -> list[str]:
    """Return ``args`` prefixed with ``taskset -c cpu`` when taskset exists (Linux)."""
    taskset = shutil.which("taskset")
    if taskset is None or (os.cpu_count() or 1) < 2:
        return list(args)
    return [taskset, "-c", cpu, *args]


#: Clock ticks per second of /proc/<pid>/stat's CPU times.
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system, all threads) process ``pid`` has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    # The command name (field 2) may hold spaces; the fields after it are plain numbers.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def core_busy_seconds(cpu: str) -> float:
    """Return the user + system time core ``cpu`` has spent so far, from /proc/stat.

    Interrupt time is left out: the loopback traffic of the benchmark itself is
    handled there.
    """
    for line in Path("/proc/stat").read_text(encoding="ascii").splitlines():
        fields = line.split()
        if fields[0] == f"cpu{cpu}":
            user, nice, system = (int(v) for v in fields[1:4])
            return (user + nice + system) / _CLOCK_TICKS
    raise ValueError(f"no cpu{cpu} in /proc/stat")


def children(pid: int) -> list[int]:
    """Return the ids of the processes whose parent is ``pid``."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii")
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def busy_cpu_fraction(interval_s: float = 1.0) -> float:
    """Return how busy the machine's CPUs were over ``interval_s`` (0..1), from /proc/stat.

    Taken before a run: other work on a shared machine makes the figures noisy,
    and the result lines say how busy it was.
    """

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values), idle

    total0, idle0 = sample()
    time.sleep(interval_s)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def machine() -> dict[str, Any]:
    """Describe the machine the figures come from (cores, CPU model, memory, Python)."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = math.nan
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "mem_gib": rounded(mem_gib, 1),
        "python": sys.version.split()[0],
        "busy_cpu_before_pct": rounded(busy_cpu_fraction() * 100, 1),
    }
