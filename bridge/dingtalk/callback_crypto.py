"""DingTalk's event-callback crypto (reference/dingtalk.md §4.4), checked against the official
vectors in tests.

A callback arrives as `{"encrypt": base64}` with `signature`, `timestamp` and `nonce` in the
query. The signature is SHA-1 over the four strings sorted; the ciphertext is AES-256-CBC with
the key from the 43-character `aes_key` and its first 16 bytes as IV, over
`random16 | uint32_be(len) | message | owner_key`, padded by hand to a 32-byte block. Pure: the
caller passes the random bytes and the time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from typing import Any

from bridge.config.aeskey import aes_key_bytes

BLOCK = 32  # DingTalk pads to 32 bytes, not AES's 16


def _cipher(key: bytes) -> Any:
    # Imported on first use: OpenSSL's bindings cost ~8 MB of memory, and most bridges never
    # receive a callback.
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


class CallbackCryptoError(ValueError):
    """A callback that cannot be opened; `code` is the official libraries' error number."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def derive_key(aes_key: str) -> bytes:
    """The 32-byte AES key from the 43-character `aes_key` (900004 if it is not one; the shape
    is config's check, so a key `check` accepts is one this accepts)."""
    try:
        return aes_key_bytes(aes_key)
    except ValueError as exc:
        raise CallbackCryptoError(900004, str(exc)) from None


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def signature_matches(given: str, token: str, timestamp: str, nonce: str, encrypt: str) -> bool:
    expected = signature(token, timestamp, nonce, encrypt)
    return hmac.compare_digest(given.lower().encode(), expected.encode())


def decrypt(key: bytes, encrypt: str) -> tuple[str, str]:
    """(message, owner key) from `encrypt`; CallbackCryptoError when it is not well formed."""
    try:
        data = base64.b64decode(encrypt, validate=True)
    except (binascii.Error, ValueError):
        raise CallbackCryptoError(900008, "encrypt is not base64") from None
    if not data or len(data) % 16:
        raise CallbackCryptoError(900008, "encrypt is not a whole number of AES blocks")
    decryptor = _cipher(key).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise CallbackCryptoError(900008, "bad padding (wrong aes_key?)")
    plain = plain[:-pad]
    if len(plain) < 20:
        raise CallbackCryptoError(900009, "too short for its length field")
    (length,) = struct.unpack(">I", plain[16:20])
    if 20 + length > len(plain):
        raise CallbackCryptoError(900009, "the length field is longer than the message")
    try:
        message = plain[20 : 20 + length].decode("utf-8")
        owner = plain[20 + length :].decode("utf-8")
    except UnicodeDecodeError:
        raise CallbackCryptoError(900001, "the message is not UTF-8") from None
    return message, owner


def encrypt(key: bytes, message: str, owner_key: str, random16: bytes) -> str:
    """The base64 ciphertext of `message` (with `random16` as the 16-byte prefix)."""
    if len(random16) != 16:
        raise ValueError("random16 must be 16 bytes")
    body = message.encode("utf-8")
    plain = random16 + struct.pack(">I", len(body)) + body + owner_key.encode("utf-8")
    pad = BLOCK - len(plain) % BLOCK
    plain += bytes([pad]) * pad
    encryptor = _cipher(key).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


def sealed(
    token: str,
    key: bytes,
    owner_key: str,
    message: str,
    timestamp: str,
    nonce: str,
    random16: bytes,
) -> dict[str, str]:
    """The reply DingTalk expects (§4.5), e.g. for message "success"."""
    text = encrypt(key, message, owner_key, random16)
    return {
        "msg_signature": signature(token, timestamp, nonce, text),
        "timeStamp": timestamp,
        "nonce": nonce,
        "encrypt": text,
    }
