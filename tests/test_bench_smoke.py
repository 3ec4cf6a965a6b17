"""The benchmark harness's pure parts work: wrk reports, statistics, ratios, payloads.

``make bench`` itself is too slow for the test suite (and its figures are no
unit-test business); these tests make sure that what turns measurements into
figures is right, so that a broken parser cannot print a wrong ratio.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from bench import app_overhead, otlp_sink, run, spans, wrk
from bench.common import Goal, median, percentile, ratio, rounded
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)

WRK_REPORT = """\
Running 8s test @ http://127.0.0.1:40000/api/tasks
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.51ms    1.20ms  31.07ms   91.31%
    Req/Sec   443.12     21.50   484.00     80.00%
  Latency Distribution
     50%  812.00us
     75%    4.47ms
     90%    5.01ms
     99%    1.02s
  3531 requests in 8.00s, 2.96MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
Requests/sec:    441.33
Transfer/sec:    378.70KB
"""


def test_wrk_report_is_read_in_seconds() -> None:
    result = wrk.parse(WRK_REPORT)
    assert result.requests_per_s == 441.33
    assert result.requests == 3531
    assert result.latency_s == pytest.approx(
        {50.0: 812e-6, 75.0: 4.47e-3, 90.0: 5.01e-3, 99.0: 1.02}
    )
    assert result.p99_s == pytest.approx(1.02)
    assert result.socket_errors == 5
    assert result.non_2xx == 0


def test_wrk_counts_error_responses() -> None:
    report = WRK_REPORT.replace(
        "  Socket errors", "  Non-2xx or 3xx responses: 17\n  Socket errors"
    )
    assert wrk.parse(report).non_2xx == 17


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("812.00us", 812e-6), ("1.20ms", 1.2e-3), ("2.01s", 2.01), ("1.50m", 90.0), ("0h", 0.0)],
)
def test_wrk_durations(text: str, seconds: float) -> None:
    assert wrk.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("report", ["", "Requests/sec: 10\n", WRK_REPORT.replace("99%", "98%")])
def test_an_incomplete_wrk_report_is_an_error(report: str) -> None:
    with pytest.raises(wrk.WrkError):
        wrk.parse(report)


def test_wrk_rejects_a_bad_duration() -> None:
    with pytest.raises(wrk.WrkError, match="not a wrk duration"):
        wrk.parse_duration("fast")


def test_statistics() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert math.isnan(median([]))
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 95) == 95.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 50) == 7.0
    assert ratio(3.0, 4.0) == 0.75
    assert math.isnan(ratio(1.0, 0.0))
    assert rounded(math.nan) is None
    assert rounded(1.23456, 2) == 1.23
    with pytest.raises(ValueError, match="percentile"):
        percentile(values, 0)


def test_goals() -> None:
    assert Goal("rps", 0.61, 0.6, "min").met
    assert not Goal("rps", 0.59, 0.6, "min").met
    assert Goal("p99", 2.0, 2.0, "max").met
    assert not Goal("p99", math.nan, 2.0, "max").met
    line = Goal("tag search p95", 412.5, 300, "max", " ms").line()
    assert "412.500 ms" in line
    assert "<= 300 ms" in line
    assert line.endswith("NOT MET")


def _sample(variant: str, n: int, rps: float, p99: float, cpu: float) -> app_overhead.Sample:
    return app_overhead.Sample(variant, "/", n, rps, p99, int(rps * 8), cpu)


def test_app_overhead_ratios_are_medians_of_per_round_ratios() -> None:
    samples = [
        _sample("bare", app_overhead.WARMUP, 1.0, 9.0, 1.0),  # warm-ups never count
        _sample("shipped", app_overhead.WARMUP, 900.0, 0.001, 1.0),
        _sample("bare", 0, 400.0, 0.010, 0.002),
        _sample("shipped", 0, 300.0, 0.015, 0.0025),
        _sample("bare", 1, 200.0, 0.020, 0.004),  # a noisy round: both slow
        _sample("shipped", 1, 160.0, 0.020, 0.005),
        _sample("bare", 2, 400.0, 0.010, 0.002),
        _sample("shipped", 2, 280.0, 0.030, 0.003),
        # A run repeated because another process disturbed it: never in the figures.
        dataclasses.replace(_sample("shipped", 2, 10.0, 9.0, 1.0), kept=False),
    ]
    line = app_overhead.summarise(samples, "/", "shipped")
    assert line["bench"] == "app_overhead"
    assert line["config"] == "shipped"
    assert line["rounds"] == 3
    assert line["rps_ratio"] == 0.75  # ratios 0.75, 0.8, 0.7
    assert line["p99_ratio"] == 1.5  # ratios 1.5, 1.0, 3.0
    assert line["cpu_ratio"] == 1.25  # ratios 1.25, 1.25, 1.5
    assert line["bare_rps"] == 400.0
    assert line["p99_ms"] == 20.0


def test_the_rounds_rotate_the_order() -> None:
    variants = app_overhead.VARIANTS
    orders = [[v.name for v in app_overhead._rotation(variants, n)] for n in range(3)]
    assert orders == [
        ["bare", "default", "shipped", "in-code"],
        ["default", "shipped", "in-code", "bare"],
        ["shipped", "in-code", "bare", "default"],
    ]


def test_the_shipped_configuration_keeps_every_signal_and_every_trace() -> None:
    env = {**app_overhead.AGENT_ENV, **app_overhead.SHIPPED_ENV}
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"
    for signal in ("TRACES", "METRICS", "LOGS"):
        assert env[f"OTEL_{signal}_EXPORTER"] == "otlp"
    # Only the agent's duplicate SQLAlchemy instrumentation is off: the app traces its engines.
    assert env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] == "sqlalchemy"
    shipped = {v.name: v for v in app_overhead.VARIANTS}
    assert shipped["shipped"].env == shipped["in-code"].env == app_overhead.SHIPPED_ENV
    assert shipped["in-code"].mode is app_overhead.Mode.IN_CODE


def test_id_template_renders_valid_requests_with_fresh_ids_and_later_times(
    tmp_path: Path,
) -> None:
    generator = spans.TraceGenerator(seed=3, start_unix_nano=1_700_000_000_000_000_000)
    batch = [s for trace in generator.spans(64) for s in trace]
    template = spans.IdTemplate(batch, seed=11)
    first = ExportTraceServiceRequest.FromString(template.render(1))
    second = ExportTraceServiceRequest.FromString(template.render(2))

    def ids(request: ExportTraceServiceRequest) -> tuple[set[bytes], set[tuple[bytes, bytes]]]:
        all_spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert len(all_spans) == len(batch) == 64
        assert all(len(s.attributes) == 10 for s in all_spans)
        return {s.trace_id for s in all_spans}, {(s.trace_id, s.span_id) for s in all_spans}

    traces1, spans1 = ids(first)
    traces2, spans2 = ids(second)
    assert len(traces1) == 64 // spans.SPANS_PER_TRACE
    assert not traces1 & traces2
    assert not spans1 & spans2
    assert {t.hex() for t in traces1} == set(template.trace_ids(1))
    # Parents still point at spans of the same request.
    span_ids = {s.span_id for rs in first.resource_spans for ss in rs.scope_spans for s in ss.spans}
    parents = {
        s.parent_span_id
        for rs in first.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
        if s.parent_span_id
    }
    assert parents <= span_ids

    # Every span of request 2 starts after every span of request 1 ends, by whole steps.
    def times(request: ExportTraceServiceRequest) -> list[tuple[int, int]]:
        return [
            (s.start_time_unix_nano, s.end_time_unix_nano)
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        ]

    step = template.time_step_ns
    assert step == max(s.end_unix_nano for s in batch) - min(s.start_unix_nano for s in batch) + 1
    assert times(second) == [(a + step, b + step) for a, b in times(first)]
    assert sorted(times(first)) == sorted(
        (s.start_unix_nano + step, s.end_unix_nano + step) for s in batch
    )
    assert max(end for _, end in times(first)) < min(start for start, _ in times(second))
    # What the sender process loads renders the same bytes.
    template.save(tmp_path / "template.json")
    loaded = spans.IdTemplate.load(tmp_path / "template.json")
    assert loaded.render(7) == template.render(7)
    assert loaded.trace_ids(7) == template.trace_ids(7)


def test_the_generator_is_deterministic_and_realistic() -> None:
    a = spans.TraceGenerator(seed=5, start_unix_nano=0).trace()
    b = spans.TraceGenerator(seed=5, start_unix_nano=0).trace()
    assert a == b
    assert len(a) == spans.SPANS_PER_TRACE
    server = a[1]
    assert server.name.startswith(("GET /api/tasks", "POST", "PATCH", "DELETE"))
    assert server.parent_span_id == a[0].span_id
    assert str(server.attributes["http.target"]).startswith("/api/tasks")
    assert all(s.trace_id == a[0].trace_id for s in a)


def test_the_sink_counts_spans_and_metric_points() -> None:
    sink = otlp_sink.Sink()
    generator = spans.TraceGenerator(seed=9, start_unix_nano=0)
    request = spans.otlp_request([s for t in generator.spans(16) for s in t])
    sink.traces(request, None)
    metrics = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                scope_metrics=[
                    ScopeMetrics(
                        metrics=[
                            Metric(name="g", gauge=Gauge(data_points=[NumberDataPoint()] * 2)),
                            Metric(
                                name="h", histogram=Histogram(data_points=[HistogramDataPoint()])
                            ),
                        ]
                    )
                ]
            )
        ]
    )
    sink.metrics(metrics, None)
    assert sink.counts == otlp_sink.Counts(spans=16, log_records=0, metric_points=3, exports=2)


def test_run_knows_every_benchmark() -> None:
    assert set(run.BENCHMARKS) == {"app", "ingest", "query"}
