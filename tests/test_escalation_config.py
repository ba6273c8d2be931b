"""A rule's `escalate:` steps compiled (bridge/config/escalation.py); the problems of bad ones
are in tests/configs/bad/escalation_problems.*."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config.model import EscalationStep
from tests.harness import compile_yaml

BASE = """
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
            " {after: 30m, targets: [leads, ops], mention: [bob, '13800000000']}]",
            (
                EscalationStep(2.0, ("ops",)),
                EscalationStep(1800.0, ("leads", "ops"), ("bob", "13800000000")),
            ),
        ),
    ],
)
def test_compiled(tmp_path: Path, escalate: str, expected: tuple[EscalationStep, ...]) -> None:
    assert compile_yaml(tmp_path, BASE % escalate).rules[0].escalate == expected
