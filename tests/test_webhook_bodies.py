"""The generic webhook's bodies as tables: form and text parsing, times from the body, `items`
fan-out, Content-Type handling, and the samples of CloudMonitor and SkyWalking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bridge.config.model import Config, HttpInput
from bridge.errors import InputError
from bridge.inputs import bodyformats
from bridge.inputs.bodyformats import parse_form, text_lines
from bridge.inputs.bodytime import body_time
from bridge.inputs.registry import KINDS
from bridge.inputs.webhook import MAX_ITEMS, decode_body, parse_webhook
from bridge.model import Event, label_fingerprint
from tests.harness import FIXTURES, compile_yaml

NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
SOURCES = FIXTURES / "sources"
FORM = "application/x-www-form-urlencoded"
CONFIG = """
targets: {ops: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}}
inputs:
  aliyun:
    type: webhook
    path: /aliyun
    format: form
    labels:
      alertname: "{{ body.alertName }}"
      instance: "{{ body.instanceName }}"
      severity: "{{ body.triggerLevel | lower }}"
    annotations: {summary: "{{ body.metricName }} {{ body.expression }}, now {{ body.curValue }}"}
    status: "{{ 'resolved' if body.alertState == 'OK' else 'firing' }}"
    starts_at: "{{ body.timestamp }}"
  sky:
    type: webhook
    path: /sky
    items: body
    labels: {alertname: "{{ item.ruleName }}", service: "{{ item.name }}"}
    annotations: {summary: "{{ item.alarmMessage }}", level: "{{ item.tags[0].value }}"}
    status: "{{ 'resolved' if item.recoveryTime is defined else 'firing' }}"
    starts_at: "{{ item.startTime }}"
    ends_at: "{{ item.recoveryTime | default('') }}"
  nested:
    type: webhook
    path: /nested
    items: body.alerts
    labels: {alertname: "{{ item.name | default(item) }}", receiver: "{{ body.receiver }}"}
  lines:
    type: webhook
    path: /lines
    format: text
    labels: {alertname: "LogLine"}
    fingerprint: "{{ line }}"
    annotations: {line: "{{ line }}", lines: "{{ body.count('\\n') + 1 }}"}
  firing-only:
    type: webhook
    path: /firing-only
    items: body.alerts | selectattr("status", "eq", "firing") | list
    labels: {alertname: "{{ item.name }}"}
  json: {type: webhook, path: /json, labels: {app: "{{ body.app }}"}}
  form-bare: {type: webhook, path: /form-bare, format: form}
  when:
    type: webhook
    path: /when
    starts_at: "{{ body.start }}"
    ends_at: "{{ body.end | default('') }}"
    status: "{{ body.state | default('firing') }}"
rules: [{name: all, targets: [ops]}]
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    loaded: Config = compile_yaml(tmp_path_factory.mktemp("webhook-bodies"), CONFIG)
    return loaded


def spec_of(config: Config, name: str) -> HttpInput:
    return config.http_inputs()[name]


def events(config: Config, name: str, raw: bytes, content_type: str = "") -> list[Event]:
    spec = spec_of(config, name)
    return parse_webhook(decode_body(raw, spec, content_type), spec, NOW)


def refusal(config: Config, name: str, raw: bytes, content_type: str = "") -> str:
    with pytest.raises(InputError) as caught:
        events(config, name, raw, content_type)
    assert caught.value.status == 400
    return str(caught.value)


