"""Valid configs compile to the values the rest of the bridge relies on.

The configs are tests/configs/good/*.yaml; every test passes `environ` explicitly so nothing
depends on the machine's environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.config.compile import load_config
from bridge.config.model import (
    DEFAULT_STATE_DIR,
    NO_RATE,
    Config,
    HttpInput,
    RateLimit,
    RobotTarget,
    SendPolicy,
    WorkNoticeTarget,
)
from bridge.listen import parse_listen
from bridge.model import MSGTYPES, Event
from bridge.pipeline.rules import matching_rules

GOOD = Path(__file__).resolve().parent / "configs" / "good"

FILE_SECRET = "SEC-good-signing-secret-from-file"
FILE_WEBHOOK = "https://oapi.dingtalk.com/robot/send?access_token=good-token-from-file"
FILE_APP_SECRET = "good-app-secret-from-file"
FILE_TOKEN = "good-bearer-token-from-file"
DEFAULT_WEBHOOK = "https://oapi.dingtalk.com/robot/send?access_token=good-default-token"
DEFAULT_APP_SECRET = "good-inline-app-secret"
INLINE_TOKEN = "good-inline-bearer-token"


def load(name: str, environ: Mapping[str, str] | None = None) -> Config:
    return load_config(GOOD / name, environ={} if environ is None else environ)


def robot(config: Config, name: str) -> RobotTarget:
    target = config.targets[name]
    assert isinstance(target, RobotTarget)
    return target


def notice(config: Config, name: str) -> WorkNoticeTarget:
    target = config.targets[name]
    assert isinstance(target, WorkNoticeTarget)
    return target


@pytest.mark.parametrize("path", sorted(GOOD.glob("*.yaml")), ids=lambda p: p.name)
def test_good_config_loads(path: Path) -> None:
    config = load_config(path, environ={})
    assert config.path == path
    assert len(config.digest) == 64
    assert config.rules


# -- secrets.yaml: files, environment, escapes ------------------------------------------------


def test_secrets_are_read_from_files_without_trailing_newline() -> None:
    # The files end in "\n" (team-webhook in "\n\n"), as `echo secret > file` leaves them.
    assert (GOOD / "secrets" / "ops-secret").read_text("utf-8") == FILE_SECRET + "\n"
    assert (GOOD / "secrets" / "team-webhook").read_text("utf-8") == FILE_WEBHOOK + "\n\n"
    config = load("secrets.yaml")
    assert robot(config, "ops").secret == FILE_SECRET
    assert robot(config, "team").webhook == FILE_WEBHOOK
    assert robot(config, "team").secret is None
    assert notice(config, "oncall").app_secret == FILE_APP_SECRET
    assert config.http_inputs()["am"].token == FILE_TOKEN


def test_env_default_is_used_when_the_variable_is_unset() -> None:
    config = load("secrets.yaml", environ={})
    assert robot(config, "ops").webhook == DEFAULT_WEBHOOK
    assert notice(config, "oncall").app_key == "default-app-key"
    assert notice(config, "everyone").app_secret == DEFAULT_APP_SECRET


def test_env_value_is_used_when_the_variable_is_set() -> None:
    environ = {
        "BRIDGE_TEST_OPS_WEBHOOK": "https://oapi.dingtalk.com/robot/send?access_token=from-env",
        "BRIDGE_TEST_APP_KEY": "env-app-key",
        "BRIDGE_TEST_APP_SECRET": "env-app-secret",
    }
    config = load("secrets.yaml", environ=environ)
    assert robot(config, "ops").webhook == environ["BRIDGE_TEST_OPS_WEBHOOK"]
    assert notice(config, "oncall").app_key == "env-app-key"
    assert notice(config, "everyone").app_secret == "env-app-secret"


def test_env_default_is_used_when_the_variable_is_empty() -> None:
    config = load("secrets.yaml", environ={"BRIDGE_TEST_APP_KEY": ""})
    assert notice(config, "oncall").app_key == "default-app-key"


def test_double_dollar_brace_stays_literal() -> None:
    # Even with a variable of that name set, $${literal} is the text ${literal}.
    config = load("secrets.yaml", environ={"literal": "expanded"})
    assert config.http_inputs()["am"].path == "/am/${literal}"


def test_durations_are_seconds() -> None:
    config = load("secrets.yaml")
    assert robot(config, "ops").timeout == 0.5  # "500ms"
    assert robot(config, "team").timeout == 3.0  # 3
    assert notice(config, "oncall").timeout == 120.0  # "2m"
    assert notice(config, "everyone").timeout == 5.0  # the default


def test_server_and_sizes() -> None:
    config = load("secrets.yaml")
    assert (config.server.host, config.server.port) == ("::1", 9000)
    assert config.server.max_body_bytes == 2048
    assert config.server.threads == 4
    assert config.server.workers == 2
    assert config.server.background_worker is True
    assert load("routing.yaml").server.workers == 1  # one process unless asked
    assert load("routing.yaml").server.background_worker is False  # ... that does everything
    assert config.http_inputs()["am"].max_body_bytes == 2048  # inherits server.max_body_bytes
    assert config.http_inputs()["ci"].max_body_bytes == 512
    assert robot(config, "ops").queue_size == 50
    assert robot(config, "team").queue_size == 10_000
    assert str(config.timezone) == "UTC"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, DEFAULT_STATE_DIR),
        ({"STATE_DIRECTORY": ""}, DEFAULT_STATE_DIR),
        ({"STATE_DIRECTORY": "/srv/bridge"}, Path("/srv/bridge")),
        ({"STATE_DIRECTORY": "/srv/a:/srv/b"}, Path("/srv/a")),  # systemd may list several
        ({"STATE_DIRECTORY": "state"}, GOOD / "state"),  # relative to the config's directory
    ],
)
def test_state_dir_comes_from_the_environment_load_config_is_given(
    environ: Mapping[str, str], expected: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without state_dir in the file, $STATE_DIRECTORY decides (systemd's StateDirectory=): the
    one of the mapping load_config was given, never the process's own."""
    monkeypatch.setenv("STATE_DIRECTORY", "/from/the/process")
    assert load("secrets.yaml", environ).state_dir == expected


