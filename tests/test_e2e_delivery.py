"""Durable delivery end to end: a real daemon, a real simulator, real sockets and signals.

DingTalk misbehaves (5xx, timeouts, dropped connections, non-JSON, busy, throttled), refuses for
good (310000, 300001), the daemon is killed with SIGKILL or stopped with SIGTERM mid-backlog, an
alert storm meets the 20-a-minute limit, an alert is larger than a robot message may be. Each test
states what must come out of it: every accepted alert in the chat (or a dead letter saying why),
no duplicates beyond what at-least-once delivery allows, and the daemon still serving.

Retry settings are small (initial 0.2 s, max 1 s) and lockouts short (3 s), so most tests take a
few seconds. Two need DingTalk's real 60-second window and take a minute each: the storm, and a
slow answer followed by a full window.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import Daemon, Simulator, am_alert_payload, wait_until

SIGNING_SECRET = "SECthe-right-signing-secret"
KEYWORD = "运维"  # a word no bundled template writes (告警 is the firing status in Chinese)
MENTIONED = "ops-lead"
FAST_RETRY = {"initial": 0.2, "max": 1}
ROBOT_MAX_BYTES = 20_000
TRUNCATED_MARKER = "…(truncated: the alert exceeded DingTalk's size limit)"

# Each test talks to its own robot token, so nothing one test leaves behind (a delayed request
# still sleeping in the simulator) can show up in another test's messages.
ROBOTS: dict[str, dict[str, Any]] = {
    "tok-fault": {"rate_per_minute": 0},
    "tok-lock": {"rate_per_minute": 0},
    # Shared with "another program" that uses up its window: 5 a minute, 3-second lockout.
    "tok-shared": {"rate_per_minute": 5, "lockout_seconds": 3},
    "tok-signed": {"secret": SIGNING_SECRET, "rate_per_minute": 0},
    "tok-keyword": {"keywords": [KEYWORD], "rate_per_minute": 0},
    "tok-expire": {"rate_per_minute": 0},
    "tok-ok": {"rate_per_minute": 0},
    "tok-kill": {"rate_per_minute": 0},
    "tok-storm": {},  # DingTalk's defaults: 20 a minute, then locked for 10 minutes
    "tok-slow": {},
    "tok-big": {"rate_per_minute": 0},
    "tok-term": {"rate_per_minute": 0},
}


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": ROBOTS})
    yield sim
    sim.stop()


@pytest.fixture(autouse=True)
def fresh(sim: Simulator) -> None:
    sim.control("reset")


@pytest.fixture
def daemons() -> Iterator[Callable[..., Daemon]]:
    """Start daemons (`start(config, directory=None)`); every one is stopped after the test."""
    started: list[Daemon] = []

    def start(config: dict[str, Any], directory: Path | None = None) -> Daemon:
        daemon = Daemon(config, directory=directory)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def robot_config(sim: Simulator, token: str, **target: Any) -> dict[str, Any]:
    """One Alertmanager input, one rule, one robot target "ding" with fast retries."""
    return {
        "targets": {
            "ding": {
                "type": "robot",
                "webhook": sim.robot_url(token),
                "retry": dict(FAST_RETRY),
                **target,
            }
        },
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [{"name": "all", "targets": ["ding"]}],
    }


def logs(*daemons: Daemon) -> str:
    """The daemons' logs, for failure messages."""
    return "".join(f"\n--- daemon log (port {d.port}) ---\n{d.log()}" for d in daemons)


def eventually(predicate: Callable[[], Any], timeout: float, what: str, *daemons: Daemon) -> Any:
    """wait_until, failing with `what` and the daemons' logs."""
    try:
        return wait_until(predicate, timeout, interval=0.1)
    except AssertionError:
        raise AssertionError(f"{what} (not within {timeout}s){logs(*daemons)}") from None


def post_alerts(daemon: Daemon, names: list[str]) -> None:
    for name in names:
        response = daemon.post("/am", am_alert_payload(name))
        assert response.status_code == 200, f"{name}: {response.text}{logs(daemon)}"


def names_in(message: dict[str, Any], pattern: str) -> set[str]:
    """The alert names a delivered message speaks of (one, or one per line of a digest)."""
    return set(re.findall(pattern, f"{message['title']}\n{message['text']}"))


def deliveries(sim: Simulator, token: str, pattern: str) -> Counter[str]:
    """How many delivered messages carry each alert name."""
    counts: Counter[str] = Counter()
    for message in sim.messages(token=token):
        counts.update(names_in(message, pattern))
    return counts


