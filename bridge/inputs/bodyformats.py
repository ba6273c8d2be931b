"""The two non-JSON bodies a webhook input reads (`format: form`, `format: text`). Pure: bytes in,
values out, or an InputError 400 that says what is wrong and where.

Both are bounded beyond the input's `max_body_bytes`, since each field or line becomes template
work and, for text, an event:

- **form** (`application/x-www-form-urlencoded`, as Alibaba Cloud CloudMonitor posts its alarm
  callbacks): at most `MAX_FORM_FIELDS` fields, names of at most `MAX_FIELD_NAME_BYTES` and values
  of at most `MAX_FIELD_VALUE_BYTES` once decoded. `+` is a space, `%XX` a byte; the bytes of a
  name or value must be UTF-8. Python's `urllib.parse.parse_qsl` would pass a broken escape
  (`%G1`) through as text and read invalid UTF-8 as U+FFFD: a sender with the wrong encoding (GBK,
  say) would have every Chinese character silently garbled, so both are refused here instead.
  A repeated name keeps its **first** value (as Go's `url.Values.Get` and Flask read one): alert
  sources do not repeat fields, and one value per name keeps `body.<field>` a string.
- **text**: UTF-8, read as JSON bodies are (jsonbody.utf8_text), split at `\\n` (a `\\r`
  before it is dropped); lines that are empty or only white space are skipped; at most
  `MAX_LINES` lines remain.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from bridge.errors import bad_request

MAX_FORM_FIELDS = 1000  # Django's DATA_UPLOAD_MAX_NUMBER_FIELDS; CloudMonitor sends about 20
MAX_FIELD_NAME_BYTES = 256
MAX_FIELD_VALUE_BYTES = 64 * 1024  # a field is an alert's attribute, not a document
MAX_LINES = 1000  # each line is an event: as many as `items:` may fan out

# A `%` not followed by two hex digits: what a form encoder never writes.
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _shown(raw: bytes) -> str:
    """A short, escaped excerpt of hostile bytes for an error message."""
    return repr(raw[:40].decode("utf-8", "backslashreplace"))


def _decoded(raw: bytes, what: str) -> str:
    """One percent-encoded name or value as text."""
    bad = _BAD_ESCAPE.search(raw)
    if bad is not None:
        at = bad.start()
        raise bad_request(
            f"{what} has an invalid percent-encoding at {_shown(raw[at : at + 3])}"
            " (a % must be followed by two hex digits)"
        )
    data = unquote_to_bytes(raw.replace(b"+", b" "))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(
            f"{what} is not UTF-8 once decoded (byte {exc.start}:"
            f" {data[exc.start : exc.start + 4]!r}); send the form encoded as UTF-8"
        ) from None


def parse_form(raw: bytes) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body as {name: first value}, in order."""
    fields: dict[str, str] = {}
    pieces = [p for p in raw.split(b"&") if p]
    if len(pieces) > MAX_FORM_FIELDS:
        raise bad_request(
            f"the form has {len(pieces)} fields; at most {MAX_FORM_FIELDS} are accepted"
        )
    for number, piece in enumerate(pieces, 1):
        raw_name, _, raw_value = piece.partition(b"=")
        name = _decoded(raw_name, f"form field {number}'s name")
        if len(name.encode("utf-8")) > MAX_FIELD_NAME_BYTES:
            raise bad_request(
                f"form field {number}'s name is longer than {MAX_FIELD_NAME_BYTES} bytes"
            )
        value = _decoded(raw_value, f"form field {number} ({name[:40]!r})")
        if len(value.encode("utf-8")) > MAX_FIELD_VALUE_BYTES:
            raise bad_request(
                f"form field {number} ({name[:40]!r}) is longer than {MAX_FIELD_VALUE_BYTES} bytes"
            )
        fields.setdefault(name, value)
    return fields


def text_lines(text: str) -> list[str]:
    """The lines of a text body that hold something, without their line endings."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    kept = [line for line in lines if line.strip()]
    if len(kept) > MAX_LINES:
        raise bad_request(
            f"the body has {len(kept)} non-empty lines; at most {MAX_LINES} are accepted"
            " per request (one event each)"
        )
    return kept
