"""End-to-end: DingTalk event callbacks (`dingtalk_callback`) against the real daemon and simulator.

Every request is built the way DingTalk builds it (reference/dingtalk.md §4.3-4.5): the event is
encrypted and signed here by an implementation of the callback crypto that is independent of the
product's (`cryptography`'s AES-CBC used directly, checked first against the official vectors), so
a bug in the product's crypto fails these tests instead of being shared by them. The input is
configured with the official vector A token, aes_key and owner key.

"Nothing reaches the robot" is shown with a marker: after the request under test, a valid routed
callback with a unique UserId is sent; once its message has arrived (one sender per target,
in queue order), it must be the only robot request since the test began.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import yaml
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.harness import Daemon, Process, Simulator, bridge_cli, free_port, wait_until

# Official vector A (open-dingtalk/DingTalk-Callback-Crypto, DingCallbackCrypto3.py).
TOKEN = "mryue"
AES_KEY = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"
OWNER = "ding6ccabc44d2c8d38b"
VECTOR_A_SIGNATURE = "03044561471240d4a14bb09372dfcfd4fd0e40cb"
VECTOR_A_TIMESTAMP = "1608001896814"
VECTOR_A_NONCE = "WL4PK6yA"
VECTOR_A_ENCRYPT = (
    "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxO"
    "K+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3"
)
VECTOR_A_PLAINTEXT = '{"EventType":"check_url"}'

# Official vector B (DingTalkCrypto.go): an encrypted `success`, the shape of our replies.
VECTOR_B = {
    "token": "tokenxxxx",
    "aes_key": "o1w0aum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus",
    "owner": "dingxxxxxx",
    "signature": "f36f4ba5337d426c7d4bca0dbcb06b3ddc1388fc",
    "timestamp": "1605695694141",
    "nonce": "WelUQl6bCqcBa2fM",
    "encrypt": (
        "X1VSe9cTJUMZu60d3kyLYTrBq5578ZRJtteU94wG0Q4Uk6E/wQYeJRIC0/UFW5Wkya1Ihz9oXAdLlyC9TRaqsQ=="
    ),
}

PATH = "/dingtalk/events"
INPUT = "events"
ROBOT = "tok-callback"
BACKLOG_ROBOT = "tok-callback-backlog"
OTHER_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 chars, not ours
_ALNUM = string.ascii_letters + string.digits


# -- the client side of the crypto, written independently of bridge/dingtalk/callback_crypto.py --


def key_of(aes_key: str) -> bytes:
    key = base64.b64decode(aes_key + "=")
    assert len(aes_key) == 43 and len(key) == 32
    return key


def sign(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def layout(
    message: bytes, owner: str, *, prefix: bytes | None = None, length: int | None = None
) -> bytes:
    """random16 | uint32_be(len(message)) | message | owner, unpadded."""
    prefix = (
        prefix
        if prefix is not None
        else "".join(secrets.choice(_ALNUM) for _ in range(16)).encode("ascii")
    )
    size = len(message) if length is None else length
    return prefix + struct.pack(">I", size) + message + owner.encode("utf-8")


def pad32(data: bytes) -> bytes:
    """DingTalk's padding: to a 32-byte block (not AES's 16), 1..32 bytes each of value n."""
    n = 32 - len(data) % 32
    return data + bytes([n]) * n


def encrypt_raw(key: bytes, padded: bytes) -> str:
    assert len(padded) % 16 == 0
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def seal(
    message: str, owner: str = OWNER, aes_key: str = AES_KEY, prefix: bytes | None = None
) -> str:
    return encrypt_raw(key_of(aes_key), pad32(layout(message.encode(), owner, prefix=prefix)))


def unseal(encrypt: str, aes_key: str = AES_KEY) -> tuple[bytes, str, str]:
    """(random prefix, message, owner key); strict about padding and the length field."""
    data = base64.b64decode(encrypt, validate=True)
    assert data and len(data) % 32 == 0, "not padded to 32-byte blocks"
    key = key_of(aes_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    n = plain[-1]
    assert 1 <= n <= 32 and plain[-n:] == bytes([n]) * n, f"bad 32-byte padding {plain[-n:]!r}"
    plain = plain[:-n]
    (length,) = struct.unpack(">I", plain[16:20])
    assert 20 + length <= len(plain), "length field too long"
    return plain[:16], plain[20 : 20 + length].decode("utf-8"), plain[20 + length :].decode()


def nonce() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(8))  # like vector A's "WL4PK6yA"


def now_ms(offset_seconds: float = 0.0) -> str:
    return str(int((time.time() + offset_seconds) * 1000))


@dataclass
class Callback:
    """One HTTP request as DingTalk sends it."""

    query: dict[str, str]
    body: bytes

    def post(self, to: Daemon | str) -> requests.Response:
        base = to if isinstance(to, str) else to.url
        return requests.post(
            f"{base}{PATH}?{urlencode(self.query)}",
            data=self.body,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )


def callback(
    event: dict[str, Any] | None = None,
    *,
    encrypt: str | None = None,
    timestamp: str | None = None,
    nonce_: str | None = None,
    token: str = TOKEN,
    spelling: str = "signature",
) -> Callback:
    """`event` encrypted for our input (or a ready `encrypt`), signed with `token` for now."""
    if encrypt is None:
        assert event is not None
        encrypt = seal(json.dumps(event, ensure_ascii=False))  # raw UTF-8, as DingTalk sends
    timestamp = timestamp or now_ms()
    nonce_ = nonce_ or nonce()
    signature = sign(token, timestamp, nonce_, encrypt)
    if spelling == "signature":
        query = {"signature": signature, "timestamp": timestamp, "nonce": nonce_}
    else:
        query = {"msg_signature": signature, "timeStamp": timestamp, "nonce": nonce_}
    return Callback(query, json.dumps({"encrypt": encrypt}).encode())


def user_add_org(*users: str, **fields: Any) -> dict[str, Any]:
    return {
        "EventType": "user_add_org",
        "TimeStamp": now_ms(),
        "UserId": list(users),
        "CorpId": OWNER,
        **fields,
    }


CHECK_URL = {"EventType": "check_url"}


def assert_success_reply(response: requests.Response) -> dict[str, str]:
    """The reply DingTalk waits for: 200 {msg_signature, timeStamp, nonce, encrypt('success')}."""
    assert response.status_code == 200, response.text
    reply: dict[str, str] = response.json()
    assert set(reply) == {"msg_signature", "timeStamp", "nonce", "encrypt"}, reply
    assert all(isinstance(v, str) and v for v in reply.values()), reply
    assert reply["timeStamp"].isdigit()
    stamp = int(reply["timeStamp"])  # milliseconds (documented) or seconds (Python demo)
    assert abs((stamp / 1000 if stamp > 10**11 else stamp) - time.time()) < 3600  # current
    assert reply["msg_signature"] == sign(
        TOKEN, reply["timeStamp"], reply["nonce"], reply["encrypt"]
    )
    assert "\n" not in reply["encrypt"]  # plain b64encode, not encodebytes
    prefix, message, owner = unseal(reply["encrypt"])
    assert (len(prefix), message, owner) == (16, "success", OWNER)
    return reply


# -- fixtures ----------------------------------------------------------------------------------


def robot_target(sim: Simulator) -> dict[str, Any]:
    return {"type": "robot", "webhook": sim.robot_url(ROBOT), "rate_limit": {"messages": 0}}


def input_config(**secrets_: str) -> dict[str, Any]:
    return {
        "type": "dingtalk_callback",
        "path": PATH,
        **(secrets_ or {"token": TOKEN, "aes_key": AES_KEY}),
        "owner_key": OWNER,
        "max_age": "1h",
    }


RULES = [
    {"name": "joins", "match": {"EventType": "user_add_org"}, "targets": ["ops"]},
    # A trap: if the check_url handshake were routed like an event, this would send it.
    {"name": "trap", "match": {"EventType": "check_url"}, "targets": ["ops"]},
]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(
        spec={"robots": {ROBOT: {"rate_per_minute": 0}, BACKLOG_ROBOT: {"rate_per_minute": 0}}}
    )
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def daemon(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(
        {"targets": {"ops": robot_target(sim)}, "inputs": {INPUT: input_config()}, "rules": RULES},
        directory=tmp_path_factory.mktemp("callback"),
    )
    yield d
    d.stop()


@dataclass
class Mark:
    """Where the simulator and the daemon's log stood when a test began."""

    requests: int
    messages: int
    log: int


