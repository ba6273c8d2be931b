"""A rule's `escalate:` steps: after an alert stays unacknowledged this long, a message to these
targets with these mentions (pipeline/escalation.py decides when; pipeline/escalator.py sends).

Mention refs stay plain strings here (the names of a rule's `mention` list: "alice", a group,
"oncall:db"), checked against the people directory: whom they reach is decided when a step
fires (pipeline/mentions.refs_mention), so a rotation's handover between the alert and the step
is honoured.
"""

from __future__ import annotations

import math
from typing import Any

from bridge.config import model as m
from bridge.config.context import CompileContext, as_dict, as_list, as_strs
from bridge.config.people import EMPTY, Directory, check_refs
from bridge.config.yamlsource import PathKey


def rule_escalation(
    ctx: CompileContext,
    where: PathKey,
    spec: dict[str, Any],
    target_names: list[str] | None,
    people: Directory = EMPTY,
) -> tuple[m.EscalationStep, ...]:
    """The rule's steps, every problem the schema cannot see reported: an unknown target,
    steps whose `after` does not increase (a later step would fire before an earlier one, and
    the order of the steps would mean nothing), a step that waits no time."""
    if "escalate" not in spec:
        return ()
    at: PathKey = (*where, "escalate")
    steps: list[m.EscalationStep] = []
    previous = 0.0
    for index, raw in enumerate(as_list(spec.get("escalate"))):
        step, step_at = as_dict(raw), (*at, index)
        after = ctx.duration((*step_at, "after"), step.get("after"), math.nan)
        # A missing or empty `after`/`targets` (and an empty list) is the schema's to say.
        if not math.isnan(after) and after <= 0:
            if not ctx.reported((*step_at, "after")):
                ctx.problem((*step_at, "after"), "a step waits some time", 'e.g. "10m"')
        elif not math.isnan(after) and after <= previous:
            ctx.problem(
                (*step_at, "after"),
                "steps must come in increasing `after`: this one is not after the one before",
                "order the steps by their delay",
            )
        targets = as_strs(step.get("targets"))
        ctx.unknown_names((*step_at, "targets"), targets, target_names, "target")
        check_refs(ctx, people, (*step_at, "mention"), as_list(step.get("mention")))
        if not math.isnan(after):
            previous = max(previous, after)
            steps.append(m.EscalationStep(after, targets, as_strs(step.get("mention"))))
    return tuple(steps)
