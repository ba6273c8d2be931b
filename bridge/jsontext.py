"""JSON for the hot paths (the outbox's events and messages, HTTP answers, DingTalk calls):
orjson where it gives the same result, the standard library where it would not.

orjson writes and reads JSON 4-10 times faster than `json` (an event with its Alertmanager
payload: 1.3 against 17 µs to write), which under load was a tenth of a request's CPU. Where it
differs, the standard library is used:
- writing: orjson refuses integers beyond 64 bits and strings with lone surrogates (a
  payload may hold a 1,000-digit integer, see inputs/jsonbody.py); those values are written by
  `json`, as before;
- reading: orjson reads an integer beyond 64 bits as a float, losing digits, so text with a
  run of 19 or more digits (maybe such an integer, maybe only a string) is read by `json`, and
  so is text orjson refuses.
Writing NaN or infinity is out of scope: the inputs refuse them (orjson would write null).
Parsing requests from outside stays with inputs/jsonbody.py, which bounds depth and size.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

# 2**63 has 19 digits: a shorter integer fits in 64 bits. A run of them is found by mapping
# every ASCII digit to "0" and looking for 19 zeros: 3 µs for an event's 1.5 KB, where the
# regular expression \d{19} took 22-32 µs, three times orjson's whole parse. (UTF-8 bytes
# of other characters are never ASCII digits.)
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19


def _has_long_number(text: str | bytes) -> bool:
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return _LONG_RUN in raw.translate(_DIGITS_AS_ZERO)


def dumps(value: Any, default: Callable[[Any], Any] | None = None, sort_keys: bool = False) -> str:
    """Compact JSON text (UTF-8 characters as they are, no ASCII escapes)."""
    try:
        option = orjson.OPT_SORT_KEYS if sort_keys else 0
        return orjson.dumps(value, default=default, option=option).decode("utf-8")
    except TypeError:
        return json.dumps(
            value,
            ensure_ascii=False,
            separators=(",", ":"),
            default=default,
            sort_keys=sort_keys,
        )


def dumps_bytes(value: Any) -> bytes:
    """`dumps`, encoded as UTF-8."""
    try:
        return orjson.dumps(value)
    except TypeError:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "surrogatepass")


def loads(text: str | bytes, slow: Callable[[str], Any] = json.loads) -> Any:
    """The value of JSON text we wrote (or DingTalk did), exactly: orjson's, unless it could
    differ or orjson refuses the text (NaN, 1e400, a lone surrogate, or not JSON at all); then
    `slow`'s, which decides (inputs/jsonbody.py passes its bounded decoder)."""
    if not _has_long_number(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return slow(text if isinstance(text, str) else text.decode("utf-8", "surrogatepass"))
