"""The simulator's own DingTalk cryptography: the robot 加签 check and the event-callback cipher.

Written from reference/dingtalk.md (§1.3 robot signing, §4.4 callback crypto) and checked against
the official vectors (reference/dingtalk-callback-vectors.md), independently of the bridge's
`bridge/dingtalk/signing.py` and `bridge/dingtalk/callback_crypto.py`. The simulator stands in
for DingTalk in every end-to-end test; if it borrowed the bridge's code, a bug there would agree
with itself and pass. Its own copy makes each side check the other.

This side plays DingTalk, so it is strict where the official libraries are lenient: a reply whose
padding or length field is malformed is refused rather than read as best it can, because real
DingTalk would not accept it either (it would not find `success` in it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import quote_plus

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

AES_KEY_CHARS = 43  # §4.4: the registered aes_key; with "=" appended it is 32 bytes of base64
PAD_BLOCK = 32  # §4.4: PKCS#7-style padding to 32 bytes (not AES's 16)
PREFIX_BYTES = 16  # the random prefix before the length field
LENGTH_BYTES = 4  # big-endian message length


class SimCryptoError(ValueError):
    """A ciphertext, key or reply the simulated DingTalk cannot accept; says what is wrong."""


# -- robot webhook 加签 (§1.3) -----------------------------------------------------------------


def robot_signature(timestamp: str, secret: str) -> str:
    """Base64 of HMAC-SHA256(key=secret, msg=timestamp + "\\n" + secret), before URL-encoding."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    mac.update(timestamp.encode("utf-8"))
    mac.update(b"\n")
    mac.update(secret.encode("utf-8"))
    return base64.b64encode(mac.digest()).decode("ascii")


def robot_sign_param(timestamp: str, secret: str) -> str:
    """The `sign` query value as a client must send it: the base64 URL-encoded exactly once."""
    return quote_plus(robot_signature(timestamp, secret))


def robot_sign_ok(timestamp: str, secret: str, sign: str) -> bool:
    """Does `sign`, as the query parser handed it over (decoded once), match? Constant time.

    A sign that was URL-encoded twice still reads "%2B…" after one decoding and fails here, as it
    does on the real service.
    """
    expected = robot_signature(timestamp, secret).encode("ascii")
    return hmac.compare_digest(expected, sign.encode("utf-8"))


# -- event callbacks (§4.4) ------------------------------------------------------------------


def callback_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """Lowercase hex SHA-1 of the four strings sorted by code point and joined with nothing."""
    joined = "".join(sorted((token, timestamp, nonce, encrypt)))
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()


def callback_signature_ok(
    received: object, token: str, timestamp: str, nonce: str, encrypt: str
) -> bool:
    """Constant-time comparison of a received `msg_signature` with the one we compute.

    The received value comes from a JSON reply and may be any type; only a string can match.
    """
    if not isinstance(received, str):
        return False
    expected = callback_signature(token, timestamp, nonce, encrypt).encode("ascii")
    return hmac.compare_digest(expected, received.encode("utf-8"))


class CallbackCipher:
    """AES-256-CBC keyed by a registration's `aes_key`, IV = the key's first 16 bytes."""

    def __init__(self, aes_key: str) -> None:
        if len(aes_key) != AES_KEY_CHARS:
            raise SimCryptoError(f"aes_key has {len(aes_key)} characters, not {AES_KEY_CHARS}")
        try:
            key = base64.b64decode(aes_key + "=", validate=True)
        except binascii.Error:
            raise SimCryptoError("aes_key is not base64") from None
        if len(key) != 32:  # cannot happen for 43 valid characters; kept as the invariant
            raise SimCryptoError("aes_key does not give a 32-byte key")
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))

    def seal(self, message: str, owner_key: str, prefix: bytes) -> str:
        """Base64 ciphertext of prefix || len || message || owner_key, padded to 32 bytes."""
        if len(prefix) != PREFIX_BYTES:
            raise SimCryptoError(f"the random prefix must be {PREFIX_BYTES} bytes")
        text = message.encode("utf-8")
        plain = b"".join(
            (prefix, len(text).to_bytes(LENGTH_BYTES, "big"), text, owner_key.encode("utf-8"))
        )
        fill = PAD_BLOCK - len(plain) % PAD_BLOCK  # 1..32: a full block when already aligned
        plain += bytes((fill,)) * fill
        enc = self._cipher.encryptor()
        return base64.b64encode(enc.update(plain) + enc.finalize()).decode("ascii")

    def open(self, encrypt: object) -> tuple[str, str]:
        """(message, owner key) of a base64 ciphertext; SimCryptoError says why it is refused."""
        if not isinstance(encrypt, str):  # it came out of someone's JSON
            raise SimCryptoError("encrypt is not a string")
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise SimCryptoError("encrypt is not base64") from None
        if not raw or len(raw) % PAD_BLOCK:
            raise SimCryptoError(f"ciphertext length {len(raw)} is not a multiple of {PAD_BLOCK}")
        dec = self._cipher.decryptor()
        plain = dec.update(raw) + dec.finalize()
        fill = plain[-1]
        if not 1 <= fill <= PAD_BLOCK or plain[-fill:] != bytes((fill,)) * fill:
            raise SimCryptoError("bad padding (wrong key?)")
        plain = plain[:-fill]
        head = PREFIX_BYTES + LENGTH_BYTES
        if len(plain) < head:
            raise SimCryptoError("plaintext shorter than its header")
        size = int.from_bytes(plain[PREFIX_BYTES:head], "big")
        if size > len(plain) - head:
            raise SimCryptoError("length field runs past the plaintext")
        try:
            message = plain[head : head + size].decode("utf-8")
            owner = plain[head + size :].decode("utf-8")
        except UnicodeDecodeError:
            raise SimCryptoError("plaintext is not UTF-8") from None
        return message, owner