# -- form ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        (b"a=1&b=2", {"a": "1", "b": "2"}),
        (b"a=x+y%20z", {"a": "x y z"}),  # + and %20 are both a space
        (b"a=%2B%26%3D", {"a": "+&="}),
        (b"name=%E5%91%8A%E8%AD%A6", {"name": "告警"}),
        ("name=告警".encode(), {"name": "告警"}),  # raw UTF-8, unencoded, is read too
        (b"a=1&&b=&c", {"a": "1", "b": "", "c": ""}),  # empty pieces skipped, no `=`: empty
        (b"a=first&a=second", {"a": "first"}),  # a repeated field keeps its first value
        (b"%61=1", {"a": "1"}),  # names are decoded too
        (b"a=%7b%7D", {"a": "{}"}),  # hex digits in either case
        (b"=v", {"": "v"}),
        (b"", {}),
    ],
)
def test_form_fields(raw: bytes, fields: dict[str, str]) -> None:
    assert parse_form(raw) == fields


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"a=%G1", "form field 1 ('a') has an invalid percent-encoding at '%G1'"),
        (b"a=1&b=50%", "form field 2 ('b') has an invalid percent-encoding at '%'"),
        (b"a%2=1", "form field 1's name has an invalid percent-encoding at '%2'"),
        (b"a=%C4%E3", "form field 1 ('a') is not UTF-8 once decoded (byte 0: b'\\xc4\\xe3')"),
        (b"a=\xc4\xe3", "form field 1 ('a') is not UTF-8 once decoded"),  # GBK, unencoded
        (b"%FF=1", "form field 1's name is not UTF-8 once decoded"),
        (b"&".join([b"a=1"] * 1001), "the form has 1001 fields; at most 1000 are accepted"),
        (b"n" * 257 + b"=1", "form field 1's name is longer than 256 bytes"),
        (b"a=" + b"v" * 65537, "form field 1 ('a') is longer than 65536 bytes"),
    ],
)
def test_form_refusals_name_the_field(raw: bytes, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_form(raw)
    assert caught.value.status == 400
    assert message in str(caught.value)


def test_form_bounds_are_the_documented_ones() -> None:
    assert (
        bodyformats.MAX_FORM_FIELDS,
        bodyformats.MAX_FIELD_NAME_BYTES,
        bodyformats.MAX_FIELD_VALUE_BYTES,
    ) == (1000, 256, 65536)
    assert len(parse_form(b"&".join([b"a=1"] * 1000))) == 1  # 1000 occurrences are fine


def test_cloudmonitor_alarm_is_one_event_naming_the_alert(config: Config) -> None:
    raw = (SOURCES / "aliyun-cloudmonitor-alarm.txt").read_bytes()
    [event] = events(config, "aliyun", raw, f"{FORM}; charset=UTF-8")
    assert event.labels == {
        "alertname": "基础监控-ECS-内存使用率",
        "instance": "instance-name-****",
        "severity": "warn",
    }
    assert event.annotations == {
        "summary": "Host.mem.usedutilization $Average>=95, now 97.39",
    }
    assert event.status == "firing"
    assert event.fingerprint == label_fingerprint(event.labels)
    assert event.payload["dimensions"] == "{userId=12****), instanceId=i-12****}"
    assert len(event.payload) == 15  # every field, for the rule's templates
    [alert] = event.alerts
    assert alert.starts_at == datetime(2017, 10, 16, 6, 52, 40, tzinfo=UTC)  # epoch seconds
    assert alert.ends_at is None


@pytest.mark.parametrize(
    ("state", "status"),
    [("ALERT", "firing"), ("OK", "resolved"), ("INSUFFICIENT_DATA", "firing")],
)
def test_cloudmonitor_states_map_by_the_status_template(
    config: Config, state: str, status: str
) -> None:
    raw = (SOURCES / "aliyun-cloudmonitor-alarm.txt").read_bytes()
    [event] = events(
        config, "aliyun", raw.replace(b"alertState=ALERT", f"alertState={state}".encode())
    )
    assert event.status == status
    assert event.alerts[0].status == status
    if status == "resolved":  # the post's own time is when it began; it ended on arrival
        assert event.alerts[0].ends_at == NOW


def test_a_form_without_templates_is_one_firing_event_of_its_fields(config: Config) -> None:
    [event] = events(config, "form-bare", b"x=1&y=%E4%BD%A0")
    assert (event.status, dict(event.labels), event.payload) == (
        "firing",
        {},
        {"x": "1", "y": "你"},
    )


# -- Content-Type --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "content_type", "message"),
    [
        (
            "aliyun",
            b"alertName=x",
            "application/json",
            "reads form bodies (format: form), but the request is application/json",
        ),
        (
            "aliyun",
            b"alertName=x",
            "application/problem+json",
            "but the request is application/problem+json",
        ),
        (
            "aliyun",
            b' {"alertName": "x"}',
            "",
            "but the body is JSON: send application/x-www-form-urlencoded",
        ),
        ("aliyun", b"[1]", FORM, "or set format: json on the input"),
        ("aliyun", b"a=1", "multipart/form-data; boundary=x", "not multipart/form-data"),
        ("json", b"app=pay", FORM, "to read form bodies, set format: form on the input"),
        ("json", b"app=pay", "", "the body is not valid JSON"),
    ],
)
def test_content_type_mismatches_get_a_400_that_says_what_to_change(
    config: Config, name: str, raw: bytes, content_type: str, message: str
) -> None:
    assert message in refusal(config, name, raw, content_type)


