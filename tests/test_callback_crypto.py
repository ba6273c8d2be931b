"""DingTalk callback crypto against the official vectors (reference/dingtalk-callback-vectors.md),
in both directions, and the callback input's checks as a table."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.config.model import CallbackInput
from bridge.dingtalk import callback_crypto as crypto
from bridge.errors import InputError
from bridge.inputs.callback import callback_event, open_callback, success_reply
from bridge.inputs.signed import FUTURE_SKEW
from tests.callback_vectors import (
    A_AES_KEY,
    A_ENCRYPT,
    A_NONCE,
    A_OWNER,
    A_SIGNATURE,
    A_TIMESTAMP,
    A_TOKEN,
    B_AES_KEY,
    B_ENCRYPT,
    B_NONCE,
    B_OWNER,
    B_SIGNATURE,
    B_TIMESTAMP,
    B_TOKEN,
)


def test_vector_a_signature_and_decryption() -> None:
    key = crypto.derive_key(A_AES_KEY)
    assert key[:16].hex() == "62e7b411f74de7dd3473571ee5c7fa03"
    assert crypto.signature(A_TOKEN, A_TIMESTAMP, A_NONCE, A_ENCRYPT) == A_SIGNATURE
    assert crypto.signature_matches(A_SIGNATURE.upper(), A_TOKEN, A_TIMESTAMP, A_NONCE, A_ENCRYPT)
    assert crypto.decrypt(key, A_ENCRYPT) == ('{"EventType":"check_url"}', A_OWNER)


def test_vector_a_is_rebuilt_by_encrypting_with_its_random_prefix() -> None:
    key = crypto.derive_key(A_AES_KEY)
    rebuilt = crypto.encrypt(key, '{"EventType":"check_url"}', A_OWNER, b"l7Y3EcX2CU5w8av3")
    assert rebuilt == A_ENCRYPT


def test_vector_b_in_both_directions() -> None:
    key = crypto.derive_key(B_AES_KEY)
    assert crypto.signature(B_TOKEN, B_TIMESTAMP, B_NONCE, B_ENCRYPT) == B_SIGNATURE
    assert crypto.decrypt(key, B_ENCRYPT) == ("success", B_OWNER)
    sealed = crypto.sealed(
        B_TOKEN, key, B_OWNER, "success", B_TIMESTAMP, B_NONCE, b"WelUQl6bCqcBa2fM"
    )
    assert sealed == {
        "msg_signature": B_SIGNATURE,
        "timeStamp": B_TIMESTAMP,
        "nonce": B_NONCE,
        "encrypt": B_ENCRYPT,
    }


@pytest.mark.parametrize(
    "aes_key", ["short", A_AES_KEY + "x", "!" * 43, A_AES_KEY[:-1] + "=", "é" * 43]
)
def test_bad_aes_keys_are_refused(aes_key: str) -> None:
    with pytest.raises(crypto.CallbackCryptoError) as caught:
        crypto.derive_key(aes_key)
    assert caught.value.code == 900004


@pytest.mark.parametrize(
    ("encrypt", "code"),
    [
        ("not base64!", 900008),
        ("AAAA", 900008),  # 3 bytes: not whole blocks
        (crypto.encrypt(crypto.derive_key(B_AES_KEY), "x", "o", b"0" * 16), 900008),  # other key
    ],
)
def test_ciphertext_that_does_not_open(encrypt: str, code: int) -> None:
    with pytest.raises(crypto.CallbackCryptoError) as caught:
        crypto.decrypt(crypto.derive_key(A_AES_KEY), encrypt)
    assert caught.value.code == code


# -- the input's checks ------------------------------------------------------------------------

NOW = datetime(2026, 11, 28, 14, 0, 0, tzinfo=UTC)
SPEC = CallbackInput(
    name="events", path="/cb", token=A_TOKEN, aes_key=A_AES_KEY, owner_key=A_OWNER, max_age=3600
)


def request(
    message: Any = None,
    owner: str = A_OWNER,
    timestamp: str | None = None,
    nonce: str = "nonce-1",
    signature: str | None = None,
    spelling: tuple[str, str] = ("signature", "timestamp"),
    encrypt: str | None = None,
) -> tuple[str, bytes]:
    """The query string and body DingTalk would send."""
    ts = timestamp or str(int(NOW.timestamp() * 1000))
    if encrypt is None:
        text = json.dumps({"EventType": "user_add_org"} if message is None else message)
        encrypt = crypto.encrypt(crypto.derive_key(A_AES_KEY), text, owner, b"r" * 16)
    sig = signature or crypto.signature(A_TOKEN, ts, nonce, encrypt)
    body = json.dumps({"encrypt": encrypt}).encode()
    return f"{spelling[0]}={sig}&{spelling[1]}={ts}&nonce={nonce}", body


@pytest.mark.parametrize("spelling", [("signature", "timestamp"), ("msg_signature", "timeStamp")])
def test_an_authentic_callback_opens(spelling: tuple[str, str]) -> None:
    query, body = request({"EventType": "user_add_org", "UserId": ["u1"]}, spelling=spelling)
    event, once = open_callback(SPEC, query, body, NOW)
    assert event == {"EventType": "user_add_org", "UserId": ["u1"]}
    # Remembered by nonce and timestamp (either spelling), until the timestamp leaves the window.
    assert once.key == f"callback\nnonce-1\n{int(NOW.timestamp() * 1000)}"
    assert once.expires == NOW.timestamp() + SPEC.max_age + 1


def _ms(offset: float) -> str:
    return str(int((NOW.timestamp() + offset) * 1000))


Request = tuple[str, bytes]
REJECTIONS: dict[str, tuple[Callable[[], Request], int, str]] = {
    "no query": (lambda: ("", request()[1]), 400, "bad_request"),
    "body without encrypt": (lambda: (request()[0], b'{"x": 1}'), 400, "bad_request"),
    "body not an object": (lambda: (request()[0], b'["encrypt"]'), 400, "bad_request"),
    "timestamp not a number": (lambda: request(timestamp="soon"), 400, "bad_request"),
    "timestamp in superscript digits": (lambda: request(timestamp="¹²³"), 400, "bad_request"),
    "two hours old": (lambda: request(timestamp=_ms(-7200)), 400, "stale"),
    "two minutes ahead": (lambda: request(timestamp=_ms(FUTURE_SKEW + 60)), 400, "stale"),
    "58 minutes ahead": (lambda: request(timestamp=_ms(58 * 60)), 400, "stale"),
    "bad signature": (lambda: request(signature="0" * 40), 401, "unauthorized"),
    "other owner key": (lambda: request(owner="dingsomeoneelse"), 403, "forbidden"),
    "no EventType": (lambda: request({"x": 1}), 400, "bad_request"),
    "not JSON inside": (lambda: request("x"), 400, "bad_request"),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_rejections(case: str) -> None:
    make, status, reason = REJECTIONS[case]
    query, body = make()
    with pytest.raises(InputError) as caught:
        open_callback(SPEC, query, body, NOW)
    assert (caught.value.status, caught.value.reason.value) == (status, reason)


@pytest.mark.parametrize("offset", [-3500.0, -1.0, 0.0, FUTURE_SKEW - 1])
def test_a_timestamp_inside_the_window_opens(offset: float) -> None:
    query, body = request(timestamp=_ms(offset))
    assert open_callback(SPEC, query, body, NOW)[0] == {"EventType": "user_add_org"}


def test_the_signature_is_checked_before_the_ciphertext_is_touched() -> None:
    """Garbage where the ciphertext goes: 401 when unsigned (nothing decoded or decrypted),
    400 with a reason once signed, never another exception."""
    for garbage in ["\ufffd\ufffd", "not base64!", "QUJD", "", "A" * 4096]:
        unsigned, body = request(encrypt=garbage, signature="0" * 40)
        with pytest.raises(InputError) as caught:
            open_callback(SPEC, unsigned, body, NOW)
        assert caught.value.status == 401, garbage
        signed_query, body = request(encrypt=garbage)
        with pytest.raises(InputError) as caught:
            open_callback(SPEC, signed_query, body, NOW)
        assert (caught.value.status, caught.value.reason.value) == (400, "bad_request"), garbage


def test_a_lone_surrogate_in_encrypt_is_not_a_crash() -> None:
    """The escape `\\ud800` and the raw bytes ED A0 80 where the ciphertext goes."""
    query, _ = request()
    escaped = b'{"encrypt": "abc\\ud800"}'
    with pytest.raises(InputError) as caught:
        open_callback(SPEC, query, escaped, NOW)
    assert caught.value.status == 401  # U+FFFD in place of the surrogate: a bad signature
    with pytest.raises(InputError) as caught:
        open_callback(SPEC, query, b'{"encrypt": "abc\xed\xa0\x80"}', NOW)
    assert (caught.value.status, caught.value.reason.value) == (400, "bad_request")
    assert "not UTF-8" in str(caught.value)


def test_the_event_and_the_reply() -> None:
    event = callback_event(
        SPEC,
        {"EventType": "bpms_instance_change", "UserId": ["u1", "u2"], "ok": True, "nested": {}},
        NOW,
    )
    assert dict(event.labels) == {
        "EventType": "bpms_instance_change",
        "UserId": "u1,u2",
        "ok": "true",
    }
    assert event.payload["nested"] == {} and event.kind == "dingtalk_callback"
    reply = success_reply(SPEC, NOW)
    assert reply["timeStamp"] == str(int(NOW.timestamp() * 1000))
    assert (
        crypto.signature(A_TOKEN, reply["timeStamp"], reply["nonce"], reply["encrypt"])
        == reply["msg_signature"]
    )
    assert crypto.decrypt(crypto.derive_key(A_AES_KEY), reply["encrypt"]) == ("success", A_OWNER)
