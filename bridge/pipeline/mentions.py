"""A rule's mentions for one message: its refs for the event's status rendered (templates, in the
rule's sandbox) and resolved through the people directory (bridge/alerting/mentions.py).

Never raises: a template that fails, or a name nobody has, is logged (each unknown name once per
process, so a storm of alerts naming the same stranger writes one line) and the message still
goes out to whoever else it names.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from bridge.alerting.mentions import (
    Resolution,
    merged,
    resolve_people,
    split_refs,
    userids_of,
)
from bridge.alerting.mentions import mention_of as people_mention
from bridge.alerting.oncall import lookup
from bridge.config.model import MentionRef, Rule
from bridge.model import Mention, Status

log = logging.getLogger(__name__)
_LOGGED_UNKNOWN: set[str] = set()
_LOGGED_LOCK = threading.Lock()
MAX_LOGGED_UNKNOWN = 1024  # names remembered as logged; past that, each is logged again (bounded)


def rendered_refs(refs: tuple[MentionRef, ...], context: Mapping[str, Any], rule: str) -> list[str]:
    """Literal refs as they are, templates rendered (and split: one label may name several)."""
    out: list[str] = []
    for ref in refs:
        if isinstance(ref, str):
            out.append(ref)
            continue
        try:
            out += split_refs(ref.render(context))
        except Exception as exc:  # a template may raise anything; the message still goes out
            log.warning(
                "mention template failed: rule=%s error=%s: %s", rule, type(exc).__name__, exc
            )
    return out


def resolve_rule_refs(
    rule: Rule, status: Status, context: Mapping[str, Any], at: float
) -> Resolution:
    """Who the rule's refs for `status` reach at `at` (on-call schedules evaluated then);
    unknown names logged."""
    refs = rule.mention_refs.for_status(status)
    if not refs:
        return Resolution()
    resolution = _resolve(refs, rule, context, at)
    log_unknown(resolution.unknown, rule.name)
    return resolution


def rule_mention(rule: Rule, status: Status, context: Mapping[str, Any], at: float) -> Mention:
    """The rule's fixed mention (every status) with the people its refs reach for `status`."""
    if not rule.mention_refs.for_status(status):
        return rule.mention
    people = resolve_rule_refs(rule, status, context, at).people
    return merged(rule.mention, people_mention(people))


def _resolve(
    refs: tuple[MentionRef, ...], rule: Rule, context: Mapping[str, Any], at: float
) -> Resolution:
    rendered = rendered_refs(refs, context, rule.name)
    return resolve_people(rendered, rule.people, lookup(rule.people.oncall, at))


def refs_mention(refs: tuple[str, ...], rule: Rule, at: float) -> Mention:
    """Whom literal refs (an escalation step's `mention`) ping at `at`, through the rule's
    people and on-call schedules; unknown names logged."""
    resolution = _resolve(refs, rule, {}, at)
    log_unknown(resolution.unknown, rule.name)
    return people_mention(resolution.people)


def log_unknown(names: tuple[str, ...], rule: str) -> None:
    for name in names:
        with _LOGGED_LOCK:
            if name in _LOGGED_UNKNOWN:
                continue
            if len(_LOGGED_UNKNOWN) >= MAX_LOGGED_UNKNOWN:
                _LOGGED_UNKNOWN.clear()
            _LOGGED_UNKNOWN.add(name)
        # %r: a label value is outside text (no newlines forged into the log)
        shown = name if len(name) <= 80 else name[:80] + "…"  # a label may be long
        log.warning("mention names nobody in people: %r (rule %s); sent without them", shown, rule)


def recipient_userids(
    refs: tuple[MentionRef, ...],
    rule: Rule,
    context: Mapping[str, Any],
    at: float,
) -> tuple[str, ...]:
    """A work-notice target's `recipients:` for one message: the userids of the people they
    reach (a person without a userid, whom a work notice cannot reach, logged like a stranger)."""
    resolution = _resolve(refs, rule, context, at)
    userids, missing = userids_of(resolution.people)
    log_unknown(resolution.unknown, rule.name)
    for name in missing:
        log.warning(
            "work notice recipient %s has no userid (rule %s); not sent to them", name, rule.name
        )
    return userids
