"""The face every target type shows the sender: one `Channel` per configured target.

A channel knows *how* a message reaches its kind of DingTalk destination: the JSON bodies DingTalk
accepts for it (split into parts within the type's size limit), how to post one (signing,
tokens), what DingTalk's answer means (as a typed outcome, see dingtalk/responses.py), how large
a storm digest may be, and whose rate window its calls count against. The sender
(bridge/delivery) knows *when* to send and speaks only to this protocol; the registry
(dingtalk/channels.py) maps a compiled target to its channel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import tzinfo
from typing import Any, Protocol, runtime_checkable

from bridge.config.model import SendPolicy
from bridge.dingtalk.responses import SendOutcome
from bridge.model import Message

Body = dict[str, Any]


class Channel(Protocol):
    @property
    def name(self) -> str:
        """The target's name (logs, metrics, the outbox's target column)."""
        ...

    @property
    def policy(self) -> SendPolicy:
        """How the target's sender paces, merges, splits and retries."""
        ...

    @property
    def timeout(self) -> float:
        """Seconds one call may take: bounds how long stopping waits for a call in flight."""
        ...

    @property
    def rate_key(self) -> str:
        """Whom DingTalk counts this target's calls against (a robot, an app), as a key safe to
        store and show: targets with one key share one rate window and one lockout."""
        ...

    @property
    def digest_limit(self) -> int:
        """The most bytes a storm digest's body may take."""
        ...

    def bodies(
        self, message: Message, ids: Sequence[str], accepted_at: float, tz: tzinfo
    ) -> list[Body]:
        """The bodies that carry `message`, in order (parts of a long one). `ids`: the outbox
        ids it carries (several for a digest); `accepted_at`: when the bridge accepted the
        (oldest) one; `tz`: the config's time zone. The same arguments give the same bodies:
        every try of one message is the same content."""
        ...

    def digest_body(self, message: Message) -> Body:
        """The one body of a digest, whole (never cut), so its builder sees when it holds too
        many alerts for `digest_limit`."""
        ...

    def post(self, body: Body) -> SendOutcome:
        """Send one body now and say what came of it. Errors of DingTalk and of the network are
        outcomes; only a bug of ours raises."""
        ...


@runtime_checkable
class ResultChannel(Channel, Protocol):
    """A channel whose accepted sends are confirmed later (AwaitingResult): work notices."""

    def send_result(self, task_id: int) -> Mapping[str, Any]:
        """DingTalk's answer about who received the send `task_id` (raises DeliveryError)."""
        ...

    def recipients(self) -> tuple[str, ...] | None:
        """The users a send is for, when the target names them all (else None: departments or
        everyone, whom the bridge cannot list)."""
        ...


def rate_key(kind: str, *parts: str) -> str:
    """A key for whom DingTalk counts calls against: `kind` and a hash of what identifies it
    (never the token or secret itself, which may sit in `parts`)."""
    material = "\n".join((kind, *parts))
    return f"{kind}-{hashlib.sha256(material.encode()).hexdigest()[:16]}"