def inject(sim: Simulator, token: str, action: dict[str, Any], count: int = 1) -> None:
    """The next `count` calls to robot `token` get `action` instead of the normal answer."""
    sim.control("faults", {"path": "/robot/send", "token": token, "count": count, "action": action})


def faults_left(sim: Simulator) -> list[dict[str, Any]]:
    response = requests.get(f"{sim.url}/_sim/faults", timeout=5)
    response.raise_for_status()
    faults: list[dict[str, Any]] = response.json()["faults"]
    return faults


def token_requests(sim: Simulator, token: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests_seen() if r["token"] == token]


def outbox_rows(daemon: Daemon, status: str | None = None) -> list[dict[str, Any]]:
    """Rows of the daemon's outbox, read straight from <state_dir>/state.db."""
    path = daemon.dir / "state" / "state.db"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        if status is None:
            rows = conn.execute("SELECT * FROM outbox").fetchall()
        else:
            rows = conn.execute("SELECT * FROM outbox WHERE status = ?", (status,)).fetchall()
        return [dict(r) for r in rows]
    finally:
        conn.close()


def ready(daemon: Daemon) -> dict[str, Any]:
    response = requests.get(f"{daemon.url}/-/ready", timeout=5)
    assert response.status_code == 200, f"{response.text}{logs(daemon)}"
    body: dict[str, Any] = response.json()
    return body


def resumed(daemon: Daemon) -> int:
    """N from the daemon's "resuming pending=N" line (0 if none). It counts the outbox after the
    senders started, so under load it may miss a message already delivered again."""
    found = re.search(r"resuming pending=(\d+)", daemon.log())
    return int(found[1]) if found else 0


def retry_lines(daemon: Daemon) -> list[str]:
    return [line for line in daemon.log().splitlines() if "delivery retry" in line]


# -- 1. transient faults: retried until delivered ----------------------------------------------

FAULTS = [
    # (id, fault action, how many, target settings, reason logged, extra deliveries)
    ("http_500", {"http_status": 500}, 3, {}, "server_error", 0),
    # The simulator handles a delayed request after the bridge gave up on it, and delivers the
    # message (DingTalk would too): a timed-out call is the one fault that duplicates, by design
    # of at-least-once delivery. Each such call adds one copy.
    ("timeout", {"delay": 1.5}, 2, {"timeout": 1}, "timeout", 2),
    ("connection_closed", {"close": True}, 3, {}, "network", 0),
    ("non_json", {"non_json": True}, 3, {}, "server_error", 0),
    ("errcode_busy", {"errcode": -1}, 3, {}, "dingtalk_busy", 0),
]


@pytest.mark.parametrize(
    ("action", "count", "settings", "reason", "extra"),
    [f[1:] for f in FAULTS],
    ids=[f[0] for f in FAULTS],
)
def test_transient_fault_is_retried_until_every_alert_is_delivered(
    sim: Simulator,
    daemons: Callable[..., Daemon],
    action: dict[str, Any],
    count: int,
    settings: dict[str, Any],
    reason: str,
    extra: int,
) -> None:
    d = daemons(robot_config(sim, "tok-fault", **settings))
    inject(sim, "tok-fault", action, count)
    names = [f"Fault{i:04d}" for i in range(4)]
    post_alerts(d, names)

    pattern = r"Fault\d{4}"
    eventually(
        lambda: sum(deliveries(sim, "tok-fault", pattern).values()) >= len(names) + extra,
        20,
        f"all {len(names)} alerts delivered despite {count} x {action}",
        d,
    )
    eventually(lambda: not outbox_rows(d), 5, "outbox emptied", d)
    time.sleep(0.5)  # nothing more arrives: no retry of a message that was delivered
    delivered = deliveries(sim, "tok-fault", pattern)
    assert set(delivered) == set(names), f"{delivered}{logs(d)}"
    duplicates = sum(delivered.values()) - len(names)
    assert duplicates == extra, f"{delivered}{logs(d)}"
    if not extra:
        assert all(n == 1 for n in delivered.values()), f"{delivered}{logs(d)}"

    # Every call is accounted for: the faulted ones, then one delivery per alert. (A delayed
    # call is recorded when the simulator finally handles it, as a delivery.)
    calls = token_requests(sim, "tok-fault")
    faulted = [r for r in calls if r["fault"]]
    assert len(faulted) == (0 if extra else count), calls
    assert len([r for r in calls if r["delivered"]]) == len(names) + extra, calls
    assert len(calls) == len(names) + count, calls
    retries = retry_lines(d)
    assert len(retries) == count, logs(d)
    assert all(f"reason={reason}" in line for line in retries), logs(d)
    assert ready(d)["store"]["dead_letters"] == 0


