"""A rule's `escalate:` steps compiled (bridge/config/escalation.py); the problems of bad ones
are in tests/configs/bad/escalation_problems.*."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config.model import EscalationStep
from bridge.errors import ConfigError
from tests.harness import compile_yaml

BASE = """
people:
  bob: {userid: bob}
  lead: {mobile: "13800000000"}
oncall:
  db: {members: [bob], rotation: 1w, handover: "2026-11-30 10:00"}
targets:
  ops: {type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token=t"}
  leads: {type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token=u"}
inputs: {am: {type: alertmanager, path: /am}}
rules: [{name: r, targets: [ops]%s}]
"""


@pytest.mark.parametrize(
    ("escalate", "expected"),
    [
        ("", ()),
        (
            ", escalate: [{after: 10m, targets: [ops], mention: ['oncall:db']}]",
            (EscalationStep(600.0, ("ops",), ("oncall:db",)),),
        ),
        (
            ", escalate: [{after: 2s, targets: [ops]},"
            " {after: 30m, targets: [leads, ops], mention: [bob, lead]}]",
            (
                EscalationStep(2.0, ("ops",)),
                EscalationStep(1800.0, ("leads", "ops"), ("bob", "lead")),
            ),
        ),
    ],
)
def test_compiled(tmp_path: Path, escalate: str, expected: tuple[EscalationStep, ...]) -> None:
    assert compile_yaml(tmp_path, BASE % escalate).rules[0].escalate == expected


def test_a_step_naming_nobody_the_directory_knows_is_a_problem(tmp_path: Path) -> None:
    escalate = ", escalate: [{after: 2s, targets: [ops], mention: [bobb, 'oncall:web']}]"
    with pytest.raises(ConfigError) as caught:
        compile_yaml(tmp_path, BASE % escalate)
    problems = [str(p) for p in caught.value.problems]
    assert any(
        'unknown person or group "bobb"' in p and "escalate[0].mention[0]" in p for p in problems
    )
    assert any('no on-call schedule "web"' in p for p in problems), problems