@pytest.mark.parametrize(
    ("name", "raw", "content_type"),
    [
        ("json", b'{"app": "pay"}', FORM),  # curl -d says form: JSON inputs read JSON anyway
        ("json", b'{"app": "pay"}', "text/plain"),
        ("form-bare", b"a=1", ""),  # no Content-Type: read as the input's format
        ("form-bare", b"a=1", "text/plain"),
        ("form-bare", b"a=1", "APPLICATION/X-WWW-FORM-URLENCODED; charset=utf-8"),
        ("lines", b'{"a": 1}', "application/json"),  # JSON is text too
    ],
)
def test_content_types_that_are_read_by_the_configured_format(
    config: Config, name: str, raw: bytes, content_type: str
) -> None:
    assert len(events(config, name, raw, content_type)) == 1


# -- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("one", ["one"]),
        ("one\ntwo\n", ["one", "two"]),
        ("one\r\ntwo\r\n", ["one", "two"]),
        ("\n\n  \n\tone\n \t\n", ["\tone"]),  # blank lines skipped, the rest kept as sent
        ("a\rb\n", ["a\rb"]),  # only \n ends a line
        ("a\u2028b\x0bc", ["a\u2028b\x0bc"]),  # and no other separator
        ("   \n", []),
    ],
)
def test_text_lines(text: str, lines: list[str]) -> None:
    assert text_lines(text) == lines


def test_text_body_is_one_event_per_line(config: Config) -> None:
    raw = "\ufeffdisk full on db-1\r\n\r\n服务 pay 超时\nlast line without newline".encode()
    got = events(config, "lines", raw, "text/plain")
    assert [e.annotations["line"] for e in got] == [
        "disk full on db-1",
        "服务 pay 超时",
        "last line without newline",
    ]
    assert [e.payload for e in got] == [{"line": e.annotations["line"]} for e in got]
    assert {e.annotations["lines"] for e in got} == {"4"}  # `body` is the whole text
    assert len({e.fingerprint for e in got}) == 3  # the fingerprint template names the line


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"ok\n\xff\xfe", "the body is not UTF-8 text (byte 3: b'\\xff\\xfe')"),
        (b"x\n" * 1001, "the body has 1001 non-empty lines; at most 1000 are accepted"),
    ],
)
def test_text_refusals(config: Config, raw: bytes, message: str) -> None:
    assert message in refusal(config, "lines", raw)


def test_blank_text_is_no_event(config: Config) -> None:
    assert events(config, "lines", b" \n\n") == []


# -- times --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "when"),
    [
        ("1508136760", datetime(2017, 10, 16, 6, 52, 40, tzinfo=UTC)),  # CloudMonitor: seconds
        ("1560524171000", datetime(2019, 6, 14, 14, 56, 11, tzinfo=UTC)),  # SkyWalking: ms
        ("1560524171000000", datetime(2019, 6, 14, 14, 56, 11, tzinfo=UTC)),  # µs
        ("1560524171000000000", datetime(2019, 6, 14, 14, 56, 11, tzinfo=UTC)),  # ns
        ("1508136760.5", datetime(2017, 10, 16, 6, 52, 40, 500000, tzinfo=UTC)),
        (" 1508136760\n", datetime(2017, 10, 16, 6, 52, 40, tzinfo=UTC)),
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
        ("99999999999", datetime(5138, 11, 16, 9, 46, 39, tzinfo=UTC)),  # 10^11 - 1: seconds
        ("100000000000", datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)),  # 10^11: milliseconds
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01t10:00:00z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        (
            "2024-05-01T10:00:00.123+08:00",
            datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=timezone(timedelta(hours=8))),
        ),
        ("2024-05-01 10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),  # no zone: UTC
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("", None),
        ("  ", None),
    ],
)
def test_times_from_the_body(text: str, when: datetime | None) -> None:
    assert body_time(text, "starts_at") == when


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "-5",
        "1e9",
        "2024-13-01T00:00:00Z",
        "0001-01-01T00:30:00+01:00",
        "x" * 100,
    ],
)
def test_unreadable_times_are_refused_with_the_value(text: str) -> None:
    with pytest.raises(InputError) as caught:
        body_time(text, "items[2]: starts_at")
    assert caught.value.status == 400
    assert str(caught.value).startswith(f"items[2]: starts_at: {text[:40]!r} is not a time")


