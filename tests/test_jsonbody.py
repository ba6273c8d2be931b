"""The bounded JSON parser of the HTTP inputs (bridge/inputs/jsonbody.py), as tables, and its
depth check against a plain recursive count on generated shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import InputError
from bridge.inputs import jsonbody
from bridge.inputs.jsonbody import MAX_DEPTH, MAX_DIGITS, loads, too_deep


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for n in range(depth):
        value = [value] if n % 2 else {"k": value}
    return value


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a": [1, 2.5, true, null, "x"]}', {"a": [1, 2.5, True, None, "x"]}),
        (b'\xef\xbb\xbf{"bom": 1}', {"bom": 1}),  # a UTF-8 BOM is skipped
        (b'{"pair": "\\ud83d\\udd25"}', {"pair": "🔥"}),  # a surrogate pair is its character
        (b'{"lone": "a\\ud800b"}', {"lone": "a\ufffdb"}),
        (
            b'{"\\udc00key": ["\\udfff", {"x": "\\ud800\\ud800"}]}',
            {"\ufffdkey": ["\ufffd", {"x": "\ufffd\ufffd"}]},
        ),
        (b'{"escaped backslash": "\\\\ud800"}', {"escaped backslash": "\\ud800"}),  # not an escape
        (b'{"s": "' + b"[" * 68 + b'"}', {"s": "[" * 68}),
        (b'{"q": "\\"' + b"[" * 67 + b'"}', {"q": '"' + "[" * 67}),
        (b"-" + b"9" * MAX_DIGITS, -int("9" * MAX_DIGITS)),
        (json.dumps(nested(MAX_DEPTH)).encode(), nested(MAX_DEPTH)),
    ],
)
def test_accepted(raw: bytes, expected: Any) -> None:
    assert loads(raw) == expected


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"a": "\xed\xa0\x80"}', "not UTF-8 text (byte 7"),  # a surrogate as raw bytes
        (b"\xff\xfe{\x00}\x00", "not UTF-8"),  # UTF-16 is not taken
        ('{"gbk": "告警"}'.encode("gbk"), "not UTF-8"),
        (b"9" * (MAX_DIGITS + 1), f"{MAX_DIGITS + 1} digits"),
        (b"[" + b"1" * 5000 + b"]", "5000 digits"),
        (b"[NaN]", "NaN is not a JSON value"),
        (b'{"x": -Infinity}', "-Infinity is not a JSON value"),
        (json.dumps(nested(MAX_DEPTH + 1)).encode(), "nested deeper than 64"),
        (b"[" * 980 + b"]" * 980, "nested deeper than 64"),
        (b"[" * 100_000, "nested deeper than 64"),
        (b'{"a": 1', "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_refused(raw: bytes, words: str) -> None:
    with pytest.raises(InputError) as caught:
        loads(raw)
    assert caught.value.status == 400 and words in str(caught.value)


def test_the_message_names_what_was_parsed() -> None:
    with pytest.raises(InputError) as caught:
        loads(b"{", "the decrypted message")
    assert str(caught.value).startswith("the decrypted message is not valid JSON")


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * 64 + "]" * 64, False),
        ("[" * 65 + "]" * 65, True),
        ("[1," * 64 + "1" + "]" * 64, False),
        ("[1,[]," * 64 + "]" * 64, True),  # the empty lists are level 65
        ("[" + "[]," * 10_000 + "[]]", False),  # wide, shallow
        (json.dumps([nested(63)] * 50), False),
        (json.dumps([nested(10), nested(64)]), True),
        ('["' + "[" * 200 + '"]', False),  # brackets in a string
        ('["\\"' + "[" * 200 + '"]', False),  # after an escaped quote, still in the string
        ('["\\\\", ' + "[" * 65 + "]" * 65 + "]", True),  # an escaped backslash ends nothing
    ],
)
def test_too_deep(text: str, deep: bool) -> None:
    assert too_deep(text) is deep


shapes = st.recursive(
    st.integers(0, 3),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "[", "}"]), children, max_size=3),
        children.map(lambda v: nested(30, v)),  # long chains reach the limit quickly
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, database=None)
@given(value=shapes)
def test_too_deep_agrees_with_a_recursive_count(value: Any) -> None:
    assert too_deep(json.dumps(value)) is (depth_of(value) > MAX_DEPTH)


def the_standard_decoder(text: str) -> Any:
    """What `loads` read before orjson: the bounded standard decoder alone."""
    value = jsonbody._DECODER.decode(text)
    if jsonbody._SURROGATE_ESCAPE.search(text):
        value = jsonbody._replace_lone_surrogates(value)
    return value


# JSON values with what orjson and the standard decoder could read differently: integers past
# 64 bits, floats past their range or at their precision, escapes of lone and paired surrogates,
# NaN and Infinity spelled out, control characters.
json_scalars = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.integers(2**63 - 2, 2**70).map(lambda n: str(n * 1000)),  # past 64 bits, often
    st.integers(2**63 - 2, 2**70).map(lambda n: f"-{n}"),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e400", "-1e400", "1e-400", "-0", "-0.0", "NaN", "-Infinity", "0.1e1"]),
    st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.text(max_size=8).map(json.dumps),  # \u escapes, lone surrogates among them
    st.sampled_from(['"\\ud800"', '"\\udc00x"', '"\\ud83d\\udd25"', '"a\\u0000b"', '"\t"']),
    st.sampled_from(["true", "false", "null"]),
)
json_texts = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(json_scalars, children), max_size=4).map(
            lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None, database=None)
@given(text=st.one_of(json_texts, st.text(max_size=40)))
def test_the_fast_path_reads_what_the_standard_decoder_reads(text: str) -> None:
    try:
        expected = the_standard_decoder(text)
    except Exception:
        with pytest.raises(InputError) as caught:
            loads(text)
        assert caught.value.status == 400
        return
    got = loads(text)
    assert repr(got) == repr(expected)  # repr: -0.0 and 0.0 and 1 and 1.0 told apart