# -- 2. 130101: wait the lockout out --------------------------------------------------------------


def _inject_lockout(sim: Simulator) -> int:
    inject(sim, "tok-lock", {"errcode": 130101})
    return 0  # the bridge's requests start at the first one


def _another_program_locks_the_robot(sim: Simulator) -> int:
    """Another program posts to the shared robot until DingTalk throttles it.

    The robot allows 5 a minute: five posts fill the window; the clock moves 58 s on, so the
    window empties 2 s later, and a sixth post gets 130101 and locks the robot for 3 s. Whoever
    calls during those 3 s gets 130101 too (without extending the lock)."""
    url = sim.robot_url("tok-shared")
    body = {"msgtype": "text", "text": {"content": "from another program"}}
    for _ in range(5):
        assert requests.post(url, json=body, timeout=5).json()["errcode"] == 0
    sim.control("clock", {"advance": 58})
    assert requests.post(url, json=body, timeout=5).json()["errcode"] == 130101
    return 6  # the other program's requests come first


@pytest.mark.parametrize(
    ("token", "lock"),
    [("tok-lock", _inject_lockout), ("tok-shared", _another_program_locks_the_robot)],
    ids=["injected_130101", "robot_shared_with_another_program"],
)
def test_130101_lockout_is_waited_out_then_everything_is_delivered(
    sim: Simulator,
    daemons: Callable[..., Daemon],
    token: str,
    lock: Callable[[Simulator], int],
) -> None:
    lockout = 3.0
    d = daemons(robot_config(sim, token, lockout=f"{lockout:g}s"))
    first_own = lock(sim)
    names = [f"Locked{i:04d}" for i in range(3)]
    post_alerts(d, names)

    pattern = r"Locked\d{4}"
    eventually(
        lambda: len(deliveries(sim, token, pattern)) == len(names),
        lockout + 10,
        "every alert delivered after the lockout",
        d,
    )
    own = token_requests(sim, token)[first_own:]
    throttled = [r for r in own if r["errcode"] == 130101]
    assert len(throttled) == 1, f"{own}{logs(d)}"  # one 130101, then silence until it is over
    assert own[0]["errcode"] == 130101, own
    quiet_until = own[0]["time"] + lockout
    early = [r for r in own[1:] if r["time"] < quiet_until - 0.05]
    assert not early, f"called during the lockout: {early}{logs(d)}"
    assert all(r["delivered"] for r in own[1:]), own
    delivered = deliveries(sim, token, pattern)
    assert all(n == 1 for n in delivered.values()), delivered
    [retry] = retry_lines(d)
    assert "reason=rate_limited" in retry and "errcode=130101" in retry, logs(d)
    assert f"retry_in={lockout:.1f}s" in retry, logs(d)


def test_a_lockout_outlives_a_restart(sim: Simulator, daemons: Callable[..., Daemon]) -> None:
    lockout = 3.0
    config = robot_config(sim, "tok-lock", lockout=f"{lockout:g}s")
    first = daemons(config)
    inject(sim, "tok-lock", {"errcode": 130101})
    names = [f"Relocked{i:04d}" for i in range(2)]
    post_alerts(first, names)
    [throttled] = eventually(lambda: token_requests(sim, "tok-lock"), 5, "the 130101 answer", first)
    assert throttled["errcode"] == 130101, throttled
    assert first.stop() == 0, logs(first)

    second = daemons(config, directory=first.dir)  # well within the 3 s
    pattern = r"Relocked\d{4}"
    eventually(
        lambda: len(deliveries(sim, "tok-lock", pattern)) == len(names),
        lockout + 10,
        "delivered after the lockout",
        first,
        second,
    )
    calls = token_requests(sim, "tok-lock")
    early = [r for r in calls[1:] if r["time"] < throttled["time"] + lockout - 0.05]
    assert not early, f"the restarted daemon called during the lockout: {early}{logs(second)}"
    assert [r["errcode"] for r in calls] == [130101, 0, 0], calls


