"""The `dingtalk_callback` input: DingTalk's event callbacks, checked, opened and answered.

Every check happens before anything reaches the rules, and each failure is a 4xx with a reason:
a missing or malformed query or body (400), a timestamp outside `max_age` (400, stale), a bad
signature (401, compared in constant time before decrypting), ciphertext that does not open
with our key (400), another owner key (403), and a (nonce, timestamp) pair already seen within
the window (409, replay). The answer to every accepted callback, `check_url` included, is the
encrypted `success` DingTalk waits for (within its 1,500 ms budget: nothing slow happens first).
"""

from __future__ import annotations

import json
import secrets
import string
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from bridge.config.model import CallbackInput
from bridge.dingtalk import callback_crypto as crypto
from bridge.errors import InputError, Reason
from bridge.model import Event, label_fingerprint

CHECK_URL = "check_url"
REPLAY_MEMORY = 100_000  # (nonce, timestamp) pairs remembered; the oldest go first
_NONCE_CHARS = string.ascii_letters + string.digits


class ReplayGuard:
    """Remembers recent (input, nonce, timestamp) triples for the length of the window."""

    def __init__(self, capacity: int = REPLAY_MEMORY) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, key: tuple[str, str, str], now: float) -> bool:
        with self._lock:
            expires = self._seen.get(key)
            return expires is not None and expires >= now

    def remember(self, key: tuple[str, str, str], expires: float, now: float) -> None:
        """Called once the callback was taken: a refused one (503) may be sent again."""
        with self._lock:
            while self._seen and (
                next(iter(self._seen.values())) < now or len(self._seen) >= self.capacity
            ):
                self._seen.popitem(last=False)
            self._seen[key] = expires


def _query(query_string: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query_string, keep_blank_values=True).items()}


def open_callback(
    spec: CallbackInput, query_string: str, body: Any, now: datetime, guard: ReplayGuard
) -> dict[str, Any]:
    """The decrypted event of an authentic, fresh, first-seen callback (raises InputError)."""
    query = _query(query_string)
    given = query.get("msg_signature") or query.get("signature")
    timestamp = query.get("timeStamp") or query.get("timestamp")
    nonce = query.get("nonce")
    if not given or not timestamp or not nonce:
        raise InputError(400, Reason.BAD_REQUEST, "the query needs signature, timestamp and nonce")
    if not isinstance(body, dict) or not isinstance(body.get("encrypt"), str):
        raise InputError(400, Reason.BAD_REQUEST, 'the body must be {"encrypt": "..."}')
    encrypt = body["encrypt"]
    if not timestamp.isdigit() or len(timestamp) > 16:
        raise InputError(400, Reason.BAD_REQUEST, "timestamp is not a time in milliseconds")
    sent_ms = int(timestamp)
    sent = sent_ms / 1000 if sent_ms > 10**11 else float(sent_ms)  # ms (documented) or s
    if abs(now.timestamp() - sent) > spec.max_age:
        raise InputError(400, Reason.STALE, "timestamp is outside the allowed window")
    if not crypto.signature_matches(given, spec.token, timestamp, nonce, encrypt):
        raise InputError(401, Reason.UNAUTHORIZED, "bad signature")
    try:
        message, owner = crypto.decrypt(crypto.derive_key(spec.aes_key), encrypt)
    except crypto.CallbackCryptoError as exc:
        raise InputError(400, Reason.BAD_REQUEST, f"cannot decrypt: {exc}") from None
    if owner != spec.owner_key:
        raise InputError(403, Reason.FORBIDDEN, "the callback is for another owner key")
    try:
        event = json.loads(message)
    except json.JSONDecodeError:
        raise InputError(400, Reason.BAD_REQUEST, "the decrypted message is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("EventType"), str):
        raise InputError(400, Reason.BAD_REQUEST, "the decrypted message has no EventType")
    # Last, and only checked here: the caller remembers the request once it was taken.
    if guard.seen(replay_key(spec, query_string), now.timestamp()):
        raise InputError(409, Reason.REPLAY, "this callback (nonce and timestamp) was seen before")
    return event


def replay_key(spec: CallbackInput, query_string: str) -> tuple[str, str, str]:
    query = _query(query_string)
    timestamp = query.get("timeStamp") or query.get("timestamp") or ""
    return spec.name, query.get("nonce", ""), timestamp


def _label(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ",".join(str(v) for v in value)
    return None


def callback_event(spec: CallbackInput, data: Mapping[str, Any], now: datetime) -> Event:
    """A bridge event: EventType and the event's plain fields as labels, the rest in payload."""
    labels = {k: v for k, raw in data.items() if (v := _label(raw)) is not None}
    return Event(
        input=spec.name,
        kind="dingtalk_callback",
        status="firing",
        labels=labels,
        annotations={},
        fingerprint=label_fingerprint(labels),
        received_at=now,
        payload=dict(data),
    )


def success_reply(spec: CallbackInput, now: datetime) -> dict[str, str]:
    """The encrypted `success` for this input, signed with a fresh nonce."""
    return crypto.sealed(
        spec.token,
        crypto.derive_key(spec.aes_key),
        spec.owner_key,
        "success",
        str(int(now.timestamp() * 1000)),
        "".join(secrets.choice(_NONCE_CHARS) for _ in range(16)),
        "".join(secrets.choice(_NONCE_CHARS) for _ in range(16)).encode("ascii"),
    )
