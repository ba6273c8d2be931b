"""One-tap actions: the signed, expiring tokens carried by the Ack and Silence links. Pure.

A link on an alert's message (`<base_url>/-/act/<token>`) lets whoever taps it do exactly one
thing to exactly one alert without a login, so the token is the permission and must say all of
it: the action, the alert (its fingerprint as `ack <id>` takes it, its rule, its labels, which a
silence matches on), the silence's length, the target whose message carried it, when it expires
and a nonce. It is

    base64url(JSON payload) "." base64url(HMAC-SHA256(key, "dtb-act-v1." + payload part))

HMAC-SHA256 with a key only the bridge holds: nobody else can make a token or change one (a
changed character anywhere changes the payload part, whose MAC is then wrong, or the MAC part;
the MAC is compared as text, so even the spare bits of the last base64 character count). The
MAC is checked before the payload is decoded: a forged token costs one HMAC over at most
MAX_TOKEN_CHARS and nothing else. Single use is not decided here but by the state store
(`grant.once_key`, remembered in the replays table until the token expires).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# What a token can do. The Runbook button is a plain link to the alert's runbook_url: no token.
ACK = "ack"
SILENCE = "silence"
ACTIONS = (ACK, SILENCE)
RUNBOOK = "runbook"
BUTTONS = (ACK, SILENCE, RUNBOOK)  # what a rule's `actions` may list

VERSION = 1
_CONTEXT = b"dtb-act-v1."  # binds the MAC to this use of the key (and to the version)
MAX_TOKEN_CHARS = 4096  # longer is refused unread; a token is made only if it fits
_MAC_CHARS = 43  # 32 bytes in unpadded base64url
_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,4000}\.[A-Za-z0-9_-]{43}")
MAX_LABELS = 64  # a silence's matchers; Alertmanager's alerts carry a handful


class TokenRefused(Exception):
    """Why a token does nothing; `reason` is one word (bad_token, bad_signature, expired,
    unknown_action), the message is safe to show whoever holds the link."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Grant:
    """What one token allows: `action` on the alert `fingerprint` of `rule` (labels as its
    message showed them), a silence for `duration` seconds, until `expires` (Unix seconds)."""

    action: str
    fingerprint: str
    rule: str
    target: str
    labels: Mapping[str, str] = field(default_factory=dict)
    duration: float = 0.0  # a silence's length; 0 for ack
    expires: float = 0.0
    nonce: str = ""


@dataclass(frozen=True)
class Verified:
    grant: Grant
    once_key: str  # remembered by the store: the same token is refused afterwards


def sign(grant: Grant, key: bytes) -> str:
    """The token for `grant`; ValueError when it would be longer than MAX_TOKEN_CHARS (labels
    that long make no link)."""
    if grant.action not in ACTIONS:
        raise ValueError(f"no such action: {grant.action}")
    payload = [
        VERSION,
        grant.action,
        grant.fingerprint,
        grant.rule,
        grant.target,
        dict(grant.labels),
        grant.duration,
        int(grant.expires),
        grant.nonce,
    ]
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    body = _b64(text.encode("utf-8", "surrogatepass"))
    token = f"{body}.{_mac(key, body)}"
    if len(token) > MAX_TOKEN_CHARS or len(body) > 4000:
        raise ValueError(f"the token would be {len(token)} characters")
    return token


def verify(token: str, key: bytes, now: float) -> Verified:
    """The grant of an authentic, unexpired token; TokenRefused for anything else (any string
    at all: never another exception)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not _SHAPE.fullmatch(token):
        raise TokenRefused("bad_token", "this is not an action link (it may have been cut)")
    body, mac = token.split(".")
    if not hmac.compare_digest(_mac(key, body).encode(), mac.encode()):
        raise TokenRefused(
            "bad_signature", "this link was altered, or made with another bridge's key"
        )
    grant = _decode(body)  # authentic from here on: only a bug of ours makes it malformed
    if grant.action not in ACTIONS:
        raise TokenRefused("unknown_action", f'this bridge cannot "{grant.action[:40]}"')
    if now >= grant.expires:
        raise TokenRefused("expired", "this link has expired")
    return Verified(grant, mac)


def _decode(body: str) -> Grant:
    bad = TokenRefused("bad_token", "this action link cannot be read")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        payload = json.loads(raw.decode("utf-8", "surrogatepass"))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise bad from None
    if not isinstance(payload, list) or len(payload) != 9 or payload[0] != VERSION:
        raise bad
    _, action, fingerprint, rule, target, labels, duration, expires, nonce = payload
    texts = (action, fingerprint, rule, target, nonce)
    if not all(isinstance(t, str) for t in texts) or not isinstance(labels, dict):
        raise bad
    if len(labels) > MAX_LABELS or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise bad
    try:
        numbers = [_number(duration), _number(expires)]
    except (TypeError, OverflowError):
        raise bad from None
    if not all(math.isfinite(n) and n >= 0 for n in numbers):
        raise bad
    return Grant(action, fingerprint, rule, target, labels, numbers[0], numbers[1], nonce)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    return float(value)


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, _CONTEXT + body.encode("ascii"), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