@pytest.fixture
def mark(sim: Simulator, daemon: Daemon) -> Mark:
    stats = sim.stats()
    return Mark(stats["requests"], stats["messages"], len(daemon.log()))


def new_log(daemon: Daemon, mark: Mark) -> str:
    return daemon.log()[mark.log :]


def send_marker(daemon: Daemon) -> str:
    marker = f"marker-{uuid.uuid4().hex[:12]}"
    assert_success_reply(callback(user_add_org(marker)).post(daemon))
    return marker


def robot_got_only(sim: Simulator, daemon: Daemon, mark: Mark, *expected: str) -> None:
    """After a marker has arrived, the robot has received exactly the messages naming
    `expected` (in order) and the marker, and no other request."""
    marker = send_marker(daemon)
    wanted = [*expected, marker]
    got = sim.wait_messages(len(wanted), since=str(mark.messages))
    assert len(got) == len(wanted), [m["text"] for m in got]
    for message, word in zip(got, wanted, strict=True):
        assert message["token"] == ROBOT and word in message["text"], (word, message["text"])
    assert sim.stats()["requests"] == mark.requests + len(wanted)


def rejected_line(status: int, reason: str) -> str:
    return f"request rejected input={INPUT} status={status} reason={reason}"


# -- the test's own crypto, against the official vectors ---------------------------------------


