"""Who gets pinged: mention refs resolved through people and groups (tables), per status, from
labels through templates, `all` only by rule; and any label value never crashes a render."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.alerting.mentions import (
    describe_mention,
    merged,
    resolve,
    resolve_people,
    split_refs,
    userids_of,
)
from bridge.config.model import Config
from bridge.config.people import Directory, Person, mask_mobile
from bridge.errors import ConfigError, DeliveryError, Reason
from bridge.model import Event, Mention, Status
from bridge.pipeline.render import message_mention, render
from tests.harness import compile_yaml

NOW = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
ALICE = Person("alice", "13800000001", "u1", "Alice")
BOB = Person("bob", "", "u2", "bob")
CAROL = Person("carol", "13800000003", "", "carol")
DIRECTORY = Directory(
    {"alice": ALICE, "bob": BOB, "carol": CAROL},
    {
        "dba": ("alice", "bob"),
        "ops": ("carol", "alice", "bob"),  # flattened from [carol, dba] by the compiler
        "night": ("oncall:db",),
    },
)


@pytest.mark.parametrize(
    ("refs", "on_call", "people", "unknown"),
    [
        (["alice"], None, ["alice"], []),
        (["@alice"], None, ["alice"], []),
        (["dba"], None, ["alice", "bob"], []),
        (["ops"], None, ["carol", "alice", "bob"], []),  # nested group, flattened
        (["alice", "dba", "alice"], None, ["alice", "bob"], []),  # reached twice: once
        (["alice", "zed"], None, ["alice"], ["zed"]),
        (["oncall:db"], None, [], ["oncall:db"]),  # not wired yet: unknown
        (["oncall:db"], {"db": ("carol", "bob")}, ["carol", "bob"], []),
        (["oncall:web"], {"db": ("carol",)}, [], ["oncall:web"]),
        (["night"], {"db": ("bob",)}, ["bob"], []),  # a group holding a schedule
        (["oncall:db"], {"db": ("oncall:db", "alice")}, ["alice"], ["oncall:db"]),  # no loop
        (["all"], None, [], ["all"]),  # `all` is never a ref
        (["", "  "], None, [], []),
    ],
)
def test_resolution(
    refs: list[str],
    on_call: dict[str, tuple[str, ...]] | None,
    people: list[str],
    unknown: list[str],
) -> None:
    lookup = on_call.__getitem__ if on_call is not None else None
    resolution = resolve_people(refs, DIRECTORY, lookup)
    assert [p.key for p in resolution.people] == people
    assert list(resolution.unknown) == unknown


def test_mention_prefers_mobile_then_userid() -> None:
    assert resolve(["ops", "alice"], DIRECTORY) == Mention(("13800000003", "13800000001"), ("u2",))


def test_work_notice_recipients_are_userids() -> None:
    people = resolve_people(["ops"], DIRECTORY).people
    assert userids_of(people) == (("u1", "u2"), ("carol",))


@pytest.mark.parametrize(
    ("text", "names"),
    [("alice", ["alice"]), ("alice, bob", ["alice", "bob"]), (" a;b\nc ", ["a", "b", "c"])],
)
def test_split_refs(text: str, names: list[str]) -> None:
    assert split_refs(text) == names


@pytest.mark.parametrize(
    ("mobile", "masked"),
    [("13812345678", "138****5678"), ("+8613812345678", "+86*******5678"), ("1234", "****")],
)
def test_mobiles_are_masked(mobile: str, masked: str) -> None:
    assert mask_mobile(mobile) == masked


def test_merged_dedupes_and_keeps_all() -> None:
    a = Mention(("1",), ("u",), all=True)
    assert merged(a, Mention(("1", "2"), ("u",))) == Mention(("1", "2"), ("u",), True)
    assert describe_mention(Mention(("13812345678",), ("u1",))) == "138****5678, userid u1"


CONFIG = """
people:
  alice: {mobile: "13800000001", userid: u1}
  bob: {userid: u2}
  carol: {mobile: "13800000003"}
  groups:
    dba: [alice, bob]
    db-team: [dba, carol]
targets:
  ops: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}
inputs:
  hook: {type: webhook, path: /hook, labels: {owner: "{{ body.owner }}"}}
rules:
  - name: by-list
    targets: [ops]
    match: {case: list}
    mention: [carol, "{{ labels.owner }}"]
  - name: per-status
    targets: [ops]
    match: {case: status}
    mention:
      mobiles: ["13900000000"]
      firing: [db-team]
      resolved: ["{{ labels.owner }}"]
  - name: all-by-rule
    targets: [ops]
    match: {case: all}
    mention: {all: true, firing: ["{{ labels.owner }}"]}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    loaded: Config = compile_yaml(tmp_path_factory.mktemp("mentions"), CONFIG)
    return loaded


def _event(case: str, owner: str, status: Status = "firing") -> Event:
    labels = {"alertname": "X", "case": case, "owner": owner}
    return Event("hook", "webhook", status, labels, {}, "f" * 16, NOW)


