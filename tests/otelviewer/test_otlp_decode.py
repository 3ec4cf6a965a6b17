"""OTLP decoding: protobuf and OTLP/JSON requests to model batches, repairs, rejections.

The JSON payloads are written by hand from the OTLP specification
(opentelemetry-proto ``docs/specification.md``, "JSON Protobuf Encoding"): hex ids,
integer enums, lowerCamelCase keys, 64-bit integers as strings, unknown fields.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otelviewer.model import (
    UNKNOWN_SERVICE,
    HistogramValue,
    MetricKind,
    Resource,
    Scope,
    SpanEvent,
    SpanKind,
    SpanLink,
    StatusCode,
    json_text,
)
from otelviewer.receiver.otlp import (
    _FRAGMENTS,
    LOGS,
    MAX_CACHED_ATTRIBUTE_BYTES,
    MAX_CACHED_ATTRIBUTES,
    METRICS,
    TRACES,
    DecodeError,
    OtlpAttributes,
)

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"
PARENT_ID = "eee19b7ec3c1b173"
T = 1_544_712_660_000_000_000


def json_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def resource(service: str | None = "todo") -> dict[str, Any]:
    attrs: list[dict[str, Any]] = [{"key": "host.name", "value": {"stringValue": "box"}}]
    if service is not None:
        attrs.insert(0, {"key": "service.name", "value": {"stringValue": service}})
    return {"attributes": attrs}


def json_spans(*spans: dict[str, Any], service: str | None = "todo") -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": resource(service),
                "scopeSpans": [{"scope": {"name": "todo", "version": "1.0"}, "spans": list(spans)}],
            }
        ]
    }


def json_span(**fields: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": TRACE_ID,
        "spanId": SPAN_ID,
        "name": "GET /",
        "kind": 2,
        "startTimeUnixNano": str(T),
        "endTimeUnixNano": str(T + 1_000_000),
    }
    span.update(fields)
    return span


# --- OTLP/JSON -------------------------------------------------------------------------


def test_the_specification_example_span() -> None:
    payload = json_spans(
        json_span(
            parentSpanId=PARENT_ID,
            traceState="vendor=1",
            kind=3,
            startTimeUnixNano="1544712660000000000",
            endTimeUnixNano=1544712661000000000,  # a number works too
            attributes=[
                {"key": "http.method", "value": {"stringValue": "GET"}},
                {"key": "empty", "value": {"stringValue": ""}},
                {"key": "unset", "value": {}},
                {"key": "http.status_code", "value": {"intValue": "200"}},
                {"key": "zero", "value": {"intValue": "0"}},
                {"key": "retry", "value": {"boolValue": True}},
                {"key": "no", "value": {"boolValue": False}},
                {"key": "ratio", "value": {"doubleValue": 0.5}},
                {"key": "bytes", "value": {"bytesValue": "aGk="}},
                {"key": "list", "value": {"arrayValue": {"values": [{"intValue": 1}, {}]}}},
                {
                    "key": "map",
                    "value": {
                        "kvlistValue": {"values": [{"key": "a", "value": {"stringValue": "b"}}]}
                    },
                },
            ],
            events=[
                {
                    "timeUnixNano": "1544712660500000000",
                    "name": "exception",
                    "attributes": [{"key": "exception.type", "value": {"stringValue": "E"}}],
                }
            ],
            links=[{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331"}],
            status={"code": 2, "message": "boom"},
            flags=257,  # a newer field: fine
            someFutureField={"x": 1},  # unknown: ignored
        )
    )
    decoded = TRACES.decode(json_bytes(payload), is_json=True)
    assert decoded.rejected == 0
    [span] = decoded.batch.spans
    assert span.trace_id == TRACE_ID
    assert span.span_id == SPAN_ID
    assert span.parent_span_id == PARENT_ID
    assert span.kind is SpanKind.CLIENT
    assert span.trace_state == "vendor=1"
    assert (span.start_unix_nano, span.end_unix_nano) == (1544712660000000000, 1544712661000000000)
    assert span.attributes == {
        "http.method": "GET",
        "empty": "",
        "unset": None,
        "http.status_code": 200,
        "zero": 0,
        "retry": True,
        "no": False,
        "ratio": 0.5,
        "bytes": "aGk=",
        "list": [1, None],
        "map": {"a": "b"},
    }
    # (== alone would take 0 for False.)
    assert [type(v) for v in span.attributes.values()] == [
        str,
        str,
        type(None),
        int,
        int,
        bool,
        bool,
        float,
        str,
        list,
        dict,
    ]
    assert span.events == (SpanEvent(1544712660500000000, "exception", {"exception.type": "E"}),)
    assert span.links == (SpanLink("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", {}),)
    assert (span.status_code, span.status_message) == (StatusCode.ERROR, "boom")
    assert span.resource == Resource("todo", {"service.name": "todo", "host.name": "box"})
    assert span.scope == Scope("todo", "1.0")


def test_snake_case_names_and_enum_names_are_accepted() -> None:
    payload = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": TRACE_ID,
                                "span_id": SPAN_ID,
                                "parent_span_id": "",
                                "name": "x",
                                "kind": "SPAN_KIND_SERVER",
                                "start_time_unix_nano": "5",
                                "end_time_unix_nano": "6",
                            }
                        ]
                    }
                ]
            }
        ]
    }
    [span] = TRACES.decode(json_bytes(payload), is_json=True).batch.spans
    assert (span.kind, span.parent_span_id, span.duration_nanos) == (SpanKind.SERVER, None, 1)


def test_uppercase_hex_ids_are_accepted() -> None:
    payload = json_spans(json_span(traceId=TRACE_ID.upper(), spanId=SPAN_ID.upper()))
    [span] = TRACES.decode(json_bytes(payload), is_json=True).batch.spans
    assert (span.trace_id, span.span_id) == (TRACE_ID, SPAN_ID)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"traceId": "00000000000000000000000000000000"}, "trace_id"),
        ({"traceId": "5b8e"}, "trace_id"),
        ({"traceId": "not hex at all, not hex at all!!"}, "trace_id"),
        ({"traceId": ""}, "trace_id"),
        ({"spanId": "0000000000000000"}, "span_id"),
        ({"spanId": "eee19b7ec3c1b17"}, "span_id"),
        ({"parentSpanId": "eee1"}, "parent_span_id"),
    ],
)
def test_spans_with_bad_ids_are_rejected_and_counted(fields: dict[str, str], reason: str) -> None:
    payload = json_spans(json_span(spanId="1111111111111111"), json_span(**fields))
    decoded = TRACES.decode(json_bytes(payload), is_json=True)
    assert [s.span_id for s in decoded.batch.spans] == ["1111111111111111"]
    assert decoded.rejected == 1
    assert decoded.error_message.startswith("rejected 1 of 2 spans: 1 with a")
    assert reason in decoded.error_message
    response = TRACES.response_for(decoded)
    assert response.partial_success.rejected_spans == 1
    assert response.partial_success.error_message == decoded.error_message


LATE = str(2**63)  # one nanosecond after the latest time a store can hold


@pytest.mark.parametrize("field", ["startTimeUnixNano", "endTimeUnixNano"])
def test_spans_after_the_year_2262_are_rejected_and_counted(field: str) -> None:
    payload = json_spans(json_span(spanId="1111111111111111"), json_span(**{field: LATE}))
    decoded = TRACES.decode(json_bytes(payload), is_json=True)
    assert [s.span_id for s in decoded.batch.spans] == ["1111111111111111"]
    assert decoded.rejected == 1
    assert decoded.error_message == (
        "rejected 1 of 2 spans: 1 with a time after the year 2262 (more than 2**63 - 1 ns)"
    )
    latest = json_spans(json_span(startTimeUnixNano=str(2**63 - 2), endTimeUnixNano=str(2**63 - 1)))
    assert TRACES.decode(json_bytes(latest), is_json=True).rejected == 0


def test_a_fully_accepted_request_has_no_partial_success() -> None:
    decoded = TRACES.decode(json_bytes(json_spans(json_span())), is_json=True)
    assert not TRACES.response_for(decoded).HasField("partial_success")


def test_repairs_instead_of_rejections() -> None:
    payload = json_spans(
        json_span(
            startTimeUnixNano="2000", endTimeUnixNano="1000", parentSpanId="0000000000000000"
        ),
        service=None,
    )
    decoded = TRACES.decode(json_bytes(payload), is_json=True)
    assert decoded.rejected == 0
    [span] = decoded.batch.spans
    assert span.resource.service_name == UNKNOWN_SERVICE
    assert (span.start_unix_nano, span.end_unix_nano) == (2000, 2000)
    assert span.parent_span_id is None  # all-zero parent: a root span


def test_an_empty_service_name_is_repaired_too() -> None:
    decoded = TRACES.decode(json_bytes(json_spans(json_span(), service="")), is_json=True)
    assert decoded.batch.spans[0].resource.service_name == UNKNOWN_SERVICE


def test_invalid_utf8_in_json_is_replaced() -> None:
    body = json_bytes(json_spans(json_span(name="NAME"))).replace(b"NAME", b"caf\xc3 \xff")
    [span] = TRACES.decode(body, is_json=True).batch.spans
    assert span.name == "caf\ufffd \ufffd"


def test_unpaired_surrogates_in_json_are_replaced() -> None:
    body = json_bytes(json_spans(json_span(name="a\ud800b"))).replace(b"\\\\", b"\\")
    assert b"\\ud800" in body
    [span] = TRACES.decode(body, is_json=True).batch.spans
    assert span.name == "a\ufffdb"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'"text"',
        b'{"resourceSpans": 3}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": {"a": 1}}]}]}]}',
        b"\x0a\x03abc",
    ],
)
def test_undecodable_json(body: bytes) -> None:
    with pytest.raises(DecodeError, match=r"not (a )?valid"):
        TRACES.decode(body, is_json=True)


def test_an_empty_json_object_is_an_empty_request() -> None:
    decoded = TRACES.decode(b"{}", is_json=True)
    assert decoded.batch.spans == ()
    assert decoded.rejected == 0


def test_json_logs_with_hex_ids() -> None:
    payload = {
        "resourceLogs": [
            {
                "resource": resource(),
                "scopeLogs": [
                    {
                        "scope": {"name": "todo"},
                        "logRecords": [
                            {
                                "timeUnixNano": str(T),
                                "observedTimeUnixNano": str(T + 1),
                                "severityNumber": 9,
                                "severityText": "INFO",
                                "body": {"stringValue": "Task added"},
                                "attributes": [{"key": "todo.task.id", "value": {"intValue": "7"}}],
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                            },
                            {"timeUnixNano": "5", "body": {"kvlistValue": {"values": []}}},
                            {"timeUnixNano": "6", "traceId": "abcd"},
                            {"timeUnixNano": "7", "observedTimeUnixNano": LATE},
                        ],
                    }
                ],
            }
        ]
    }
    decoded = LOGS.decode(json_bytes(payload), is_json=True)
    first, second = decoded.batch.logs
    assert (first.trace_id, first.span_id, first.body) == (TRACE_ID, SPAN_ID, "Task added")
    assert (first.severity_number, first.severity_text) == (9, "INFO")
    assert (first.time_unix_nano, first.observed_time_unix_nano) == (T, T + 1)
    assert first.attributes == {"todo.task.id": 7}
    assert (second.trace_id, second.span_id, second.body) == (None, None, {})
    assert decoded.rejected == 2
    assert decoded.error_message == (
        "rejected 2 of 4 log records: 1 with a trace_id that is not 16 bytes,"
        " 1 with a time after the year 2262 (more than 2**63 - 1 ns)"
    )
    assert LOGS.response_for(decoded).partial_success.rejected_log_records == 2


def test_json_metrics_of_every_kind() -> None:
    def metric(name: str, **data: Any) -> dict[str, Any]:
        return {"name": name, "unit": "1", "description": f"{name}!", **data}

    point = {"timeUnixNano": str(T), "startTimeUnixNano": "1", "attributes": []}
    payload = {
        "resourceMetrics": [
            {
                "resource": resource(),
                "scopeMetrics": [
                    {
                        "scope": {"name": "todo"},
                        "metrics": [
                            metric(
                                "requests",
                                sum={
                                    "dataPoints": [{**point, "asInt": "3"}],
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                },
                            ),
                            metric(
                                "open",
                                gauge={
                                    "dataPoints": [
                                        {**point, "asDouble": 2.5},
                                        {**point, "asDouble": 1, "timeUnixNano": LATE},
                                    ]
                                },
                            ),
                            metric(
                                "duration",
                                histogram={
                                    "dataPoints": [
                                        {
                                            **point,
                                            "count": "3",
                                            "sum": 7.5,
                                            "bucketCounts": ["1", "2", "0"],
                                            "explicitBounds": [1, 5],
                                            "min": 0.5,
                                            "max": 4,
                                            "exemplars": [{"traceId": TRACE_ID, "spanId": SPAN_ID}],
                                        },
                                        {
                                            **point,
                                            "count": "1",
                                            "bucketCounts": ["1"],
                                            "explicitBounds": [1],
                                        },
                                    ],
                                    "aggregationTemporality": 1,
                                },
                            ),
                            metric("exp", exponentialHistogram={"dataPoints": [point]}),
                            metric("novalue", gauge={"dataPoints": [point]}),
                            metric("", gauge={"dataPoints": [{**point, "asInt": "1"}]}),
                        ],
                    }
                ],
            }
        ]
    }
    decoded = METRICS.decode(json_bytes(payload), is_json=True)
    requests, open_tasks, duration = decoded.batch.metrics
    assert (requests.name, requests.kind, requests.value) == ("requests", MetricKind.SUM, 3.0)
    assert (requests.is_monotonic, requests.temporality, requests.unit) == (True, 2, "1")
    assert (requests.description, requests.time_unix_nano, requests.start_time_unix_nano) == (
        "requests!",
        T,
        1,
    )
    assert (open_tasks.kind, open_tasks.value, open_tasks.is_monotonic) == (
        MetricKind.GAUGE,
        2.5,
        None,
    )
    assert duration.kind is MetricKind.HISTOGRAM
    assert duration.histogram == HistogramValue(3, 7.5, (1, 2, 0), (1.0, 5.0), 0.5, 4.0)
    assert duration.temporality == 1
    assert decoded.rejected == 5
    assert decoded.error_message == (
        "rejected 5 of 8 data points: 1 with a time after the year 2262 (more than 2**63 - 1 ns), "
        "1 whose bucket_counts do not match explicit_bounds, "
        "1 of exponential histograms or summaries (not stored), 1 without a value, "
        "1 of a metric without a name"
    )
    assert METRICS.response_for(decoded).partial_success.rejected_data_points == 5


# --- protobuf --------------------------------------------------------------------------


def proto_request(payload: dict[str, Any]) -> bytes:
    """Build a protobuf request from the same JSON (through our JSON path)."""
    message = TRACES.parse_json(json_bytes(payload))
    # (a twin of ExportTraceServiceRequest, see TRACES.parse_as: the same wire format)
    assert message.DESCRIPTOR.full_name == ExportTraceServiceRequest.DESCRIPTOR.full_name
    return bytes(message.SerializeToString())


def test_protobuf_and_json_decode_to_the_same_batch() -> None:
    payload = json_spans(
        json_span(attributes=[{"key": "k", "value": {"intValue": "-5"}}], status={"code": 1})
    )
    from_json = TRACES.decode(json_bytes(payload), is_json=True)
    from_proto = TRACES.decode(proto_request(payload))
    assert from_proto == from_json
    assert from_proto.batch.spans[0].attributes == {"k": -5}


def test_invalid_utf8_in_protobuf_is_repaired_not_refused() -> None:
    payload = json_spans(
        json_span(
            name="NAME1",
            attributes=[
                {"key": "KEY1", "value": {"stringValue": "VAL1"}},
                {"key": "list", "value": {"arrayValue": {"values": [{"stringValue": "VAL2"}]}}},
            ],
        )
    )
    data = proto_request(payload)
    for marker in (b"NAME1", b"KEY1", b"VAL1", b"VAL2"):
        data = data.replace(marker, marker[:-2] + b"\xff\xfe")  # same length, invalid UTF-8
    with pytest.raises(Exception, match="UTF-8"):
        ExportTraceServiceRequest.FromString(data)  # what the plain parser says
    [span] = TRACES.decode(data).batch.spans
    assert span.name == "NAM\ufffd\ufffd"
    assert span.attributes == {"KE\ufffd\ufffd": "VA\ufffd\ufffd", "list": ["VA\ufffd\ufffd"]}
    assert span.trace_id == TRACE_ID


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"not protobuf at all", b"\x0a\x05ab"])
def test_undecodable_protobuf(body: bytes) -> None:
    with pytest.raises(DecodeError, match="not a valid ExportTraceServiceRequest"):
        TRACES.decode(body)


def test_an_empty_protobuf_body_is_an_empty_request() -> None:
    assert TRACES.decode(b"").batch.spans == ()
    assert LOGS.decode(b"").batch.logs == ()
    assert METRICS.decode(b"").batch.metrics == ()


def test_logs_and_metrics_requests_parse_as_their_own_types() -> None:
    logs = LOGS.parse_json(b'{"resourceLogs": []}')
    metrics = METRICS.parse_json(b'{"resourceMetrics": []}')
    assert isinstance(logs, ExportLogsServiceRequest)
    assert isinstance(metrics, ExportMetricsServiceRequest)
    assert json_format.MessageToDict(LOGS.response_for(LOGS.convert(logs))) == {}


# --- span attributes, kept encoded (OtlpAttributes) --------------------------------------

#: Every kind of AnyValue, and strings that JSON must escape.
ATTRIBUTE_ZOO: list[tuple[dict[str, Any], Any]] = [
    ({"stringValue": "GET"}, "GET"),
    ({"stringValue": ""}, ""),
    (
        {"stringValue": 'caf\u00e9 \u2713 "q" \\ \n \t \U0001f600'},
        'caf\u00e9 \u2713 "q" \\ \n \t \U0001f600',
    ),
    ({"intValue": "-5"}, -5),
    ({"intValue": str(2**62)}, 2**62),
    ({"boolValue": True}, True),
    ({"boolValue": False}, False),
    ({"doubleValue": 1.5}, 1.5),
    ({"doubleValue": 1e300}, 1e300),
    ({"doubleValue": "NaN"}, "nan"),  # stored as text: JSON has no NaN
    ({"doubleValue": "-Infinity"}, "-inf"),
    ({"bytesValue": "AAEC"}, "AAEC"),
    ({"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}}, ["a", 1]),
    ({"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}}, {"k": True}),
    ({}, None),
]


def zoo_span() -> Any:
    attributes = [{"key": f"key{i}", "value": value} for i, (value, _) in enumerate(ATTRIBUTE_ZOO)]
    attributes.append({"key": 'k\u00e9y "\u2713"', "value": {"stringValue": "v"}})
    [span] = TRACES.decode(proto_request(json_spans(json_span(attributes=attributes)))).batch.spans
    return span


def test_span_attributes_decode_every_kind_of_value() -> None:
    attributes = zoo_span().attributes
    assert isinstance(attributes, OtlpAttributes)
    decoded = dict(attributes)
    for i, (_, expected) in enumerate(ATTRIBUTE_ZOO):
        value = decoded[f"key{i}"]
        if expected in ("nan", "-inf"):
            assert isinstance(value, float)
            assert str(value) == expected
        else:
            assert value == expected, f"key{i}"
            assert type(value) is type(expected), f"key{i}: {value!r}"
    assert decoded['k\u00e9y "\u2713"'] == "v"
    assert list(decoded) == [f"key{i}" for i in range(len(ATTRIBUTE_ZOO))] + ['k\u00e9y "\u2713"']


def test_span_attributes_json_is_the_json_of_their_dict_cached_or_not() -> None:
    _FRAGMENTS.clear()
    first = zoo_span().attributes.json()  # every fragment made
    assert len(_FRAGMENTS) == len(ATTRIBUTE_ZOO) + 1
    second = zoo_span().attributes.json()  # every fragment from the cache
    expected = json_text(dict(zoo_span().attributes))
    assert first == second == expected
    assert json.loads(first)["key2"] == 'caf\u00e9 \u2713 "q" \\ \n \t \U0001f600'
    assert first.isascii()


def test_span_attributes_with_invalid_utf8_are_repaired() -> None:
    payload = json_spans(json_span(attributes=[{"key": "KEY1", "value": {"stringValue": "VAL1"}}]))
    data = proto_request(payload)
    for marker in (b"KEY1", b"VAL1"):
        data = data.replace(marker, marker[:-2] + b"\xff\xfe")  # only inside attributes
    [span] = TRACES.decode(data).batch.spans
    assert span.attributes.json() == '{"KE\\ufffd\\ufffd":"VA\\ufffd\\ufffd"}'
    assert span.attributes == {"KE\ufffd\ufffd": "VA\ufffd\ufffd"}


def test_the_attribute_cache_is_bounded() -> None:
    _FRAGMENTS.clear()
    long_value = "x" * MAX_CACHED_ATTRIBUTE_BYTES
    values = [str(n) for n in range(MAX_CACHED_ATTRIBUTES + 10)] + [long_value]
    attributes = [{"key": "n", "value": {"stringValue": v}} for v in values]
    [span] = TRACES.decode(proto_request(json_spans(json_span(attributes=attributes)))).batch.spans
    text = span.attributes.json()
    assert text == "{" + ",".join(f'"n":"{v}"' for v in values) + "}"
    assert 0 < len(_FRAGMENTS) <= MAX_CACHED_ATTRIBUTES  # cleared once when full
    assert all(long_value not in fragment for fragment in _FRAGMENTS.values())
