"""The query service's parsing and shaping (pure functions; the API tests cover the store)."""

from __future__ import annotations

import pytest

from otelviewer.model import Resource, Span, SpanKind, StatusCode
from otelviewer.query import (
    QueryError,
    build_waterfall,
    format_logfmt,
    normalize_trace_id,
    parse_go_duration,
    parse_logfmt,
    parse_lookback,
    parse_severity,
    parse_tags,
    parse_trace_search,
    summarize_trace,
)

NOW = 1_700_000_000_000_000_000


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("0", 0),
        ("1ns", 1),
        ("500us", 500_000),
        ("500µs", 500_000),
        ("500μs", 500_000),
        ("1.2ms", 1_200_000),
        (".5s", 500_000_000),
        ("1s", 1_000_000_000),
        ("1.5h", 5_400_000_000_000),
        ("1h30m", 5_400_000_000_000),
        ("2m3.5s", 123_500_000_000),
        ("+3ms", 3_000_000),
    ],
)
def test_go_durations(text: str, nanos: int) -> None:
    assert parse_go_duration(text) == nanos


@pytest.mark.parametrize("text", ["", "1", "1x", "ms", "1.2.3ms", "1 ms", "-1s", "1d", "1e3ms"])
def test_bad_go_durations_name_the_param(text: str) -> None:
    with pytest.raises(QueryError, match="'minDuration'") as info:
        parse_go_duration(text, param="minDuration")
    assert info.value.param == "minDuration"


@pytest.mark.parametrize(
    ("text", "nanos"),
    [("2d", 2 * 86_400 * 10**9), ("1w", 7 * 86_400 * 10**9), ("90m", 5400 * 10**9)],
)
def test_lookbacks_take_days_and_weeks(text: str, nanos: int) -> None:
    assert parse_lookback(text) == nanos


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("", {}),
        ("http.target=/add", {"http.target": "/add"}),
        ("http.target=/add error=true", {"http.target": "/add", "error": "true"}),
        ('msg="hello world" a=b', {"msg": "hello world", "a": "b"}),
        (r'q="say \"hi\""', {"q": 'say "hi"'}),
        ("error", {"error": "true"}),
        ('empty=""', {"empty": ""}),
        ("url=http://x:1/a?b=c", {"url": "http://x:1/a?b=c"}),
        ("  a=1   b=2  ", {"a": "1", "b": "2"}),
    ],
)
def test_logfmt(text: str, tags: dict[str, str]) -> None:
    assert parse_logfmt(text) == tags
    assert parse_logfmt(format_logfmt(tags)) == tags


@pytest.mark.parametrize(("text", "words"), [('a="open', "not closed"), ('a="x"b', "space")])
def test_bad_logfmt(text: str, words: str) -> None:
    with pytest.raises(QueryError, match=words):
        parse_logfmt(text)


def test_tags_from_both_params_later_wins() -> None:
    tags = parse_tags(["a:1", "url:http://x:8/"], ['{"a": "2", "n": 1.50, "b": false}'])
    assert tags == {"a": "2", "url": "http://x:8/", "n": "1.50", "b": "false"}


def test_trace_search_defaults_and_clamps() -> None:
    search = parse_trace_search({"service": ["todo"]}, now_unix_nano=NOW)
    p = search.params
    assert (p.service, p.operation, p.span_kind, dict(p.attributes)) == ("todo", None, None, {})
    assert p.start_max_unix_nano == NOW
    assert p.start_min_unix_nano == NOW - 2 * 86_400 * 10**9
    assert (p.duration_min_nanos, p.duration_max_nanos, p.limit) == (None, None, 100)
    clamped = parse_trace_search({"service": ["s"], "limit": ["100000"]}, now_unix_nano=NOW)
    assert clamped.params.limit == 1500
    zero = parse_trace_search({"service": ["s"], "limit": ["0"]}, now_unix_nano=NOW)
    assert zero.params.limit == 100


