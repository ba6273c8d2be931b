"""The `dingtalk_callback` input: DingTalk's event callbacks, checked, opened and answered.

Every check happens before anything reaches the rules, and each failure is a 4xx with a reason,
cheapest first: a missing or malformed query (400), a timestamp outside the window (400, stale;
`max_age` back, a minute ahead: bridge/inputs/signed.py), a body that is not
`{"encrypt": "..."}` (400), a bad signature (401, compared in constant time before anything is
decoded or decrypted), ciphertext that does not open with our key or a message that is not a
JSON event (400), another owner key (403). Whether the request was seen before is decided by
the caller in the commit that takes it (`SignedOnce`): the very same request again (DingTalk
sending it once more after our answer was lost) is answered `success` again without being
processed twice; its nonce and timestamp with another ciphertext is a replay (409). The answer to
every accepted callback, `check_url` included, is the encrypted `success` DingTalk waits for
(within its 1,500 ms budget: nothing slow happens first).
"""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from bridge.config.model import CallbackInput
from bridge.dingtalk import callback_crypto as crypto
from bridge.errors import InputError, Reason
from bridge.inputs import jsonbody, signed
from bridge.inputs.kind import InputRuntime, json_of
from bridge.inputs.request import Request, Sink
from bridge.inputs.streamframes import Frame
from bridge.logs import fmt_fields
from bridge.model import Event, label_fingerprint

log = logging.getLogger("bridge.http")

CHECK_URL = "check_url"
_NONCE_CHARS = string.ascii_letters + string.digits
_MAX_NONCE = 128  # DingTalk's are 8 or 16 characters; the key stored for a replay stays small


def _query(query_string: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query_string, keep_blank_values=True).items()}


def open_callback(
    spec: CallbackInput, query_string: str, raw_body: bytes, now: datetime
) -> tuple[dict[str, Any], signed.SignedOnce]:
    """The decrypted event of an authentic, fresh callback, and what makes it single-use
    (raises InputError)."""
    query = _query(query_string)
    given = query.get("msg_signature") or query.get("signature")
    timestamp = query.get("timeStamp") or query.get("timestamp")
    nonce = query.get("nonce")
    if not given or not timestamp or not nonce:
        raise InputError(400, Reason.BAD_REQUEST, "the query needs signature, timestamp and nonce")
    if len(nonce) > _MAX_NONCE:
        raise InputError(400, Reason.BAD_REQUEST, f"nonce is longer than {_MAX_NONCE} characters")
    sent = signed.sent_at(timestamp, "timestamp", seconds_too=True)
    signed.check_window(sent, now.timestamp(), spec.max_age, "timestamp")
    body = jsonbody.loads(raw_body)
    if not isinstance(body, dict) or not isinstance(body.get("encrypt"), str):
        raise InputError(400, Reason.BAD_REQUEST, 'the body must be {"encrypt": "..."}')
    encrypt: str = body["encrypt"]
    if not crypto.signature_matches(given, spec.token, timestamp, nonce, encrypt):
        raise InputError(401, Reason.UNAUTHORIZED, "bad signature")
    # Authentic from here on: only now is the ciphertext decoded, decrypted and parsed.
    try:
        message, owner = crypto.decrypt(crypto.derive_key(spec.aes_key), encrypt)
    except crypto.CallbackCryptoError as exc:
        raise InputError(400, Reason.BAD_REQUEST, f"cannot decrypt: {exc}") from None
    if owner != spec.owner_key:
        raise InputError(403, Reason.FORBIDDEN, "the callback is for another owner key")
    event = jsonbody.loads(message, "the decrypted message")
    if not isinstance(event, dict) or not isinstance(event.get("EventType"), str):
        raise InputError(400, Reason.BAD_REQUEST, "the decrypted message has no EventType")
    once = signed.SignedOnce(
        input=spec.name,
        key=f"callback\n{nonce}\n{timestamp}",
        digest=signed.digest(encrypt),
        expires=signed.expires(sent, spec.max_age),
    )
    return event, once


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


def serve(request: Request, spec: CallbackInput, sink: Sink) -> Mapping[str, Any]:
    """A DingTalk event callback: verified and opened, routed (unless it is the check_url
    handshake), then answered with the encrypted `success`. The very same callback again
    (DingTalk's answer was lost) is answered `success` again and not routed twice."""
    now = request.clock.now()
    raw = request.body(spec.max_body_bytes)
    data, once = open_callback(spec, request.header("QUERY_STRING"), raw, now)
    take(spec, data, once, sink, now)  # may 503 or 409
    return success_reply(spec, now)


def take(
    spec: CallbackInput,
    data: Mapping[str, Any],
    once: signed.SignedOnce,
    sink: Sink,
    now: datetime,
    **fields: str,
) -> None:
    """An authentic event, routed (unless it is the check_url handshake) and remembered as
    `once` in the same commit; the very same one again is not routed twice. Raises
    InputError as `Sink.accept_once` (503, 409). `fields` go on its log line."""
    event_type = str(data["EventType"])
    routed = [] if event_type == CHECK_URL else [callback_event(spec, data, now)]
    accepted = sink.accept_once(spec, routed, once)
    if accepted is None:
        log.info(fmt_fields("callback taken before, answered again", input=spec.name, **fields))
    elif not routed:
        log.info(fmt_fields("callback URL checked", input=spec.name, **fields))
    else:
        log.info(
            fmt_fields(
                "callback accepted",
                input=spec.name,
                event_type=event_type,
                messages=accepted.messages,
                **fields,
            )
        )


def take_streamed(spec: CallbackInput, frame: Frame, sink: Sink, now: datetime) -> bool:
    """An event that came over Stream: the same event as a decrypted HTTP callback, taken once
    (remembered under the frame's `messageId` in the commit that takes it: DingTalk sends an
    event again until it is acknowledged, and sometimes after). True when it is in the store
    (now or before), False when the store could not take it (the ack then says LATER and
    DingTalk sends it again). Raises InputError 400 for data that is no event."""
    data = frame.data
    if not isinstance(data, dict) or not isinstance(data.get("EventType"), str):
        raise InputError(400, Reason.BAD_REQUEST, "the event frame's data has no EventType")
    once = signed.SignedOnce(
        input=spec.name,
        key=f"stream\n{frame.message_id}",
        digest=signed.digest(frame.raw_data),
        expires=now.timestamp() + spec.max_age + 1.0,
    )
    try:
        take(spec, data, once, sink, now, listen="stream")
    except InputError as exc:
        if exc.status == 409:  # its messageId came before with other data: taken then
            log.warning(fmt_fields("stream event id seen with other data", input=spec.name))
            return True
        log.warning(
            fmt_fields(
                "stream event not taken, DingTalk will send it again", input=spec.name, error=exc
            )
        )
        return False
    return True


def sample(spec: CallbackInput, data: bytes, source: str, now: datetime) -> list[Event]:
    """`render`: the payload is a decrypted callback event."""
    return [callback_event(spec, json_of(data), now)]


KIND = InputRuntime(type="dingtalk_callback", serve=serve, sample=sample)
