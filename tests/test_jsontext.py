"""bridge/jsontext.py: orjson where it gives the standard library's result, the standard
library where it would not (integers beyond 64 bits, lone surrogates). Generated values."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge import jsontext

exact_scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: 1,000-digit integers reach the store (inputs/jsonbody.py)
    | st.text()  # includes lone surrogates
)


def nested(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
        max_leaves=30,
    )


exact_values = nested(exact_scalars)
# Floats: orjson may write an exponent differently (1e-7, not 1e-07): the same number.
values = nested(exact_scalars | st.floats(allow_nan=False, allow_infinity=False))


def standard(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@given(exact_values)
def test_written_as_the_standard_library_writes_it(value: Any) -> None:
    assert jsontext.dumps(value) == standard(value)
    assert jsontext.dumps_bytes(value) == standard(value).encode("utf-8", "surrogatepass")


@given(exact_values)
def test_sorted_keys_as_the_standard_library_sorts_them(value: Any) -> None:
    """The dedup digest of a notification hashes this text: it must not change."""
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    assert jsontext.dumps(value, sort_keys=True) == expected


@given(values)
def test_what_is_written_reads_as_the_same_value(value: Any) -> None:
    assert json.loads(jsontext.dumps(value)) == json.loads(standard(value))


@given(values)
def test_read_back_exactly(value: Any) -> None:
    text = jsontext.dumps(value)
    assert jsontext.loads(text) == json.loads(text)
    assert jsontext.loads(text.encode("utf-8", "surrogatepass")) == json.loads(text)


def test_a_huge_integer_keeps_every_digit() -> None:
    big = 10**40 + 7
    text = jsontext.dumps({"n": big, "s": "x"})
    assert text == '{"n":10000000000000000000000000000000000000007,"s":"x"}'
    value = jsontext.loads(text)
    assert value["n"] == big and isinstance(value["n"], int)


def test_an_integer_at_64_bits_and_beyond() -> None:
    for n in (2**63 - 1, 2**63, -(2**63), 2**64, -(2**64) - 1):
        assert jsontext.loads(jsontext.dumps([n])) == [n]


def test_a_lone_surrogate_is_written_and_read_like_the_standard_library() -> None:
    text = jsontext.dumps({"s": "a\ud800b"})
    assert text == standard({"s": "a\ud800b"})
    assert jsontext.loads('{"s":"\\ud800"}') == {"s": "\ud800"}


def test_default_applies_to_what_json_cannot_hold() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert jsontext.dumps({"v": Odd()}, default=str) == '{"v":"odd"}'