@pytest.mark.parametrize("text", ["1" * 30, "9" * 400, "1" * 25 + ".5"])
def test_epoch_times_out_of_range_are_refused(text: str) -> None:
    with pytest.raises(InputError) as caught:
        body_time(text, "starts_at")
    assert str(caught.value) == f"starts_at: epoch time out of range: {text[:40]!r}"


def test_a_time_is_refused_with_a_400_naming_the_template(config: Config) -> None:
    message = refusal(config, "when", b'{"start": "soon"}')
    assert message == (
        "starts_at: 'soon' is not a time: expected epoch seconds or milliseconds"
        " (1508136760, 1560524171000) or an ISO 8601 time within years 1-9999"
        " (2024-05-01T10:00:00+08:00)"
    )


@pytest.mark.parametrize(
    ("body", "starts", "ends", "status"),
    [
        ({"start": 1700000000}, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), None, "firing"),
        ({"start": ""}, NOW, None, "firing"),  # empty: the time the post arrived
        ({"start": "", "state": "Resolved"}, NOW, NOW, "resolved"),  # status in any case
        (
            {"start": "2026-11-28T13:00:00Z", "end": "2026-11-28T13:30:00Z", "state": "resolved"},
            datetime(2026, 11, 28, 13, tzinfo=UTC),
            datetime(2026, 11, 28, 13, 30, tzinfo=UTC),
            "resolved",
        ),
    ],
)
def test_the_event_time_rides_on_its_one_alert(
    config: Config, body: dict[str, Any], starts: datetime, ends: datetime | None, status: str
) -> None:
    [event] = parse_webhook(body, spec_of(config, "when"), NOW)
    [alert] = event.alerts
    assert (alert.starts_at, alert.ends_at, alert.status, event.status) == (
        starts,
        ends,
        status,
        status,
    )
    assert alert.fingerprint == event.fingerprint
    assert event.received_at == NOW


def test_without_time_templates_a_webhook_event_carries_no_alert(config: Config) -> None:
    [event] = parse_webhook({"app": "pay"}, spec_of(config, "json"), NOW)
    assert event.alerts == ()


# -- items ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v10.3.0", "v10.4.0"])
def test_a_skywalking_array_is_one_event_per_alarm(config: Config, version: str) -> None:
    raw = (SOURCES / f"skywalking-alarm-webhook-{version}.json").read_bytes()
    got = events(config, "sky", raw, "application/json")
    assert [(e.labels["service"], e.annotations["level"]) for e in got] == [
        ("serviceA", "WARNING"),
        ("serviceB", "CRITICAL"),
    ]
    assert {e.labels["alertname"] for e in got} == {"service_resp_time_rule"}
    assert [e.payload["name"] for e in got] == ["serviceA", "serviceB"]  # rule templates' body
    assert len({e.fingerprint for e in got}) == 2
    started = datetime(2019, 6, 14, 14, 56, 11, tzinfo=UTC)
    assert [e.alerts[0].starts_at for e in got] == [started, started]
    recovered = version == "v10.4.0"  # only 10.4's first alarm carries recoveryTime
    assert got[0].status == ("resolved" if recovered else "firing")
    assert got[0].alerts[0].ends_at == (started + timedelta(minutes=3) if recovered else None)
    assert got[1].status == "firing"