def test_configured_state_dir_wins_over_the_environment(tmp_path: Path) -> None:
    path = tmp_path.resolve() / "bridge.yaml"
    path.write_text('state_dir: "st"\n' + (GOOD / "routing.yaml").read_text("utf-8"), "utf-8")
    config = load_config(path, environ={"STATE_DIRECTORY": "/srv/bridge"})
    assert config.state_dir == path.parent / "st"


def test_without_a_state_section_the_state_is_sqlite_in_state_dir() -> None:
    assert load("secrets.yaml").state_url is None


@pytest.mark.parametrize("source", ["url", "url_file"])
def test_state_url_compiles_and_its_password_is_a_secret_kept_out_of_repr(
    source: str, tmp_path: Path
) -> None:
    url = "postgresql://bridge:p%40ss-CANARY@db.example:5432/bridge?sslmode=require"
    (tmp_path / "db-url").write_text(url + "\n", "utf-8")
    state = f'url: "{url}"' if source == "url" else "url_file: db-url"
    path = tmp_path / "bridge.yaml"
    path.write_text(f"state: {{{state}}}\n" + (GOOD / "routing.yaml").read_text("utf-8"), "utf-8")
    config = load_config(path, environ={})
    assert config.state_url == url
    assert {"p%40ss-CANARY", "p@ss-CANARY"} <= set(config.secrets())
    assert "CANARY" not in repr(config)


def test_a_target_without_policy_keys_gets_the_send_policy_defaults() -> None:
    config = load("secrets.yaml")
    assert robot(config, "team").policy == SendPolicy()
    assert notice(config, "everyone").policy == SendPolicy(rate=NO_RATE)


