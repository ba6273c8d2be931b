"""TargetSender in-process: a fake channel, a fake clock, a real SQLite store, the loop driven
one step at a time (no thread, no sleep).

The fake channel builds its target's real bodies (the real channel's) but posts nothing: a fake
DingTalk answers each call from a script (success by default), classified as the real channels
classify (dingtalk/responses.send_outcome), and remembers when each call was made; `drive` runs
several senders against one clock, always stepping the sender whose turn comes first and moving
the clock to it, as their threads would.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, cast

import pytest

from bridge.app.rendering import QueuedRenderer
from bridge.clock import FakeClock
from bridge.config.model import Config, RateLimit, RobotTarget, SendPolicy, Target
from bridge.delivery.failures import DeadLetter, Retry, after_failure
from bridge.delivery.messages import Renderer, digest_claim, digest_threshold
from bridge.delivery.robots import RobotWindow, RobotWindows
from bridge.delivery.sender import TargetSender
from bridge.delivery.turns import StoredWindows
from bridge.dingtalk.channel import Body, Channel
from bridge.dingtalk.channels import channel_for
from bridge.dingtalk.responses import (
    AwaitingResult,
    Delivered,
    Failed,
    LockedOut,
    Refused,
    RetryLater,
    SendOutcome,
    send_outcome,
)
from bridge.errors import DeliveryError, Reason
from bridge.model import Alert, Delivery, Event, Mention, Message, Rendered
from bridge.store import records
from bridge.store.api import Store
from bridge.store.sql import SqlTx
from bridge.store.sqlite import OperationalError, SqliteStore
from tests.harness import compile_yaml


def raw(store: Store) -> sqlite3.Connection:
    """The SQLite connection under `store`, for what only SQLite shows (its tables, a damaged
    value); used inside the store's `reading()` or `transaction()`, which hold its lock."""
    assert isinstance(store, SqliteStore)
    return store.db.connection


START = 1_800_000_000.0
WINDOW = 60.0  # DingTalk's: 20 calls in any 60 seconds


# -- the fakes ----------------------------------------------------------------------------------


Answer = SendOutcome | DeliveryError | Exception


def http_500() -> DeliveryError:
    return DeliveryError(Reason.SERVER_ERROR, "HTTP 500", retryable=True, errmsg="HTTP 500")


def connection_refused() -> DeliveryError:
    return DeliveryError(Reason.NETWORK, "connection failed", retryable=True)


def timed_out() -> DeliveryError:
    return DeliveryError(Reason.TIMEOUT, "no answer within 5s", retryable=True)


def busy() -> DeliveryError:
    return DeliveryError(
        Reason.DINGTALK_BUSY, "busy", retryable=True, errcode=-1, errmsg="系统繁忙"
    )


def errcode(
    code: int, reason: Reason, retryable: bool, retry_after: float | None = None
) -> Callable[[], DeliveryError]:
    return lambda: DeliveryError(
        reason,
        f"errcode {code}",
        retryable=retryable,
        errcode=code,
        errmsg=f"simulated {code}",
        retry_after=retry_after,
    )


@dataclass
class Call:
    at: float
    target: str
    robot: str
    body: dict[str, Any]
    answer: str  # "ok", or the reason of the error


@dataclass
class FakeDingTalk:
    """Answers the fake channels' calls from `script` (per rate key: a list of factories of
    answers, consumed in order; success when empty). `latency` moves the clock during a call."""

    clock: FakeClock
    script: dict[str, list[Callable[[], Answer]]] = field(default_factory=dict)
    latency: float = 0.0
    calls: list[Call] = field(default_factory=list)

    def fail(self, target: Target, *answers: Callable[[], Answer]) -> None:
        self.script.setdefault(robot_key(target), []).extend(answers)

    def answer(self, channel: Channel, body: dict[str, Any]) -> SendOutcome:
        key = channel.rate_key
        queue = self.script.get(key, [])
        answer = queue.pop(0)() if queue else Delivered()
        self.clock.advance(self.latency)
        at = self.clock.time()
        if isinstance(answer, DeliveryError):  # as a real channel classifies DingTalk's answer
            self.calls.append(Call(at, channel.name, key, body, answer.reason.value))
            return send_outcome(answer, channel.policy)
        if isinstance(answer, Exception):
            self.calls.append(Call(at, channel.name, key, body, "bug"))
            raise answer
        outcome = "ok" if isinstance(answer, Delivered | AwaitingResult) else answer.reason.value
        self.calls.append(Call(at, channel.name, key, body, outcome))
        return answer

    def ok_calls(self, robot: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.answer == "ok" and robot in (None, c.robot)]


class FakeChannel:
    """The target's real channel for everything but posting, which `ding` answers."""

    def __init__(self, target: Target, ding: FakeDingTalk) -> None:
        self.real = channel_for(target, None)
        self.ding = ding
        self.name = self.real.name
        self.policy = self.real.policy
        self.timeout = self.real.timeout
        self.rate_key = self.real.rate_key
        self.digest_limit = self.real.digest_limit

    def bodies(
        self, message: Message, ids: Sequence[str], accepted_at: float, tz: tzinfo
    ) -> list[Body]:
        return self.real.bodies(message, ids, accepted_at, tz)

    def digest_body(self, message: Message) -> Body:
        return self.real.digest_body(message)

    def post(self, body: Body) -> SendOutcome:
        return self.ding.answer(self, body)


def robot_key(target: Target) -> str:
    return channel_for(target, None).rate_key


def window_of(windows: RobotWindows, target: Target) -> RobotWindow:
    return windows.for_channel(channel_for(target, None))


class BreakableStore(SqliteStore):
    """A real store whose commits fail while `broken` (as SQLite does on a full disk)."""

    broken = False

    @contextmanager
    def transaction(self, share_commit: bool = False) -> Iterator[SqlTx]:
        if self.broken:
            raise OperationalError("database or disk is full")
        with super().transaction() as tx:
            yield tx


# -- config, rows and the driver -------------------------------------------------------------------

