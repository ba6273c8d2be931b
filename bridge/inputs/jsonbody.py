"""The one JSON parser for bytes from outside: every HTTP body and every decrypted callback.

Python's `json.loads` takes input that later breaks the bridge, so this wraps it with limits:

- **UTF-8 only, strictly.** `json.loads(bytes)` decodes with `surrogatepass`, which turns the
  raw bytes `ED A0 80` into a lone surrogate that no later step can encode (a 500 when the event
  is stored). Bytes that are not UTF-8 are refused: a sender in another encoding (GBK, say)
  would otherwise have every Chinese character silently garbled. A UTF-8 BOM is skipped.
- **Lone surrogate escapes (`"\\ud800"`) become U+FFFD.** They are valid JSON grammar, only
  not valid Unicode; Go's encoding/json (Alertmanager, Prometheus, Grafana) decodes them the
  same way, and the likely sender is a JavaScript client that cut a string in the middle of an
  emoji. Refusing would lose that alert for one unprintable character; DingTalk could not
  show the character anyway.
- **At most `MAX_DEPTH` (64) levels of nesting.** Deeper JSON parses, then fails with a
  RecursionError when the event is encoded for the store or walked by a template. The real
  sources nest far less (an Alertmanager notification 4 levels; the fixtures of Grafana, GitLab,
  Jenkins, Zabbix, SkyWalking, Uptime Kuma, Elasticsearch Watcher at most 5); 64 is serde_json's
  default (128) halved, with room to spare under Python's recursion limit of 1000 for the
  store's encoder and Jinja, which both recurse per level.
- **Integers of at most `MAX_DIGITS` (1000) digits.** CPython refuses to convert more than 4300
  digits (ValueError, a 500 before), and the conversion is quadratic below that. No identifier
  or measurement has a thousand digits (a 128-bit id has 39), so a longer one is refused.
- **No NaN or Infinity**, which Python accepts and JSON (RFC 8259) does not.

Each refusal is an InputError 400 whose message says what is wrong and where.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from bridge import jsontext
from bridge.errors import bad_request

MAX_DEPTH = 64
MAX_DIGITS = 1000

# Brackets inside strings do not nest: strings go first, in two linear steps done in C: escape
# pairs removed, then what lies between quotes (every other piece of a split on '"'). (A single
# pattern for a string with its escapes would go quadratic on an unterminated string full of
# escaped quotes, tried again from each of them.)
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_TO_BITS = bytes.maketrans(b"[{]}", b"\x01\x01\x00\x00")
_STEP = (-1, 1)  # a closing, an opening
_PEELS = 2
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
# A \u escape of a surrogate (paired or not): without one in the text, no string can hold a
# lone surrogate, and the walk that finds and replaces them is skipped (nearly every body).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class _TooManyDigits(Exception):
    def __init__(self, digits: int) -> None:
        self.digits = digits


def _int(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > MAX_DIGITS:
        raise _TooManyDigits(digits)
    return int(text)


def _constant(name: str) -> Any:
    raise bad_request(f"{name} is not a JSON value")


_DECODER = json.JSONDecoder(parse_int=_int, parse_constant=_constant)  # built once: ~5 us each


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Do arrays and objects nest more than `limit` levels in `text`? (Brackets in strings
    aside; for text that is not JSON a wrong answer does no harm: the parser refuses it.)"""
    if text.count("[") + text.count("{") <= limit:
        return False  # cannot nest deeper than the number of openings: the common case
    outside = "".join(_ESCAPE.sub("", text).split('"')[::2])
    # Openings as 1, closings as 0, all else gone (one pass in C).
    brackets = outside.encode("utf-8", "surrogatepass").translate(_TO_BITS, _NOT_BRACKETS)
    if b"\x01" * (limit + 1) in brackets:
        return True  # a run of openings: the usual hostile shape, found at C speed
    # Each pass drops every innermost pair, which lowers the depth by exactly one and shrinks
    # what is left to count in Python (by 3x for an Alertmanager notification, to nothing for
    # a megabyte of "[],").
    for _ in range(_PEELS):
        brackets = brackets.replace(b"\x01\x00", b"")
        if not brackets:
            return False
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) + _PEELS > limit


def utf8_text(raw: bytes, what: str = "the body") -> str:
    """`raw` as text: strictly UTF-8 (400 naming the first bad byte), a BOM skipped."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(
            f"{what} is not UTF-8 text (byte {exc.start}: {raw[exc.start : exc.start + 4]!r})"
        ) from None
    return text.removeprefix("\ufeff")


def loads(raw: bytes | str, what: str = "the body") -> Any:
    """The value of `raw`, within the limits above (raises InputError 400)."""
    text = utf8_text(raw, what) if isinstance(raw, bytes) else raw.removeprefix("\ufeff")
    if too_deep(text):
        raise bad_request(f"{what} is JSON nested deeper than {MAX_DEPTH} levels")
    try:
        # orjson where it reads the same value (4-10x faster: a notification's parse was
        # ~3% of a request under load), the standard decoder with the hooks above otherwise.
        value = jsontext.loads(text, _DECODER.decode)
    except _TooManyDigits as exc:
        raise bad_request(
            f"{what} has a number of {exc.digits} digits; at most {MAX_DIGITS} are accepted"
        ) from None
    except json.JSONDecodeError as exc:
        raise bad_request(f"{what} is not valid JSON: {exc}") from None
    except (RecursionError, ValueError) as exc:  # the limits above should make these unreachable
        raise bad_request(f"{what} cannot be read as JSON ({type(exc).__name__})") from None
    if _SURROGATE_ESCAPE.search(text):
        value = _replace_lone_surrogates(value)
    return value


def _clean(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _replace_lone_surrogates(value: Any) -> Any:
    """`value` with U+FFFD for every lone surrogate in its strings and keys (at most MAX_DEPTH
    deep, so recursion is safe)."""
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, list):
        return [_replace_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_clean(k): _replace_lone_surrogates(v) for k, v in value.items()}
    return value
