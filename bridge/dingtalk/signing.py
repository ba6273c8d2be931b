"""DingTalk signatures: the robot webhook's 加签 and the enterprise robot's incoming `sign`.

Both are base64(HMAC-SHA256(key=secret, msg=timestamp + "\\n" + secret)); the webhook variant is
then URL-encoded exactly once and put in the query string (reference/dingtalk.md §1.3, §5.2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus


def robot_sign(timestamp_ms: int | str, secret: str) -> str:
    """The raw base64 signature for `timestamp_ms` (13-digit milliseconds) and `secret`."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_query(timestamp_ms: int, secret: str) -> str:
    """`timestamp=…&sign=…` with the sign URL-encoded exactly once, ready to append to a URL.

    The query string is built by hand on purpose: handing an already-encoded sign to an HTTP
    client's params builder encodes it twice and DingTalk answers 310000 "sign not match".
    """
    return f"timestamp={timestamp_ms}&sign={quote_plus(robot_sign(timestamp_ms, secret))}"


def sign_matches(timestamp_ms: int | str, secret: str, received_sign: str) -> bool:
    """Constant-time check of a received (already URL-decoded) base64 signature."""
    expected = robot_sign(timestamp_ms, secret)
    return hmac.compare_digest(expected.encode(), received_sign.encode())
