"""Robot signing (加签) against the documented algorithm and its known pitfalls."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote

import pytest

from bridge.dingtalk.signing import robot_sign, sign_matches, signed_query

# reference/dingtalk.md §1.3 worked examples and §5.2 (the enterprise robot's sign).
VECTORS = [
    (1577262236757, "this is secret", "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="),
    (1577262236757, "this is a secret", "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA="),
]


@pytest.mark.parametrize(("timestamp", "secret", "expected"), VECTORS)
def test_sign_matches_documented_vectors(timestamp: int, secret: str, expected: str) -> None:
    assert robot_sign(timestamp, secret) == expected
    assert robot_sign(str(timestamp), secret) == expected


def test_query_encodes_the_sign_exactly_once() -> None:
    query = signed_query(1577262236757, "this is secret")
    assert query == (
        "timestamp=1577262236757&sign=hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D"
    )
    # One round of query-string decoding (what DingTalk does) gives back the raw base64.
    assert parse_qs(query)["sign"] == ["hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="]
    assert "%25" not in query  # the double-encoding bug turns % into %25


def test_sign_check_is_exact() -> None:
    good = robot_sign(1577262236757, "this is secret")
    assert sign_matches(1577262236757, "this is secret", good)
    assert not sign_matches(1577262236758, "this is secret", good)
    assert not sign_matches(
        1577262236757, "this is secret", unquote(good.replace("+", "%2B")) + "x"
    )