def test_own_crypto_matches_the_official_vectors() -> None:
    assert key_of(AES_KEY)[:16].hex() == "62e7b411f74de7dd3473571ee5c7fa03"
    assert sign(TOKEN, VECTOR_A_TIMESTAMP, VECTOR_A_NONCE, VECTOR_A_ENCRYPT) == VECTOR_A_SIGNATURE
    assert unseal(VECTOR_A_ENCRYPT) == (b"l7Y3EcX2CU5w8av3", VECTOR_A_PLAINTEXT, OWNER)
    # Encrypting goes the same way: with the vector's random prefix, its exact ciphertext.
    assert seal(VECTOR_A_PLAINTEXT, prefix=b"l7Y3EcX2CU5w8av3") == VECTOR_A_ENCRYPT
    b = VECTOR_B
    assert sign(b["token"], b["timestamp"], b["nonce"], b["encrypt"]) == b["signature"]
    assert unseal(b["encrypt"], b["aes_key"]) == (b"WelUQl6bCqcBa2fM", "success", b["owner"])
    assert seal("success", b["owner"], b["aes_key"], b"WelUQl6bCqcBa2fM") == b["encrypt"]


# -- 1. check_url ------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["signature", "msg_signature"])
def test_check_url_is_answered_with_encrypted_success_and_not_routed(
    sim: Simulator, daemon: Daemon, mark: Mark, spelling: str
) -> None:
    first = assert_success_reply(callback(CHECK_URL, spelling=spelling).post(daemon))
    second = assert_success_reply(callback(CHECK_URL, spelling=spelling).post(daemon))
    assert first["nonce"] != second["nonce"] and first["encrypt"] != second["encrypt"]
    assert new_log(daemon, mark).count(f"callback URL checked input={INPUT}") == 2
    robot_got_only(sim, daemon, mark)  # the trap rule for check_url sent nothing


# -- 2. the official vector A ------------------------------------------------------------------


def test_official_vector_a_cannot_be_replayed_but_its_plaintext_signed_for_now_passes(
    sim: Simulator, daemon: Daemon, mark: Mark
) -> None:
    # As published: signed for a timestamp from 2020, far outside max_age.
    published = Callback(
        {
            "msg_signature": VECTOR_A_SIGNATURE,
            "timeStamp": VECTOR_A_TIMESTAMP,
            "nonce": VECTOR_A_NONCE,
        },
        json.dumps({"encrypt": VECTOR_A_ENCRYPT}).encode(),
    )
    response = published.post(daemon)
    assert (response.status_code, response.json()["reason"]) == (400, "stale")
    # The same ciphertext and signature with a fresh timestamp: the signature no longer fits.
    fresh = Callback(
        {"msg_signature": VECTOR_A_SIGNATURE, "timeStamp": now_ms(), "nonce": VECTOR_A_NONCE},
        published.body,
    )
    response = fresh.post(daemon)
    assert (response.status_code, response.json()["reason"]) == (401, "unauthorized")
    log = new_log(daemon, mark)
    assert rejected_line(400, "stale") in log and rejected_line(401, "unauthorized") in log
    # The vector's plaintext, encrypted again and signed for now, as DingTalk would send it today.
    assert_success_reply(callback(encrypt=seal(VECTOR_A_PLAINTEXT), spelling="msg").post(daemon))
    # And the vector's own ciphertext, signed for now with the right token, opens as well.
    assert_success_reply(callback(encrypt=VECTOR_A_ENCRYPT).post(daemon))
    robot_got_only(sim, daemon, mark)


