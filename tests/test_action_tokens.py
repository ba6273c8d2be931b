"""The signed action tokens (bridge/alerting/actions.py): what a valid one grants, and every way
one is refused (altered, expired, made with another key, not a token at all), as tables, and
with generated input (any string refused cleanly, any change to a valid token refused)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.alerting.actions import (
    MAX_TOKEN_CHARS,
    Grant,
    TokenRefused,
    sign,
    verify,
)

KEY = b"k" * 32
NOW = 1_800_000_000.0
GRANT = Grant(
    action="silence",
    fingerprint="a1b2c3d4e5f60718",
    rule="disk",
    target="ops",
    labels={"alertname": "DiskFull", "instance": "db-1", "中文": "值"},
    duration=3600.0,
    expires=NOW + 86_400,
    nonce="0123456789abcdef0123456789abcdef",
)
TOKEN = sign(GRANT, KEY)


def forge(payload: list[object], key: bytes = KEY) -> str:
    """A token with a correct MAC over any payload (what only a holder of the key can make)."""
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    mac = hmac.new(key, b"dtb-act-v1." + body.encode(), hashlib.sha256).digest()
    return f"{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_a_valid_token_grants_what_was_signed() -> None:
    verified = verify(TOKEN, KEY, NOW)
    assert verified.grant == GRANT
    assert verified.once_key == TOKEN.split(".")[1]  # the MAC: one per token
    assert len(TOKEN) < 400 and TOKEN.isascii()
    assert set(TOKEN) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_an_ack_token_round_trips() -> None:
    ack = Grant("ack", "f" * 16, "r", "t", {}, 0.0, NOW + 1, "n")
    assert verify(sign(ack, KEY), KEY, NOW).grant == ack


def test_tokens_of_two_grants_differ_and_so_do_their_once_keys() -> None:
    other = sign(Grant(**{**GRANT.__dict__, "duration": 7200.0}), KEY)
    assert other != TOKEN
    assert verify(other, KEY, NOW).once_key != verify(TOKEN, KEY, NOW).once_key


@pytest.mark.parametrize(
    ("token", "key", "now", "reason"),
    [
        ("", KEY, NOW, "bad_token"),
        ("not a token", KEY, NOW, "bad_token"),
        (TOKEN[:-1], KEY, NOW, "bad_token"),  # the MAC cut short
        (TOKEN + "A", KEY, NOW, "bad_token"),
        (TOKEN.replace(".", ""), KEY, NOW, "bad_token"),
        (TOKEN + "." + TOKEN, KEY, NOW, "bad_token"),
        ("A" * (MAX_TOKEN_CHARS + 1), KEY, NOW, "bad_token"),
        (TOKEN, b"another key", NOW, "bad_signature"),
        (TOKEN[1:], KEY, NOW, "bad_signature"),  # payload cut at the front
        (("A" if TOKEN[0] != "A" else "B") + TOKEN[1:], KEY, NOW, "bad_signature"),
        (TOKEN, KEY, GRANT.expires, "expired"),  # the expiry itself is past
        (TOKEN, KEY, GRANT.expires + 1, "expired"),
        (forge([1, "delete", "f", "r", "t", {}, 0, NOW + 60, "n"]), KEY, NOW, "unknown_action"),
        (forge([2, "ack", "f", "r", "t", {}, 0, NOW + 60, "n"]), KEY, NOW, "bad_token"),
        (forge([1, "ack", "f", "r", "t", {}, 0, NOW + 60]), KEY, NOW, "bad_token"),
        (forge([1, "ack", 5, "r", "t", {}, 0, NOW + 60, "n"]), KEY, NOW, "bad_token"),
        (forge([1, "ack", "f", "r", "t", {"a": 1}, 0, NOW + 60, "n"]), KEY, NOW, "bad_token"),
        (forge([1, "ack", "f", "r", "t", [], 0, NOW + 60, "n"]), KEY, NOW, "bad_token"),
        (forge([1, "ack", "f", "r", "t", {}, True, NOW + 60, "n"]), KEY, NOW, "bad_token"),
        (forge([1, "ack", "f", "r", "t", {}, -1, NOW + 60, "n"]), KEY, NOW, "bad_token"),
        (forge([1, "ack", "f", "r", "t", {}, 0, 10**400, "n"]), KEY, NOW, "bad_token"),
        (forge({"v": 1}), KEY, NOW, "bad_token"),  # type: ignore[arg-type]
    ],
)
def test_refused(token: str, key: bytes, now: float, reason: str) -> None:
    with pytest.raises(TokenRefused) as refused:
        verify(token, key, now)
    assert refused.value.reason == reason
    assert str(refused.value)  # a reason a person can read


def test_labels_too_long_for_a_link_make_no_token() -> None:
    huge = Grant(**{**GRANT.__dict__, "labels": {"big": "x" * MAX_TOKEN_CHARS}})
    with pytest.raises(ValueError, match="characters"):
        sign(huge, KEY)


def test_an_unknown_action_is_never_signed() -> None:
    with pytest.raises(ValueError, match="no such action"):
        sign(Grant(**{**GRANT.__dict__, "action": "runbook"}), KEY)


@settings(max_examples=300)
@given(st.text(max_size=5000))
def test_any_string_is_refused_cleanly(text: str) -> None:
    with pytest.raises(TokenRefused):
        verify(text, KEY, NOW)


@settings(max_examples=300)
@given(st.data())
def test_a_valid_token_with_any_character_changed_is_refused(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(TOKEN) - 1))
    replacement = data.draw(st.characters(codec="utf-8").filter(lambda c: c != TOKEN[index]))
    altered = TOKEN[:index] + replacement + TOKEN[index + 1 :]
    with pytest.raises(TokenRefused) as refused:
        verify(altered, KEY, NOW)
    assert refused.value.reason in ("bad_token", "bad_signature")


@settings(max_examples=100)
@given(
    st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=8),
    st.text(max_size=30),
    st.floats(0, 1e9, allow_nan=False),
)
def test_any_grant_round_trips(labels: dict[str, str], rule: str, duration: float) -> None:
    grant = Grant(SILENCE_OR_ACK[int(duration) % 2], "fp", rule, "t", labels, duration, NOW + 5)
    try:
        token = sign(grant, KEY)
    except ValueError:
        return  # too long for a link
    assert verify(token, KEY, NOW).grant == grant


SILENCE_OR_ACK = ("silence", "ack")
