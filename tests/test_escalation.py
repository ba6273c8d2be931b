"""Escalation timelines (pipeline/escalation.py decides, pipeline/escalator.py sends): pure
tables of what is due, then whole timelines through the real intake, commit and SQLite store
with an injected clock (ack before a step, resolve between steps, a firing after the resolution,
a silence, a restart in the middle: the state reloaded from the store, no step repeated)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.alerting.actions import verify
from bridge.alerting.matchers import Matcher
from bridge.alerting.silences import Silence
from bridge.clock import FakeClock
from bridge.config.model import Config, Rule
from bridge.model import Event, Mention, Status
from bridge.pipeline.escalation import (
    StepDue,
    due_steps,
    next_due_at,
    step_deliveries,
    step_text,
)
from bridge.pipeline.escalator import Escalator, signed_ack_links
from bridge.pipeline.intake import Intake
from bridge.store.api import Store
from bridge.store.records import Escalation
from bridge.store.sqlite import SqliteStore
from tests.harness import compile_yaml

T0 = 1_780_000_000.0
LABELS = {"alertname": "DiskFull", "instance": "db-1"}

CONFIG = """
locale: en  # the step texts read in English below; test_a_step_in_chinese has the default
people:
  alice: {mobile: "13800000000"}
  bob: {userid: bob}