# -- 3. permanent failures: dead letters with their reason -------------------------------------

CONFIG_ERRORS = [
    # (id, token, target settings, errcode and errmsg the simulator gives)
    (
        "wrong_signing_secret",
        "tok-signed",
        {"secret": "SECa-wrong-secret"},
        310000,
        "sign not match",
    ),
    ("missing_keyword", "tok-keyword", {}, 310000, "keywords not in content"),
    ("unknown_robot_token", "tok-never-registered", {}, 300001, "token is not exist"),
]


def _with_healthy_target(sim: Simulator, config: dict[str, Any]) -> dict[str, Any]:
    """`config` plus a working robot "ok" for alerts labelled route=ok."""
    config["targets"]["ok"] = {"type": "robot", "webhook": sim.robot_url("tok-ok")}
    config["rules"].insert(0, {"name": "ok", "match": {"route": "ok"}, "targets": ["ok"]})
    return config


def _assert_still_serving(sim: Simulator, d: Daemon, dead: int) -> None:
    assert requests.get(f"{d.url}/-/healthy", timeout=5).ok, logs(d)
    state = ready(d)
    assert state["status"] == "ready", state
    assert state["store"]["dead_letters"] == dead, state
    assert state["queues"]["ding"]["pending"] == 0, state
    assert state["queues"]["ding"]["sender_running"], state
    assert d.post("/am", am_alert_payload("StillServing", route="ok")).status_code == 200
    [message] = sim.wait_messages(1, token="tok-ok")
    assert "StillServing" in message["title"]
    assert d.proc.poll() is None
    assert "Traceback" not in d.log(), logs(d)


@pytest.mark.parametrize(
    ("token", "settings", "errcode", "errmsg"),
    [c[1:] for c in CONFIG_ERRORS],
    ids=[c[0] for c in CONFIG_ERRORS],
)
def test_config_error_like_310000_becomes_a_dead_letter_with_dingtalks_reason(
    sim: Simulator,
    daemons: Callable[..., Daemon],
    token: str,
    settings: dict[str, Any],
    errcode: int,
    errmsg: str,
) -> None:
    d = daemons(_with_healthy_target(sim, robot_config(sim, token, **settings)))
    post_alerts(d, ["Refused0000"])

    [row] = eventually(lambda: outbox_rows(d, "dead"), 10, "a dead letter", d)
    assert row["reason"] == "dingtalk_config", row
    assert row["errcode"] == errcode, row
    assert row["errmsg"] == errmsg, row
    assert row["target"] == "ding" and row["attempts"] == 1, row
    # The dead letter keeps the alert itself (its message is rendered from it when sent).
    assert json.loads(row["event"])["labels"]["alertname"] == "Refused0000", row
    # Permanent: one call, no retry, nothing in the chat.
    calls = token_requests(sim, token)
    assert [r["errcode"] for r in calls] == [errcode], calls
    assert sim.messages(token=token) == []
    assert not retry_lines(d), logs(d)
    assert re.search(rf"dead letter .*reason=dingtalk_config errcode={errcode}", d.log()), logs(d)
    _assert_still_serving(sim, d, dead=1)


def test_retryable_failure_past_give_up_after_becomes_an_expired_dead_letter(
    sim: Simulator, daemons: Callable[..., Daemon]
) -> None:
    give_up_after = 2.0
    retry = {"initial": 0.2, "max": 0.5, "give_up_after": f"{give_up_after:g}s"}
    d = daemons(_with_healthy_target(sim, robot_config(sim, "tok-expire", retry=retry)))
    # DingTalk answers 500 to everything, for longer than the test lasts.
    inject(sim, "tok-expire", {"http_status": 500}, count=10_000)
    post_alerts(d, ["Expiring0000"])

    [row] = eventually(lambda: outbox_rows(d, "dead"), give_up_after + 8, "a dead letter", d)
    assert row["reason"].startswith("expired") and "server_error" in row["reason"], row
    assert row["errcode"] is None and row["errmsg"] == "HTTP 500", row
    age = row["updated_at"] - row["created_at"]
    assert give_up_after < age < give_up_after + 2.0, row  # at the first failure past it
    calls = token_requests(sim, "tok-expire")
    assert len(calls) == row["attempts"] >= 3, (calls, row)  # retried until it expired
    assert len(retry_lines(d)) == row["attempts"] - 1, logs(d)
    assert sim.messages(token="tok-expire") == []
    time.sleep(1.0)
    assert len(token_requests(sim, "tok-expire")) == len(calls), "a dead letter is not retried"
    _assert_still_serving(sim, d, dead=1)


