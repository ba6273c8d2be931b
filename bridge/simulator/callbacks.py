"""Simulated event-callback registration (reference/dingtalk.md §4.1, §4.2) and event pushes.

`register_call_back` does what DingTalk does: it POSTs an encrypted `check_url` event to the URL
and registers it only if the answer decrypts to `success` (errcode 71009 otherwise). The control
endpoint `POST /_sim/callbacks/push {"app_key", "event"}` makes the simulator push an event to
the app's registered URL, encrypted and signed like DingTalk's, and says what the receiver
answered; unanswered pushes are listed by `get_call_back_failed_result`.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.simulator.crypto import (
    CallbackCipher,
    SimCryptoError,
    callback_signature,
    callback_signature_ok,
)

CALLBACK_PATHS = (
    "/call_back/register_call_back",
    "/call_back/update_call_back",
    "/call_back/get_call_back",
    "/call_back/delete_call_back",
    "/call_back/get_call_back_failed_result",
)
NOT_SUCCESS = 71009  # "返回文本非success": the URL did not answer the check_url event
Post = Callable[[str, bytes], tuple[int, bytes]]  # (url with query, body) -> (status, body)
_CHARS = string.ascii_letters + string.digits


@dataclass
class Registration:
    tags: list[str]
    token: str
    aes_key: str
    url: str
    failed: list[dict[str, Any]] = field(default_factory=list)


def _random(n: int) -> str:
    return "".join(secrets.choice(_CHARS) for _ in range(n))


class Callbacks:
    def __init__(self, post: Post) -> None:
        self.post = post
        self._by_app: dict[str, Registration] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._by_app.clear()

    def push(
        self, app_key: str, corp_id: str, event: Mapping[str, Any], now: float
    ) -> dict[str, Any]:
        """Send `event` to the app's URL as DingTalk would; what came back."""
        with self._lock:
            registration = self._by_app.get(app_key)
        if registration is None:
            raise KeyError(app_key)
        ok, status, detail = self._deliver(registration, corp_id, dict(event), now)
        if not ok:
            with self._lock:
                registration.failed.append({"event": dict(event), "status": status})
        return {"delivered": ok, "status": status, "detail": detail}

    def _deliver(
        self, registration: Registration, corp_id: str, event: dict[str, Any], now: float
    ) -> tuple[bool, int, str]:
        try:
            cipher = CallbackCipher(registration.aes_key)
        except SimCryptoError as exc:
            return False, 0, str(exc)
        timestamp, nonce = str(int(now * 1000)), _random(8)
        encrypt = cipher.seal(json.dumps(event, ensure_ascii=False), corp_id, _random(16).encode())
        signature = callback_signature(registration.token, timestamp, nonce, encrypt)
        url = registration.url + ("&" if "?" in registration.url else "?")
        url += f"signature={signature}&timestamp={timestamp}&nonce={nonce}"
        try:
            status, body = self.post(url, json.dumps({"encrypt": encrypt}).encode())
        except OSError as exc:
            return False, 0, f"no answer: {type(exc).__name__}"
        try:
            reply = json.loads(body)
            text, owner = cipher.open(reply["encrypt"])
            signed = callback_signature_ok(
                reply["msg_signature"],
                registration.token,
                str(reply["timeStamp"]),
                reply["nonce"],
                reply["encrypt"],
            )
        except (ValueError, KeyError, TypeError):  # SimCryptoError is a ValueError
            return False, status, "the answer is not the encrypted success"
        if status != 200 or text != "success" or owner != corp_id or not signed:
            return False, status, "the answer is not the encrypted success"
        return True, status, "success"

    # -- the API -------------------------------------------------------------------------------

    def api(
        self, path: str, app_key: str, corp_id: str, body: Mapping[str, Any], now: float
    ) -> tuple[int, dict[str, Any]]:
        if path.endswith(("/register_call_back", "/update_call_back")):
            return self._register(path, app_key, corp_id, body, now)
        with self._lock:
            registration = self._by_app.get(app_key)
            if path.endswith("/get_call_back"):
                if registration is None:
                    return 200, {"errcode": 71007, "errmsg": "回调地址不存在"}
                return 200, {
                    "errcode": 0,
                    "errmsg": "ok",
                    "call_back_tag": registration.tags,
                    "token": registration.token,
                    "aes_key": registration.aes_key,
                    "url": registration.url,
                }
            if path.endswith("/delete_call_back"):
                self._by_app.pop(app_key, None)
                return 200, {"errcode": 0, "errmsg": "ok"}
            failed = registration.failed if registration else []
            return 200, {"errcode": 0, "errmsg": "ok", "has_more": False, "failed_list": failed}

    def _register(
        self, path: str, app_key: str, corp_id: str, body: Mapping[str, Any], now: float
    ) -> tuple[int, dict[str, Any]]:
        tags, token, aes_key, url = (
            body.get(k) for k in ("call_back_tag", "token", "aes_key", "url")
        )
        if not (
            isinstance(tags, list)
            and tags
            and all(isinstance(t, str) for t in tags)
            and isinstance(token, str)
            and isinstance(aes_key, str)
            and isinstance(url, str)
        ):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 call_back_tag, token, aes_key, url"}
        if len(aes_key) != 43:
            return 200, {"errcode": 71004, "errmsg": "aes_key长度不合法"}
        with self._lock:
            exists = app_key in self._by_app
        if path.endswith("/register_call_back") and exists:
            return 200, {"errcode": 71006, "errmsg": "回调地址已经存在"}
        candidate = Registration(list(tags), token, aes_key, url)
        ok, _status, detail = self._deliver(candidate, corp_id, {"EventType": "check_url"}, now)
        if not ok:
            return 200, {"errcode": NOT_SUCCESS, "errmsg": f"返回文本非success ({detail})"}
        with self._lock:
            self._by_app[app_key] = candidate
        return 200, {"errcode": 0, "errmsg": "ok"}
