"""The values a chat view shows, made safe: text escaped, URLs checked, sizes bounded.

Every string a body carries reaches the page through `Fields.text` (or `escape`), and every URL
through `link_url` / `image_url`; the other modules never build markup from raw input. Lone
surrogates (JSON can carry "\\ud800") become U+FFFD, so the page always encodes as UTF-8.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

MAX_TEXT_BYTES = 64 * 1024  # one field shown at most this long (UTF-8); the rest is cut
MAX_PROBLEMS = 50  # problem lines kept per view: a text can name thousands of unknown @-words
LINK_SCHEMES = ("http", "https", "dingtalk")  # what DingTalk opens from a message
IMAGE_SCHEMES = ("http", "https")  # images must be public http(s) URLs (reference §7)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\s]")


def escape(value: str) -> str:
    return html.escape(value, quote=True)


def clean(value: str) -> str:
    """`value` with U+FFFD for each lone surrogate, so it encodes as UTF-8 (as
    bridge/inputs/jsonbody.py cleans bodies; repeated here: chatview imports none of the
    runtime)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _scheme_in(url: str, schemes: tuple[str, ...]) -> bool:
    # Browsers drop control characters and whitespace inside a scheme ("java\tscript:"), so the
    # check looks at the URL the way a browser would read it.
    match = _SCHEME.match(_CONTROL.sub("", url))
    return match is not None and match.group(1).lower() in schemes


def link_url(url: str) -> str | None:
    """`url` if DingTalk would open it from a message (http, https, dingtalk:), else None."""
    return url if _scheme_in(url.strip(), LINK_SCHEMES) else None


def image_url(url: str) -> str | None:
    """`url` if it is an image DingTalk can show (public http(s)), else None."""
    return url if _scheme_in(url.strip(), IMAGE_SCHEMES) else None


def json_text(value: Any) -> str:
    """`value` as indented JSON for display; never raises (deep or odd values fall back)."""
    try:
        return json.dumps(value, ensure_ascii=False, indent=2, default=repr)
    except (ValueError, TypeError, RecursionError):
        return "(a value that cannot be shown as JSON)"


class Fields:
    """Reads the strings of one body, collecting what DingTalk would not show as written.

    `problems` is shared by every reader of one view, in the order the problems were found.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        self.unlisted = 0  # problems past MAX_PROBLEMS, counted, not kept

    def problem(self, line: str) -> None:
        if line in self.problems:
            return
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(line)
        else:
            self.unlisted += 1

    def listed(self) -> tuple[str, ...]:
        """The problem lines, with how many more there were past MAX_PROBLEMS."""
        more = (f"… and {self.unlisted} more problem(s) like these",) if self.unlisted else ()
        return (*self.problems, *more)

    def text(self, obj: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
        """The string at `obj[key]`, cut to MAX_TEXT_BYTES; "" (and a problem line) when it is
        missing or not a string. `where` names the field in problem lines, e.g. "markdown.text".
        """
        value = obj.get(key)
        if value is None:
            if required:
                self.problem(f"{where} is missing: DingTalk refuses the message")
            return ""
        if not isinstance(value, str):
            self.problem(f"{where} is not a string ({type(value).__name__}): shown as JSON")
            value = json_text(value)
        return self.bounded(value, where)

    def bounded(self, value: str, where: str) -> str:
        """`value` cut to MAX_TEXT_BYTES of UTF-8 (a problem line says so)."""
        value = clean(value)
        if len(value) * 4 <= MAX_TEXT_BYTES:  # a character is at most 4 bytes: surely short
            return value
        raw = value.encode("utf-8")
        if len(raw) <= MAX_TEXT_BYTES:
            return value
        self.problem(
            f"{where} is {len(raw)} bytes: shown cut at {MAX_TEXT_BYTES} "
            "(DingTalk refuses a body over 20000 bytes)"
        )
        return raw[:MAX_TEXT_BYTES].decode("utf-8", "ignore")

    def mapping(self, obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
        """The object at `obj[key]`; {} (and a problem line) when it is missing or not one."""
        value = obj.get(key)
        if isinstance(value, Mapping):
            return value
        self.problem(f"{where} is missing or not an object: DingTalk refuses the message")
        return {}

    def link(self, url: str, where: str) -> str | None:
        """`url` if it opens from DingTalk, else None and a problem line (empty: None, quiet)."""
        if not url:
            return None
        checked = link_url(url)
        if checked is None:
            self.problem(f"{where} {url[:200]!r} is not an http(s) or dingtalk: URL: not a link")
        return checked

    def image(self, url: str, where: str, *, media_ids: bool = False) -> str | None:
        """`url` if DingTalk shows it as an image, else None and a problem line. With
        `media_ids`, an uploaded file's id ("@lADO…", work notices and app robots) is fine: it
        is DingTalk's to fetch, so no image here and no problem either."""
        if not url or (media_ids and url.startswith("@")):
            return None
        checked = image_url(url)
        if checked is None:
            self.problem(
                f"{where} {url[:200]!r} is not a public http(s) image URL: DingTalk shows no image"
            )
        return checked
