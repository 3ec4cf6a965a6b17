"""Geometry for the SVG charts the templates draw (no markup here, only numbers and labels).

Charts are drawn server-side as inline SVG that scales with the page: positions
are percentages of the chart's box, so circles stay round and labels readable
at any width, with no script and no inline style (the CSP forbids both).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from otelviewer.query import TraceSummary

#: The plot area inside a chart's box, in percent: room for labels around it.
PLOT_LEFT, PLOT_RIGHT = 2.0, 98.0
PLOT_TOP, PLOT_BOTTOM = 8.0, 84.0
#: How many grid lines a chart aims for on each axis (readable on a phone).
TARGET_TICKS = 4

_TIME_STEPS_S = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    172800, 604800,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Tick:
    """A grid line at ``pos`` percent of the chart's width or height, with its label."""

    pos: float
    label: str


@dataclass(frozen=True, slots=True)
class Dot:
    """A point of a chart, at percentages of the chart's box."""

    x: float
    y: float
    r: float
    title: str
    href: str = ""
    error: bool = False


@dataclass(frozen=True, slots=True)
class Chart:
    """What a template needs to draw one chart."""

    dots: tuple[Dot, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    #: For line charts: ``x,y`` pairs on a 0..1000 x 0..1000 box (the plot area).
    polyline: str = ""


def nice_step(span: float, target: int = TARGET_TICKS) -> float:
    """Return a step of 1, 2 or 5 times a power of ten giving about ``target`` steps."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0):
        if raw <= m * power:
            return float(m * power)
    return float(10 * power)


def _time_step_nanos(span_nanos: int) -> int:
    for step in _TIME_STEPS_S:
        if span_nanos / (step * 1_000_000_000) <= TARGET_TICKS + 1:
            return step * 1_000_000_000
    return _TIME_STEPS_S[-1] * 1_000_000_000


def time_label(unix_nano: int, step_nanos: int) -> str:
    """Return a local time label with the precision a tick step needs."""
    t = datetime.fromtimestamp(unix_nano / 1e9)
    if step_nanos >= 86400 * 1_000_000_000:
        return t.strftime("%b %d")
    if step_nanos >= 60 * 1_000_000_000:
        return t.strftime("%H:%M")
    return t.strftime("%H:%M:%S")


def _x_axis(t0: int, t1: int) -> tuple[Callable[[int], float], tuple[Tick, ...]]:
    span = max(t1 - t0, 1)
    pad = span // 20 or 500_000_000  # a lone point sits in the middle, not on the edge
    lo, hi = t0 - pad, t1 + pad

    def x(t: int) -> float:
        return round(PLOT_LEFT + (t - lo) * (PLOT_RIGHT - PLOT_LEFT) / (hi - lo), 3)

    step = _time_step_nanos(hi - lo)
    first = -(-lo // step) * step
    ticks = tuple(
        Tick(x(t), time_label(t, step)) for t in range(first, hi + 1, step) if 0 <= x(t) <= 100
    )
    return x, ticks


def _y_axis(
    lo: float, hi: float, label: Callable[[float], str]
) -> tuple[Callable[[float], float], tuple[Tick, ...]]:
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    step = nice_step(hi - lo)
    lo = math.floor(lo / step) * step
    hi = math.ceil(hi / step) * step

    def y(v: float) -> float:
        return round(PLOT_BOTTOM - (v - lo) * (PLOT_BOTTOM - PLOT_TOP) / (hi - lo), 3)

    count = round((hi - lo) / step)
    ticks = tuple(Tick(y(lo + i * step), label(lo + i * step)) for i in range(count + 1))
    return y, ticks


def _dot_title(s: TraceSummary, duration_label: Callable[[float], str]) -> str:
    errors = f", {s.error_count} errors" if s.error_count else ""
    return (
        f"{s.root_service}: {s.root_name} ({duration_label(s.duration_nanos)}, "
        f"{s.span_count} spans{errors})"
    )


def scatter(
    summaries: Sequence[TraceSummary],
    *,
    href: Callable[[str], str],
    duration_label: Callable[[float], str],
) -> Chart | None:
    """Plot traces: start time across, duration up; bigger dots for more spans."""
    if not summaries:
        return None
    starts = [s.start_unix_nano for s in summaries]
    x, x_ticks = _x_axis(min(starts), max(starts))
    y, y_ticks = _y_axis(0.0, float(max(s.duration_nanos for s in summaries)), duration_label)
    dots = tuple(
        Dot(
            x=x(s.start_unix_nano),
            y=y(float(s.duration_nanos)),
            r=round(4 + 6 * min(s.span_count, 50) / 50, 1),
            title=_dot_title(s, duration_label),
            href=href(s.trace_id),
            error=s.error_count > 0,
        )
        for s in summaries
    )
    return Chart(dots=dots, x_ticks=x_ticks, y_ticks=y_ticks)


def line_chart(
    points: Sequence[tuple[int, float]], *, value_label: Callable[[float], str]
) -> Chart | None:
    """Plot ``(unix_nano, value)`` points, oldest first, as a line with dots."""
    if not points:
        return None
    x, x_ticks = _x_axis(points[0][0], points[-1][0])
    values = [v for _, v in points]
    lo, hi = min(values), max(values)
    y, y_ticks = _y_axis(min(lo, 0.0) if lo >= 0 else lo, hi, value_label)

    def box(pct: float, lo_pct: float, hi_pct: float) -> float:
        return round((pct - lo_pct) * 1000 / (hi_pct - lo_pct), 2)

    polyline = " ".join(
        f"{box(x(t), PLOT_LEFT, PLOT_RIGHT)},{box(y(v), PLOT_TOP, PLOT_BOTTOM)}" for t, v in points
    )
    dots = tuple(
        Dot(x=x(t), y=y(v), r=3, title=f"{time_label(t, 1_000_000_000)}: {value_label(v)}")
        for t, v in points
    )
    return Chart(dots=dots, x_ticks=x_ticks, y_ticks=y_ticks, polyline=polyline)
