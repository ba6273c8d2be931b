"""Who may use the console, pure: the login cookie, the CSRF token, the same-origin check.

The token is the console's whole protection (there are no user accounts), so:
- a login turns it into a cookie signed with a key derived from that token: changing the token
  in the config ends every session made with the old one, and the token itself never sits in a
  browser's cookie jar;
- the cookie is HttpOnly and SameSite=Strict, scoped to the console's path;
- every state-changing request made with the cookie must also carry the CSRF token (derived from
  the cookie, so it needs no server-side session) and, when the browser says where it comes from
  (Origin, Sec-Fetch-Site), come from the console's own origin. A request with
  `Authorization: Bearer <token>` is not exposed to CSRF (browsers never add that header
  themselves) and needs neither.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["operator", "viewer"]
COOKIE = "dtb_console"
MAX_NAME_CHARS = 64
_PURPOSE = b"dingtalk-bridge console session v1"


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its role, the name it gave (who did what), when it ends."""

    role: Role
    name: str
    expires: int
    cookie: str  # the cookie's value, from which the CSRF token derives


def _key(token: str) -> bytes:
    return hmac.new(token.encode(), _PURPOSE, hashlib.sha256).digest()


def _mac(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def role_of(given: str, token: str, viewer_token: str | None) -> Role | None:
    """The role a typed or bearer token grants (compared in constant time), or None."""
    given_b = given.encode()
    if token and hmac.compare_digest(given_b, token.encode()):
        return "operator"
    if viewer_token and hmac.compare_digest(given_b, viewer_token.encode()):
        return "viewer"
    return None


def _token_for(role: Role, token: str, viewer_token: str | None) -> str | None:
    return token if role == "operator" else viewer_token


def mint(
    role: Role, name: str, token: str, viewer_token: str | None, now: float, ttl: float
) -> str:
    """A cookie value: role, name, expiry and a nonce, signed with the role's token's key."""
    secret = _token_for(role, token, viewer_token)
    assert secret, "a session is minted only for a token that exists"
    body = f"{role}.{_b64(name[:MAX_NAME_CHARS])}.{int(now + ttl)}.{secrets.token_urlsafe(9)}"
    return f"{body}.{_mac(_key(secret), body)}"


def verify(value: str, token: str, viewer_token: str | None, now: float) -> Session | None:
    """The session a cookie value holds, or None: malformed, forged, made with another token
    (changed since), or expired."""
    if len(value) > 512:
        return None
    bits = value.split(".")
    if len(bits) != 5 or bits[0] not in ("operator", "viewer"):
        return None
    role: Role = "operator" if bits[0] == "operator" else "viewer"
    secret = _token_for(role, token, viewer_token)
    if not secret:
        return None
    body = ".".join(bits[:4])
    if not hmac.compare_digest(bits[4], _mac(_key(secret), body)):
        return None
    try:
        expires = int(bits[2])
        name = _unb64(bits[1])
    except (ValueError, UnicodeDecodeError):
        return None
    if expires <= now:
        return None
    return Session(role, name, expires, value)


def csrf_token(session: Session, token: str, viewer_token: str | None) -> str:
    """The token a page's forms carry: bound to the session's cookie, unknown to other sites."""
    secret = _token_for(session.role, token, viewer_token) or ""
    return _mac(_key(secret), "csrf." + session.cookie)[:32]


def csrf_ok(given: str, session: Session, token: str, viewer_token: str | None) -> bool:
    return bool(given) and hmac.compare_digest(
        given.encode(), csrf_token(session, token, viewer_token).encode()
    )


def same_origin(environ: Mapping[str, Any]) -> bool:
    """Does the browser say the request comes from the console's own origin? Origin, when
    sent, must be this host (with the scheme the request came in on); Sec-Fetch-Site, when sent,
    must be same-origin. A client that sends neither (curl, an old browser) is judged by the
    CSRF token alone."""
    site = str(environ.get("HTTP_SEC_FETCH_SITE", ""))
    if site and site not in ("same-origin", "none"):
        return False
    origin = str(environ.get("HTTP_ORIGIN", ""))
    if not origin:
        return True
    scheme = str(environ.get("wsgi.url_scheme", "http"))
    host = str(environ.get("HTTP_HOST", ""))
    return bool(host) and origin == f"{scheme}://{host}"


def cookie_header(value: str, path: str, max_age: int, secure: bool) -> str:
    flags = f"; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    return f"{COOKIE}={value}{flags}{'; Secure' if secure else ''}"


def read_cookie(environ: Mapping[str, Any], name: str = COOKIE) -> str:
    """One cookie's value from the Cookie header ("" when absent)."""
    for part in str(environ.get("HTTP_COOKIE", ""))[:8192].split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""
