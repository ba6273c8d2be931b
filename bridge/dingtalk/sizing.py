"""Fit a message into DingTalk's byte limit, counting the UTF-8 bytes of the final JSON body.

Counting characters is wrong twice over: a CJK character is 3 bytes, and JSON escaping turns a
newline into 2 bytes and a control character into 6. We measure the real encoding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge import jsontext

TRUNCATED_MARKER = "\n\n…(truncated: the alert exceeded DingTalk's size limit)"


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes sent: compact separators, UTF-8 (not \\u escapes, which triple CJK)."""
    return jsontext.dumps_bytes(body)


def fit_text(
    build: Callable[[str], dict[str, Any]], text: str, limit: int, marker: str = TRUNCATED_MARKER
) -> tuple[dict[str, Any], bool]:
    """The body `build(text)` if it fits in `limit` bytes, else `build(prefix + marker)` with the
    longest prefix of `text` that fits (cut at a character, so never inside a UTF-8 sequence).
    Returns (body, truncated)."""
    body = build(text)
    if len(encode(body)) <= limit:
        return body, False
    lo, hi = 0, len(text)  # invariant: text[:lo] + marker fits (checked below for lo = 0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(encode(build(text[:mid] + marker))) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return build(text[:lo] + marker), True
