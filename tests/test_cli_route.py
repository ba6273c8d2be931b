"""`route` answers what would become of one alert: the rules in order (matched, the first thing
that failed, or not reached), the targets, and what stops it, as the daemon's decide step says
against the state read-only. The state is made by the daemon's own parts (the Intake accepting a
webhook, the CLI's `silence add`), so route and daemon are checked to agree."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.alerting.labelset import format_label_set
from bridge.cli.main import build_parser, main
from bridge.cli.route import cmd_route
from bridge.clock import FakeClock
from bridge.config.compile import load_config
from bridge.config.model import Config
from bridge.durations import format_time
from bridge.inputs.webhook import parse_webhook
from bridge.model import label_fingerprint
from bridge.pipeline.intake import Intake
from tests.harness import bridge_cli
from tests.test_cli_render import state_of

GOLDEN = Path(__file__).parent / "golden"
AT = "2026-12-01T12:00:00Z"  # 20:00 in the config's zone
AT_STAMP = datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp()

CONFIG = """
state_dir: {state}
timezone: Asia/Shanghai
targets:
  ops: {{type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=a"}}
  db: {{type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=b"}}
  pager: {{type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=c"}}
inputs:
  am: {{type: alertmanager, path: /am, split: true}}
  hook:
    type: webhook
    path: /hook
    labels: {{alertname: "{{{{ body.alertname }}}}", severity: "{{{{ body.severity }}}}"}}
rules:
  - {{name: audit, match: {{severity: critical}}, targets: [pager], continue: true}}
  - {{name: payments, inputs: [am], match_re: {{service: "pay.*"}}, targets: [ops, db],
     repeat_interval: 1h}}
  - name: databases
    matchers: ['team=~"db|storage"', 'env!="staging"']
    targets: [db]
    group_by: [alertname]
    group_wait: 30s
  - {{name: hooks, inputs: [hook], targets: [ops], repeat_interval: 2h}}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    text = CONFIG.format(state=tmp_path / "state")
    path.write_text(text, "utf-8")
    return path


def route(config: Path, *args: str, at: str = AT) -> tuple[int, str, str]:
    """`route` in this process, as of `at` (the command line's own parsing and exit code)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["route", "-c", str(config), "--at", at, *args])
    return code, out.getvalue(), err.getvalue()


def assert_golden(name: str, text: str, tmp_path: Path) -> None:
    shown = text.replace(str(tmp_path), "<tmp>")
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(shown, "utf-8")
    assert shown == golden.read_text("utf-8"), f"differs from {golden}; UPDATE_GOLDEN=1 to accept"


# (input, labels, what `route` says of each rule in order, targets that get a message, exit code)
TABLE: list[tuple[str, str, list[str], list[str], int]] = [
    (
        "am",
        "severity=critical,service=payments",
        [
            "matches -> pager; continues",
            "matches -> ops, db; stops here (no continue)",
            "not reached",
            "not reached",
        ],
        ["pager", "ops", "db"],
        0,
    ),
    (
        "am",
        "service=repay",
        [
            'no match: severity="critical" (severity is not set)',
            'no match: service=~"pay.*" (service is "repay")',  # fully anchored
            'no match: team=~"db|storage" (team is not set)',
            "no match: only for input hook",
        ],
        [],
        1,
    ),
    (
        "hook",
        "alertname=Build,severity=critical,service=payments",
        [
            "matches -> pager; continues",
            "no match: only for input am",
            'no match: team=~"db|storage" (team is not set)',
            "matches -> ops; stops here (no continue)",
        ],
        ["pager", "ops"],
        0,
    ),
    (
        "am",
        "alertname=Lag,team=storage,env=prod",
        [
            'no match: severity="critical" (severity is not set)',
            'no match: service=~"pay.*" (service is not set)',
            "matches -> db; stops here (no continue)",
            "not reached",
        ],
        ["db"],  # at the group's flush
        0,
    ),
    (
        "am",
        'alertname=Lag,team=db,env="staging"',
        [
            'no match: severity="critical" (severity is not set)',
            'no match: service=~"pay.*" (service is not set)',
            'no match: env!="staging" (env is "staging")',  # the first matcher that fails
            "no match: only for input hook",
        ],
        [],
        1,
    ),
]
RULES = ["audit", "payments", "databases", "hooks"]


@pytest.mark.parametrize(("input_name", "labels", "steps", "targets", "code"), TABLE)
def test_rules_in_order_with_why_and_who_gets_a_message(
    config_path: Path,
    input_name: str,
    labels: str,
    steps: list[str],
    targets: list[str],
    code: int,
) -> None:
    exit_code, out, err = route(config_path, "--input", input_name, "--labels", labels)
    assert exit_code == code, err
    lines = out.splitlines()
    start = lines.index("rules, in order:") + 1
    shown = [line.split(None, 1) for line in lines[start : start + len(RULES)]]
    assert shown == [[name, step] for name, step in zip(RULES, steps, strict=True)]
    assert lines[-1] == f"targets that get a message: {', '.join(targets) or 'none'}"
    # The JSON form says the same.
    exit_code, out, err = route(config_path, "--input", input_name, "--labels", labels, "--json")
    assert exit_code == code, err
    answer = json.loads(out)
    assert [r["name"] for r in answer["rules"]] == RULES
    assert [r["matched"] for r in answer["rules"]] == [s.startswith("matches") for s in steps]
    assert [r["reached"] for r in answer["rules"]] == [s != "not reached" for s in steps]
    assert answer["targets"] == targets


def told_through_the_hook(path: Path, body: dict[str, str], at: float) -> Config:
    """The webhook accepted at `at` as the daemon accepts it (its Intake, its store)."""
    config = load_config(path, {})
    spec = config.http_inputs()["hook"]
    now = datetime.fromtimestamp(at, UTC)
    with state_of(config) as store:
        events = parse_webhook(body, spec, now)
        Intake(store, lambda targets: None).accept(config, spec, events, now)
    return config


def test_golden_continue_and_stop(config_path: Path, tmp_path: Path) -> None:
    code, out, _ = route(
        config_path, "--input", "am", "--labels", "severity=critical,service=payments"
    )
    assert code == 0
    assert_golden("route-continue.txt", out, tmp_path)


def test_golden_nothing_matches(config_path: Path, tmp_path: Path) -> None:
    code, out, _ = route(config_path, "--input", "am", "--labels", "service=repay")
    assert code == 1
    assert_golden("route-unmatched.txt", out, tmp_path)


def test_golden_grouping_rule_says_its_group_and_flush(config_path: Path, tmp_path: Path) -> None:
    code, out, _ = route(
        config_path, "--input", "am", "--labels", "alertname=Lag,team=storage,env=prod"
    )
    assert code == 0
    flush = format_time(AT_STAMP + 30, load_config(config_path, {}).timezone)
    assert f"rule databases: grouped until {flush} (group " in out  # group_wait 30s
    assert out.rstrip().endswith("sends (1 alert) to db\ntargets that get a message: db")
    assert_golden("route-grouped.txt", out, tmp_path)
    _, out, _ = route(
        config_path, "--input", "am", "--labels", "alertname=Lag,team=storage,env=prod", "--json"
    )
    [group] = json.loads(out)["rules"][2]["outcome"]["groups"]
    assert group["labels"] == {"alertname": "Lag"}
    assert group["flush_at"] == "2026-12-01T20:00:30+08:00"
    assert group["flush"] == {
        "alerts": 1,
        "verdict": "queued",
        "reason": "first",
        "targets": ["db"],
    }


def test_golden_repeat_interval_says_when_told_and_when_again(
    config_path: Path, tmp_path: Path
) -> None:
    told_at = AT_STAMP - 1800  # half an hour before; hooks repeats after 2h
    config = told_through_the_hook(config_path, {"alertname": "Build", "severity": "x"}, told_at)
    database = config.state_dir / "state.db"
    before = database.read_bytes()
    code, out, _ = route(config_path, "--input", "hook", "--labels", "alertname=Build,severity=x")
    assert code == 1  # nothing goes out now
    tz = config.timezone
    until, last = format_time(told_at + 7200, tz), format_time(told_at, tz)
    assert f"rule hooks: not sent again until {until} (repeat_interval); last told {last}" in out
    assert_golden("route-repeat.txt", out, tmp_path)
    assert database.read_bytes() == before  # read only
    _, out, _ = route(
        config_path, "--input", "hook", "--labels", "alertname=Build,severity=x", "--json"
    )
    outcome = json.loads(out)["rules"][3]["outcome"]
    assert outcome == {
        "verdict": "not_sent_again",
        "until": "2026-12-01T21:30:00+08:00",
        "acknowledged_by": None,
        "last_told": "2026-12-01T19:30:00+08:00",
    }
    # Once the interval has passed: a reminder; resolved now: the resolved message.
    later = "2026-12-01T13:30:00Z"  # told at 11:30Z, repeat_interval 2h
    code, out, _ = route(
        config_path, "--input", "hook", "--labels", "alertname=Build,severity=x", at=later
    )
    assert (code, out.count("rule hooks: queued (repeat) for ops")) == (0, 1)
    code, out, _ = route(
        config_path,
        "--input",
        "hook",
        "--labels",
        "alertname=Build,severity=x",
        "--status",
        "resolved",
    )
    assert (code, out.count("rule hooks: queued (all_resolved) for ops")) == (0, 1)


def test_resolved_never_told_sends_nothing(config_path: Path) -> None:
    code, out, _ = route(
        config_path, "--input", "hook", "--labels", "alertname=B,severity=x", "--status=resolved"
    )
    assert code == 1
    assert "rule hooks: not sent again nothing new to tell (it was never told as firing)" in out
    assert 'alert {alertname="B", severity="x"} resolved on input hook (webhook)' in out


def test_a_runtime_silence_says_which(config_path: Path) -> None:
    """Made with the `silence` CLI; route run as a process, at the real time."""
    added = bridge_cli("silence", "add", "-c", str(config_path), "--match", "alertname=Build")
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.split()[1]  # "silence <id> until ...: <matchers>"
    args = ["route", "-c", str(config_path), "--input", "hook"]
    result = bridge_cli(*args, "--labels", "alertname=Build,severity=critical")
    assert result.returncode == 1, result.stderr  # nothing would be sent
    assert f'silenced by {silence_id} (alertname="Build", runtime, until ' in result.stdout
    # The rules it matches are still shown: what would happen without the silence.
    rows = [line.split(None, 1) for line in result.stdout.splitlines()]
    assert ["audit", "matches -> pager; continues"] in rows
    assert result.stdout.endswith("targets that get a message: none\n")
    result = bridge_cli(*args, "--labels", "alertname=Build", "--json")
    answer = json.loads(result.stdout)
    assert [s["id"] for s in answer["silenced_by"]] == [silence_id]
    assert answer["silenced_by"][0]["matchers"] == ['alertname="Build"']
    assert answer["targets"] == []
    # Another alert is not silenced.
    result = bridge_cli(*args, "--labels", "alertname=Deploy")
    assert result.returncode == 0 and "silenced" not in result.stdout


def test_exit_codes_of_the_command(config_path: Path) -> None:
    """0: a target gets a message; 1: none does (or not the expected ones); 2: cannot ask."""
    base = ["route", "-c", str(config_path), "--input", "am"]
    cases = [
        (["--labels", "severity=critical"], 0),
        (["--labels", "severity=warning"], 1),
        (["--labels", "severity=critical", "--expect", "pager"], 0),
        (["--labels", "severity=critical", "--expect", "pager,ops"], 1),
        (["--labels", "severity=warning", "--expect", "none"], 0),
        (["--labels", "severity"], 2),
    ]
    for extra, code in cases:
        result = bridge_cli(*base, *extra)
        assert result.returncode == code, (extra, result.stdout, result.stderr)


# (arguments after `route -c FILE`, what stderr says): the question cannot be asked, exit 2
BAD = [
    (["--input", "nope"], "error: unknown input 'nope'; inputs: am, hook"),
    (["--input", "am", "--labels", "a=b,a=c"], 'label "a" is given twice'),
    (["--input", "am", "--labels", "a=b", "--labels", "a=c"], '--labels: label "a" is given'),
    (["--input", "am", "--labels", 'a="b'], "opens a quote that never closes"),
    (["--input", "am", "--labels", "a!=b"], 'labels take "=" only'),
    (["--input", "am", "--annotations", "x"], "--annotations 'x': label \"x\" has no value"),
    (["--input", "am", "--at", "yesterday"], '--at: "yesterday" is not a time'),
    (["--input", "am", "--expect", "ops,nobody"], "--expect: unknown targets nobody"),
]


@pytest.mark.parametrize(("args", "said"), BAD)
def test_bad_questions_exit_2_saying_what_is_wrong(
    config_path: Path, args: list[str], said: str
) -> None:
    code, out, err = route(config_path, *args)
    assert (code, out) == (2, "")
    assert said in err


def test_a_bad_config_exits_2_with_its_problems(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("targets: {}\nrules: [{name: x, targets: [ghost]}]\n", "utf-8")
    code, out, err = route(path, "--input", "am")
    assert (code, out) == (2, "")
    assert "problem" in err


def test_now_comes_from_the_clock_given(config_path: Path) -> None:
    import contextlib
    import io

    args = build_parser().parse_args(["route", "-c", str(config_path), "--input", "am"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cmd_route(args, FakeClock(AT_STAMP))
    assert "at 2026-12-01 20:00:00 Asia/Shanghai" in out.getvalue()
    args = build_parser().parse_args(
        ["route", "-c", str(config_path), "--input", "am", "--at=-1h", "--json"]
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cmd_route(args, FakeClock(AT_STAMP))
    assert json.loads(out.getvalue())["at"] == "2026-12-01T19:00:00+08:00"


def test_an_unreadable_state_is_said_and_the_answer_given_as_if_empty(
    config_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.db").write_text("not a database", "utf-8")
    code, out, _ = route(config_path, "--input", "am", "--labels", "severity=critical")
    assert code == 0
    assert f"state: state database {tmp_path / 'state'} cannot be read" in out
    assert out.splitlines()[2].endswith(": as if it were empty")
    _, out, _ = route(config_path, "--input", "am", "--labels", "severity=critical", "--json")
    state = json.loads(out)["state"]
    assert state["empty"] is True and "cannot be read" in state["problem"]


def test_json_form_is_the_whole_answer(config_path: Path) -> None:
    code, out, _ = route(
        config_path,
        "--input",
        "am",
        "--labels",
        'severity=critical,service=payments,summary="a, b"',
        "--annotations",
        'runbook="http://wiki/x?a=1,b=2"',
        "--json",
    )
    assert code == 0
    answer = json.loads(out)
    assert set(answer) == {"alert", "at", "state", "rules", "silenced_by", "targets", "pings"}
    assert answer["alert"]["labels"] == {
        "severity": "critical",
        "service": "payments",
        "summary": "a, b",
    }
    assert answer["alert"]["annotations"] == {"runbook": "http://wiki/x?a=1,b=2"}
    assert answer["alert"]["status"] == "firing" and answer["alert"]["kind"] == "alertmanager"
    assert answer["at"] == "2026-12-01T20:00:00+08:00"
    assert answer["state"]["empty"] is True and answer["state"]["problem"] is None
    audit, payments, databases, hooks = answer["rules"]
    assert audit["outcome"] == {"verdict": "queued", "reason": "first", "targets": ["pager"]}
    assert payments["outcome"]["targets"] == ["ops", "db"]
    assert databases == {
        "name": "databases",
        "reached": False,
        "matched": False,
        "continue": False,
        "targets": ["db"],
        "miss": None,
        "outcome": None,
    }
    assert hooks["reached"] is False
    assert answer["silenced_by"] == [] and answer["targets"] == ["pager", "ops", "db"]


def test_an_identity_given_is_what_the_log_is_read_by(config_path: Path) -> None:
    """--fingerprint: the identity as the input computed it (here the label set's of another
    alert, told half an hour ago), not the one of the labels asked about."""
    told_through_the_hook(config_path, {"alertname": "Build", "severity": "x"}, AT_STAMP - 1800)
    told = label_fingerprint({"alertname": "Build", "severity": "x"})
    asked = ["--input", "hook", "--labels", "alertname=Other,severity=x"]
    code, out, _ = route(config_path, *asked)
    assert code == 0 and "rule hooks: queued (first) for ops" in out
    code, out, _ = route(config_path, *asked, "--fingerprint", told)
    assert code == 1 and "rule hooks: not sent again until " in out
    assert f"identity {told}\n" in out


SILENCES = """
silences:
  - {matchers: ['alertname="Upgrade"'], comment: forever}
  - matchers: ['team=~"db|storage"']
    starts_at: "2026-12-01T11:00:00Z"
    ends_at: "2026-12-01T13:00:00Z"
"""


@pytest.mark.parametrize(
    ("labels", "at", "said", "code"),
    [
        (
            "alertname=Upgrade,severity=critical",
            AT,
            'config-0 (alertname="Upgrade", config, no end)',
            1,
        ),
        (
            "alertname=Lag,team=db,env=prod",
            AT,
            'config-1 (team=~"db|storage", config, until 2026-12-01 21:00:00)',
            1,
        ),
        ("alertname=Lag,team=db,env=prod", "2026-12-01T13:00:00Z", None, 0),  # over by then
        ("alertname=Lag,team=db,env=prod", "2026-12-01T10:59:59Z", None, 0),  # not yet begun
    ],
)
def test_config_silences_in_force_at_the_time_asked(
    config_path: Path, labels: str, at: str, said: str | None, code: int
) -> None:
    config_path.write_text(config_path.read_text("utf-8") + SILENCES, "utf-8")
    exit_code, out, err = route(config_path, "--input", "am", "--labels", labels, at=at)
    assert exit_code == code, err
    if said is None:
        assert "silenced" not in out
    else:
        assert f"silenced by {said}: nothing is sent\n" in out


# Each example runs the command as a process (~1 s on the suite's loaded cores): 25 of them.
@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
        st.text(max_size=20),
        max_size=5,
    ),
    st.sampled_from(["am", "hook"]),
    st.sampled_from(["firing", "resolved"]),
)
def test_any_label_set_gets_an_answer(labels: dict[str, str], input_name: str, status: str) -> None:
    """Whatever the labels (as typed, quoted by format_label_set), an answer and 0 or 1."""
    with tempfile.TemporaryDirectory(prefix="route-") as temporary:
        directory = Path(temporary)
        path = directory / "config.yaml"
        path.write_text(CONFIG.format(state=directory / "state"), "utf-8")
        asked = ["--input", input_name, "--labels", format_label_set(labels), "--status", status]
        code, out, err = route(path, *asked)
        assert code in (0, 1), err
        assert out.splitlines()[-1].startswith("targets that get a message: ")
        code, out, err = route(path, *asked, "--json")
        assert json.loads(out)["alert"]["labels"] == labels
