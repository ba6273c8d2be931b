"""The real daemon process, a real config file, real sockets; DingTalk is the simulator."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.harness import Daemon, Simulator, am_alert_payload, fixture_json, wait_until

SIGNING_SECRET = "SECtest-signing-secret"
APP_SECRET = "app-secret-value"
HOOK_TOKEN = "hook-token-value"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    # No rate limit here: these tests send more than 20 messages a minute to one robot, and the
    # rate limit is not what they are about.
    sim = Simulator(
        spec={
            "robots": {
                "tok-plain": {"rate_per_minute": 0},
                "tok-signed": {
                    "secret": SIGNING_SECRET,
                    "keywords": ["告警"],
                    "rate_per_minute": 0,
                },
            },
            "apps": {"app-key": {"app_secret": APP_SECRET, "agent_id": 4242}},
        }
    )
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def daemon(sim: Simulator) -> Iterator[Daemon]:
    config: dict[str, Any] = {
        "targets": {
            "signed": {
                "type": "robot",
                "webhook": sim.robot_url("tok-signed"),
                "secret": SIGNING_SECRET,
                "keywords": ["告警"],
            },
            "plain": {"type": "robot", "webhook": sim.robot_url("tok-plain")},
            "wn": {
                "type": "work_notice",
                "app_key": "app-key",
                "app_secret": APP_SECRET,
                "agent_id": 4242,
                "userids": ["u1", "u2"],
                "api_base": sim.url,
            },
        },
        "inputs": {
            "am": {"type": "alertmanager", "path": "/alertmanager"},
            "hook": {
                "type": "webhook",
                "path": "/hook",
                "token": HOOK_TOKEN,
                "labels": {"alertname": "{{ body.check }}", "team": "{{ body.team }}"},
            },
            "small": {"type": "webhook", "path": "/small", "max_body_bytes": 200},
        },
        "rules": [
            {"name": "to-wn", "inputs": ["am"], "match": {"route": "wn"}, "targets": ["wn"]},
            {
                "name": "broken",
                "inputs": ["am"],
                "match": {"route": "broken"},
                "targets": ["plain"],
                "template": "owner: {{ labels.owner }}",
            },
            {
                "name": "critical",
                "inputs": ["am"],
                "targets": ["signed"],
                "msgtype": "markdown",
                "mention": {"mobiles": ["13800000000"], "userids": ["ops-lead"]},
            },
            {
                "name": "hooks",
                "inputs": ["hook", "small"],
                "targets": ["plain"],
                "msgtype": "text",
                "mention": {"userids": ["u1"]},
            },
        ],
    }
    d = Daemon(config)
    yield d
    d.stop()


@pytest.fixture(autouse=True)
def fresh(sim: Simulator) -> None:
    sim.control("reset")


def am_payload(alertname: str, **labels: str) -> dict[str, Any]:
    """The fixture notification for another alert, with the identities Alertmanager would give
    it (its fingerprint and group key follow its labels)."""
    return am_alert_payload(alertname, **labels)


def test_markdown_to_a_signed_keyword_robot_with_highlighted_mentions(
    daemon: Daemon, sim: Simulator
) -> None:
    response = daemon.post("/alertmanager", am_payload("SignedCase"))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "accepted",
        "events": 1,
        "messages": 1,
        "held_for_grouping": 0,
        "silenced": 0,
        "not_sent_again_yet": 0,
        "unmatched": 0,
        "duplicate_notifications": 0,
    }
    [message] = sim.wait_messages(1, token="tok-signed")
    assert message["msgtype"] == "markdown"
    assert "SignedCase" in message["body"]["markdown"]["text"]
    assert "告警" in message["body"]["markdown"]["text"]  # the robot's keyword was ensured
    mentions = message["mentions"]
    assert mentions["highlighted_mobiles"] == ["13800000000"]
    assert mentions["highlighted_userids"] == ["ops-lead"]
    # Delivered means the simulator checked the signature and the keyword; nothing was rejected.
    assert not [r for r in sim.requests_seen() if r.get("errcode")]


def test_text_from_a_webhook_with_a_highlighted_mention(daemon: Daemon, sim: Simulator) -> None:
    response = daemon.post(
        "/hook", {"check": "BuildBroken", "team": "pay", "url": "http://ci/1"}, token=HOOK_TOKEN
    )
    assert response.status_code == 200, response.text
    [message] = sim.wait_messages(1, token="tok-plain")
    content = message["body"]["text"]["content"]
    assert message["msgtype"] == "text"
    assert "BuildBroken" in content and "http://ci/1" in content
    assert message["mentions"]["highlighted_userids"] == ["u1"]


def test_work_notices_share_one_token_and_refresh_it_on_expiry(
    daemon: Daemon, sim: Simulator
) -> None:
    for i in range(5):
        assert daemon.post("/alertmanager", am_payload(f"Notice{i}", route="wn")).status_code == 200
    notices = sim.wait_messages(5)
    assert {n["kind"] for n in notices} == {"work_notice"}
    assert sim.stats()["gettoken_calls"] == 1
    bodies = [n["body"]["msg"]["markdown"]["text"] for n in notices]
    assert len(set(bodies)) == 5  # each differs, so DingTalk's same-day dedup drops none
    assert all(n["recipients"] == ["u1", "u2"] for n in notices), notices[0]
    # The bridge then asks who received each (getsendresult, same token): let that finish, so
    # the send below is the first call to meet the expired token.
    wait_until(
        lambda: (
            sum(r["kind"] == "getsendresult" and r["errcode"] == 0 for r in sim.requests_seen())
            >= 5
        ),
        20,
    )

    sim.control("apps/app-key/expire-tokens")
    assert daemon.post("/alertmanager", am_payload("AfterExpiry", route="wn")).status_code == 200
    wait_until(lambda: len(sim.messages()) == 6)
    assert sim.stats()["gettoken_calls"] == 2
    expired = [r for r in sim.requests_seen() if r.get("errcode") == 42001]
    assert len(expired) == 1  # one rejected send, then one retry with the new token


def test_template_error_still_delivers_a_fallback(daemon: Daemon, sim: Simulator) -> None:
    assert daemon.post("/alertmanager", am_payload("Broken", route="broken")).status_code == 200
    [message] = sim.wait_messages(1, token="tok-plain")
    assert "[FIRING] Broken" in message["body"]["markdown"]["text"]
    wait_until(lambda: "template failed" in daemon.log())
    assert "rule=broken" in daemon.log()


BAD_REQUESTS = [
    # (name, method, path, body bytes, headers, status, words the error must contain)
    ("not json", "POST", "/alertmanager", b"{not json", {}, 400, "not valid JSON"),
    ("not utf-8", "POST", "/alertmanager", b'{"a": "\xff"}', {}, 400, "UTF-8"),
    ("empty body", "POST", "/alertmanager", b"", {}, 400, "empty"),
    ("json array", "POST", "/alertmanager", b"[1, 2]", {}, 400, "JSON object"),
    ("no alerts", "POST", "/alertmanager", b'{"status": "firing"}', {}, 400, '"alerts"'),
    (
        "bad alert status",
        "POST",
        "/alertmanager",
        b'{"status":"firing","alerts":[{"status":"burning","labels":{}}]}',
        {},
        400,
        "alerts[0].status",
    ),
    (
        "label not a string",
        "POST",
        "/alertmanager",
        b'{"status":"firing","alerts":[{"status":"firing","labels":{"a":1}}]}',
        {},
        400,
        "alerts[0].labels.a",
    ),
    ("bad version", "POST", "/alertmanager", b'{"version":"3","alerts":[]}', {}, 400, "version"),
    ("missing token", "POST", "/hook", b'{"check":"x","team":"y"}', {}, 401, "bearer token"),
    (
        "wrong token",
        "POST",
        "/hook",
        b'{"check":"x","team":"y"}',
        {"Authorization": "Bearer nope"},
        401,
        "wrong bearer token",
    ),
    (
        "field a label needs",
        "POST",
        "/hook",
        b'{"check":"x"}',
        {"Authorization": f"Bearer {HOOK_TOKEN}"},
        400,
        "labels.team",
    ),
    (
        "too large",
        "POST",
        "/small",
        b'{"x":"' + b"a" * 300 + b'"}',
        {},
        413,
        "larger than 200 bytes",
    ),
    ("unknown path", "POST", "/nowhere", b"{}", {}, 404, "no input listens on /nowhere"),
    ("wrong method", "GET", "/alertmanager", b"", {}, 405, "accepts POST"),
    ("put", "PUT", "/hook", b"{}", {}, 405, "accepts POST"),
]


@pytest.mark.parametrize(
    ("name", "method", "path", "data", "headers", "status", "words"),
    BAD_REQUESTS,
    ids=[c[0] for c in BAD_REQUESTS],
)
def test_bad_requests_get_a_clear_4xx(
    daemon: Daemon,
    sim: Simulator,
    name: str,
    method: str,
    path: str,
    data: bytes,
    headers: dict[str, str],
    status: int,
    words: str,
) -> None:
    response = requests.request(method, daemon.url + path, data=data, headers=headers, timeout=10)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert words in body["error"], body
    assert requests.get(daemon.url + "/-/healthy", timeout=5).ok  # still serving
    assert sim.messages() == []  # nothing was sent for a refused request


def test_chunked_body_over_the_limit_is_refused(daemon: Daemon) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"x":"'
        for _ in range(10):
            yield b"a" * 50
        yield b'"}'

    response = requests.post(daemon.url + "/small", data=chunks(), timeout=10)
    assert response.status_code == 413


def test_health_and_readiness(daemon: Daemon) -> None:
    assert requests.get(daemon.url + "/-/healthy", timeout=5).json() == {"status": "healthy"}
    ready = requests.get(daemon.url + "/-/ready", timeout=5)
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert len(body["config"]["hash"]) == 12
    assert set(body["queues"]) == {"signed", "plain", "wn"}
    assert requests.post(daemon.url + "/-/healthy", timeout=5).status_code == 405


def test_secrets_never_reach_the_log(daemon: Daemon, sim: Simulator) -> None:
    daemon.post("/alertmanager", am_payload("SecretCheck"))
    daemon.post("/hook", {"check": "x", "team": "y"}, headers={"Authorization": "Bearer wrong"})
    sim.wait_messages(1)
    log = daemon.log()
    for secret in (SIGNING_SECRET, APP_SECRET, HOOK_TOKEN, "tok-signed", "tok-plain"):
        assert secret not in log


def test_sigterm_stops_cleanly(sim: Simulator) -> None:
    d = Daemon(
        {
            "targets": {"plain": {"type": "robot", "webhook": sim.robot_url("tok-plain")}},
            "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
            "rules": [{"name": "all", "targets": ["plain"]}],
        }
    )
    assert d.post("/am", am_payload("BeforeStop")).status_code == 200
    d.signal(signal.SIGTERM)
    assert d.proc.wait(15) == 0
    assert "stopping signal=SIGTERM" in d.log()
    assert "stopped queued=0" in d.log()
    assert len(sim.messages()) == 1  # what was accepted before the signal was still delivered


def _mutations(seed: int) -> Iterator[bytes]:
    """Malformed and odd Alertmanager payloads: values swapped for ones of another type."""
    import json
    import random

    rng = random.Random(seed)
    odd: list[Any] = [
        None,
        0,
        -1,
        1.5,
        True,
        "",
        "x" * 1000,
        [],
        {},
        [1, "a"],
        {"k": {"k": []}},
        "2026-13-45T99:99:99Z",
        "\u0000",
        "🔥" * 50,
    ]

    def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        yield prefix
        if isinstance(value, dict):
            for k, v in value.items():
                yield from paths(v, (*prefix, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                yield from paths(v, (*prefix, i))

    base = fixture_json("firing.json")
    all_paths = [p for p in paths(base) if p]
    for _ in range(150):
        payload = json.loads(json.dumps(base))
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(all_paths)
            holder: Any = payload
            try:
                for key in path[:-1]:
                    holder = holder[key]
                holder[path[-1]] = rng.choice(odd)
            except (KeyError, IndexError, TypeError):
                continue
        yield json.dumps(payload).encode()
    yield b"[" * 100_000  # deeper than any JSON parser's recursion
    yield bytes(rng.randrange(256) for _ in range(500))


def test_malformed_payloads_never_cause_a_500_or_a_crash(daemon: Daemon) -> None:
    statuses = set()
    with requests.Session() as session:
        for body in _mutations(seed=20261128):
            response = session.post(daemon.url + "/alertmanager", data=body, timeout=10)
            statuses.add(response.status_code)
            assert response.status_code in (200, 400), (
                response.status_code,
                response.text,
                body[:300],
            )
            assert response.json()["status"] in ("accepted", "error")
    assert statuses == {200, 400}  # the mutations produced both acceptable and refused payloads
    assert daemon.proc.poll() is None
    assert "Traceback" not in daemon.log()