# -- 4. kill -9 mid-stream: nothing accepted is lost ---------------------------------------------


class Stream(threading.Thread):
    """Posts distinct alerts to a daemon, one every `interval`, and remembers which got a 200."""

    def __init__(self, daemon: Daemon, prefix: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.target_daemon = daemon
        self.prefix = prefix
        self.interval = interval
        self.attempted: list[str] = []
        self.accepted: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            name = f"{self.prefix}{i:04d}"
            self.attempted.append(name)
            try:
                response = self.target_daemon.post("/am", am_alert_payload(name))
            except requests.RequestException:
                pass  # the daemon is gone: not accepted
            else:
                if response.status_code == 200:
                    self.accepted.append(name)
            i += 1
            self.halt.wait(self.interval)


def test_kill_9_mid_stream_loses_no_accepted_alert(
    sim: Simulator, daemons: Callable[..., Daemon]
) -> None:
    # A slow robot (every call takes 0.25 s) so a backlog builds up while alerts stream in.
    inject(sim, "tok-kill", {"delay": 0.25}, count=10_000)
    config = robot_config(
        sim, "tok-kill", rate_limit={"messages": 0, "per": 60}, digest={"enabled": False}
    )
    first = daemons(config)
    stream = Stream(first, "Killed", interval=0.03)
    stream.start()
    pattern = r"Killed\d{4}"
    eventually(
        lambda: len(stream.accepted) >= 20 and deliveries(sim, "tok-kill", pattern),
        10,
        "a stream under way",
        first,
    )
    killed_at = time.time()
    first.proc.kill()  # SIGKILL: no shutdown, no flush; a call is most likely in flight
    assert first.proc.wait(5) == -signal.SIGKILL
    time.sleep(0.2)  # the stream keeps posting into the void for a moment
    stream.halt.set()
    stream.join(15)
    accepted = list(stream.accepted)
    pending_at_kill = len(outbox_rows(first, "pending"))
    assert pending_at_kill > 0, "the kill came too late to leave a backlog"

    restarted_at = time.time()
    second = daemons(config, directory=first.dir)
    eventually(
        lambda: set(accepted) <= set(deliveries(sim, "tok-kill", pattern)),
        pending_at_kill * 0.25 + 15,
        f"all {len(accepted)} accepted alerts delivered after the restart",
        first,
        second,
    )
    eventually(lambda: not outbox_rows(second, "pending"), 5, "outbox emptied", second)
    time.sleep(0.5)  # a call that was in flight at the kill has landed by now (0.25 s delay)
    delivered = deliveries(sim, "tok-kill", pattern)
    assert set(delivered) <= set(stream.attempted), delivered
    duplicates = {name: n for name, n in delivered.items() if n > 1}
    assert sum(n - 1 for n in duplicates.values()) <= 1, (duplicates, logs(first, second))
    # A call the simulator answered only after the kill was never confirmed to the bridge: it
    # must be sent again (at least once), and that is the one duplicate allowed.
    landed_after_kill = [
        m for m in sim.messages(token="tok-kill") if killed_at < m["time"] < restarted_at
    ]
    for message in landed_after_kill:
        [name] = names_in(message, pattern)
        assert delivered[name] == 2, (name, delivered, logs(first, second))
    assert 0 < resumed(second) <= pending_at_kill, logs(second)
    assert not outbox_rows(second, "dead")


# -- 5. a storm: 1,000 alerts through a robot that takes 20 a minute --------------------------


def test_storm_of_1000_alerts_reaches_the_chat_in_digests_without_a_single_130101(
    sim: Simulator, daemons: Callable[..., Daemon]
) -> None:
    d = daemons(robot_config(sim, "tok-storm"))  # the default rate limit: 20 per 60 s
    names = [f"Storm{i:04d}" for i in range(1000)]
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda n: d.post("/am", am_alert_payload(n)).status_code, names))
    posted_in = time.monotonic() - started
    assert statuses == [200] * len(names), Counter(statuses)
    assert posted_in < 60, posted_in

    pattern = r"Storm\d{4}"

    def missing() -> set[str]:
        return set(names) - set(deliveries(sim, "tok-storm", pattern))

    eventually(
        lambda: not missing(),
        180 - (time.monotonic() - started),
        "all 1000 alerts in the chat within 3 minutes",
        d,
    )
    calls = token_requests(sim, "tok-storm")
    assert not [r for r in calls if r["errcode"] == 130101], (calls, logs(d))
    assert all(r["delivered"] for r in calls), calls
    messages = sim.messages(token="tok-storm")
    digests = [m for m in messages if len(names_in(m, pattern)) > 1]
    # Digests carried the storm: a few dozen messages for 1000 alerts (3 windows at most).
    assert digests and len(messages) <= 60, [m["title"] for m in messages]
    assert sum(len(names_in(m, pattern)) for m in messages) == len(names)  # none twice
    print(
        f"\nstorm: posted in {posted_in:.1f}s, in the chat after "
        f"{time.monotonic() - started:.1f}s, {len(messages)} messages ({len(digests)} digests)"
    )