CONFIG = """
timezone: UTC
targets:
  a:       {type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token=T1",
            keywords: [alert], digest: {enabled: false}, retry: {initial: 1s, max: 16s}}
  b:       {type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token=T1",
            keywords: [ALARM], digest: {enabled: false}, retry: {initial: 1s, max: 16s}}
  other:   {type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token=T2",
            digest: {enabled: false}}
  digests: {type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token=T1"}
  short:   {type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token=T3",
            lockout: 30s, retry: {initial: 1s, max: 4s, give_up_after: 20s},
            digest: {enabled: false}}
  notice1: {type: work_notice, app_key: dingapp, app_secret: s3cret-app, agent_id: 1,
            userids: [u1]}
  notice2: {type: work_notice, app_key: dingapp, app_secret: s3cret-app, agent_id: 1,
            userids: [u2]}
inputs:
  am: {type: alertmanager, path: /am}
rules:
  - name: r
    targets: [a, b, other, digests, short, notice1, notice2]
    msgtype: markdown
    title: "{{ labels.alertname }} alert ALARM"
    template: |
      {{ labels.alertname }} alert ALARM
      {% for a in alerts %}{{ a.labels.host }} for {{ a.duration }}
      {% endfor %}{{ annotations.description | default('') }}
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return cast(Config, compile_yaml(tmp_path, CONFIG))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BreakableStore]:
    db = BreakableStore(tmp_path / "state")
    yield db
    db.close()


@pytest.fixture
def ding(clock: FakeClock) -> FakeDingTalk:
    return FakeDingTalk(clock)


@pytest.fixture
def windows(store: Store, clock: FakeClock) -> RobotWindows:
    return RobotWindows(StoredWindows(store, clock))


def event(name: str, *, description: str = "", alerts: tuple[Alert, ...] | None = None) -> Event:
    start = datetime.fromtimestamp(START - 300, UTC)
    if alerts is None:
        alerts = (
            Alert("firing", {"alertname": name, "host": f"{name}-host"}, {}, start, None, "", name),
        )
    return Event(
        input="am",
        kind="alertmanager",
        status="firing",
        labels={"alertname": name},
        annotations={"description": description} if description else {},
        fingerprint=f"fp-{name}",
        received_at=start,
        alerts=alerts,
    )


def enqueue(store: Store, target: str, names: list[str], at: float, **kw: Any) -> None:
    deliveries = [
        Delivery(
            id=f"{at:.0f}-{target}-{i:04d}-{name}",
            rule="r",
            target=target,
            message=Message("markdown", name, "", Mention()),
            fingerprint=f"fp-{name}",
            created_at=datetime.fromtimestamp(at, UTC),
            event=event(name, **kw),
        )
        for i, name in enumerate(names)
    ]
    with store.transaction() as tx:
        tx.outbox.enqueue(deliveries, at)


def make(
    config: Config,
    name: str,
    store: Store,
    ding: FakeDingTalk,
    clock: FakeClock,
    windows: RobotWindows,
    rand: float = 1.0,
    renderer: Renderer | None = None,
) -> TargetSender:
    """A sender whose backoff jitter is fixed (`rand` of the ceiling)."""
    rules = {r.name: r for r in config.rules}
    return TargetSender(
        FakeChannel(config.targets[name], ding),
        store,
        renderer or QueuedRenderer(lambda: rules),
        clock=clock,
        windows=windows,
        rand=lambda: rand,
    )


def drive(
    senders: list[TargetSender], clock: FakeClock, seconds: float, max_steps: int = 20_000
) -> None:
    """Run the senders' loops for `seconds` of fake time: always step the sender whose turn
    comes first, moving the clock to it."""
    end = clock.time() + seconds
    turn = {id(s): clock.time() for s in senders}
    by_id = {id(s): s for s in senders}
    for _ in range(max_steps):
        who = min(turn, key=lambda k: turn[k])
        if turn[who] > end:
            clock.set(end)
            return
        clock.set(max(clock.time(), turn[who]))
        wait = by_id[who].step()
        assert wait >= 0
        turn[who] = clock.time() + wait
    raise AssertionError("the senders did not settle: a loop that never waits")


def pending(store: Store, target: str | None = None) -> list[records.Row]:
    with store.reading() as tx:
        return tx.outbox.listing(status=records.PENDING, target=target, limit=10_000)


def dead(store: Store) -> list[records.Row]:
    with store.reading() as tx:
        return tx.outbox.listing(status=records.DEAD, limit=10_000)


def most_in_any_window(times: list[float], window: float = WINDOW) -> int:
    """The most calls in any `window` seconds (DingTalk's sliding minute)."""
    times = sorted(times)
    return max(
        (sum(1 for u in times[i:] if u < t + window) for i, t in enumerate(times)), default=0
    )


def texts(calls: list[Call]) -> str:
    return "\n".join(json.dumps(c.body, ensure_ascii=False) for c in calls)


# -- robot keys ---------------------------------------------------------------------------------


def test_robot_key_is_the_robot_not_the_target_and_holds_no_token(config: Config) -> None:
    t = config.targets
    assert robot_key(t["a"]) == robot_key(t["b"]) == robot_key(t["digests"])
    assert robot_key(t["a"]) != robot_key(t["other"])
    assert robot_key(t["notice1"]) == robot_key(t["notice2"]) != robot_key(t["a"])
    for target in t.values():
        assert "T1" not in robot_key(target) and "s3cret" not in robot_key(target)
    signed = RobotTarget("s", "https://oapi.dingtalk.com/robot/send?access_token=T1", "SECx")
    assert robot_key(signed) == robot_key(t["a"])  # the secret signs; the token is the robot
    elsewhere = RobotTarget("e", "http://127.0.0.1:9/robot/send?access_token=T1", None)
    assert robot_key(elsewhere) != robot_key(t["a"])  # another DingTalk (a simulator)


# -- one robot, one window ----------------------------------------------------------------------

SHARING = {
    # (targets, alerts queued per target, most calls allowed per robot per minute)
    "two_targets_one_robot": (["a", "b"], 25, {"T1": 20}),
    "robots_apart": (["a", "other"], 25, {"T1": 20, "T2": 20}),
}


@pytest.mark.parametrize(("targets", "each", "limits"), SHARING.values(), ids=SHARING.keys())
def test_targets_of_one_robot_share_its_20_calls_a_minute(
    config: Config,
    store: Store,
    ding: FakeDingTalk,
    clock: FakeClock,
    windows: RobotWindows,
    targets: list[str],
    each: int,
    limits: dict[str, int],
) -> None:
    for name in targets:
        enqueue(store, name, [f"{name}{i:03d}" for i in range(each)], clock.time())
    senders = [make(config, n, store, ding, clock, windows) for n in targets]
    drive(senders, clock, 10)
    first_ten_seconds = Counter(c.robot for c in ding.ok_calls())
    drive(senders, clock, 300)

    assert not pending(store), "everything delivered in the end"
    assert len(ding.ok_calls()) == each * len(targets)
    by_token = {
        tok: robot_key(
            RobotTarget("x", f"https://oapi.dingtalk.com/robot/send?access_token={tok}", None)
        )
        for tok in limits
    }
    for token, limit in limits.items():
        times = [c.at for c in ding.ok_calls(by_token[token])]
        assert most_in_any_window(times) <= limit, (token, times)
        # ...and the window is used: the robot's first 20 calls go out at once.
        assert first_ten_seconds[by_token[token]] == limit


def test_a_lockout_of_the_robot_holds_every_target_of_it_and_outlives_a_restart(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    ding.fail(config.targets["a"], errcode(130101, Reason.RATE_LIMITED, True, 600.0))
    enqueue(store, "a", ["A0"], clock.time())
    enqueue(store, "b", ["B0"], clock.time() + 1)
    a, b = (make(config, n, store, ding, clock, windows) for n in ("a", "b"))
    drive([a, b], clock, 1)
    assert [c.answer for c in ding.calls] == ["rate_limited"]
    locked_at = ding.calls[0].at

    drive([a, b], clock, 590)  # within DingTalk's 600 s: not one call, from either target
    assert len(ding.calls) == 1
    # The lockout is the robot's in the store too (keyed by its hash, never by the token).
    with store.reading():
        rows = raw(store).execute("SELECT robot, until FROM robot_lockouts").fetchall()
    assert rows == [(robot_key(config.targets["a"]), locked_at + 600.0)]
    restarted = window_of(RobotWindows(StoredWindows(store, clock)), config.targets["b"])
    assert restarted.locked_until == locked_at + 600.0

    drive([a, b], clock, 60)
    assert sorted(c.target for c in ding.ok_calls()) == ["a", "b"]
    assert all(c.at >= locked_at + 600.0 for c in ding.ok_calls())


def test_the_window_is_read_back_after_a_restart(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    enqueue(store, "a", [f"A{i}" for i in range(15)], clock.time())
    drive([make(config, "a", store, ding, clock, windows)], clock, 5)
    assert len(ding.calls) == 15
    # A restart: new windows from the store; target b of the same robot has 5 calls left.
    fresh = RobotWindows(StoredWindows(store, clock))
    enqueue(store, "b", [f"B{i}" for i in range(10)], clock.time())
    drive([make(config, "b", store, ding, clock, fresh)], clock, 30)
    assert len(ding.calls) == 20
    drive([make(config, "b", store, ding, clock, fresh)], clock, 60)
    assert len(ding.calls) == 25
    assert most_in_any_window([c.at for c in ding.calls]) <= 20


def test_rows_of_the_per_target_tables_are_adopted_by_the_robot(
    config: Config, tmp_path: Path, clock: FakeClock
) -> None:
    state = tmp_path / "old"
    state.mkdir()
    conn = sqlite3.connect(state / "state.db")
    conn.executescript(
        "CREATE TABLE sends (target TEXT NOT NULL, at REAL NOT NULL);"
        "CREATE TABLE lockouts (target TEXT PRIMARY KEY, until REAL NOT NULL);"
    )
    conn.executemany(
        "INSERT INTO sends VALUES (?, ?)",
        [("a", clock.time() - 10), ("b", clock.time() - 5), ("b", clock.time() - 7200)],
    )
    conn.execute("INSERT INTO lockouts VALUES ('b', ?)", (clock.time() + 100,))
    conn.commit()
    conn.close()
    store = SqliteStore(state)
    try:
        windows = RobotWindows(StoredWindows(store, clock))
        window = window_of(windows, config.targets["a"])
        assert window.calls() == [clock.time() - 10] and window.locked_until == 0.0
        window = window_of(windows, config.targets["b"])  # the same robot: b's rows join it
        assert window.calls() == [clock.time() - 10, clock.time() - 5]
        assert window.locked_until == clock.time() + 100
        with store.reading():
            tables = {
                r[0]
                for r in raw(store).execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            assert not {"sends", "lockouts"} & tables  # nothing left to adopt: dropped
            assert raw(store).execute("SELECT COUNT(*) FROM robot_calls").fetchone()[0] == 2
    finally:
        store.close()


def test_a_digest_counts_the_calls_other_targets_of_the_robot_made(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    enqueue(store, "a", [f"A{i}" for i in range(18)], clock.time())
    drive([make(config, "a", store, ding, clock, windows)], clock, 2)
    assert len(ding.calls) == 18  # 2 calls left in the robot's minute
    enqueue(store, "digests", [f"D{i:02d}" for i in range(10)], clock.time())
    drive([make(config, "digests", store, ding, clock, windows)], clock, 2)
    # Not 2 single alerts and 8 waiting a minute: the 10 go out merged.
    digest_calls = [c for c in ding.calls if c.target == "digests"]
    assert len(digest_calls) == 1, texts(digest_calls)
    assert all(f"D{i:02d}" in texts(digest_calls) for i in range(10))
    assert not pending(store)


def test_a_storm_of_long_titles_claims_about_what_one_digest_carries(
    config: Config,
    store: Store,
    ding: FakeDingTalk,
    clock: FakeClock,
    windows: RobotWindows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Titles of ~330 bytes: a digest carries about 50 of the 100 rows a claim may hold.
    After the first digest the claims shrink to that and a quarter, and every alert still
    goes out once, in full digests."""
    names = [f"L{i:03d}-" + "x" * 150 for i in range(400)]  # a title names it twice
    enqueue(store, "digests", names, clock.time())
    sender = make(config, "digests", store, ding, clock, windows)
    claimed: list[int] = []
    take = sender.claims.take

    def counting(now: float, count_backlog: bool, limit: Callable[[int], int]) -> Any:
        def noted(backlog: int) -> int:
            claimed.append(limit(backlog))
            return claimed[-1]

        return take(now, count_backlog=count_backlog, limit=noted)

    monkeypatch.setattr(sender.claims, "take", counting)
    drive([sender], clock, 30)
    calls = [texts([c]) for c in ding.ok_calls()]
    assert not pending(store)
    assert [sum(f"L{i:03d}-" in c for c in calls) for i in range(400)] == [1] * 400
    digests = [c for c in calls if "\\n- L" in c]  # singles carry no digest line
    carried = [c.count("\\n- L") for c in digests]  # a line each
    assert claimed[0] == 100 and 30 < carried[0] < 80
    assert set(claimed[1 : len(digests)]) == {digest_claim(100, carried[0])}
    # The smaller claims make no digest smaller: the titles are of one length, so each is as
    # full as the first (until the backlog is small enough to go out alone).
    assert carried[:-1] == [carried[0]] * (len(carried) - 1) and carried[-1] <= carried[0]
    assert len(digests) < 400 / carried[0] + 1


DIGEST_CLAIMS = {
    # (digest.max_alerts, alerts in the last digest if its size cut it, rows to claim)
    "never_cut": (100, None, 100),
    "cut_at_52": (100, 52, 66),
    "cut_at_1": (100, 1, 2),
    "cut_near_the_max": (100, 90, 100),
}


@pytest.mark.parametrize(("most", "fitted", "claim"), DIGEST_CLAIMS.values(), ids=DIGEST_CLAIMS)
def test_digest_claim(most: int, fitted: int | None, claim: int) -> None:
    assert digest_claim(most, fitted) == claim


def test_replicas_on_one_store_share_the_robots_20_calls_and_its_lockout(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock
) -> None:
    """Two replicas (each its own windows, one store): together 20 calls in any minute, and
    a lockout one of them met holds the other's target of the robot."""
    replicas = [RobotWindows(StoredWindows(store, clock)) for _ in range(2)]
    enqueue(store, "a", [f"A{i:02d}" for i in range(25)], clock.time())
    enqueue(store, "b", [f"B{i:02d}" for i in range(25)], clock.time())
    senders = [make(config, "a", store, ding, clock, replicas[0])]
    senders.append(make(config, "b", store, ding, clock, replicas[1]))
    drive(senders, clock, 10)
    assert len(ding.ok_calls()) == 20  # not 20 each
    drive(senders, clock, 120)
    assert len(ding.ok_calls()) == 50 and not pending(store)
    assert most_in_any_window([c.at for c in ding.calls]) <= 20
    last = ding.calls[-1].at
    recent = len([c for c in ding.calls if c.at >= last - WINDOW - 1])  # older ones forgotten
    with store.reading():  # every call counted once, no reservation left behind
        rows = raw(store).execute("SELECT COUNT(*), COUNT(reservation) FROM robot_calls")
        assert rows.fetchone() == (recent, 0)

    ding.fail(config.targets["a"], errcode(130101, Reason.RATE_LIMITED, True, 600.0))
    enqueue(store, "a", ["Locked"], clock.time())
    drive(senders[:1], clock, 1)
    enqueue(store, "b", ["Behind"], clock.time())
    drive(senders, clock, 590)
    assert [c.answer for c in ding.calls[50:]] == ["rate_limited"]  # b never called meanwhile
    drive(senders, clock, 60)
    assert sorted(c.target for c in ding.ok_calls()[50:]) == ["a", "b"]


def test_a_lockout_one_replica_met_holds_an_unlimited_app_on_another(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock
) -> None:
    """A work notice's app takes no turns (no limit by default), but its lockout is shared."""
    replicas = [RobotWindows(StoredWindows(store, clock)) for _ in range(2)]
    senders = [
        make(config, name, store, ding, clock, windows)
        for name, windows in zip(("notice1", "notice2"), replicas, strict=True)
    ]
    drive(senders, clock, 1)  # both running (their windows read the store) before the lockout
    ding.fail(config.targets["notice1"], errcode(143103, Reason.RATE_LIMITED, True, 60.0))
    enqueue(store, "notice1", ["N1"], clock.time())
    drive(senders[:1], clock, 1)
    enqueue(store, "notice2", ["N2"], clock.time())
    drive(senders, clock, 57)
    assert [c.answer for c in ding.calls] == ["rate_limited"]
    drive(senders, clock, 5)
    assert sorted(c.target for c in ding.ok_calls()) == ["notice1", "notice2"]


def test_a_call_that_never_reached_dingtalk_leaves_no_call_in_the_store(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    ding.fail(config.targets["a"], http_500)
    enqueue(store, "a", ["A0"], clock.time())
    drive([make(config, "a", store, ding, clock, windows)], clock, 0)
    assert [c.answer for c in ding.calls] == ["server_error"]
    with store.reading():  # its reservation went with the outcome: the slot is free again
        assert raw(store).execute("SELECT COUNT(*) FROM robot_calls").fetchone() == (0,)


def test_work_notice_targets_of_one_app_share_its_minute_quota(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    ding.fail(config.targets["notice1"], errcode(143103, Reason.RATE_LIMITED, True, 60.0))
    enqueue(store, "notice1", ["N1"], clock.time())
    enqueue(store, "notice2", ["N2"], clock.time())
    senders = [make(config, n, store, ding, clock, windows) for n in ("notice1", "notice2")]
    drive(senders, clock, 59)
    assert [c.answer for c in ding.calls] == ["rate_limited"]
    drive(senders, clock, 5)
    assert sorted(c.target for c in ding.ok_calls()) == ["notice1", "notice2"]


# -- outage pacing ------------------------------------------------------------------------------

OUTAGES = {
    # (failure, counted by DingTalk's window)
    "http_500": (http_500, False),
    "connection_refused": (connection_refused, False),
    "timeout": (timed_out, True),
    "errcode_busy": (busy, True),
}


@pytest.mark.parametrize(("failure", "counted"), OUTAGES.values(), ids=OUTAGES.keys())
def test_an_outage_is_probed_one_message_at_a_time_and_does_not_starve_the_next_minute(
    config: Config,
    store: Store,
    ding: FakeDingTalk,
    clock: FakeClock,
    windows: RobotWindows,
    failure: Callable[[], DeliveryError],
    counted: bool,
) -> None:
    target = config.targets["a"]
    ding.fail(target, *[failure] * 5)
    enqueue(store, "a", [f"A{i:02d}" for i in range(20)], clock.time())
    sender = make(config, "a", store, ding, clock, windows, rand=1.0)
    drive([sender], clock, 120)

    failed = [c for c in ding.calls if c.answer != "ok"]
    assert len(failed) == 5
    # The oldest message probes; the queue behind it is not burnt on a failing robot.
    assert {c.body["markdown"]["title"] for c in failed} == {"A00 alert ALARM"}
    # Probes spaced by the backoff (rand=1: the ceiling): 1, 2, 4, 8 s.
    gaps = [round(b.at - a.at, 3) for a, b in itertools.pairwise(failed)]
    assert gaps == [1.0, 2.0, 4.0, 8.0]
    recovered = failed[-1].at + 16.0
    ok = ding.ok_calls()
    assert ok[0].at == recovered and ok[0].body["markdown"]["title"] == "A00 alert ALARM"
    # After the outage the minute is the queue's: the calls that never reached DingTalk's
    # counter took none of it (a timeout or an errcode answer might have, and do count).
    # Until the first failed call leaves DingTalk's window, the robot has 20 calls left, less
    # the failures DingTalk counted.
    before_first_expires = [c for c in ok if c.at < failed[0].at + WINDOW]
    assert len(before_first_expires) == (15 if counted else 20)
    assert (
        most_in_any_window([c.at for c in ok] + ([c.at for c in failed] if counted else [])) <= 20
    )
    assert len(ok) == 20 and not pending(store)


def test_a_probe_of_one_target_holds_the_other_targets_of_the_robot(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    ding.fail(config.targets["a"], http_500, http_500)
    enqueue(store, "a", ["A0"], clock.time())
    enqueue(store, "b", [f"B{i}" for i in range(5)], clock.time() + 0.5)
    senders = [make(config, n, store, ding, clock, windows) for n in ("a", "b")]
    drive(senders, clock, 2.5)  # A0 failed at 0 and at 1; the next probe is due at 3
    assert [c.answer for c in ding.calls] == ["server_error", "server_error"]
    drive(senders, clock, 10)
    assert len(ding.ok_calls()) == 6
    assert min(c.at for c in ding.ok_calls()) >= START + 3.0


def test_a_permanent_refusal_does_not_slow_the_robot(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    ding.fail(config.targets["a"], errcode(310000, Reason.DINGTALK_CONFIG, False))
    enqueue(store, "a", ["A0", "A1", "A2"], clock.time())
    drive([make(config, "a", store, ding, clock, windows)], clock, 1)
    assert [c.answer for c in ding.calls] == ["dingtalk_config", "ok", "ok"]
    assert all(c.at == START for c in ding.calls)
    [row] = dead(store)
    assert (row.reason, row.errcode, row.errmsg) == ("dingtalk_config", 310000, "simulated 310000")


def test_a_retryable_refusal_backs_off_that_message_only(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    # A token refused once (errcode answer, not an outage): the message waits its backoff, the
    # robot keeps serving the rest.
    ding.fail(config.targets["a"], errcode(40014, Reason.AUTH, True))
    enqueue(store, "a", ["A0", "A1"], clock.time())
    sender = make(config, "a", store, ding, clock, windows, rand=0.5)
    drive([sender], clock, 0.1)
    assert [(c.answer, c.at) for c in ding.calls] == [("auth", START), ("ok", START)]
    [row] = pending(store)
    assert row.attempts == 1 and row.not_before == START + 0.5  # 0.5 x 1 s
    drive([sender], clock, 1)
    assert not pending(store) and len(ding.ok_calls()) == 2


def test_past_give_up_after_a_failing_message_is_an_expired_dead_letter(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    ding.fail(config.targets["short"], *[http_500] * 100)
    enqueue(store, "short", ["S0"], clock.time())
    drive([make(config, "short", store, ding, clock, windows)], clock, 40)
    [row] = dead(store)
    assert row.reason == "expired:server_error" and row.errmsg == "HTTP 500"
    assert 20 < row.updated_at - row.created_at <= 24  # the first failure past 20 s
    calls = len(ding.calls)
    drive([make(config, "short", store, ding, clock, windows)], clock, 60)
    assert len(ding.calls) == calls  # a dead letter is not retried


def test_while_the_robot_fails_every_message_past_give_up_after_expires_at_once(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    ding.fail(config.targets["short"], *[http_500] * 100)
    enqueue(store, "short", ["S0", "S1", "S2"], clock.time())
    enqueue(store, "short", ["Late"], clock.time() + 15)
    drive([make(config, "short", store, ding, clock, windows)], clock, 26)
    # S0 probed the outage; once past 20 s, S1 and S2 expire with it (they never had a turn),
    # while Late, younger than 20 s, waits for DingTalk to come back.
    assert {c.body["markdown"]["title"] for c in ding.calls} == {"S0 alert ALARM"}
    assert sorted(r.id.rsplit("-", 1)[1] for r in dead(store)) == ["S0", "S1", "S2"]
    assert {r.reason for r in dead(store)} == {"expired:server_error"}
    assert [r.id.rsplit("-", 1)[1] for r in pending(store)] == ["Late"]


def test_a_long_alert_goes_in_parts_each_paced_and_recorded(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    enqueue(store, "a", [f"A{i}" for i in range(19)], clock.time())
    long_text = "\n".join(f"line {i:05d} " + "x" * 60 for i in range(800))  # ~55 KB
    enqueue(store, "a", ["Long"], clock.time() + 1, description=long_text)
    sender = make(config, "a", store, ding, clock, windows)
    drive([sender], clock, 5)
    # 19 singles and the first part fill the window; the next parts wait for it.
    assert len(ding.calls) == 20
    [row] = pending(store)
    assert row.parts_sent == 1
    drive([sender], clock, 120)
    parts = [c for c in ding.calls if "Long" in c.body["markdown"]["title"]]
    assert len(parts) >= 3 and not pending(store)
    assert parts[1].at >= parts[0].at + WINDOW - 20  # paced like messages
    joined = "".join(p.body["markdown"]["text"] for p in parts)
    assert all(f"line {i:05d}" in joined for i in range(800))


# -- a poison message ---------------------------------------------------------------------------


def test_a_message_that_breaks_the_sender_is_an_internal_dead_letter_and_the_queue_goes_on(
    config: Config,
    store: Store,
    ding: FakeDingTalk,
    clock: FakeClock,
    windows: RobotWindows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = {r.name: r for r in config.rules}

    class Buggy(QueuedRenderer):
        def message(self, row: records.Row, now: datetime) -> Rendered:
            if row.event is not None and row.event.labels["alertname"] == "Poison":
                raise TypeError("can't subtract offset-naive and offset-aware datetimes")
            return super().message(row, now)

    enqueue(store, "a", ["Before", "Poison", "After"], clock.time())
    sender = make(config, "a", store, ding, clock, windows, renderer=Buggy(lambda: rules))
    drive([sender], clock, 5)

    assert [c.body["markdown"]["title"] for c in ding.calls] == [
        "Before alert ALARM",
        "After alert ALARM",
    ]
    [row] = dead(store)
    assert row.id.endswith("Poison") and row.reason == "internal" == Reason.INTERNAL.value
    assert row.errmsg == "TypeError: can't subtract offset-naive and offset-aware datetimes"
    assert not pending(store)
    assert sender.stats.internal_errors == 1 and sender.stats.dead_letters == 1
    status = sender.status()
    assert status["internal_errors"] == 1
    assert status["last_internal_error"]["id"] == row.id
    assert "offset-naive" in status["last_internal_error"]["error"]


def test_the_zone_less_start_seen_in_the_field_blocks_nothing(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    # The alert: startsAt without a zone, endsAt with Z. Rendering it may fail (a dead
    # letter, reason internal) or succeed (once intake or the renderer normalises it); either
    # way the alert behind it is delivered and nothing stays stuck.
    naive = datetime(2026, 1, 1, 10, 0, 0)
    aware = datetime(2026, 1, 1, 10, 5, 0, tzinfo=UTC)
    odd = (Alert("resolved", {"alertname": "Odd", "host": "h"}, {}, naive, aware, "", "odd"),)
    enqueue(store, "a", ["Odd"], clock.time(), alerts=odd)
    enqueue(store, "a", ["Behind"], clock.time() + 1)
    drive([make(config, "a", store, ding, clock, windows)], clock, 5)
    assert "Behind alert ALARM" in texts(ding.ok_calls())
    assert not pending(store)
    assert all(r.reason == "internal" for r in dead(store))


def test_a_stored_row_that_no_longer_decodes_is_dead_lettered_and_blocks_nothing(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    enqueue(store, "a", ["Broken"], clock.time())
    enqueue(store, "a", ["Behind"], clock.time() + 1)
    with store.transaction():  # an older version's format, or a damaged value
        raw(store).execute("UPDATE outbox SET message = '{\"msgtype\": 3' WHERE id LIKE '%Broken'")
    drive([make(config, "a", store, ding, clock, windows)], clock, 5)
    assert texts(ding.ok_calls()) and "Behind alert ALARM" in texts(ding.ok_calls())
    assert not pending(store)
    with store.reading():
        [(id_, reason, errmsg)] = (
            raw(store)
            .execute("SELECT id, reason, errmsg FROM outbox WHERE status = 'dead'")
            .fetchall()
        )
    assert id_.endswith("Broken") and reason == "internal" and "unreadable row" in errmsg


def test_an_unreadable_row_in_a_digests_claim_leaves_the_rest_of_the_claim_sent(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    # A digest claims many rows and decodes them after the claim commits: the one that does not
    # decode is dead-lettered, and the others, still this sender's, go out at its next turns.
    names = [f"N{i:02d}" for i in range(40)]
    names[17] = "Broken"
    enqueue(store, "digests", names, clock.time())
    with store.transaction():
        raw(store).execute("UPDATE outbox SET message = '{\"msgtype\": 3' WHERE id LIKE '%Broken'")
    drive([make(config, "digests", store, ding, clock, windows)], clock, 120)
    sent = texts(ding.ok_calls())
    assert len(ding.ok_calls()) < 20  # digests: many rows a claim
    assert all(name in sent for name in names if name != "Broken")
    assert "Broken" not in sent
    assert not pending(store)
    with store.reading():
        dead_ids = [i for (i,) in raw(store).execute("SELECT id FROM outbox WHERE status = 'dead'")]
    assert len(dead_ids) == 1 and dead_ids[0].endswith("Broken")


def test_a_bug_inside_the_call_dead_letters_the_message_and_counts_the_call(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    ding.fail(
        config.targets["a"], lambda: UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates")
    )
    enqueue(store, "a", ["A0", "A1"], clock.time())
    sender = make(config, "a", store, ding, clock, windows)
    drive([sender], clock, 1)
    [row] = dead(store)
    assert (
        row.reason == "internal" and row.errmsg is not None and "UnicodeEncodeError" in row.errmsg
    )
    assert [c.answer for c in ding.calls] == ["bug", "ok"]
    # It may have reached DingTalk: it counts in the robot's window.
    assert (
        window_of(windows, config.targets["a"]).used(config.targets["a"].policy.rate, clock.time())
        == 2
    )


# -- a success the store could not record -------------------------------------------------------


def test_a_success_the_store_cannot_record_is_never_sent_again(
    config: Config,
    store: BreakableStore,
    ding: FakeDingTalk,
    clock: FakeClock,
    windows: RobotWindows,
) -> None:
    enqueue(store, "a", ["A0", "A1"], clock.time())
    sender = make(config, "a", store, ding, clock, windows)
    _ = sender.window
    store.broken = True  # the disk fills up while A0 is in flight
    drive([sender], clock, 30)  # (within the robot's window: both calls are still kept below)
    assert [c.body["markdown"]["title"] for c in ding.calls] == ["A0 alert ALARM"]
    held = sender.status()["unrecorded"]
    assert held["outcome"] == "delivered" and "disk is full" in held["error"]
    assert len(pending(store)) == 2  # the store still lists A0: only memory knows better

    store.broken = False
    drive([sender], clock, 60)
    assert [c.body["markdown"]["title"] for c in ding.calls] == ["A0 alert ALARM", "A1 alert ALARM"]
    assert sender.status()["unrecorded"] is None and not pending(store)
    with store.reading():  # the held outcome's call was recorded with it
        assert raw(store).execute("SELECT COUNT(*) FROM robot_calls").fetchone()[0] == 2


def test_store_retries_back_off(
    config: Config,
    store: BreakableStore,
    ding: FakeDingTalk,
    clock: FakeClock,
    windows: RobotWindows,
) -> None:
    enqueue(store, "a", ["A0"], clock.time())
    sender = make(config, "a", store, ding, clock, windows)
    _ = sender.window
    store.broken = True
    waits = [sender.step()]
    for _ in range(10):
        clock.advance(waits[-1])
        waits.append(sender.step())
    assert waits[0] == 0.0  # sent; the outcome is held
    assert waits[1:] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert len(ding.calls) == 1


def test_a_failed_call_the_store_cannot_record_is_not_hammered(
    config: Config,
    store: BreakableStore,
    ding: FakeDingTalk,
    clock: FakeClock,
    windows: RobotWindows,
) -> None:
    ding.fail(config.targets["a"], busy)
    enqueue(store, "a", ["A0", "A1"], clock.time())
    sender = make(config, "a", store, ding, clock, windows)
    _ = sender.window
    store.broken = True
    drive([sender], clock, 60)
    assert [c.answer for c in ding.calls] == ["dingtalk_busy"]
    store.broken = False
    drive([sender], clock, 60)
    assert [c.answer for c in ding.calls] == ["dingtalk_busy", "ok", "ok"]
    assert not pending(store)


# -- the window itself --------------------------------------------------------------------------


def test_calls_in_flight_count_in_the_window() -> None:
    window = RobotWindow("robot-x")
    rate = RobotTarget("x", "https://h/robot/send?access_token=T", None).policy.rate
    tickets = [window.acquire(rate, START) for _ in range(20)]
    assert all(not isinstance(t, float) for t in tickets)
    assert window.acquire(rate, START) == START + WINDOW + 1.0
    # Answered late: counted when answered, so the 21st waits for the answer time + window.
    for t in tickets:
        window.settle(t, START + 2, counted=True, failing=False)  # type: ignore[arg-type]
    assert window.acquire(rate, START + 3) == START + 2 + WINDOW + 1.0


def test_calls_that_never_reached_dingtalk_free_their_slot() -> None:
    window = RobotWindow("robot-x")
    rate = RobotTarget("x", "https://h/robot/send?access_token=T", None).policy.rate
    ticket = window.acquire(rate, START)
    assert not isinstance(ticket, float)
    probe = window.settle(ticket, START, counted=False, failing=True, retry_at=lambda n: START + n)
    assert probe == START + 1 and window.used(rate, START) == 0
    assert window.acquire(rate, START + 0.5) == START + 1  # failing: wait for the probe time
    ticket = window.acquire(rate, START + 1)
    assert not isinstance(ticket, float) and ticket.probe
    assert window.acquire(rate, START + 1) == START + 1.5  # one probe at a time
    window.settle(ticket, START + 1.2, counted=True, failing=False)
    assert window.failures == 0 and window.acquire(rate, START + 1.3) != START + 1.8


# -- what /-/ready and /metrics say ------------------------------------------------------------


def test_readiness_and_metrics_show_internal_errors_and_held_outcomes(
    config: Config,
    store: BreakableStore,
    ding: FakeDingTalk,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bridge.app.bridge import Bridge
    from tests.harness import metric_value

    bridge = Bridge(config, store=store)
    a = bridge.senders["a"] = make(config, "a", store, ding, clock, bridge.windows)
    b = bridge.senders["b"] = make(config, "b", store, ding, clock, bridge.windows)
    ding.fail(config.targets["a"], lambda: TypeError("a bug of ours"))
    enqueue(store, "a", ["Poison", "Fine"], clock.time())
    drive([a], clock, 1)

    _ready, details = bridge.readiness()
    # A dead-lettered bug is a warning, not a reason to turn alerts away: the queue moved on.
    # (The only problems: the senders here are driven by the test, not by their threads.)
    assert all("is not running" in p for p in details["problems"]), details["problems"]
    [warning] = details["warnings"]
    assert "target a" in warning and "TypeError: a bug of ours" in warning
    queue = details["queues"]["a"]
    assert queue["internal_errors"] == 1 and queue["pending"] == 0
    assert queue["robot"] == details["queues"]["b"]["robot"] == robot_key(config.targets["a"])
    text = bridge.metrics().decode()
    assert metric_value(text, "internal_errors_total", target="a") == 1
    assert metric_value(text, "internal_errors_total", target="b") == 0

    enqueue(store, "b", ["Held"], clock.time())
    store.broken = True
    drive([b], clock, 1)
    store.broken = False  # the probe of readiness writes: let it, the sender still holds
    _ready, details = bridge.readiness()
    assert any("target b holds a delivered outcome" in p for p in details["problems"])
    assert details["queues"]["b"]["unrecorded"]["outcome"] == "delivered"
    assert metric_value(bridge.metrics().decode(), "sender_unrecorded", target="b") == 1
    drive([b], clock, 5)
    assert all("is not running" in p for p in bridge.readiness()[1]["problems"])


def test_a_window_keeps_calls_only_as_long_as_a_target_needs_them() -> None:
    """Calls are kept for the longest window of the robot's targets and not at all while every
    target is unlimited: an hour of timestamps per busy robot was the soak's slow RSS creep."""
    from bridge.config.model import RateLimit

    window = RobotWindow("robot-x")
    unlimited = RateLimit(0, 60.0)
    for i in range(100):
        ticket = window.acquire(unlimited, START + i)
        assert not isinstance(ticket, float)
        window.settle(ticket, START + i, counted=True, failing=False)
    assert window.keep == 0 and window.used(RateLimit(20, 60.0), START + 100) == 0
    limited = RateLimit(1000, 60.0)
    for i in range(200):
        ticket = window.acquire(limited, START + 100 + i)
        assert not isinstance(ticket, float)
        window.settle(ticket, START + 100 + i, counted=True, failing=False)
    assert window.keep == 61.0  # the window and its safety margin
    assert window.used(limited, START + 299) == 61  # one a second, the last 61 s ...
    assert len(window._calls) <= 62  # ... and little more is kept


# -- what one send's outcome does to its message and its robot ---------------------------------

SENT_OUTCOMES: dict[str, tuple[str, Callable[[], Answer], dict[str, Any]]] = {
    # (target, the channel's outcome, what follows: the row's status (None: gone), reason,
    # errcode, not_before and lockout (seconds from now), the robot failing, calls counted)
    "delivered_leaves_the_outbox": ("a", Delivered, {"status": None, "counted": 1}),
    "awaiting_result_stays_sent_with_its_task": (
        "notice1",
        lambda: AwaitingResult(77),
        {"status": "sent", "task_id": 77},  # (a work notice's app is not limited by default)
    ),
    "refused_is_a_dead_letter_with_dingtalks_words": (
        "a",
        lambda: Refused(
            reason=Reason.DINGTALK_CONFIG,
            detail="robot refused (errcode 310000: keywords not in content)",
            errcode=310000,
            errmsg="keywords not in content",
        ),
        {"status": "dead", "reason": "dingtalk_config", "errcode": 310000, "counted": 1},
    ),
    "retry_later_backs_off_that_message": (
        "a",
        lambda: RetryLater(reason=Reason.AUTH, detail="token", errcode=40014),
        {"status": "pending", "reason": "auth", "not_before": 1.0, "counted": 1},
    ),
    "retry_later_waits_at_least_dingtalks_wait": (
        "a",
        lambda: RetryLater(reason=Reason.AUTH, detail="token", errcode=40014, retry_after=5.0),
        {"status": "pending", "not_before": 5.0, "counted": 1},
    ),
    "an_outage_makes_the_robot_probe": (
        "a",
        lambda: RetryLater(reason=Reason.SERVER_ERROR, detail="HTTP 502", errmsg="HTTP 502"),
        {"status": "pending", "reason": "server_error", "not_before": 1.0, "failing": 1},
    ),
    "locked_out_holds_the_robot": (
        "a",
        lambda: LockedOut(
            reason=Reason.RATE_LIMITED, detail="too fast", errcode=130101, seconds=600.0
        ),
        {"status": "pending", "not_before": 600.0, "lockout": 600.0, "counted": 1},
    ),
    "a_130101_locks_out_for_the_configured_time": (
        "short",
        errcode(130101, Reason.RATE_LIMITED, True, 600.0),
        {"status": "pending", "errcode": 130101, "not_before": 30.0, "lockout": 30.0, "counted": 1},
    ),
}


@pytest.mark.parametrize(("name", "answer", "then"), SENT_OUTCOMES.values(), ids=SENT_OUTCOMES)
def test_each_outcome_of_a_send_does_what_it_says(
    config: Config,
    store: Store,
    ding: FakeDingTalk,
    clock: FakeClock,
    windows: RobotWindows,
    name: str,
    answer: Callable[[], Answer],
    then: dict[str, Any],
) -> None:
    target = config.targets[name]
    ding.fail(target, answer)
    enqueue(store, name, ["M"], START)
    sender = make(config, name, store, ding, clock, windows, rand=1.0)
    drive([sender], clock, 0)  # one send, no more
    assert len(ding.calls) == 1
    with store.reading() as tx:
        rows = tx.outbox.listing(target=name, limit=10)
        tasks = tx.notices.due(START + 3600, 10)
    if then["status"] is None:
        assert rows == []
    else:
        [row] = rows
        assert row.status == then["status"]
        for key in ("reason", "errcode"):
            if key in then:
                assert getattr(row, key) == then[key]
        if "not_before" in then:
            assert row.not_before == START + then["not_before"] and row.attempts == 1
    assert [t.task_id for t in tasks] == ([then["task_id"]] if "task_id" in then else [])
    window = window_of(windows, target)
    assert window.locked_until == (START + then["lockout"] if "lockout" in then else 0.0)
    assert window.failures == then.get("failing", 0)
    assert window.used(RateLimit(20, 60.0), clock.time()) == then.get("counted", 0)
    with store.reading():
        stored = raw(store).execute("SELECT until FROM robot_lockouts").fetchall()
    assert stored == ([(START + then["lockout"],)] if "lockout" in then else [])


# -- the pure decisions -------------------------------------------------------------------------

NOW = START + 100.0
POLICY = SendPolicy(retry_initial=1.0, retry_max=16.0, give_up_after=50.0)
FRESH, OLD = NOW - 10.0, NOW - 60.0  # created within give_up_after, and before it
AFTER_FAILURE: dict[str, tuple[Failed, float, DeadLetter | Retry]] = {
    # (failure, created_at of the message, decision)
    "refused_dead": (
        Refused(reason=Reason.DINGTALK_CONFIG, detail="", errcode=310000),
        FRESH,
        DeadLetter("dingtalk_config"),
    ),
    "too_large_dead": (Refused(reason=Reason.TOO_LARGE, detail=""), FRESH, DeadLetter("too_large")),
    "expired_in_an_outage_sweeps_the_rest": (
        RetryLater(reason=Reason.SERVER_ERROR, detail=""),
        OLD,
        DeadLetter("expired:server_error", sweep_expired=True),
    ),
    "expired_alone": (
        RetryLater(reason=Reason.AUTH, detail="", errcode=40014),
        OLD,
        DeadLetter("expired:auth"),
    ),
    "expired_while_locked_out": (
        LockedOut(reason=Reason.RATE_LIMITED, detail="", errcode=130101, seconds=600.0),
        OLD,
        DeadLetter("expired:rate_limited"),
    ),
    "locked_out_waits_it_out": (
        LockedOut(reason=Reason.RATE_LIMITED, detail="", errcode=143103, seconds=60.0),
        FRESH,
        Retry(NOW + 60.0, NOW + 60.0),
    ),
    "outage_waits_for_the_robots_probe": (
        RetryLater(reason=Reason.NETWORK, detail=""),
        FRESH,
        Retry(NOW + 7.0),
    ),
    "busy_is_an_outage": (
        RetryLater(reason=Reason.DINGTALK_BUSY, detail="", errcode=-1),
        FRESH,
        Retry(NOW + 7.0),
    ),
    "other_retries_back_off_by_attempt": (
        RetryLater(reason=Reason.AUTH, detail="", errcode=40014),
        FRESH,
        Retry(NOW + 3 * 1000.0),  # retry_at(attempts + 1) below: 3 attempts, so the 4th
    ),
}


@pytest.mark.parametrize(
    ("failed", "created", "decision"), AFTER_FAILURE.values(), ids=AFTER_FAILURE
)
def test_after_a_failure(failed: Failed, created: float, decision: DeadLetter | Retry) -> None:
    def retry_at(n: int) -> float:
        return NOW + (n - 1) * 1000.0

    assert after_failure(failed, POLICY, created, 3, NOW, NOW + 7.0, retry_at) == decision


DIGEST_THRESHOLDS = {
    # (rate, digest.after, calls used in the window, merge when more than this are queued)
    "window_fresh": (RateLimit(20, 60.0), 20, 0, 20),
    "after_smaller": (RateLimit(20, 60.0), 5, 0, 5),
    "two_calls_left": (RateLimit(20, 60.0), 20, 18, 2),
    "window_spent": (RateLimit(20, 60.0), 20, 20, 1),
    "unlimited": (RateLimit(0, 60.0), 20, 500, 20),
}


@pytest.mark.parametrize(
    ("rate", "after", "used", "threshold"), DIGEST_THRESHOLDS.values(), ids=DIGEST_THRESHOLDS
)
def test_digest_threshold(rate: RateLimit, after: int, used: int, threshold: int) -> None:
    assert digest_threshold(SendPolicy(rate=rate, digest_after=after), used) == threshold
