"""The simulator's own DingTalk crypto (bridge/simulator/crypto.py): the official callback vectors
(reference/dingtalk-callback-vectors.md), the worked robot-signing examples (reference/dingtalk.md
§1.3), hostile ciphertexts, and a cross-check that the bridge's implementation and the
simulator's agree in both directions. They are written apart on purpose; this file is where they
meet."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.dingtalk import callback_crypto as bridge_crypto
from bridge.dingtalk import signing as bridge_signing
from bridge.simulator.crypto import (
    CallbackCipher,
    SimCryptoError,
    callback_signature,
    callback_signature_ok,
    robot_sign_ok,
    robot_sign_param,
    robot_signature,
)
from tests.callback_vectors import (
    A_AES_KEY,
    A_ENCRYPT,
    A_MESSAGE,
    A_NONCE,
    A_OWNER,
    A_PREFIX,
    A_SIGNATURE,
    A_TIMESTAMP,
    A_TOKEN,
    B_AES_KEY,
    B_ENCRYPT,
    B_NONCE,
    B_OWNER,
    B_PREFIX,
    B_SIGNATURE,
    B_TIMESTAMP,
    B_TOKEN,
)


@dataclass(frozen=True)
class Vector:
    token: str
    aes_key: str
    owner: str
    signature: str
    timestamp: str
    nonce: str
    encrypt: str
    prefix: bytes  # the random prefix found inside, so sealing can be checked byte for byte
    message: str


VECTORS = [
    pytest.param(
        Vector(
            A_TOKEN,
            A_AES_KEY,
            A_OWNER,
            A_SIGNATURE,
            A_TIMESTAMP,
            A_NONCE,
            A_ENCRYPT,
            A_PREFIX,
            A_MESSAGE,
        ),
        id="A-check_url",
    ),
    pytest.param(
        Vector(
            B_TOKEN,
            B_AES_KEY,
            B_OWNER,
            B_SIGNATURE,
            B_TIMESTAMP,
            B_NONCE,
            B_ENCRYPT,
            B_PREFIX,
            "success",
        ),
        id="B-success",
    ),
]


# -- the official vectors ----------------------------------------------------------------------


@pytest.mark.parametrize("v", VECTORS)
def test_official_signature_is_reproduced_and_accepted(v: Vector) -> None:
    assert callback_signature(v.token, v.timestamp, v.nonce, v.encrypt) == v.signature
    assert callback_signature_ok(v.signature, v.token, v.timestamp, v.nonce, v.encrypt)


@pytest.mark.parametrize("v", VECTORS)
def test_official_ciphertext_decrypts_to_the_official_message_and_owner(v: Vector) -> None:
    assert CallbackCipher(v.aes_key).open(v.encrypt) == (v.message, v.owner)


@pytest.mark.parametrize("v", VECTORS)
def test_sealing_with_the_official_prefix_gives_the_official_ciphertext(v: Vector) -> None:
    # CBC with a fixed IV is deterministic: byte-for-byte equality checks the layout, the length
    # field, the 32-byte padding and the IV all at once.
    assert CallbackCipher(v.aes_key).seal(v.message, v.owner, v.prefix) == v.encrypt


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda a: {**a, "token": "mryuf"}, id="token"),
        pytest.param(lambda a: {**a, "timestamp": "1608001896815"}, id="timestamp"),
        pytest.param(lambda a: {**a, "nonce": "WL4PK6yB"}, id="nonce"),
        pytest.param(lambda a: {**a, "encrypt": a["encrypt"][:-1] + "4"}, id="encrypt"),
        pytest.param(lambda a: {**a, "received": a["received"].upper()}, id="uppercase-hex"),
        pytest.param(lambda a: {**a, "received": a["received"][:-1]}, id="truncated"),
        pytest.param(lambda a: {**a, "received": 3044561471240}, id="not-a-string"),
    ],
)
def test_any_change_to_a_signed_field_fails_the_signature(
    change: Callable[[dict[str, object]], dict[str, object]],
) -> None:
    args: dict[str, object] = {
        "received": A_SIGNATURE,
        "token": A_TOKEN,
        "timestamp": A_TIMESTAMP,
        "nonce": A_NONCE,
        "encrypt": A_ENCRYPT,
    }
    assert callback_signature_ok(**args)  # type: ignore[arg-type]  # unchanged: it passes
    assert not callback_signature_ok(**change(args))  # type: ignore[arg-type]


def test_signature_sorts_by_code_point_not_by_argument_order() -> None:
    # The same four strings in any argument order give the same signature (§4.4: sorted list).
    assert callback_signature("b", "a", "d", "c") == callback_signature("d", "c", "b", "a")
    # "B" (66) sorts before "a" (97) by code point; a case-insensitive sort would give "aB".
    assert callback_signature("a", "B", "", "") == hashlib.sha1(b"Ba").hexdigest()


# -- keys and hostile ciphertexts -----------------------------------------------------------


@pytest.mark.parametrize(
    "aes_key, why",
    [
        (A_AES_KEY[:-1], "42 characters"),
        (A_AES_KEY + "x", "44 characters"),
        ("!" * 43, "not base64"),
        ("", "0 characters"),
    ],
)
def test_a_bad_aes_key_is_refused_saying_why(aes_key: str, why: str) -> None:
    with pytest.raises(SimCryptoError, match=why):
        CallbackCipher(aes_key)


def _raw_ciphertext(aes_key: str, plain: bytes) -> str:
    """Encrypt `plain` as-is (no layout, no padding) to craft malformed ciphertexts."""
    key = base64.b64decode(aes_key + "=")
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def _padded(plain: bytes) -> bytes:
    fill = 32 - len(plain) % 32
    return plain + bytes([fill]) * fill


@pytest.mark.parametrize(
    "encrypt, why",
    [
        ("not base64!", "not base64"),
        ("", "length 0"),
        (base64.b64encode(b"x" * 16).decode(), "length 16"),
        (12345, "not a string"),
        ("密文", "not base64"),
        (_raw_ciphertext(A_AES_KEY, b"\x00" * 32), "bad padding"),
        (_raw_ciphertext(A_AES_KEY, b"\x00" * 31 + b"\x21"), "bad padding"),
        (_raw_ciphertext(A_AES_KEY, b"\x00" * 30 + b"\x01\x02"), "bad padding"),
        (_raw_ciphertext(A_AES_KEY, _padded(b"0123456789abcdef\x00\x00")), "shorter"),
        (
            _raw_ciphertext(A_AES_KEY, _padded(b"0123456789abcdef\x00\x00\x00\x09success")),
            "runs past",
        ),
        (
            _raw_ciphertext(A_AES_KEY, _padded(b"0123456789abcdef\x00\x00\x00\x02\xff\xfeding")),
            "UTF-8",
        ),
        (B_ENCRYPT, "bad padding"),  # a real ciphertext under another registration's key
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
def test_a_malformed_ciphertext_is_refused_saying_why(encrypt: object, why: str) -> None:
    with pytest.raises(SimCryptoError, match=why):
        CallbackCipher(A_AES_KEY).open(encrypt)


def test_seal_requires_a_16_byte_prefix() -> None:
    with pytest.raises(SimCryptoError, match="16 bytes"):
        CallbackCipher(A_AES_KEY).seal("success", A_OWNER, b"short")


@pytest.mark.parametrize("size", [0, 1, 11, 12, 13, 43, 44, 45, 100])
def test_seal_then_open_round_trips_across_padding_boundaries(size: int) -> None:
    # Header (20) + owner (20) + size: 12, 44 and 76 total bytes hit exact 32-byte multiples,
    # where the padding must be a whole extra block of 32.
    cipher = CallbackCipher(A_AES_KEY)
    message = "m" * size
    sealed = cipher.seal(message, A_OWNER, os.urandom(16))
    assert len(base64.b64decode(sealed)) % 32 == 0
    assert cipher.open(sealed) == (message, A_OWNER)


# -- robot 加签 (§1.3 worked examples) --------------------------------------------------------


def test_robot_signature_matches_the_worked_examples() -> None:
    sig = robot_signature("1577262236757", "this is secret")
    assert sig == "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="
    assert robot_sign_param("1577262236757", "this is secret") == (
        "hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D"
    )
    assert robot_signature("1577262236757", "this is a secret") == (
        "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA="
    )


@pytest.mark.parametrize(
    "query_sign, accepted",
    [
        ("hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D", True),  # encoded once: right
        ("hmPWwU%252B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%252BGs6EZQM%253D", False),  # encoded twice
        ("hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM=", False),  # raw: "+" reads as a space
        ("DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA%3D", False),  # another secret's sign
        ("", False),
    ],
)
def test_robot_sign_check_after_one_url_decoding(query_sign: str, accepted: bool) -> None:
    # The simulator's HTTP layer hands over the query decoded exactly once, as parse_qs does.
    decoded = parse_qs(f"sign={query_sign}", keep_blank_values=True)["sign"][0]
    assert robot_sign_ok("1577262236757", "this is secret", decoded) is accepted


def test_robot_sign_check_rejects_another_timestamp() -> None:
    sign = robot_signature("1577262236757", "this is secret")
    assert robot_sign_ok("1577262236757", "this is secret", sign)
    assert not robot_sign_ok("1577262236758", "this is secret", sign)


# -- the bridge and the simulator agree, both ways ------------------------------------------

_texts = st.text(max_size=200)
_owners = st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=40)
_keys = st.binary(min_size=32, max_size=32).map(lambda k: base64.b64encode(k).decode()[:43])
_prefixes = st.binary(min_size=16, max_size=16)


def _bridge_key(aes_key: str) -> bytes:
    return bridge_crypto.derive_key(aes_key)


@settings(max_examples=60, deadline=None)
@given(aes_key=_keys, message=_texts, owner=_owners, prefix=_prefixes)
def test_bridge_encrypts_simulator_decrypts(
    aes_key: str, message: str, owner: str, prefix: bytes
) -> None:
    sealed = bridge_crypto.encrypt(_bridge_key(aes_key), message, owner, prefix)
    assert CallbackCipher(aes_key).open(sealed) == (message, owner)
    # And the same inputs give the same bytes: the two agree on layout, not only on round trips.
    assert CallbackCipher(aes_key).seal(message, owner, prefix) == sealed


@settings(max_examples=60, deadline=None)
@given(aes_key=_keys, message=_texts, owner=_owners, prefix=_prefixes)
def test_simulator_encrypts_bridge_decrypts(
    aes_key: str, message: str, owner: str, prefix: bytes
) -> None:
    sealed = CallbackCipher(aes_key).seal(message, owner, prefix)
    assert bridge_crypto.decrypt(_bridge_key(aes_key), sealed) == (message, owner)


@settings(max_examples=60, deadline=None)
@given(token=_texts, timestamp=_texts, nonce=_texts, encrypt=_texts)
def test_callback_signatures_agree_both_ways(
    token: str, timestamp: str, nonce: str, encrypt: str
) -> None:
    ours = callback_signature(token, timestamp, nonce, encrypt)
    theirs = bridge_crypto.signature(token, timestamp, nonce, encrypt)
    assert ours == theirs
    assert bridge_crypto.signature_matches(ours, token, timestamp, nonce, encrypt)
    assert callback_signature_ok(theirs, token, timestamp, nonce, encrypt)


@settings(max_examples=60, deadline=None)
@given(
    timestamp=st.integers(min_value=10**12, max_value=10**13 - 1).map(str),  # 13-digit ms
    secret=st.text(min_size=1, max_size=80),
)
def test_robot_signatures_agree_both_ways(timestamp: str, secret: str) -> None:
    # Bridge signs, simulator verifies: the bridge's query, decoded once as the simulator's HTTP
    # layer decodes it, passes the simulator's check.
    query = parse_qs(bridge_signing.signed_query(int(timestamp), secret))
    assert query["timestamp"] == [timestamp]
    assert robot_sign_ok(timestamp, secret, query["sign"][0])
    # Simulator signs, bridge verifies; and both URL-encode the sign the same single time.
    assert bridge_signing.sign_matches(timestamp, secret, robot_signature(timestamp, secret))
    assert f"sign={robot_sign_param(timestamp, secret)}" in bridge_signing.signed_query(
        int(timestamp), secret
    )
