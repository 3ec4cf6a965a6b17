"""Run Debian's ``wrk`` and read its report.

``wrk --latency`` prints requests/s and a latency distribution (50/75/90/99 %)
in mixed units (``812.00us``, ``1.20ms``, ``2.01s``); :func:`parse` turns that
report into a :class:`WrkResult` with seconds everywhere.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from bench.common import LOAD_CPU, pinned

logger = logging.getLogger(__name__)

#: wrk's latency units, in seconds.
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)$")
_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)\s*$", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s+([0-9.]+)%\s+(\S+)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s+([0-9]+) requests in ", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+([0-9]+)")
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)"
)
#: Where Debian installs wrk; .ci/run installs it when absent.
WRK = "/usr/bin/wrk"


class WrkError(RuntimeError):
    """wrk failed, or its report cannot be read, or the server answered errors."""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests_per_s: float
    requests: int
    #: Latency percentiles in seconds, keyed by percent (50.0, 75.0, 90.0, 99.0).
    latency_s: dict[float, float] = field(default_factory=dict)
    non_2xx: int = 0
    socket_errors: int = 0

    @property
    def p99_s(self) -> float:
        """Return the 99th percentile latency in seconds."""
        return self.latency_s[99.0]


def parse_duration(text: str) -> float:
    """Return seconds for one of wrk's durations (``812.00us``, ``1.20ms``, ``2.01s``)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise WrkError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse(report: str) -> WrkResult:
    """Read a ``wrk --latency`` report.

    Raises:
        WrkError: when the report has no requests/s or no latency distribution.
    """
    rps = _RPS.search(report)
    total = _TOTAL.search(report)
    if not rps or not total:
        raise WrkError(f"no throughput in wrk's report:\n{report}")
    latency = {float(pct): parse_duration(value) for pct, value in _PERCENTILE.findall(report)}
    if 99.0 not in latency:
        raise WrkError(f"no latency distribution in wrk's report (use --latency):\n{report}")
    non_2xx = _NON_2XX.search(report)
    socket_errors = _SOCKET_ERRORS.search(report)
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        requests=int(total.group(1)),
        latency_s=latency,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    )


def run(url: str, *, connections: int, duration_s: float, timeout_s: float = 10.0) -> WrkResult:
    """Load ``url`` with wrk (one thread, pinned to the load generator's core).

    Raises:
        WrkError: when wrk fails or the server answered anything but 2xx/3xx.
    """
    wrk = shutil.which("wrk") or WRK
    args = pinned(
        LOAD_CPU,
        [
            wrk,
            "--threads",
            "1",
            "--connections",
            str(connections),
            "--duration",
            f"{duration_s:g}s",
            "--timeout",
            f"{timeout_s:g}s",
            "--latency",
            url,
        ],
    )
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=duration_s + timeout_s + 30, check=False
    )
    if done.returncode != 0:
        raise WrkError(f"wrk exited {done.returncode}: {done.stderr.strip()}")
    result = parse(done.stdout)
    if result.non_2xx:
        raise WrkError(f"{url} answered {result.non_2xx} non-2xx/3xx responses under load")
    return result