@pytest.mark.parametrize(
    ("rule", "case", "owner", "status", "expected"),
    [
        ("by-list", "list", "alice", "firing", Mention(("13800000003", "13800000001"))),
        ("by-list", "list", "bob", "firing", Mention(("13800000003",), ("u2",))),
        ("by-list", "list", "dba", "firing", Mention(("13800000003", "13800000001"), ("u2",))),
        ("by-list", "list", "carol", "firing", Mention(("13800000003",))),  # twice: once
        (
            "by-list",
            "list",
            "alice,bob",
            "firing",
            Mention(("13800000003", "13800000001"), ("u2",)),
        ),
        ("by-list", "list", "stranger", "firing", Mention(("13800000003",))),
        ("by-list", "list", "alice", "resolved", Mention()),  # nobody on resolve by default
        (
            "per-status",
            "status",
            "bob",
            "firing",
            Mention(("13900000000", "13800000001", "13800000003"), ("u2",)),
        ),
        ("per-status", "status", "bob", "resolved", Mention(("13900000000",), ("u2",))),
        ("all-by-rule", "all", "alice", "firing", Mention(("13800000001",), (), True)),
        ("all-by-rule", "all", "alice", "resolved", Mention((), (), True)),
    ],
)
def test_rule_mentions(
    config: Config, rule: str, case: str, owner: str, status: Status, expected: Mention
) -> None:
    event = _event(case, owner, status)
    rendered = render(config.rules_by_name[rule], event, NOW)
    assert rendered.error is None
    assert rendered.message.mention == expected
    assert message_mention(config.rules_by_name[rule], event, NOW) == expected


def test_a_label_cannot_ping_everyone(config: Config) -> None:
    for owner in ("all", "@all", "isAtAll"):
        mention = render(config.rules_by_name["by-list"], _event("list", owner), NOW).message
        assert mention.mention.all is False