# -- 3. routed events --------------------------------------------------------------------------


def test_user_add_org_reaches_the_robot_once(sim: Simulator, daemon: Daemon, mark: Mark) -> None:
    assert_success_reply(callback(user_add_org("u-1001", "u-1002")).post(daemon))
    [message] = sim.wait_messages(1, since=str(mark.messages))
    assert message["token"] == ROBOT
    assert message["title"] == f"[user_add_org] {INPUT}"
    # Labels: EventType and the plain fields; the UserId list joined with ",".
    assert "UserId: u-1001,u-1002" in message["text"]
    assert f"CorpId: {OWNER}" in message["text"]
    assert "callback accepted input=events event_type=user_add_org messages=1" in new_log(
        daemon, mark
    )
    robot_got_only(sim, daemon, mark, "u-1001,u-1002")


def test_an_event_no_rule_matches_is_answered_and_sends_nothing(
    sim: Simulator, daemon: Daemon, mark: Mark
) -> None:
    event = {"EventType": "org_dept_create", "DeptId": [42], "CorpId": OWNER, "TimeStamp": now_ms()}
    assert_success_reply(callback(event).post(daemon))
    assert "event_type=org_dept_create messages=0" in new_log(daemon, mark)
    robot_got_only(sim, daemon, mark)


def test_an_event_with_chinese_values(sim: Simulator, daemon: Daemon, mark: Mark) -> None:
    event = user_add_org("张三", Dept="研发部·北京", Remark="新员工入职（试用期）")
    assert_success_reply(callback(event, spelling="msg").post(daemon))
    [message] = sim.wait_messages(1, since=str(mark.messages))
    assert "UserId: 张三" in message["text"] and "研发部·北京" in message["text"]
    assert "新员工入职（试用期）" in message["text"]
    robot_got_only(sim, daemon, mark, "张三")


@pytest.mark.parametrize("seconds", [-50 * 60, 30])
def test_a_timestamp_inside_the_window_is_accepted(
    sim: Simulator, daemon: Daemon, mark: Mark, seconds: int
) -> None:
    """max_age (1h) back; a little clock skew ahead."""
    user = f"skewed-{seconds}"
    assert_success_reply(callback(user_add_org(user), timestamp=now_ms(seconds)).post(daemon))
    robot_got_only(sim, daemon, mark, user)


# -- 4. rejections -----------------------------------------------------------------------------


def _without(key: str) -> Callable[[], Callback]:
    def build() -> Callback:
        request = callback(user_add_org("never"))
        del request.query[key]
        return request

    return build


def _body(body: bytes) -> Callable[[], Callback]:
    def build() -> Callback:
        request = callback(user_add_org("never"))
        request.body = body
        return request

    return build


def _plain(plaintext: bytes, aes_key: str = AES_KEY) -> Callable[[], Callback]:
    """A correctly signed callback whose ciphertext is `plaintext` (already padded)."""
    return lambda: callback(encrypt=encrypt_raw(key_of(aes_key), plaintext))


def _signed_encrypt(encrypt: str) -> Callable[[], Callback]:
    return lambda: callback(encrypt=encrypt)


def _bad_signature(how: str) -> Callable[[], Callback]:
    def build() -> Callback:
        if how == "other token":
            return callback(user_add_org("never"), token="not-mryue")
        request = callback(user_add_org("never"))
        if how == "other body":  # a valid signature, for another ciphertext
            other = seal(json.dumps(user_add_org("never-2")))
            request.query["signature"] = sign(
                TOKEN, request.query["timestamp"], request.query["nonce"], other
            )
        elif how == "other nonce":
            request.query["nonce"] = nonce()
        return request

    return build


