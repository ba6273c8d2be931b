"""The console's requests and answers: a request as the pages see it (who asks, in which
language, its form or JSON body read within bounds), an answer, and the headers every answer
carries. No routing and no pages here (app.py, the page modules)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from bridge.app.console.auth import Session
from bridge.locales import Locale

MAX_FORM_BYTES = 64 * 1024  # a silence's matchers and comment, a login
MAX_JSON_BYTES = 1024 * 1024  # the playground's payload and template
MAX_JSON_DEPTH = 64

# Pages and their data are never cached (they show live state and carry a CSRF token), never
# framed, and load nothing from elsewhere: every asset is bundled (works offline).
SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'",
    ),
)


class Refused(Exception):
    """A request the console answers with a 4xx: `status`, and words for the person."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


@dataclass
class Request:
    environ: Mapping[str, Any]
    method: str
    path: str  # below the console's root: "/", "/messages/abc", ...
    base: str  # the console's root path, for links
    locale: Locale
    session: Session | None = None
    bearer: bool = False  # authenticated by an Authorization header (no cookie, no CSRF)
    may_act: bool = False  # operator, and the console is not read-only
    csrf: str = ""
    params: dict[str, str] = field(default_factory=dict)  # what the route's pattern captured
    _form: dict[str, list[str]] | None = None

    @property
    def who(self) -> str:
        """Who acts, for silences, acks and the log: the name given at login."""
        name = self.session.name if self.session is not None else ""
        return f"{name} (console)" if name else "console"

    def query(self, name: str, default: str = "") -> str:
        values = parse_qs(str(self.environ.get("QUERY_STRING", ""))[:4096]).get(name)
        return values[0] if values else default

    def _body(self, limit: int) -> bytes:
        text = str(self.environ.get("CONTENT_LENGTH") or "0")
        if not text.isascii() or not text.isdigit() or len(text) > 18:
            raise Refused(400, "bad Content-Length")
        length = int(text)
        if length > limit:
            raise Refused(413, f"the request body is larger than {limit} bytes")
        return self.environ["wsgi.input"].read(length) if length else b""

    def form(self) -> dict[str, list[str]]:
        if self._form is None:
            raw = self._body(MAX_FORM_BYTES)
            try:
                self._form = parse_qs(raw.decode("utf-8"), max_num_fields=200)
            except (UnicodeDecodeError, ValueError) as exc:
                raise Refused(400, f"the form cannot be read: {exc}") from exc
        return self._form

    def field(self, name: str, default: str = "") -> str:
        values = self.form().get(name)
        return values[0] if values else default

    def fields(self, name: str) -> list[str]:
        return self.form().get(name, [])

    def json(self) -> dict[str, Any]:
        raw = self._body(MAX_JSON_BYTES)
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise Refused(400, f"the body is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise Refused(400, "the body must be a JSON object")
        if _depth(value) > MAX_JSON_DEPTH:
            raise Refused(400, f"the body is nested deeper than {MAX_JSON_DEPTH}")
        return value


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def json_answer(status: int, value: Any) -> Answer:
    body = json.dumps(value, ensure_ascii=False, default=str).encode()
    return Answer(status, body, "application/json; charset=utf-8")


def redirect(location: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    return Answer(303, b"", "text/plain; charset=utf-8", (("Location", location), *headers))
