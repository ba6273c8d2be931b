"""The `actions` section and a rule's `actions` list compiled (bridge/config/actions.py); the
problems of a bad one are in tests/configs/bad/actions_problems.*."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config.model import ActionsConfig
from tests.harness import compile_yaml

BASE = """
targets: {ops: {type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token=t"}}
inputs: {am: {type: alertmanager, path: /am}}
rules: [{name: r, targets: [ops], actions: %s}]
"""


@pytest.mark.parametrize(
    ("section", "rule_actions", "expected"),
    [
        ("", "[]", ActionsConfig()),
        ("", "[runbook]", ActionsConfig()),  # a plain link: no base_url needed
        (
            "actions: {base_url: 'https://bridge.example.com/'}",
            "[ack, silence]",
            ActionsConfig(base_url="https://bridge.example.com"),
        ),
        (
            "actions: {base_url: 'http://10.0.0.5:8060/dtb', ttl: 2h, silence: [30m, 1d]}",
            "[silence, ack, runbook]",
            ActionsConfig(
                base_url="http://10.0.0.5:8060/dtb", ttl=7200.0, silence=(1800.0, 86400.0)
            ),
        ),
        (
            "actions: {base_url: 'https://b.example', secret: 0123456789abcdef}",
            "[ack]",
            ActionsConfig(base_url="https://b.example", secret="0123456789abcdef"),
        ),
    ],
)
def test_compiled(tmp_path: Path, section: str, rule_actions: str, expected: ActionsConfig) -> None:
    config = compile_yaml(tmp_path, section + "\n" + BASE % rule_actions)
    assert config.actions == expected
    names = rule_actions.strip("[]").replace(" ", "")
    assert config.rules[0].actions == (tuple(names.split(",")) if names else ())
    if expected.secret:
        assert expected.secret in config.secrets()  # redacted in logs
        assert expected.secret not in repr(config.actions)


def test_the_secret_may_come_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k" * 32 + "\n")
    config = compile_yaml(
        tmp_path, "actions: {base_url: 'https://b.example', secret_file: key}\n" + BASE % "[ack]"
    )
    assert config.actions.secret == "k" * 32