_EVENT = json.dumps(user_add_org("never")).encode()
_FIXED = b"0123456789abcdef"  # a fixed random prefix keeps the malformed ciphertexts deterministic
_BODY = layout(_EVENT, OWNER, prefix=_FIXED)
_PAD = 32 - len(_BODY) % 32

REJECTIONS: list[tuple[str, Callable[[], Callback], int, str]] = [
    ("no signature", _without("signature"), 400, "bad_request"),
    ("no timestamp", _without("timestamp"), 400, "bad_request"),
    ("no nonce", _without("nonce"), 400, "bad_request"),
    ("body is a list", _body(b"[]"), 400, "bad_request"),
    ("body without encrypt", _body(b'{"Encrypt": "abc"}'), 400, "bad_request"),
    ("encrypt is not a string", _body(b'{"encrypt": 12345}'), 400, "bad_request"),
    ("body is not JSON", _body(b"encrypt=abc"), 400, "bad_request"),
    (
        "stale: 2h old",
        lambda: callback(user_add_org("never"), timestamp=now_ms(-7200)),
        400,
        "stale",
    ),
    (
        "stale: 2h ahead",
        lambda: callback(user_add_org("never"), timestamp=now_ms(7200)),
        400,
        "stale",
    ),
    (  # inside max_age, but no honest clock is 58 minutes fast: it stayed valid for 1h58m
        "stale: 58 minutes ahead",
        lambda: callback(user_add_org("never"), timestamp=now_ms(58 * 60)),
        400,
        "stale",
    ),
    ("signed with another token", _bad_signature("other token"), 401, "unauthorized"),
    ("signature for another body", _bad_signature("other body"), 401, "unauthorized"),
    ("signature for another nonce", _bad_signature("other nonce"), 401, "unauthorized"),
    ("encrypt is not base64", _signed_encrypt("not base64 at all!"), 400, "bad_request"),
    (
        "not whole AES blocks",
        _signed_encrypt(base64.b64encode(bytes(40)).decode()),
        400,
        "bad_request",
    ),
    ("another aes_key", _plain(pad32(_BODY), OTHER_AES_KEY), 400, "bad_request"),
    ("pad byte 0", _plain(_BODY + bytes(_PAD)), 400, "bad_request"),
    ("pad byte 33", _plain(_BODY + bytes([33]) * _PAD), 400, "bad_request"),
    (
        "pad bytes disagree",
        _plain(_BODY + b"\x01" * (_PAD - 1) + bytes([_PAD])),
        400,
        "bad_request",
    ),
    (
        "length field past the end",
        _plain(pad32(layout(_EVENT, OWNER, prefix=_FIXED, length=len(_EVENT) + 64))),
        400,
        "bad_request",
    ),
    ("shorter than its length field", _plain(pad32(_FIXED + b"\x00\x00")), 400, "bad_request"),
    ("message not UTF-8", _plain(pad32(layout(b"\xff\xfe{}", OWNER))), 400, "bad_request"),
    ("message not JSON", _plain(pad32(layout(b"EventType=x", OWNER))), 400, "bad_request"),
    ("no EventType", _plain(pad32(layout(b'{"UserId": ["a"]}', OWNER))), 400, "bad_request"),
    ("another owner key", _plain(pad32(layout(_EVENT, "dingotherorg0000000"))), 403, "forbidden"),
    ("owner key one char short", _plain(pad32(layout(_EVENT, OWNER[:-1]))), 403, "forbidden"),
    ("owner key one char long", _plain(pad32(layout(_EVENT, OWNER + "x"))), 403, "forbidden"),
]


@pytest.mark.parametrize(
    ("build", "status", "reason"),
    [pytest.param(b, s, r, id=name) for name, b, s, r in REJECTIONS],
)
def test_rejection(
    sim: Simulator,
    daemon: Daemon,
    mark: Mark,
    build: Callable[[], Callback],
    status: int,
    reason: str,
) -> None:
    response = build().post(daemon)
    assert response.status_code == status, response.text
    assert response.json()["reason"] == reason
    wait_until(lambda: rejected_line(status, reason) in new_log(daemon, mark), timeout=5)
    assert "callback accepted" not in new_log(daemon, mark)
    robot_got_only(sim, daemon, mark)  # nothing reached the robot, and the daemon still serves