targets:
  chat: {type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token=t"}
  oncall: {type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token=u"}
  leads: {type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token=v"}
inputs: {hook: {type: webhook, path: /hook}}
rules:
  - name: disk
    targets: [chat]
    escalate:
      - {after: 10s, targets: [oncall], mention: [alice]}
      - {after: 30s, targets: [leads], mention: [bob]}
"""


def _rule(config: Config) -> Rule:
    return config.rules_by_name["disk"]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    compiled: Config = compile_yaml(tmp_path_factory.mktemp("config"), CONFIG)
    return compiled


# -- pure: what is due -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps_done", "acked", "silenced", "at", "due", "stopped"),
    [
        (0, False, False, 9.9, [], False),  # not yet
        (0, False, False, 10, [0], False),  # the first step, on time
        (0, False, False, 45, [0, 1], False),  # both overdue (a long restart): none lost, in order
        (1, False, False, 29, [], False),
        (1, False, False, 30, [1], False),
        (2, False, False, 3600, [], False),  # every step sent: nothing more
        (0, True, False, 45, [], True),  # acknowledged: stopped, nothing sent
        (2, True, False, 45, [], False),  # acknowledged after the last step: nothing to stop
        (0, False, True, 45, [], False),  # silenced: held, not stopped
    ],
)
def test_due_steps(
    config: Config,
    steps_done: int,
    acked: bool,
    silenced: bool,
    at: float,
    due: list[int],
    stopped: bool,
) -> None:
    one = Escalation("disk", "k", "fp1", LABELS, T0, steps_done)
    plan = due_steps(
        [one], config.rules_by_name, {"fp1": "alice"} if acked else {}, lambda _: silenced, T0 + at
    )
    assert [d.step for d in plan.due] == due
    assert plan.acked == (((one, "alice"),) if stopped else ())
    assert plan.orphaned == frozenset()


def test_an_escalation_of_a_rule_gone_or_without_steps_is_orphaned(config: Config) -> None:
    one = Escalation("gone", "k", "fp1", LABELS, T0)
    plan = due_steps([one], config.rules_by_name, {}, lambda _: False, T0 + 99)
    assert plan.due == () and plan.orphaned == frozenset({"gone"})


@pytest.mark.parametrize(("steps_done", "expected"), [(0, T0 + 10), (1, T0 + 30), (2, None)])
def test_next_due_at(config: Config, steps_done: int, expected: float | None) -> None:
    one = Escalation("disk", "k", "fp1", LABELS, T0, steps_done)
    assert next_due_at([one], config.rules_by_name) == expected


def test_a_step_says_which_it_is_how_long_and_how_to_ack(config: Config) -> None:
    due = StepDue(Escalation("disk", "k", "0123456789abcdef", LABELS, T0), 1)
    assert step_text(_rule(config), due, T0 + 1830, "https://b.example/-/act/x") == (
        "Escalation step 2/2: DiskFull on db-1 (rule disk) unacknowledged for 30m 30s.\n"
        "Ack: @robot ack 01234567\n"
        "Ack link: https://b.example/-/act/x"
    )
    [delivery] = step_deliveries(_rule(config), due, T0 + 1830)  # (English: CONFIG's locale)
    assert delivery.target == "leads" and delivery.event is None  # sent as it is
    assert delivery.message.mention == Mention(userids=("bob",))
    assert delivery.message.msgtype == "text" and "Ack link" not in delivery.message.text


def test_a_step_in_chinese_the_default_locale(tmp_path: Path) -> None:
    chinese: Config = compile_yaml(tmp_path, CONFIG.replace("locale: en", "", 1))
    due = StepDue(Escalation("disk", "k", "0123456789abcdef", LABELS, T0), 1)
    assert step_text(_rule(chinese), due, T0 + 1830, "https://b.example/-/act/x") == (
        "升级第 2/2 步：DiskFull（db-1）（规则 disk）已 30 分 30 秒无人确认。\n"
        "确认方法：@机器人 确认 01234567\n"
        "一键确认：https://b.example/-/act/x"
    )


# -- timelines through the intake and the store -----------------------------------------------


@dataclass
class Timeline:
    """The intake and the escalator on one store, the clock moved by hand."""

    config: Config
    directory: Path
    clock: FakeClock = field(default_factory=lambda: FakeClock(T0))
    silences: list[Silence] = field(default_factory=list)
    store: Store = field(init=False)
    escalator: Escalator = field(init=False)
    intake: Intake = field(init=False)
    sent: list[tuple[float, str, int]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """A new process on the same state: nothing but the store carries over."""
        if hasattr(self, "store"):
            self.store.close()
        self.store = SqliteStore(self.directory)
        self.intake = Intake(self.store, lambda targets: None)
        self.escalator = Escalator(
            self.store,
            lambda: self.config,
            lambda targets: None,
            lambda now: [s for s in self.silences if s.active(now)],
            self.clock,
        )

    def at(self, seconds: float) -> None:
        """Move the clock to T0 + `seconds` and run a round; note each step message queued (by
        its outbox row: a step queued twice would show twice)."""
        self.clock.advance(T0 + seconds - self.clock.time())
        self.escalator.round()
        with self.store.reading() as tx:
            for target in ("oncall", "leads"):
                for row in tx.outbox.due(target, float("inf"), 100):
                    if row.id not in self.seen:
                        self.seen.add(row.id)
                        step = int(row.message.text.split("step ")[1].split("/")[0])
                        self.sent.append((seconds, target, step))

    def post(self, status: Status) -> None:
        event = Event("hook", "webhook", status, LABELS, {}, "fp1", self.clock.now())
        self.intake.accept(self.config, self.config.inputs["hook"], [event], self.clock.now())

    def ack(self) -> None:
        with self.store.transaction() as tx:  # what Desk.acknowledge and Desk.act write
            tx.acks.acknowledge("fp1", "alice", self.clock.time())

    def steps(self) -> list[tuple[float, str, int]]:
        return sorted(self.sent)


Script = Callable[[Timeline], None]


def _fire_and_wait(t: Timeline) -> None:
    t.post("firing")
    for at in (5, 9.9, 10, 20, 29, 30, 60, 600):
        t.at(at)


def _ack_before_the_first(t: Timeline) -> None:
    t.post("firing")
    t.at(5)
    t.ack()
    for at in (10, 30, 60):
        t.at(at)


def _ack_between(t: Timeline) -> None:
    t.post("firing")
    t.at(10)
    t.clock.advance(5)
    t.ack()
    for at in (30, 60):
        t.at(at)


def _resolve_between(t: Timeline) -> None:
    t.post("firing")
    t.at(10)
    t.at(15)
    t.post("resolved")
    for at in (30, 60):
        t.at(at)


def _fire_again_after_resolve(t: Timeline) -> None:
    t.post("firing")
    t.at(5)
    t.post("resolved")
    t.at(6)
    t.post("firing")  # a new firing: its clock starts now
    for at in (10, 15.9, 16, 35.9, 36):
        t.at(at)


def _silenced_then_not(t: Timeline) -> None:
    t.post("firing")
    t.silences.append(
        Silence("s1", (Matcher("alertname", "=", "DiskFull"),), T0 + 1, T0 + 20, "", "ops")
    )
    for at in (10, 19):
        t.at(at)
    t.at(20)  # the silence ended, still unacknowledged: the held step goes now
    t.at(30)


def _restart_in_the_middle(t: Timeline) -> None:
    t.post("firing")
    t.at(10)
    t.restart()
    t.at(12)  # the first step is not sent again
    t.at(30)
    t.restart()
    t.at(31)
    t.at(90)


@pytest.mark.parametrize(
    ("script", "expected", "stopped"),
    [
        (_fire_and_wait, [(10, "oncall", 1), (30, "leads", 2)], {}),
        (_ack_before_the_first, [], {"ack": 1}),
        (_ack_between, [(10, "oncall", 1)], {"ack": 1}),
        (_resolve_between, [(10, "oncall", 1)], {"resolve": 1}),
        (_fire_again_after_resolve, [(16, "oncall", 1), (36, "leads", 2)], {"resolve": 1}),
        (_silenced_then_not, [(20, "oncall", 1), (30, "leads", 2)], {}),
        (_restart_in_the_middle, [(10, "oncall", 1), (30, "leads", 2)], {}),
    ],
    ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) else None,
)
def test_timeline(
    config: Config,
    tmp_path: Path,
    script: Script,
    expected: list[tuple[float, str, int]],
    stopped: dict[str, int],
) -> None:
    timeline = Timeline(config, tmp_path)
    try:
        script(timeline)
        assert timeline.steps() == expected
        if script is not _restart_in_the_middle:  # counters are per process
            assert dict(timeline.escalator.snapshot()[1]) == stopped
    finally:
        timeline.store.close()


LINKED = """
actions: {base_url: "https://bridge.example.com", secret: 0123456789abcdef0123}
targets:
  chat: {type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token=t"}
inputs: {hook: {type: webhook, path: /hook}}
rules:
  - {name: acked, targets: [chat], actions: [ack], escalate: [{after: 1m, targets: [chat]}]}
  - {name: plain, targets: [chat], escalate: [{after: 1m, targets: [chat]}]}
"""


def test_the_ack_link_is_signed_for_the_alert_and_the_message(tmp_path: Path) -> None:
    linked: Config = compile_yaml(tmp_path, LINKED)
    key = b"0123456789abcdef0123"
    links = signed_ack_links(lambda actions: key)
    one = Escalation("acked", "k", "fp1", LABELS, T0)
    url = links(linked, linked.rules_by_name["acked"], one, "chat", "m1", T0 + 60)
    assert url.startswith("https://bridge.example.com/-/act/")
    grant = verify(url.rsplit("/", 1)[1], key, T0 + 61).grant
    assert (grant.action, grant.fingerprint, grant.rule, grant.target, grant.nonce) == (
        "ack",
        "fp1",
        "acked",
        "chat",
        "m1",
    )
    plain = Escalation("plain", "k", "fp1", LABELS, T0)
    assert links(linked, linked.rules_by_name["plain"], plain, "chat", "m1", T0 + 60) == ""
