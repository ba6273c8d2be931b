"""`/-/act/<token>`: the page a one-tap link opens (bridge/alerting/actions.py makes the token).

GET (and HEAD) only shows what the link will do ("Silence DiskFull on db-1 for 1h?") and a
button; POST does it. GET must never act: DingTalk's link previews, mail and chat security
scanners and browsers' prefetching fetch links nobody tapped, and an acting GET would both do
the action without anyone deciding it and burn the single-use token before the person taps.
The confirmation costs one tap and makes the link safe to show anywhere.

The page is plain HTML that works in DingTalk's in-app browser on a phone: no script, no
external resources, everything shown escaped, never cached (`no-store`: the page of an acted
link must not come back from a cache), never framed, and no Referer leaves it (the token is in
its URL). The token is checked (size, MAC, expiry) before anything else is done; the form's
body is read within MAX_FORM_BYTES. What the person types as their name is shown in the chat
and the log as who acted, beside the address the request came from.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

from bridge.alerting.actions import TokenRefused, Verified, verify
from bridge.alerting.actionwords import button, question
from bridge.clock import Clock
from bridge.errors import InputError, Reason
from bridge.locales import Locale, translate
from bridge.logs import fmt_fields

log = logging.getLogger("bridge.http")

PREFIX = "/-/act/"
MAX_FORM_BYTES = 2048  # the form holds one short name
MAX_WHO_CHARS = 64  # a name typed on the page (the follow-up message and the log show it)
SOMEONE = "someone via link"  # who acted, when the page's name was left empty
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

# A refused token's HTTP status: the link is malformed, forged or altered, or too old.
_REFUSED_STATUS = {"bad_token": 400, "unknown_action": 400, "bad_signature": 403, "expired": 410}


class ActionDesk(Protocol):
    """What the page needs from the running bridge."""

    def action_settings(self) -> tuple[bytes, Locale] | None:
        """The links' signing key and the page's language; None when one-tap links are off
        (no `actions.base_url`). Raises InputError 503 when the key cannot be had now."""
        ...

    def link_used(self, verified: Verified) -> bool:
        """Was this link used already? (A read, for the page: only POST claims it.)"""
        ...

    def act_on_link(self, verified: Verified, who: str, source: str) -> tuple[bool, str]:
        """Do what the link grants, remembering its use in the same commit: (done, what to
        say). InputError 409 when the link was used before."""
        ...


@dataclass(frozen=True)
class Page:
    status: int
    html: bytes
    headers: tuple[tuple[str, str], ...] = ()


HEADERS = (
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    ),
)


def serve(
    path: str, method: str, environ: Mapping[str, Any], desk: ActionDesk, clock: Clock
) -> Page:
    """The page for a request to PREFIX + token; every refusal is a page too (a person on a
    phone reads it), with its 4xx (or 503) status."""
    locale: Locale = "en"
    try:
        if method not in ("GET", "HEAD", "POST"):
            raise InputError(405, Reason.METHOD_NOT_ALLOWED, "this link takes GET and POST")
        settings = desk.action_settings()
        if settings is None:
            raise InputError(404, Reason.NOT_FOUND, "one-tap action links are not enabled here")
        key, locale = settings
        return _serve(path, method, environ, desk, key, locale, clock)
    except InputError as exc:
        log.info(fmt_fields("action link refused", status=exc.status, reason=exc.reason.value))
        heading = translate(locale, "This link cannot be used")
        allow = (("Allow", "GET, HEAD, POST"),) if exc.status == 405 else ()
        retry = (("Retry-After", "10"),) if exc.status == 503 else ()
        return _page(exc.status, locale, heading, translate(locale, str(exc)), "", allow + retry)


def _serve(
    path: str,
    method: str,
    environ: Mapping[str, Any],
    desk: ActionDesk,
    key: bytes,
    locale: Locale,
    clock: Clock,
) -> Page:
    try:
        verified = verify(path[len(PREFIX) :], key, clock.time())
    except TokenRefused as refused:
        log.info(fmt_fields("action link refused", method=method, reason=refused.reason))
        return _page(
            _REFUSED_STATUS.get(refused.reason, 400),
            locale,
            translate(locale, "This link cannot be used"),
            translate(locale, str(refused)),
        )
    if method != "POST":
        if desk.link_used(verified):  # no button that can only fail
            raise InputError(409, Reason.REPLAY, "this link was used before")
        return _confirmation(verified, locale)
    who = _who(environ) or translate(locale, SOMEONE)
    done, text = desk.act_on_link(verified, who, _source(environ))
    heading = translate(locale, "Done") if done else translate(locale, "Nothing was done")
    return _page(200 if done else 409, locale, heading, text)


def _confirmation(verified: Verified, locale: Locale) -> Page:
    grant = verified.grant
    form = (
        '<form method="post">'
        f"<label>{_e(translate(locale, 'Your name (optional)'))}<br>"
        f'<input name="who" maxlength="{MAX_WHO_CHARS}" autocomplete="name"></label>'
        f'<p><button type="submit">{_e(button(locale, grant.action, grant.duration))}</button>'
        "</p></form>"
    )
    about = translate(
        locale, "Rule %(rule)s, alert %(id)s", rule=grant.rule, id=grant.fingerprint[:8]
    )
    return _page(200, locale, question(locale, grant), about, form)


def _who(environ: Mapping[str, Any]) -> str:
    """The name typed in the form, on one short line ("" when none was)."""
    length_text = str(environ.get("CONTENT_LENGTH") or "0")
    if not length_text.isascii() or not length_text.isdigit() or len(length_text) > 18:
        raise InputError(400, Reason.BAD_REQUEST, "bad Content-Length")
    length = int(length_text)
    if length > MAX_FORM_BYTES:
        raise InputError(413, Reason.TOO_LARGE, f"the form is larger than {MAX_FORM_BYTES} bytes")
    raw = environ["wsgi.input"].read(length) if length else b""
    fields = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=8)
    typed = (fields.get("who") or [""])[0]
    name = " ".join(_CONTROL.sub(" ", typed).split())[:MAX_WHO_CHARS]
    return name


def _source(environ: Mapping[str, Any]) -> str:
    """Where the request came from, for the log: the peer, and what a proxy says it forwarded
    (as the proxy says it: not checked, so only logged)."""
    peer = str(environ.get("REMOTE_ADDR", ""))
    forwarded = str(environ.get("HTTP_X_FORWARDED_FOR", ""))[:200]
    return f"{forwarded} via {peer}" if forwarded else peer


def _page(
    status: int,
    locale: Locale,
    heading: str,
    text: str,
    form: str = "",
    headers: tuple[tuple[str, str], ...] = (),
) -> Page:
    lang = "zh-CN" if locale == "zh-CN" else "en"
    body = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_e(heading)}</title><style>"
        "body{font:18px/1.5 system-ui,sans-serif;margin:1.5em auto;max-width:32em;padding:0 1em}"
        "input,button{font-size:1em;padding:.5em;width:100%;box-sizing:border-box}"
        "button{margin-top:.5em}</style></head><body>"
        f"<h1>{_e(heading)}</h1><p>{_e(text)}</p>{form}</body></html>"
    )
    return Page(status, body.encode(), headers)


def _e(text: str) -> str:
    return html.escape(text, quote=True)