def test_an_absurd_timestamp_is_a_client_error_not_a_crash(
    sim: Simulator, daemon: Daemon, mark: Mark
) -> None:
    response = callback(user_add_org("never"), timestamp="1" + "0" * 400).post(daemon)
    assert response.status_code == 400, response.text
    reason = response.json()["reason"]
    assert reason in ("stale", "bad_request")
    log = new_log(daemon, mark)
    assert rejected_line(400, reason) in log and "Traceback" not in log
    robot_got_only(sim, daemon, mark)


def test_the_daemon_still_serves_after_every_rejection_in_a_row(
    sim: Simulator, daemon: Daemon, mark: Mark
) -> None:
    answers = [build().post(daemon).status_code for _, build, _, _ in REJECTIONS]
    assert answers == [status for _, _, status, _ in REJECTIONS]
    assert_success_reply(callback(CHECK_URL).post(daemon))
    assert_success_reply(callback(user_add_org("after-rejections")).post(daemon))
    robot_got_only(sim, daemon, mark, "after-rejections")


# -- 5. replay ---------------------------------------------------------------------------------


def test_the_same_request_again_is_answered_again_and_delivered_once(
    sim: Simulator, daemon: Daemon, mark: Mark
) -> None:
    """DingTalk sends a callback again when our answer was lost: the very same request gets the
    encrypted success again, and is not routed a second time."""
    request = callback(user_add_org("redelivered-user"))
    assert_success_reply(request.post(daemon))
    assert_success_reply(request.post(daemon))
    # The same (nonce, timestamp) under the other query spelling is the same callback.
    q = request.query
    other_spelling = Callback(
        {"msg_signature": q["signature"], "timeStamp": q["timestamp"], "nonce": q["nonce"]},
        request.body,
    )
    assert_success_reply(other_spelling.post(daemon))
    assert new_log(daemon, mark).count(f"callback taken before, answered again input={INPUT}") == 2
    robot_got_only(sim, daemon, mark, "redelivered-user")  # delivered once


def test_a_nonce_reused_for_another_event_is_a_replay(
    sim: Simulator, daemon: Daemon, mark: Mark
) -> None:
    request = callback(user_add_org("first-user"))
    assert_success_reply(request.post(daemon))
    q = request.query
    # Another event, properly signed, under a (nonce, timestamp) already used: refused.
    reused = callback(user_add_org("reused-nonce"), timestamp=q["timestamp"], nonce_=q["nonce"])
    refused = reused.post(daemon)
    assert (refused.status_code, refused.json()["reason"]) == (409, "replay")
    assert new_log(daemon, mark).count(rejected_line(409, "replay")) == 1
    robot_got_only(sim, daemon, mark, "first-user")


def test_a_repeated_check_url_is_answered_again(daemon: Daemon, mark: Mark) -> None:
    request = callback(CHECK_URL)
    assert_success_reply(request.post(daemon))
    assert_success_reply(request.post(daemon))
    log = new_log(daemon, mark)
    assert log.count("callback URL checked") == 1 and "answered again" in log


def test_the_replay_memory_survives_a_restart(sim: Simulator, tmp_path: Path) -> None:
    """Refused (409) before a restart, refused after it: the memory is in the state store.
    And the very same request is still only answered, not delivered again."""

    def start() -> Daemon:
        return Daemon(
            {
                "targets": {"ops": robot_target(sim)},
                "inputs": {INPUT: input_config()},
                "rules": RULES,
            },
            directory=tmp_path,
        )

    first = callback(user_add_org("before-restart"))
    reused = callback(
        user_add_org("replayed-after-restart"),
        timestamp=first.query["timestamp"],
        nonce_=first.query["nonce"],
    )
    d = start()
    try:
        assert_success_reply(first.post(d))
        wait_until(lambda: "before-restart" in str(sim.messages()), timeout=20)
        assert reused.post(d).status_code == 409
    finally:
        d.stop()
    d = start()
    try:
        refused = reused.post(d)
        assert (refused.status_code, refused.json()["reason"]) == (409, "replay")
        assert_success_reply(first.post(d))
        assert "callback taken before, answered again" in d.log()
        marker = f"after-restart-{uuid.uuid4().hex[:8]}"
        assert_success_reply(callback(user_add_org(marker)).post(d))
        wait_until(lambda: marker in str(sim.messages()), timeout=20)
        texts = [m["text"] for m in sim.messages()]
        assert sum("before-restart" in t for t in texts) == 1
        assert not any("replayed-after-restart" in t for t in texts)
    finally:
        d.stop()