def test_unknown_name_is_logged_once_and_masked_nowhere(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    rule = config.rules_by_name["by-list"]
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            render(rule, _event("list", "nobody-by-this-name"), NOW)
    lines = [r.getMessage() for r in caplog.records if "nobody-by-this-name" in r.getMessage()]
    assert len(lines) == 1
    assert "names nobody in people" in lines[0]


def test_the_robot_text_carries_the_resolved_mobile(config: Config) -> None:
    from bridge.dingtalk.robot import mention_suffix

    message = render(config.rules_by_name["by-list"], _event("list", "alice"), NOW).message
    assert "@13800000001" in mention_suffix(message.text, message.mention)


def test_people_include_file(tmp_path: Path) -> None:
    (tmp_path / "people.yaml").write_text(
        "alice: {mobile: '13800000001'}\ngroups: {team: [alice]}\n", "utf-8"
    )
    text = CONFIG.split("targets:", 1)[1]
    config = compile_yaml(
        tmp_path,
        "people: {include: people.yaml}\ntargets:"
        + text.replace("mention: [carol, ", "mention: [team, ").split("  - name: per-status")[0],
    )
    assert config.people.groups["team"] == ("alice",)
    assert (tmp_path / "people.yaml").resolve() in config.template_files  # watched by reload


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(owner=st.text(max_size=300))
def test_any_label_value_gives_a_mention(config: Config, owner: str) -> None:
    rendered = render(config.rules_by_name["by-list"], _event("list", owner), NOW)
    assert rendered.error is None
    mention = rendered.message.mention
    assert "13800000003" in mention.mobiles  # carol, named by the rule itself, always
    assert mention.all is False
    known = {"13800000001", "13800000003"}
    assert set(mention.mobiles) <= known and set(mention.userids) <= {"u1", "u2"}


NOTICE_CONFIG = """
people:
  alice: {mobile: "13800000001", userid: u1}
  carol: {mobile: "13800000003"}
targets:
  owner:
    type: work_notice
    app_key: k
    app_secret: s
    agent_id: 1
    recipients: ["{{ labels.owner }}"]
  owner-and-lead:
    type: work_notice
    app_key: k
    app_secret: s
    agent_id: 1
    userids: [lead]
    recipients: ["{{ labels.owner }}"]
inputs:
  hook: {type: webhook, path: /hook, labels: {owner: "{{ body.owner }}"}}
rules:
  - {name: direct, targets: [owner, owner-and-lead], msgtype: markdown}
"""


@pytest.mark.parametrize(
    ("target", "owner", "userids"),
    [
        ("owner", "alice", "u1"),
        ("owner-and-lead", "alice", "lead,u1"),
        ("owner-and-lead", "carol", "lead"),  # no userid: a work notice cannot reach her
        ("owner-and-lead", "stranger", "lead"),
    ],
)
def test_work_notice_to_the_owner(tmp_path: Path, target: str, owner: str, userids: str) -> None:
    from bridge.dingtalk.worknotice import work_notice_body
    from bridge.pipeline.render import with_recipients

    config = compile_yaml(tmp_path, NOTICE_CONFIG)
    notice = config.targets[target]
    rule = config.rules_by_name["direct"]
    event = _event("x", owner)
    message = with_recipients(render(rule, event, NOW).message, rule, event, NOW, notice.recipients)
    assert work_notice_body(notice, message, "u")["userid_list"] == userids
    assert notice.policy.digest is (target == "owner-and-lead")  # recipients only: no digests


def test_work_notice_to_nobody_is_refused_not_sent_to_everyone(tmp_path: Path) -> None:
    from bridge.dingtalk.worknotice import work_notice_body
    from bridge.pipeline.render import with_recipients

    config = compile_yaml(tmp_path, NOTICE_CONFIG)
    notice, rule, event = (
        config.targets["owner"],
        config.rules_by_name["direct"],
        _event("x", "carol"),
    )
    message = with_recipients(render(rule, event, NOW).message, rule, event, NOW, notice.recipients)
    with pytest.raises(DeliveryError, match="name nobody with a userid") as refused:
        work_notice_body(notice, message, "u")
    # Its own reason, not an internal error: the sender dead-letters it as no_recipients.
    assert refused.value.reason is Reason.NO_RECIPIENTS and not refused.value.retryable


@pytest.mark.parametrize(
    ("msgtype", "mention", "kinds"),
    [
        ("markdown", Mention(("13800000001",), ("u2",)), ["markdown", "text"]),
        ("markdown", Mention(), ["markdown"]),  # nobody to ping: no line
        ("text", Mention(("13800000001",)), ["text"]),  # text pings already
    ],
)
def test_mention_line_follows_markdown_only(
    msgtype: str, mention: Mention, kinds: list[str]
) -> None:
    from bridge.config.model import RobotTarget
    from bridge.dingtalk.robot import RobotChannel
    from bridge.model import Message

    target = RobotTarget(
        "r", "http://x/robot/send?access_token=t", None, ("告警",), mention_line=True
    )
    message = Message(msgtype, "DiskFull", "### DiskFull\n\nbody", mention=mention)  # type: ignore[arg-type]
    bodies = RobotChannel(target).bodies(message, ["id"], 0.0, UTC)
    assert [b["msgtype"] for b in bodies] == kinds
    if len(bodies) == 2:
        assert bodies[0]["at"] == {"atMobiles": [], "atUserIds": [], "isAtAll": False}
        assert "@" not in bodies[0]["markdown"]["text"]
        assert bodies[1]["text"]["content"] == "告警 ↑ DiskFull @13800000001 @u2"
        assert bodies[1]["at"]["atMobiles"] == ["13800000001"]


ONCALL_CONFIG = """
timezone: Asia/Shanghai
people:
  alice: {mobile: "13800000001"}
  bob: {userid: u2}
  groups: {db-team: ["oncall:db"]}
oncall:
  db: {members: [alice, bob], rotation: 1w, handover: "2026-11-30 10:00"}
targets:
  ops: {type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token=t"}
inputs:
  am: {type: alertmanager, path: /am}
rules:
  - {name: direct, match: {alertname: direct}, targets: [ops], mention: ["oncall:db"]}
  - {name: via-group, match: {alertname: via-group}, targets: [ops], mention: [db-team]}
"""


@pytest.mark.parametrize("rule", ["direct", "via-group"])
@pytest.mark.parametrize(
    ("when", "pinged"),
    [
        # alice's week from Monday 2026-11-30 10:00 (Shanghai), bob's from 12-07 10:00
        (datetime(2026, 12, 7, 1, 59, tzinfo=UTC), Mention(mobiles=("13800000001",))),
        (datetime(2026, 12, 7, 2, 0, tzinfo=UTC), Mention(userids=("u2",))),
    ],
)
def test_an_oncall_ref_pings_whoever_is_on_call_when_the_message_is_made(
    tmp_path: Path, rule: str, when: datetime, pinged: Mention
) -> None:
    config = compile_yaml(tmp_path, ONCALL_CONFIG)
    event = Event("am", "alertmanager", "firing", {"alertname": rule}, {}, "f" * 16, when)
    assert message_mention(config.rules_by_name[rule], event, when) == pinged


def test_an_oncall_ref_to_no_schedule_and_a_member_nobody_knows_are_config_problems(
    tmp_path: Path,
) -> None:
    text = ONCALL_CONFIG.replace('["oncall:db"]}', '["oncall:dba"]}').replace(
        "[alice, bob]", "[alice, bobby]"
    )
    with pytest.raises(ConfigError) as caught:
        compile_yaml(tmp_path, text)
    problems = [str(p) for p in caught.value.problems]
    assert any('no on-call schedule "dba"' in p and "oncall:db" in p for p in problems), problems
    assert any('unknown person "bobby"' in p and 'did you mean "bob"' in p for p in problems)