def test_a_slow_answer_does_not_push_the_21st_call_into_dingtalks_window(
    sim: Simulator, daemons: Callable[..., Daemon]
) -> None:
    # Takes one real 60-second window. 21 alerts, no digests: 21 calls at the default 20/60 s.
    d = daemons(robot_config(sim, "tok-slow", lockout="3s", digest={"enabled": False}))
    inject(sim, "tok-slow", {"delay": 2})  # the first call is answered (and counted) after 2 s
    names = [f"Slow{i:04d}" for i in range(21)]
    post_alerts(d, names)

    def throttled() -> list[dict[str, Any]]:
        return [r for r in token_requests(sim, "tok-slow") if r["errcode"] == 130101]

    pattern = r"Slow\d{4}"
    eventually(
        lambda: throttled() or len(deliveries(sim, "tok-slow", pattern)) == len(names),
        90,
        "all 21 delivered, or a 130101",
        d,
    )
    calls = token_requests(sim, "tok-slow")
    assert not throttled(), (
        f"the 21st call came {calls[20]['time'] - calls[0]['time']:.1f}s after DingTalk counted"
        f" the first{logs(d)}"
    )


# -- 6. oversized alerts: numbered parts, or one truncated message ------------------------------


def _big_alert(name: str) -> tuple[dict[str, Any], list[str]]:
    """An alert whose description is ~60 KB of numbered lines (CJK: 3 bytes a character)."""
    lines = [f"第{i:04d}行 磁盘写满 disk full on volume {i:04d} " + "x" * 20 for i in range(1500)]
    payload = am_alert_payload(name)
    payload["alerts"][0]["annotations"]["description"] = "\n".join(lines)
    assert len(payload["alerts"][0]["annotations"]["description"].encode()) > 60_000
    return payload, lines


def _big_config(sim: Simulator, **target: Any) -> dict[str, Any]:
    config = robot_config(sim, "tok-big", **target)
    config["rules"][0]["mention"] = {"userids": [MENTIONED]}
    return config


def _size(body: dict[str, Any]) -> int:
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def test_oversized_alert_is_delivered_as_numbered_parts_mention_on_the_first(
    sim: Simulator, daemons: Callable[..., Daemon]
) -> None:
    d = daemons(_big_config(sim))
    payload, lines = _big_alert("Huge0000")
    # The first part takes 1 s to be answered; the second is refused once with a 500.
    inject(sim, "tok-big", {"delay": 1})
    assert d.post("/am", payload).status_code == 200
    eventually(lambda: not faults_left(sim), 5, "part 1 in flight", d)
    inject(sim, "tok-big", {"http_status": 500})

    eventually(lambda: not outbox_rows(d), 15, "every part delivered", d)
    parts = sim.messages(token="tok-big")
    total = len(parts)
    assert total >= 4, [p["title"] for p in parts]  # 60 KB does not fit in three 20 KB bodies
    # No 460101; the refused part 2 is sent again, part 1 is not.
    calls = token_requests(sim, "tok-big")
    assert [r["http_status"] for r in calls] == [200, 500] + [200] * (total - 1), calls
    assert [r["errcode"] for r in calls if r["http_status"] == 200] == [0] * total, calls
    [retry] = retry_lines(d)
    assert "reason=server_error" in retry, logs(d)
    for index, part in enumerate(parts, start=1):
        label = f"({index}/{total})"
        assert part["title"] == f"[告警] Huge0000 {label}", part["title"]
        assert index == 1 or part["text"].startswith(f"{label} "), part["text"][:40]
        assert _size(part["body"]) <= ROBOT_MAX_BYTES
    assert parts[0]["mentions"]["highlighted_userids"] == [MENTIONED]
    assert all(p["mentions"]["userids"] == [] for p in parts[1:]), [p["mentions"] for p in parts]
    # Split at line boundaries: every line arrives once, whole, and in order.
    text = "\n".join(p["text"] for p in parts)
    positions = [text.find(line) for line in lines]
    assert -1 not in positions, [line for line in lines if line not in text][:3]
    assert positions == sorted(positions)
    assert all(text.count(line) == 1 for line in lines[::50])
    assert re.search(rf"delivered rule=all target=ding id=\S+ parts={total}\b", d.log()), logs(d)


