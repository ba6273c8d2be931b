"""Hostile or broken bodies against the real daemon: each case that once answered 500 (or was
accepted and then blocked its target) gets a 400 with a reason, or is taken and delivered.

The limits are those of bridge/inputs/jsonbody.py: strict UTF-8, lone surrogate escapes read as
U+FFFD, at most 64 levels of nesting, integers of at most 1000 digits. Times in Alertmanager
payloads are made timezone-aware at intake (a time without a zone is UTC).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.harness import Daemon, Simulator, am_alert_payload, wait_until
from tests.test_e2e_callback import (
    AES_KEY,
    OWNER,
    Callback,
    assert_success_reply,
    callback,
    encrypt_raw,
    key_of,
    layout,
    pad32,
    user_add_org,
)

ROBOT = "tok-hostile"
CALLBACK_PATH = "/dingtalk/events"  # what tests.test_e2e_callback's Callback posts to


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {ROBOT: {"rate_per_minute": 0}}})
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def daemon(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    config: dict[str, Any] = {
        "targets": {
            "ops": {"type": "robot", "webhook": sim.robot_url(ROBOT), "rate_limit": {"messages": 0}}
        },
        "inputs": {
            "am": {"type": "alertmanager", "path": "/am"},
            "hook": {"type": "webhook", "path": "/hook", "labels": {"name": "{{ body.name }}"}},
            "events": {
                "type": "dingtalk_callback",
                "path": CALLBACK_PATH,
                "token": "mryue",
                "aes_key": AES_KEY,
                "owner_key": OWNER,
            },
        },
        "rules": [
            {
                "name": "am",
                "inputs": ["am"],
                "targets": ["ops"],
                "msgtype": "text",
                "template": (
                    "{% for a in alerts %}{{ a.status }} {{ a.labels.alertname }} "
                    "{{ a.labels.host }} from {{ a.startsAt }} lasted {{ a.duration }}\n"
                    "{% endfor %}"
                ),
            },
            {
                "name": "hook",
                "inputs": ["hook"],
                "targets": ["ops"],
                "msgtype": "text",
                "template": (
                    "hook {{ labels.name }} "
                    "{{ (body.deep | tojson | length) if body.deep is defined else '-' }}"
                ),
            },
            {"name": "events", "inputs": ["events"], "targets": ["ops"], "msgtype": "text"},
        ],
    }
    d = Daemon(config, directory=tmp_path_factory.mktemp("hostile"))
    yield d
    d.stop()


@pytest.fixture(autouse=True)
def fresh(sim: Simulator, daemon: Daemon) -> Iterator[None]:
    sim.control("reset")
    yield
    assert daemon.proc.poll() is None
    assert "Traceback" not in daemon.log() and "request failed" not in daemon.log()


def post(daemon: Daemon, path: str, raw: bytes) -> requests.Response:
    return daemon.post(path, data=raw, headers={"Content-Type": "application/json"})


def refused(response: requests.Response, *words: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["reason"] == "bad_request", body
    for word in words:
        assert word in body["error"], body


def texts(sim: Simulator, count: int) -> list[str]:
    return [m["text"] for m in sim.wait_messages(count, timeout=30)]


# -- lone surrogates ---------------------------------------------------------------------------


def test_a_lone_surrogate_escape_in_a_label_is_delivered_as_a_replacement_character(
    daemon: Daemon, sim: Simulator
) -> None:
    raw = json.dumps(am_alert_payload("Surrogate", host="web-1")).replace("web-1", "web-\\ud800")
    response = post(daemon, "/am", raw.encode())
    assert response.status_code == 200, response.text
    [text] = texts(sim, 1)
    assert "Surrogate web-\ufffd" in text


def test_a_surrogate_pair_escape_is_the_character_it_encodes(
    daemon: Daemon, sim: Simulator
) -> None:
    raw = b'{"name": "fire-\\ud83d\\udd25"}'
    assert post(daemon, "/hook", raw).status_code == 200
    assert "hook fire-🔥" in texts(sim, 1)[0]


@pytest.mark.parametrize("path", ["/am", "/hook"])
def test_raw_surrogate_bytes_are_not_utf8_and_refused(daemon: Daemon, path: str) -> None:
    raw = (
        json.dumps(am_alert_payload("Raw", host="HOST")).encode().replace(b"HOST", b"\xed\xa0\x80")
    )
    refused(post(daemon, path, raw), "not UTF-8")


# -- numbers and nesting -----------------------------------------------------------------------


@pytest.mark.parametrize("digits", [4301, 5000, 100_000])
def test_a_huge_integer_is_refused(daemon: Daemon, digits: int) -> None:
    refused(post(daemon, "/hook", b'{"name": "n", "x": ' + b"9" * digits + b"}"), "digits")


def test_a_thousand_digit_integer_is_taken(daemon: Daemon, sim: Simulator) -> None:
    response = post(daemon, "/hook", b'{"name": "big", "deep": ' + b"7" * 1000 + b"}")
    assert response.status_code == 200, response.text
    assert "hook big 1000" in texts(sim, 1)[0]


@pytest.mark.parametrize("depth", [65, 975, 980, 984, 100_000])
def test_json_nested_too_deep_is_refused(daemon: Daemon, depth: int) -> None:
    raw = b'{"name": "deep", "deep": ' + b"[" * depth + b"]" * depth + b"}"
    refused(post(daemon, "/hook", raw), "nested deeper than 64")


def test_json_nested_64_deep_is_taken_and_delivered(daemon: Daemon, sim: Simulator) -> None:
    raw = b'{"name": "deep64", "deep": ' + b"[" * 63 + b"]" * 63 + b"}"  # the body is level 1
    assert post(daemon, "/hook", raw).status_code == 200
    assert f"hook deep64 {2 * 63}" in texts(sim, 1)[0]


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(daemon: Daemon, constant: bytes) -> None:
    refused(post(daemon, "/hook", b'{"name": "n", "x": ' + constant + b"}"), "not a JSON value")


# -- times in Alertmanager payloads ------------------------------------------------------------


def _with_times(alertname: str, status: str, starts: str, ends: str) -> dict[str, Any]:
    payload = am_alert_payload(alertname, status=status, host="db-1")
    payload["status"] = status
    payload["alerts"][0].update(status=status, startsAt=starts, endsAt=ends)
    return payload


def _drained(daemon: Daemon, queue: str) -> dict[str, Any] | None:
    """The daemon's /-/ready report once `queue` has nothing pending, else None."""
    ready: dict[str, Any] = requests.get(f"{daemon.url}/-/ready", timeout=5).json()
    return ready if ready["queues"][queue]["pending"] == 0 else None