def test_a_callback_refused_for_a_full_queue_can_be_retried(sim: Simulator, tmp_path: Path) -> None:
    """The bridge answers 503 queue_full ("retry later", Retry-After: 10) to an authentic
    callback when the target is backlogged; the same request sent again once there is room must
    be taken, not refused as a replay (that would lose the event for good)."""
    target = {**robot_target(sim), "webhook": sim.robot_url(BACKLOG_ROBOT), "queue_size": 1}
    d = Daemon(
        {"targets": {"ops": target}, "inputs": {INPUT: input_config()}, "rules": RULES},
        directory=tmp_path,
    )
    try:
        # The first message is held at the robot for a moment: the queue (size 1) is full.
        fault = {
            "path": "/robot/send",
            "token": BACKLOG_ROBOT,
            "count": 1,
            "action": {"delay": 1.5},
        }
        sim.control("faults", fault)
        assert_success_reply(callback(user_add_org("backlog-first")).post(d))
        request = callback(user_add_org("backlog-second"))
        refused = request.post(d)
        assert (refused.status_code, refused.json()["reason"]) == (503, "queue_full")
        assert refused.headers.get("Retry-After")
        wait_until(lambda: sim.messages(token=BACKLOG_ROBOT), timeout=10)
        # Retried as told (the same request): 503 while still full, then taken.
        answers: list[requests.Response] = []

        def retry() -> bool:
            answers.append(request.post(d))
            return answers[-1].status_code != 503

        wait_until(retry, timeout=10)
        retried = answers[-1]
        assert retried.status_code == 200, retried.text
        assert_success_reply(retried)
        second = sim.wait_messages(2, token=BACKLOG_ROBOT)[1]
        assert "backlog-second" in second["text"]
    finally:
        d.stop()


# -- 7. secrets --------------------------------------------------------------------------------


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/healthy", timeout=1).ok
    except requests.ConnectionError:
        return False


def test_secrets_never_reach_the_log(sim: Simulator, tmp_path: Path) -> None:
    """At debug level, through accepted, unrouted and rejected callbacks, with the secrets read
    from token_file / aes_key_file."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "aes_key").write_text(AES_KEY + "\n")
    port = free_port()
    config = {
        "state_dir": str(tmp_path / "state"),
        "server": {"listen": f"127.0.0.1:{port}"},
        "targets": {"ops": robot_target(sim)},
        "inputs": {
            INPUT: input_config(
                token_file=str(tmp_path / "token"), aes_key_file=str(tmp_path / "aes_key")
            )
        },
        "rules": RULES,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    proc = Process(["run", "-c", str(path), "--log-level", "debug"])
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url), timeout=15)
        replies = [
            callback(CHECK_URL).post(url),
            callback(user_add_org("secret-test")).post(url),
            callback({"EventType": "org_dept_create", "DeptId": [1]}).post(url),
        ]
        for r in replies:
            assert_success_reply(r)
        for _, build, status, _ in REJECTIONS:
            assert build().post(url).status_code == status
        request = callback(user_add_org("secret-replay"))
        assert [request.post(url).status_code for _ in range(2)] == [200, 200]
        wait_until(lambda: "secret-replay" in str(sim.messages()), timeout=10)
    finally:
        proc.stop()
    log = proc.log()
    assert "request rejected" in log and "callback accepted" in log and "stopped" in log
    assert TOKEN not in log
    assert AES_KEY not in log
    assert AES_KEY[:16] not in log and AES_KEY[-16:] not in log
    for r in replies:
        assert TOKEN not in r.text and AES_KEY not in r.text


# -- check -------------------------------------------------------------------------------------


def test_check_rejects_an_aes_key_of_42_characters(tmp_path: Path) -> None:
    config = {
        "targets": {"ops": {"type": "robot", "webhook": "http://127.0.0.1:9/robot/send?x=1"}},
        "inputs": {INPUT: {**input_config(), "aes_key": AES_KEY[:42]}},
        "rules": RULES[:1],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    result = bridge_cli("check", "-c", str(path), timeout=30)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"inputs.{INPUT}.aes_key" in result.stderr
    assert "43" in result.stderr
    assert AES_KEY[:42] not in result.stdout + result.stderr