def test_oversized_alert_with_oversize_truncate_is_one_message_with_the_marker(
    sim: Simulator, daemons: Callable[..., Daemon]
) -> None:
    d = daemons(_big_config(sim, oversize="truncate"))
    payload, lines = _big_alert("Huge0001")
    assert d.post("/am", payload).status_code == 200

    eventually(lambda: not outbox_rows(d), 10, "delivered", d)
    [message] = sim.messages(token="tok-big")
    assert [r["errcode"] for r in token_requests(sim, "tok-big")] == [0]
    assert message["title"] == "[告警] Huge0001"
    assert TRUNCATED_MARKER in message["text"]
    assert lines[0] in message["text"] and lines[-1] not in message["text"]
    assert ROBOT_MAX_BYTES - 1000 < _size(message["body"]) <= ROBOT_MAX_BYTES
    assert message["mentions"]["highlighted_userids"] == [MENTIONED]


def test_kill_9_between_parts_resumes_at_the_part_in_flight(
    sim: Simulator, daemons: Callable[..., Daemon]
) -> None:
    config = _big_config(sim)
    first = daemons(config)
    # Parts 1 and 2 are answered at once; part 3 takes 2 s, and the daemon dies meanwhile.
    inject(sim, "tok-big", {"delay": 0}, count=2)
    inject(sim, "tok-big", {"delay": 2})
    payload, _ = _big_alert("Huge0002")
    assert first.post("/am", payload).status_code == 200
    eventually(lambda: not faults_left(sim), 5, "part 3 in flight", first)
    first.proc.kill()
    assert first.proc.wait(5) == -signal.SIGKILL
    [row] = outbox_rows(first, "pending")
    assert row["parts_sent"] == 2, row

    second = daemons(config, directory=first.dir)
    eventually(lambda: not outbox_rows(second), 15, "the rest of the parts delivered", second)

    def titles() -> Counter[str]:
        return Counter(m["title"] for m in sim.messages(token="tok-big"))

    # Part 3's first call lands 2 s after it was made, whatever happened to the daemon.
    eventually(lambda: sum(titles().values()) == len(titles()) + 1, 5, "part 3 twice", second)
    total = len(titles())
    assert total >= 4, titles
    # Parts 1 and 2 are never sent again; part 3 was in flight: sent again (at least once).
    expected = {f"[告警] Huge0002 ({i}/{total})": 2 if i == 3 else 1 for i in range(1, total + 1)}
    assert titles() == expected, (titles(), logs(first, second))


# -- 7. SIGTERM with a backlog: it stays queued, the next start delivers it ----------------------


def _backlog_behind_the_rate_limit(sim: Simulator) -> Callable[[], bool]:
    """5 calls per 2 s: of 10 alerts, 5 go out at once and 5 wait for the window."""
    return lambda: len(sim.messages(token="tok-term")) >= 5


def _backlog_behind_a_call_in_flight(sim: Simulator) -> Callable[[], bool]:
    """The first call takes 1.5 s (less than shutdown_timeout): it is in flight at SIGTERM."""
    inject(sim, "tok-term", {"delay": 1.5})
    return lambda: not faults_left(sim)


