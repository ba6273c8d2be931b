"""Event -> the deliveries it causes: rules, then rendering, once per matching rule and target.

Pure apart from the ids it draws; the caller passes `now`. Render errors come back alongside the
(fallback) deliveries so the caller can log them: the alert itself is never dropped for them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bridge.config.model import Config
from bridge.model import Delivery, Event
from bridge.pipeline.render import render
from bridge.pipeline.rules import matching_rules


@dataclass
class Plan:
    deliveries: list[Delivery] = field(default_factory=list)
    matched_rules: list[str] = field(default_factory=list)
    render_errors: list[tuple[str, str]] = field(default_factory=list)  # (rule, error)


def new_id() -> str:
    """32 hex digits: the time in nanoseconds, then 64 random bits. Ids of messages accepted
    later sort later, so the outbox's primary-key index grows at its end instead of touching a
    random page per insert (less written per commit), and the log reads in time order."""
    return f"{time.time_ns():016x}{secrets.randbits(64):016x}"


def plan(config: Config, event: Event, now: datetime, make_id: Callable[[], str] = new_id) -> Plan:
    result = Plan()
    for rule in matching_rules(config.rules, event):
        result.matched_rules.append(rule.name)
        rendered = render(rule, event, now)
        if rendered.error:
            result.render_errors.append((rule.name, rendered.error))
        for target in rule.targets:
            result.deliveries.append(
                Delivery(
                    id=make_id(),
                    rule=rule.name,
                    target=target,
                    message=rendered.message,
                    fingerprint=event.fingerprint,
                    created_at=now,
                )
            )
    return result
