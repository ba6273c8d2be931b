"""What a target sends next: one queued row rendered on its own, or a storm digest of many.

The sender renders a message when it sends it (the outbox keeps the event: a storm digest needs
only titles). It does not know how: the composition root hands it a `Renderer` built on the
pipeline's templates and the current config's rules (a reload replaces the rules; the renderer
sees the new ones). The channel says how a digest is shaped and how large it may be.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bridge.config.model import SendPolicy
from bridge.delivery.claims import Hold
from bridge.delivery.digest import Item, build_digest
from bridge.delivery.labels import error_text, ids_of_rows
from bridge.dingtalk.channel import Body, Channel
from bridge.locales import Locale
from bridge.logs import fmt_fields
from bridge.model import Message, Rendered
from bridge.store.records import Row

log = logging.getLogger("bridge.delivery")


class Renderer(Protocol):
    """Renders queued rows at send time (see bridge/app/rendering.py)."""

    def message(self, row: Row, now: datetime) -> Rendered:
        """The whole message of `row`, or the fallback with why its template failed."""
        ...

    def title(self, row: Row, now: datetime) -> str:
        """`row` on one line, as a storm digest lists it."""
        ...

    def has_rule(self, name: str) -> bool:
        """Is the rule `name` in the current config (else a reload removed it)?"""
        ...

    def locale(self) -> Locale:
        """The current config's language, for the words of a digest."""
        ...


@dataclass
class Current:
    """The message being sent: its rows, its bodies, how many of them DingTalk has, and the
    claim the rows are held by (renewed while it is sent)."""

    batch: list[Row]
    bodies: list[Body]
    done: int
    hold: Hold
    started: float = field(default_factory=time.monotonic)
    refused: int = 0  # users an app robot's answers refused so far (for the log line)
    addressed: int = 0  # users its one-to-one calls were for
    message: Message | None = None  # what the bodies carry (for a follow-up to some users)
    flow_controlled: list[str] = field(default_factory=list)  # users to send it again later
    posted: list[str] = field(default_factory=list)  # the JSON text of each body posted this try

    @property
    def title(self) -> str:
        """What the history names it by: the rendered message's title."""
        return self.message.title if self.message is not None else self.batch[0].message.title


def digest_threshold(policy: SendPolicy, used: int) -> int:
    """Merge once more are queued than the calls left in the robot's current window (`used` of
    them are taken) or than `digest.after`, whichever is smaller: spending the window's last
    calls on single alerts while hundreds wait would leave them waiting for the next window."""
    rate = policy.rate
    if rate.unlimited:
        return policy.digest_after
    return max(1, min(policy.digest_after, rate.messages - used))


def digest_claim(most: int, fitted: int | None) -> int:
    """How many rows to claim for a digest: `most` (the target's `digest.max_alerts`), or, once
    a digest was cut by its byte limit after `fitted` alerts, that many and a quarter more.
    Every claimed row is decoded, and the ones a digest cannot carry go back to the queue: with
    long titles that was half of each claim. The quarter leaves room for shorter titles; a
    digest that takes every row it claimed lets the next one claim `most` again."""
    if fitted is None:
        return most
    return min(most, fitted + fitted // 4 + 1)


def wants_digest(rows: list[Row], policy: SendPolicy, backlog: int, threshold: int) -> bool:
    """Merge the due `rows` (of `backlog` pending) into one digest? Not a message whose first
    parts went out already: it resumes where it stopped. Nor an update of interactive cards
    (pipeline/cardmessage.py): a digest's line would not change the card."""
    return (
        len(rows) > 1
        and policy.digest
        and backlog > threshold
        and rows[0].parts_sent == 0
        and not rows[0].message.card_updates
    )


def single(renderer: Renderer, channel: Channel, row: Row, now: datetime) -> Message:
    """The whole message of a row sent on its own, rendered now from its event."""
    rendered = renderer.message(row, now)
    if rendered.error:
        known = renderer.has_rule(row.rule)
        log.error(
            fmt_fields(
                "template failed, sent fallback" if known else "rule gone, sent fallback",
                rule=row.rule,
                target=channel.name,
                id=row.id,
                reason="template" if known else "rule_removed",
                error=rendered.error,
            )
        )
    return rendered.message


def digest(
    renderer: Renderer, channel: Channel, rows: list[Row], backlog: int, now: datetime
) -> tuple[list[Row], Message]:
    """The digest of the longest run of fresh `rows` whose body fits the channel's digest limit,
    and the rows it holds."""
    fresh = [r for r in rows if r.parts_sent == 0 and not r.message.card_updates]
    items = (Item(renderer.title(r, now), r.event_status, r.message.mention) for r in fresh)
    message, count = build_digest(
        items, backlog, channel.digest_body, channel.digest_limit, renderer.locale()
    )
    return fresh[:count], message


def log_digest_failed(channel: Channel, rows: list[Row], exc: Exception) -> None:
    log.error(
        fmt_fields(
            "digest failed, sending alone",
            target=channel.name,
            id=ids_of_rows(rows),
            error=error_text(exc),
        )
    )