@pytest.mark.parametrize(
    ("rate", "backlog", "sent_before_stop"),
    [
        ({"messages": 5, "per": 2}, _backlog_behind_the_rate_limit, 5),
        ({"messages": 0, "per": 60}, _backlog_behind_a_call_in_flight, 1),
    ],
    ids=["waiting_for_the_rate_window", "call_in_flight"],
)
def test_sigterm_keeps_the_backlog_queued_and_a_restart_delivers_it(
    sim: Simulator,
    daemons: Callable[..., Daemon],
    rate: dict[str, int],
    backlog: Callable[[Simulator], Callable[[], bool]],
    sent_before_stop: int,
) -> None:
    shutdown_timeout = 3.0
    config = robot_config(sim, "tok-term", digest={"enabled": False}, rate_limit=rate)
    config["server"] = {"shutdown_timeout": f"{shutdown_timeout:g}s"}
    first = daemons(config)
    formed = backlog(sim)
    names = [f"Queued{i:04d}" for i in range(10)]
    post_alerts(first, names)
    eventually(formed, 5, "the backlog formed", first)

    stopping = time.monotonic()
    first.signal(signal.SIGTERM)
    try:
        code = first.proc.wait(shutdown_timeout + 2.0)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no exit within shutdown_timeout + 2s{logs(first)}") from None
    took = time.monotonic() - stopping
    assert code == 0, logs(first)
    assert took < shutdown_timeout + 1.0, (took, logs(first))

    pattern = r"Queued\d{4}"
    before = deliveries(sim, "tok-term", pattern)
    assert sum(before.values()) == sent_before_stop, (before, logs(first))
    left = len(names) - sent_before_stop
    assert len(outbox_rows(first, "pending")) == left, logs(first)
    assert f"stopped queued={left}" in first.log(), logs(first)

    second = daemons(config, directory=first.dir)
    eventually(
        lambda: len(deliveries(sim, "tok-term", pattern)) == len(names),
        10,
        "the backlog delivered after the restart",
        first,
        second,
    )
    eventually(lambda: not outbox_rows(second), 5, "outbox emptied", second)
    time.sleep(0.3)
    delivered = deliveries(sim, "tok-term", pattern)
    assert all(n == 1 for n in delivered.values()), (delivered, logs(first, second))
    assert 0 < resumed(second) <= left, logs(second)
    if rate["messages"]:  # the restarted daemon remembers the calls its predecessor made
        times = [r["time"] for r in token_requests(sim, "tok-term")]
        spans = [b - a for a, b in zip(times, times[rate["messages"] :], strict=False)]
        assert min(spans) >= rate["per"], (times, logs(first, second))


def test_sigterm_with_a_call_slower_than_shutdown_timeout_exits_when_the_call_times_out(
    sim: Simulator, daemons: Callable[..., Daemon]
) -> None:
    # The stop waits shutdown_timeout, then up to the target's HTTP timeout (+1 s) for a call
    # in flight (TargetSender.stop): the worst case is shutdown_timeout + timeout + 1 s.
    shutdown_timeout, call_timeout = 0.5, 2.0
    config = robot_config(sim, "tok-term", timeout=call_timeout, digest={"enabled": False})
    config["server"] = {"shutdown_timeout": shutdown_timeout}
    d = daemons(config)
    inject(sim, "tok-term", {"delay": call_timeout + 1})
    post_alerts(d, ["Slow0000", "Slow0001"])
    eventually(lambda: not faults_left(sim), 5, "the first call in flight", d)

    stopping = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.proc.wait(shutdown_timeout + call_timeout + 3) == 0, logs(d)
    took = time.monotonic() - stopping
    assert took < shutdown_timeout + call_timeout + 1.5, (took, logs(d))
    # The unanswered call is not known to be delivered: both messages stay queued.
    assert len(outbox_rows(d, "pending")) == 2, logs(d)
    assert not outbox_rows(d, "dead"), logs(d)
    assert "stopped queued=2" in d.log(), logs(d)
    sim.wait_messages(1, timeout=5, token="tok-term")  # let the delayed call land here


def test_a_full_target_queue_answers_503_until_it_drains(
    sim: Simulator, daemons: Callable[..., Daemon]
) -> None:
    inject(sim, "tok-fault", {"errcode": -1}, count=6)  # DingTalk busy: the queue cannot drain
    daemon = daemons(robot_config(sim, "tok-fault", queue_size=2))
    first = [daemon.post("/am", am_alert_payload(f"Full{i}")) for i in range(2)]
    assert [r.status_code for r in first] == [200, 200]
    refused = daemon.post("/am", am_alert_payload("Full2"))
    assert refused.status_code == 503
    assert refused.json()["reason"] == "queue_full"
    # Once DingTalk takes messages again the queue drains and the input accepts again.
    wait_until(lambda: daemon.post("/am", am_alert_payload("Full2")).status_code == 200, 30)
    wait_until(lambda: len(sim.messages(token="tok-fault")) == 3, 30)