def test_trace_search_all_params() -> None:
    search = parse_trace_search(
        {
            "service": ["todo"],
            "operation": ["GET /"],
            "spanKind": ["server"],
            "tags": ['{"a": "b"}'],
            "tag": ["c:d"],
            "start": ["1000"],
            "end": ["2000"],
            "lookback": ["1h"],  # ignored: start is given
            "minDuration": ["1ms"],
            "maxDuration": ["2ms"],
            "limit": ["5"],
        },
        now_unix_nano=NOW,
    )
    p = search.params
    assert (p.service, p.operation, p.span_kind) == ("todo", "GET /", SpanKind.SERVER)
    assert dict(p.attributes) == {"c": "d", "a": "b"}
    assert (p.start_min_unix_nano, p.start_max_unix_nano) == (1_000_000, 2_000_000)
    assert (p.duration_min_nanos, p.duration_max_nanos, p.limit) == (1_000_000, 2_000_000, 5)


def test_trace_search_by_ids_needs_no_service() -> None:
    search = parse_trace_search({"traceID": ["ABC", " "]}, now_unix_nano=NOW)
    assert search.trace_ids == ("abc".rjust(32, "0"),)


@pytest.mark.parametrize(
    ("text", "number"), [("warn", 13), ("WARNING", 13), ("error", 17), ("21", 21), ("", None)]
)
def test_severity(text: str, number: int | None) -> None:
    assert parse_severity(text) == number


@pytest.mark.parametrize("text", ["0", "25", "loud"])
def test_bad_severity(text: str) -> None:
    with pytest.raises(QueryError, match="minSeverity"):
        parse_severity(text)


def test_trace_ids_normalize() -> None:
    assert normalize_trace_id(" 4BF9 ") == "4bf9".rjust(32, "0")
    with pytest.raises(QueryError):
        normalize_trace_id("g" * 32)


R1, R2 = Resource("front"), Resource("back")


def span(sid: str, parent: str | None, start: int, end: int, **kw: object) -> Span:
    return Span(
        trace_id="a" * 32,
        span_id=sid,
        parent_span_id=parent,
        name=f"op-{sid}",
        kind=SpanKind.INTERNAL,
        start_unix_nano=start,
        end_unix_nano=end,
        resource=kw.pop("resource", R1),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_summary_root_services_and_errors() -> None:
    spans = [
        span("c", "b", 30, 40, resource=R2, status_code=StatusCode.ERROR),
        span("b", "a", 20, 60, resource=R2),
        span("a", None, 10, 100),
        span("d", "a", 50, 120, resource=R2),
    ]
    s = summarize_trace(spans)
    assert (s.root_name, s.root_service, s.span_count, s.error_count) == ("op-a", "front", 4, 1)
    assert s.services == (("back", 3), ("front", 1))
    assert (s.start_unix_nano, s.duration_nanos) == (10, 110)


def test_waterfall_is_depth_first_with_offsets() -> None:
    spans = [
        span("c", "a", 60, 110),
        span("b", "a", 10, 60),
        span("a", None, 10, 110),
        span("e", "b", 20, 30),
        span("x", "missing", 100, 110),  # its parent never arrived
    ]
    rows = build_waterfall(spans).rows
    assert [(r.span.span_id, r.depth, r.child_count, r.orphan) for r in rows] == [
        ("a", 0, 2, False),
        ("b", 1, 1, False),
        ("e", 2, 0, False),
        ("c", 1, 0, False),
        ("x", 0, 0, True),
    ]
    assert (rows[0].offset, rows[0].width) == (0.0, 1000.0)
    assert (rows[2].offset, rows[2].width) == (100.0, 100.0)


def test_waterfall_survives_a_parent_cycle() -> None:
    rows = build_waterfall([span("a", "b", 0, 10), span("b", "a", 5, 10)]).rows
    assert sorted(r.span.span_id for r in rows) == ["a", "b"]
