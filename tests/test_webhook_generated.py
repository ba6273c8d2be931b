"""Generated hostile bodies for the webhook's form and text formats, its `items` fan-out and its
times from the body: the parsers either give a bounded value or a 400 InputError, never another
exception; through the real WSGI app (as tests/test_http_generated.py builds it), never a 5xx.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import InputError
from bridge.inputs.bodyformats import (
    MAX_FIELD_NAME_BYTES,
    MAX_FIELD_VALUE_BYTES,
    MAX_FORM_FIELDS,
    MAX_LINES,
    parse_form,
    text_lines,
)
from bridge.inputs.bodytime import body_time
from bridge.inputs.http import HttpApp
from bridge.inputs.jsonbody import utf8_text
from tests.harness import compile_yaml
from tests.test_http_generated import SETTINGS, check, offline_app

CONFIG = """
targets: {ops: {type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=t"}}
inputs:
  form:
    type: webhook
    path: /form
    format: form
    labels: {alertname: "{{ body.alertName | default('x') }}"}
    status: "{{ 'resolved' if body.get('alertState') == 'OK' else 'firing' }}"
    starts_at: "{{ body.timestamp | default('') }}"
  text:
    type: webhook
    path: /text
    format: text
    fingerprint: "{{ line }}"
  items:
    type: webhook
    path: /items
    items: body
    labels: {name: "{{ item.name | default('') if item is mapping else item }}"}
    starts_at: "{{ item.startTime | default('') if item is mapping else '' }}"
rules: [{name: all, targets: [ops]}]
"""

# Bytes that look like what a form encoder writes, and what it never writes.
form_pieces = st.one_of(
    st.sampled_from([b"&", b"=", b"+", b"%", b"%2", b"%G1", b"%E5%91", b"%E5%91%8A", b"%FF"]),
    st.sampled_from([b"alertName=", b"alertState=OK", b"timestamp=", b"1508136760", b"-1"]),
    st.text(max_size=8).map(lambda t: quote(t).encode()),
    st.binary(max_size=8),
)
form_bodies = st.lists(form_pieces, max_size=40).map(b"".join)
text_bodies = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.one_of(st.text(max_size=20), st.sampled_from(["\n", "\r\n", " ", "\ufeff", "\u2028"])),
        max_size=30,
    ).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass")),
)
times = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1e400"]),
)


@given(form_bodies)
@SETTINGS
def test_form_parser_gives_bounded_fields_or_a_400(raw: bytes) -> None:
    try:
        fields = parse_form(raw)
    except InputError as exc:
        assert exc.status == 400
        return
    assert len(fields) <= MAX_FORM_FIELDS
    for name, value in fields.items():
        assert len(name.encode("utf-8")) <= MAX_FIELD_NAME_BYTES
        assert len(value.encode("utf-8")) <= MAX_FIELD_VALUE_BYTES


@given(st.lists(st.text(max_size=10), max_size=20))
@SETTINGS
def test_form_parser_reads_what_an_encoder_wrote(values: list[str]) -> None:
    """Whatever UTF-8 text a form encoder encodes (surrogates aside) comes back, first value
    of each name kept."""
    texts = [v.encode("utf-8", "replace").decode("utf-8") for v in values]
    pairs = list(zip(texts[::2], texts[1::2], strict=False))
    raw = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in pairs).encode()
    expected: dict[str, str] = {}
    for k, v in pairs:
        expected.setdefault(k, v)
    assert parse_form(raw) == expected


@given(text_bodies)
@SETTINGS
def test_text_lines_are_bounded_and_never_blank(raw: bytes) -> None:
    try:
        lines = text_lines(utf8_text(raw))
    except InputError as exc:
        assert exc.status == 400
        return
    assert len(lines) <= MAX_LINES
    assert all(line.strip() and "\n" not in line for line in lines)


@given(times)
@SETTINGS
def test_times_are_aware_or_a_400(text: str) -> None:
    try:
        when = body_time(text, "starts_at")
    except InputError as exc:
        assert exc.status == 400
        assert str(exc).startswith("starts_at: ")
        return
    assert when is None or when.utcoffset() is not None


# -- through the WSGI app ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpApp]:
    directory = tmp_path_factory.mktemp("webhook-generated")
    with offline_app(directory, compile_yaml(directory, CONFIG)) as app:
        yield app


def post(app: HttpApp, path: str, raw: bytes, content_type: str) -> tuple[int, bytes]:
    environ = {
        "PATH_INFO": path,
        "REQUEST_METHOD": "POST",
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(raw)),
        "CONTENT_TYPE": content_type,
        "wsgi.input": io.BytesIO(raw),
    }
    seen: list[str] = []
    chunks = app(environ, lambda status, _headers: seen.append(status))
    return int(seen[0].split()[0]), b"".join(chunks)


content_types = st.sampled_from(
    [
        "",
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
        "multipart/form-data",
    ]
)


@given(form_bodies, content_types)
@SETTINGS
def test_generated_form_posts_never_get_a_5xx(app: HttpApp, raw: bytes, ctype: str) -> None:
    check(*post(app, "/form", raw, ctype))


@given(text_bodies, content_types)
@SETTINGS
def test_generated_text_posts_never_get_a_5xx(app: HttpApp, raw: bytes, ctype: str) -> None:
    answer = check(*post(app, "/text", raw, ctype))
    assert answer.get("events", 0) <= MAX_LINES


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**20), max_value=10**20),
        st.text(max_size=10),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["name", "startTime", "x"]), children, max_size=3),
    ),
    max_leaves=10,
)


@given(json_values)
@SETTINGS
def test_generated_arrays_fanned_out_never_get_a_5xx(app: HttpApp, value: object) -> None:
    check(*post(app, "/items", json.dumps(value).encode(), "application/json"))
