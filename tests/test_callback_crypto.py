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
from bridge.inputs.callback import (
    ReplayGuard,
    callback_event,
    open_callback,
    replay_key,
    success_reply,
)

# Vector A: the check_url event (DingCallbackCrypto3.py).
A_TOKEN = "mryue"
A_AES_KEY = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"
A_OWNER = "ding6ccabc44d2c8d38b"
A_SIGNATURE = "03044561471240d4a14bb09372dfcfd4fd0e40cb"
A_TIMESTAMP = "1608001896814"
A_NONCE = "WL4PK6yA"
A_ENCRYPT = (
    "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxO"
    "K+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3"
)
# Vector B: an encrypted "success" (DingTalkCrypto.go).
B_TOKEN = "tokenxxxx"
B_AES_KEY = "o1w0aum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus"
B_OWNER = "dingxxxxxx"
B_SIGNATURE = "f36f4ba5337d426c7d4bca0dbcb06b3ddc1388fc"
B_TIMESTAMP = "1605695694141"
B_NONCE = "WelUQl6bCqcBa2fM"
B_ENCRYPT = (
    "X1VSe9cTJUMZu60d3kyLYTrBq5578ZRJtteU94wG0Q4Uk6E/wQYeJRIC0/UFW5Wkya1Ihz9oXAdLlyC9TRaqsQ=="
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


@pytest.mark.parametrize("aes_key", ["short", A_AES_KEY + "x", "!" * 43, A_AES_KEY[:-1] + "="])
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
) -> tuple[str, dict[str, Any]]:
    """The query string and body DingTalk would send."""
    ts = timestamp or str(int(NOW.timestamp() * 1000))
    text = json.dumps({"EventType": "user_add_org"} if message is None else message)
    encrypt = crypto.encrypt(crypto.derive_key(A_AES_KEY), text, owner, b"r" * 16)
    sig = signature or crypto.signature(A_TOKEN, ts, nonce, encrypt)
    return f"{spelling[0]}={sig}&{spelling[1]}={ts}&nonce={nonce}", {"encrypt": encrypt}


@pytest.mark.parametrize("spelling", [("signature", "timestamp"), ("msg_signature", "timeStamp")])
def test_an_authentic_callback_opens(spelling: tuple[str, str]) -> None:
    query, body = request({"EventType": "user_add_org", "UserId": ["u1"]}, spelling=spelling)
    assert open_callback(SPEC, query, body, NOW, ReplayGuard()) == {
        "EventType": "user_add_org",
        "UserId": ["u1"],
    }


Request = tuple[str, Any]
REJECTIONS: dict[str, tuple[Callable[[], Request], int, str]] = {
    "no query": (lambda: ("", request()[1]), 400, "bad_request"),
    "body without encrypt": (lambda: (request()[0], {"x": 1}), 400, "bad_request"),
    "body not an object": (lambda: (request()[0], ["encrypt"]), 400, "bad_request"),
    "timestamp not a number": (lambda: request(timestamp="soon"), 400, "bad_request"),
    "two hours old": (
        lambda: request(timestamp=str(int(NOW.timestamp() - 7200) * 1000)),
        400,
        "stale",
    ),
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
        open_callback(SPEC, query, body, NOW, ReplayGuard())
    assert (caught.value.status, caught.value.reason.value) == (status, reason)


def test_a_replay_is_refused_once_the_first_was_taken() -> None:
    guard = ReplayGuard()
    query, body = request(nonce="once")
    open_callback(SPEC, query, body, NOW, guard)
    open_callback(SPEC, query, body, NOW, guard)  # not taken yet (e.g. refused 503): may retry
    guard.remember(replay_key(SPEC, query), NOW.timestamp() + 3600, NOW.timestamp())
    with pytest.raises(InputError) as caught:
        open_callback(SPEC, query, body, NOW, guard)
    assert caught.value.status == 409
    # A forged request reusing the nonce is refused for its signature first.
    forged, _ = request(nonce="once", signature="f" * 40)
    with pytest.raises(InputError) as caught:
        open_callback(SPEC, forged, body, NOW, guard)
    assert caught.value.status == 401


def test_replay_memory_forgets_expired_entries_and_stays_bounded() -> None:
    guard = ReplayGuard(capacity=3)
    for n in range(5):
        assert not guard.seen(("i", str(n), "t"), now=0.0)
        guard.remember(("i", str(n), "t"), expires=100.0, now=0.0)
    assert not guard.seen(("i", "0", "t"), now=0.0)  # evicted: capacity
    assert guard.seen(("i", "4", "t"), now=0.0)
    assert not guard.seen(("i", "4", "t"), now=200.0)  # expired


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
