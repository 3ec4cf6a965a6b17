"""Chapter 350 - Metrics and logs: the export interval, the metric names, log correlation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.doccmd import doc_command, doc_output
from tests.docs.chapters import CHAPTER_300, by_name, shell, spans_in, started
from tests.support import eventually, use_the_app

pytestmark = pytest.mark.e2e

#: The app's log line with OTEL_PYTHON_LOG_CORRELATION=true; what varies is a pattern.
CORRELATED_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO \[todo\.tasks\] \[tasks\.py:\d+\] "
    r"\[trace_id=(?P<trace>[0-9a-f]{32}) span_id=(?P<span>[0-9a-f]{16}) "
    r"resource\.service\.name=todo trace_sampled=True\] - added task 1: 'Buy milk'$",
    re.MULTILINE,
)


def test_metrics_are_printed_every_five_seconds_while_the_app_runs(tmp_path: Path) -> None:
    grep = doc_command("350-metric-names").replace("output.log", str(tmp_path / "output.log"))
    with started(doc_command("350-metrics-interval"), tmp_path) as app:
        use_the_app(app.base)

        def names() -> list[str] | None:
            lines = shell(grep).stdout.splitlines()
            return lines if lines == doc_output("350-metric-names") else None

        # The first export is due 5 s after start; the app does not stop for it.
        eventually(names, timeout=12, interval=0.5)
        assert app.proc.poll() is None


def test_log_correlation_puts_the_span_ids_in_the_text_line(tmp_path: Path) -> None:
    with started(doc_command("350-log-correlation"), tmp_path) as app:
        use_the_app(app.base)
    line = CORRELATED_LINE.search(app.terminal_text())
    assert line, app.terminal_text()
    add = by_name(spans_in(app.output_text()), "todo.tasks.add")
    assert add["context"]["trace_id"] == "0x" + line["trace"]
    assert add["context"]["span_id"] == "0x" + line["span"]
    assert "trace_id=0 span_id=0" in app.terminal_text(), "start-up lines have no trace"
    shown = (CHAPTER_300 / "350-metrics-and-logs.md").read_text()
    assert CORRELATED_LINE.search(shown), "the chapter's sample line has the same shape"