def test_send_policy_values_compile(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(
        """
targets:
  ops:
    type: robot
    webhook: "https://oapi.dingtalk.com/robot/send?access_token=t"
    rate_limit: {messages: 5, per: 2m}
    lockout: 5m
    digest: {enabled: false, max_alerts: 50}
    oversize: truncate
    retry: {initial: 500ms, max: 1m, give_up_after: 2h}
  slow:
    type: robot
    webhook: "https://oapi.dingtalk.com/robot/send?access_token=u"
    rate_limit: {messages: 7}
    digest: {after: 3}
inputs:
  am: {type: alertmanager, path: /am, token: none}
rules:
  - name: all
    targets: [ops, slow]
""",
        "utf-8",
    )
    config = load_config(path, environ={})
    assert robot(config, "ops").policy == SendPolicy(
        rate=RateLimit(5, 120.0),
        lockout=300.0,
        digest=False,
        digest_after=5,  # the rate's messages when `after` is left out
        digest_max=50,
        split=False,
        retry_initial=0.5,
        retry_max=60.0,
        give_up_after=7200.0,
    )
    assert robot(config, "slow").policy == SendPolicy(rate=RateLimit(7, 60.0), digest_after=3)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("[::1]:9000", ("::1", 9000)),
        ("[::]:8060", ("::", 8060)),
        ("127.0.0.1:8060", ("127.0.0.1", 8060)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


def test_work_notice_values() -> None:
    config = load("secrets.yaml")
    oncall = notice(config, "oncall")
    assert oncall.agent_id == 4242
    assert oncall.userids == ("u1", "u2")
    assert oncall.dept_ids == ("10", "20")
    assert oncall.to_all_user is False
    assert oncall.api_base == "http://127.0.0.1:8061"  # trailing "/" removed
    everyone = notice(config, "everyone")
    assert everyone.to_all_user is True
    assert everyone.api_base == "https://oapi.dingtalk.com"


def test_robot_keywords() -> None:
    assert robot(load("secrets.yaml"), "ops").keywords == ("告警", "alert")


def test_repr_of_targets_hides_secrets() -> None:
    config = load("secrets.yaml")
    for secret, target in [
        (FILE_SECRET, "ops"),
        (DEFAULT_WEBHOOK, "ops"),
        ("good-default-token", "ops"),
        (FILE_WEBHOOK, "team"),
        ("good-token-from-file", "team"),
        (FILE_APP_SECRET, "oncall"),
        (DEFAULT_APP_SECRET, "everyone"),
    ]:
        text = repr(config.targets[target])
        assert target in text  # the repr is there and names the target
        assert secret not in text


def test_repr_of_file_token_input_hides_it() -> None:
    text = repr(load("secrets.yaml").inputs["am"])
    assert "am" in text
    assert FILE_TOKEN not in text


def test_repr_of_inline_token_input_hides_it() -> None:
    config = load("secrets.yaml")
    assert INLINE_TOKEN not in repr(config.http_inputs()["ci"])
    assert INLINE_TOKEN not in repr(config)


def test_secrets_lists_every_secret() -> None:
    config = load("secrets.yaml")
    assert set(config.secrets()) == {
        DEFAULT_WEBHOOK,
        FILE_SECRET,
        FILE_WEBHOOK,
        FILE_APP_SECRET,
        DEFAULT_APP_SECRET,
        FILE_TOKEN,
        INLINE_TOKEN,
    }


def test_webhook_input_templates_compile() -> None:
    ci = load("secrets.yaml").inputs["ci"]
    assert ci.type == "webhook"
    assert isinstance(ci, HttpInput)  # (narrows the type: Config.inputs holds any kind)
    assert set(ci.labels) == {"alertname", "service"}
    assert ci.labels["service"].render(body={"app": "shop"}) == "shop"
    assert ci.labels["service"].render(body={}) == "unknown"
    assert ci.status is not None
    assert ci.status.render(body={"ok": True}) == "resolved"
    assert ci.fingerprint is None


# -- msgtypes.yaml: every message type and its options ----------------------------------------


def test_every_msgtype_compiles() -> None:
    config = load("msgtypes.yaml")
    assert {r.msgtype for r in config.rules} == set(MSGTYPES)
    assert [r.continue_ for r in config.rules] == [True] * 5 + [False]
    assert config.http_inputs()["am"].split is True


def test_message_options() -> None:
    rules = {r.name: r for r in load("msgtypes.yaml").rules}
    text = rules["as-text"]
    assert text.mention.mobiles == ("13800000000",)
    assert text.mention.userids == ("u1",)
    assert text.mention.all is False
    assert rules["as-markdown"].mention.all is True
    link = rules["as-link"]
    assert link.url is not None
    assert link.url.render(externalURL="http://am:9093") == "http://am:9093"
    assert link.pic_url is not None
    assert link.pic_url.render() == "https://example.com/pic.png"
    card = rules["as-action-card-buttons"]
    assert [b.title.render() for b in card.buttons] == ["Source", "Silence"]
    assert card.btn_orientation == "1"
    assert rules["as-action-card-url"].buttons == ()
    assert rules["as-action-card-url"].btn_orientation == "0"


def test_template_file_next_to_the_config_is_used_and_watched() -> None:
    config = load("msgtypes.yaml")
    assert config.template_files == ((GOOD / "custom.md.j2").resolve(),)
    markdown = next(r for r in config.rules if r.name == "as-markdown")
    body = markdown.body.render(
        status="firing",
        commonLabels={"alertname": "DiskFull"},
        alerts=[{"annotations": {"summary": "disk is full"}, "labels": {}}],
    )
    assert body.startswith("### FIRING DiskFull")
    assert "- disk is full" in body


# -- routing.yaml: matchers, input filters, continue ------------------------------------------


def event(input_name: str, **labels: str) -> Event:
    return Event(
        input=input_name,
        kind="alertmanager" if input_name == "am" else "webhook",
        status="firing",
        labels=labels,
        annotations={},
        fingerprint="f" * 16,
        received_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


def routed(input_name: str, **labels: str) -> list[str]:
    return [r.name for r in matching_rules(load("routing.yaml").rules, event(input_name, **labels))]


def test_regex_matchers_are_fully_anchored() -> None:
    # match_re {service: "pay.*"} on input am
    assert routed("am", service="payments") == ["payments"]
    assert routed("am", service="repay") == ["fallback"]
    assert routed("am", service="pay") == ["payments"]
    # matchers ['service=~"pay.*"', "env!~dev|test", ...] on any input
    assert routed("ci", service="payments", severity="critical") == ["payments-matcher"]
    assert routed("ci", service="repay", severity="critical") == ["fallback"]


def test_negative_regex_matcher_is_anchored_too() -> None:
    # "dev|test" must match the whole value: "development" is not excluded, "dev" is.
    assert routed("ci", service="pay", severity="critical", env="development") == [
        "payments-matcher"
    ]
    assert routed("ci", service="pay", severity="critical", env="dev") == ["fallback"]
    assert routed("ci", service="pay", severity="critical", env="test") == ["fallback"]


def test_input_filter_and_equality_match() -> None:
    assert routed("ci", severity="warning") == ["ci-only"]
    assert routed("am", severity="warning") == ["fallback"]


def test_continue_keeps_evaluating() -> None:
    # audit (team!="") says continue: true, so the next matching rule also gets the event.
    assert routed("am", team="core", service="payments") == ["audit", "payments"]
    assert routed("am", team="core") == ["audit", "fallback"]
    # Without the team label audit does not match (a missing label is "").
    assert routed("am") == ["fallback"]


def test_compiled_matchers() -> None:
    rules = {r.name: r for r in load("routing.yaml").rules}
    assert [str(m) for m in rules["payments-matcher"].matchers] == [
        'service=~"pay.*"',
        'env!~"dev|test"',
        'severity="critical"',
    ]
    assert rules["payments"].inputs == frozenset({"am"})
    assert rules["fallback"].inputs is None
    assert [r.index for r in load("routing.yaml").rules] == [0, 1, 2, 3, 4]