@pytest.mark.parametrize(
    ("body", "labels", "payloads"),
    [
        (
            {"receiver": "ops", "alerts": [{"name": "A"}, {"name": "B", "x": 1}]},
            [{"alertname": "A", "receiver": "ops"}, {"alertname": "B", "receiver": "ops"}],
            [{"name": "A"}, {"name": "B", "x": 1}],
        ),
        (  # elements that are not objects reach rule templates as {"item": value}
            {"receiver": "ops", "alerts": ["disk", 7]},
            [{"alertname": "disk", "receiver": "ops"}, {"alertname": "7", "receiver": "ops"}],
            [{"item": "disk"}, {"item": 7}],
        ),
        ({"receiver": "ops", "alerts": []}, [], []),
    ],
)
def test_items_inside_the_body(
    config: Config, body: dict[str, Any], labels: list[dict[str, str]], payloads: list[Any]
) -> None:
    got = parse_webhook(body, spec_of(config, "nested"), NOW)
    assert [dict(e.labels) for e in got] == labels
    assert [e.payload for e in got] == payloads


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("nested", {"receiver": "ops"}, "items: must give an array, but gave null"),
        ("nested", {"alerts": {"a": 1}}, "items: must give an array, but gave an object"),
        ("nested", {"alerts": "abc"}, "items: must give an array, but gave a string"),
        ("nested", {"alerts": 5}, "items: cannot be computed from this body (TypeError)"),
        ("nested", [1, 2], "items: must give an array, but gave null"),
        ("sky", {"a": 1}, "items: must give an array, but gave an object"),
        ("sky", [{"name": "x"}], "items[0]: labels.alertname: the body lacks a field"),
        ("sky", list(range(MAX_ITEMS + 1)), f"items: more than {MAX_ITEMS} elements"),
        (
            "json",
            [{"app": "pay"}],
            "must be a JSON object, not an array: to take one event per"
            " element, set items: body on the input",
        ),
        ("json", "text", "the body must be a JSON object, not a string"),
    ],
)
def test_items_refusals(config: Config, name: str, body: Any, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_webhook(body, spec_of(config, name), NOW)
    assert caught.value.status == 400
    assert message in str(caught.value)


def test_items_is_an_expression_that_may_filter(config: Config) -> None:
    body = {"alerts": [{"name": "A", "status": "firing"}, {"name": "B", "status": "resolved"}]}
    [event] = parse_webhook(body, spec_of(config, "firing-only"), NOW)
    assert event.labels == {"alertname": "A"}


def test_elements_that_share_labels_are_one_alert(config: Config, tmp_path: Path) -> None:
    """What README "Which posts are the same alert" promises: identity is the fingerprint
    template, else the labels, even between the elements of one post."""
    from bridge.app.bridge import Bridge
    from bridge.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "state")
    bridge = Bridge(config, store=store)
    spec = spec_of(config, "firing-only")
    body = {
        "alerts": [
            {"name": n, "status": "firing", "text": t}
            for n, t in [("A", "first"), ("A", "other text"), ("B", "")]
        ]
    }
    accepted = bridge.accept(spec, parse_webhook(body, spec, NOW))
    assert (accepted.messages, accepted.not_sent_again_yet) == (2, 1)
    again = bridge.accept(spec, parse_webhook(body, spec, NOW))  # within repeat_interval
    assert (again.messages, again.not_sent_again_yet) == (0, 3)
    store.close()


def test_items_take_up_to_the_bound(config: Config) -> None:
    body = [
        {
            "ruleName": "r",
            "name": f"s{i}",
            "alarmMessage": "m",
            "startTime": 0,
            "tags": [{"value": "W"}],
        }
        for i in range(MAX_ITEMS)
    ]
    assert len(parse_webhook(body, spec_of(config, "sky"), NOW)) == MAX_ITEMS


# -- render --payload reads the input's format ------------------------------------------------


def test_render_sample_reads_a_form_file(config: Config, tmp_path: Path) -> None:
    sample = KINDS["webhook"].sample
    assert sample is not None
    form = SOURCES / "aliyun-cloudmonitor-alarm.txt"
    [event] = sample(spec_of(config, "aliyun"), form.read_bytes(), str(form), NOW)
    assert event.labels["alertname"] == "基础监控-ECS-内存使用率"
    lines = tmp_path / "sample.log"
    lines.write_text("a\nb\n", "utf-8")
    assert len(sample(spec_of(config, "lines"), lines.read_bytes(), str(lines), NOW)) == 2