def test_a_naive_start_and_an_aware_end_are_delivered_and_block_nothing(
    daemon: Daemon, sim: Simulator
) -> None:
    """startsAt without a zone and endsAt with Z: accepted, then every send failed (naive minus
    aware) and the target was stuck behind it. A naive time is UTC, as Alertmanager reads one."""
    # Firing, with the end Alertmanager expects if nothing more is heard (its resolve_timeout).
    naive = _with_times("Naive", "firing", "2026-11-28T14:00:00", "2026-11-28T15:30:00Z")
    assert daemon.post("/am", naive).status_code == 200
    aware = _with_times("Aware", "firing", "2026-11-28T22:00:00+08:00", "0001-01-01T00:00:00Z")
    assert daemon.post("/am", aware).status_code == 200
    nanos = _with_times("Nanos", "firing", "2026-11-28t14:00:00.123456789z", "2026-11-28T14:05:00")
    assert daemon.post("/am", nanos).status_code == 200
    got = texts(sim, 3)
    assert "firing Naive db-1 from 2026-11-28T14:00:00+00:00 lasted 1h 30m" in got[0]
    assert got[1].strip() == "firing Aware db-1 from 2026-11-28T22:00:00+08:00 lasted"
    assert "firing Nanos db-1 from 2026-11-28T14:00:00.123456+00:00 lasted 4m 59s" in got[2]
    # The simulator can hold the third message a moment before the daemon records it as sent.
    ready = wait_until(lambda: _drained(daemon, "ops"))
    assert ready["store"]["dead_letters"] == 0, ready


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("startsAt", "9999-12-31T23:59:59-01:00", "out of range"),
        ("endsAt", "0001-01-01T00:00:00+01:00", "out of range"),
        ("startsAt", "10000-01-01T00:00:00Z", "not an RFC 3339 time"),
        ("startsAt", "0000-01-01T00:00:00Z", "not an RFC 3339 time"),
        ("startsAt", "yesterday", "not an RFC 3339 time"),
        ("endsAt", "2026-11-28T25:00:00Z", "not an RFC 3339 time"),
        ("startsAt", "2026-11-28T14:00:00Z" + " " * 100, "not an RFC 3339 time"),
        ("startsAt", 1764338400, "must be an RFC 3339 time string"),
    ],
)
def test_a_bad_time_is_refused_naming_the_field(
    daemon: Daemon, sim: Simulator, field: str, value: Any, words: str
) -> None:
    payload = am_alert_payload("BadTime")
    payload["alerts"][0][field] = value
    refused(daemon.post("/am", payload), f"alerts[0].{field}", words)


# -- DingTalk callbacks ------------------------------------------------------------------------


def _signed_message(message: bytes) -> Callback:
    """A correctly signed callback whose decrypted message is `message`."""
    return callback(encrypt=encrypt_raw(key_of(AES_KEY), pad32(layout(message, OWNER))))


def test_callback_garbage_before_the_signature_is_refused_without_decrypting(
    daemon: Daemon,
) -> None:
    good = callback(user_add_org("never"))
    raw_surrogate = Callback(good.query, b'{"encrypt": "abc\xed\xa0\x80"}')
    refused(raw_surrogate.post(daemon.url), "not UTF-8")
    escaped = Callback(good.query, b'{"encrypt": "abc\\ud800"}')
    answer = escaped.post(daemon.url)
    assert (answer.status_code, answer.json()["reason"]) == (401, "unauthorized")
    deep = Callback(good.query, b'{"encrypt": ' + b"[" * 980 + b"]" * 980 + b"}")
    refused(deep.post(daemon.url), "nested deeper")


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (b'{"EventType": "x", "deep": ' + b"[" * 980 + b"]" * 980 + b"}", "nested deeper"),
        (b'{"EventType": "x", "n": ' + b"1" * 5000 + b"}", "digits"),
        (b'{"EventType": "x", "UserId": "\xed\xa0\x80"}', "not UTF-8"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"EventType": 7}', "no EventType"),
    ],
)
def test_callback_garbage_after_a_valid_signature_is_a_400(
    daemon: Daemon, message: bytes, words: str
) -> None:
    refused(_signed_message(message).post(daemon.url), words)


def test_a_lone_surrogate_in_a_callback_event_is_delivered(daemon: Daemon, sim: Simulator) -> None:
    request = _signed_message(b'{"EventType": "user_add_org", "UserId": ["u-\\udc00-x"]}')
    assert_success_reply(request.post(daemon.url))
    assert "u-\ufffd-x" in texts(sim, 1)[0]
