"""The shape of a DingTalk callback `aes_key` (reference/dingtalk.md §4.4): 43 characters of
base64 that decode to a 32-byte AES-256 key.

Config checks it when it loads a callback input, and the callback crypto derives its key with
it; it lives here, beside the config's other value checks, so config needs nothing of the
DingTalk client and the two cannot disagree about what a valid key is.
"""

from __future__ import annotations

import base64

AES_KEY_LENGTH = 43  # characters: base64 of 32 bytes without its one "=" of padding


def aes_key_bytes(aes_key: str) -> bytes:
    """The 32-byte AES key that `aes_key` encodes; ValueError saying what is wrong if it is not
    one. The message never quotes the key (it is a secret)."""
    if len(aes_key) != AES_KEY_LENGTH:
        raise ValueError(f"aes_key must be {AES_KEY_LENGTH} characters")
    try:
        key = base64.b64decode(aes_key + "=", validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise ValueError("aes_key is not base64") from None
    if len(key) != 32:
        raise ValueError("aes_key does not decode to 32 bytes")
    return key
