"""What the store hands back: plain frozen records, the same for every backend.

The store's operations (bridge/store/api.py) take plain values and return these or the shared
vocabulary (bridge/model.py, the alerting types); no backend type (a row, a cursor) leaves the
store, so a caller cannot tell SQLite from another backend.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.model import Event, Message
from bridge.store.codec import event_from_json, message_from_json

# Outbox row statuses: pending -> (delivered: deleted) | (retry: pending later) | dead; a work
# notice DingTalk took waits as 'sent' until getsendresult says who received it.
PENDING = "pending"
DEAD = "dead"
SENT = "sent"
RESULTS_KEEP = 7 * 86400.0  # seconds: how long `outbox show` can tell who received a notice


@dataclass(frozen=True)
class Row:
    """One outbox row: a message accepted and not yet delivered, or a dead letter."""

    id: str
    target: str
    rule: str
    fingerprint: str
    event_status: str
    message: Message
    status: str
    created_at: float
    not_before: float
    attempts: int
    parts_sent: int
    reason: str | None
    errcode: int | None
    errmsg: str | None
    updated_at: float
    event: Event | None  # set while the body is still to be rendered (see model.Delivery)


@dataclass(frozen=True, slots=True)
class StoredRow:
    """An outbox row as a claim returns it: its message and event still the JSON stored.

    Decoding them is most of a claim's cost (a digest claims up to a hundred rows, each with its
    event), and a claim is a write transaction: on SQLite it holds the one write lock of every
    process sharing the file. So the sender decodes after the claim commits (bench/README.md,
    issue 13)."""

    values: tuple[object, ...]  # the outbox's columns, in Row's order

    @property
    def id(self) -> str:
        return str(self.values[0])

    @property
    def order(self) -> tuple[float, str]:
        """Oldest first: (created_at, id)."""
        return (float(self.values[7]), str(self.values[0]))  # type: ignore[arg-type]

    def decode(self) -> Row:
        """The row, its message and event decoded; UnreadableRow when they cannot be."""
        fields = list(self.values)
        try:
            fields[5] = message_from_json(str(fields[5]))
            fields[15] = event_from_json(str(fields[15])) if fields[15] is not None else None
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
            raise UnreadableRow(str(fields[0]), str(fields[2]), why) from exc
        return Row(*fields)  # type: ignore[arg-type]


class UnreadableRow(Exception):
    """A stored message that no longer decodes (an older version's format, a damaged value):
    the sender dead-letters it by id instead of failing on it at every turn."""

    def __init__(self, id_: str, rule: str, error: str) -> None:
        super().__init__(f"outbox row {id_} cannot be read: {error}")
        self.id = id_
        self.rule = rule
        self.error = error


@dataclass(frozen=True)
class Ack:
    """An acknowledged alert (group): its fingerprint, who acknowledged it and when."""

    fingerprint: str
    by: str
    at: float


@dataclass(frozen=True)
class Group:
    """An aggregation group (a rule with group_by) holding alerts until its next flush."""

    rule: str
    key: str
    labels: Mapping[str, str]
    next_flush: float
    flushed: bool


@dataclass(frozen=True)
class Task:
    """A work notice DingTalk took (its task id) whose recipients are not known yet."""

    target: str
    task_id: int
    ids: tuple[str, ...]
    rules: tuple[str, ...]
    created_at: float
    sent_at: float
    next_poll: float
    polls: int
    last_answer: str | None


@dataclass(frozen=True)
class Result:
    """Who received a work notice's message and who did not, and why."""

    id: str
    task_id: int
    target: str
    rule: str
    outcome: str
    received: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]  # (user id, code)
    note: str | None
    at: float


class Seen(enum.Enum):
    """What the replay memory knew of a signed request's key."""

    NEW = "new"  # first use: remembered now
    SAME = "same"  # this key with the same digest: the very request again
    OTHER = "other"  # this key with another digest: a replay of the signature on a new body


@dataclass(frozen=True)
class Readiness:
    """The store's part of /-/ready: can it commit, and what it holds."""

    writable: bool
    dead_letters: int
    depths: Mapping[str, tuple[int, float | None]]  # per target: (pending, oldest created_at)
    claimed: Mapping[str, int] = field(default_factory=dict)  # per target: rows being sent now
    # How senders learn of rows queued elsewhere: "in-process" (one writer), "fifo" (SQLite:
    # the processes sharing the file wake this one through a FIFO beside it, store/fifo.py),
    # "listening" (a shared database's notifications), "polling" (listening is broken: the
    # idle poll finds them, within a second).
    wakeups: str = "in-process"


@dataclass(frozen=True)
class AppRobotSend:
    """One call of an app robot DingTalk took (a part of a message, to a group or a batch of
    up to 20 users): the key to recall it by, and the users it did not deliver to."""

    id: str  # the outbox id (a digest: one such record per message it carried)
    process_query_key: str
    target: str
    rule: str
    robot_code: str
    conversation: str | None  # openConversationId; None: one-to-one
    users: tuple[str, ...]  # the users of a one-to-one call
    refused: tuple[tuple[str, str], ...]  # (user id, why): invalid_user, flow_controlled...
    sent_at: float
    recalled_at: float | None = None
    recall_note: str | None = None  # why DingTalk did not recall it, when it did not
    # An interactive card the call delivered (store/cards.py), kept with it in one transaction.
    card: Card | None = None


@dataclass(frozen=True)
class Card:
    """An interactive card DingTalk delivered (dingtalk/cards.py): what a click on it, or an
    update of it, needs once the outbox row of its message is gone."""

    out_track_id: str  # the card's id: its message's outbox id (and user, one-to-one)
    id: str  # the outbox id of the message it carried
    target: str
    rule: str
    fingerprint: str  # the alert's (a group's), as `ack <id>` and the one-tap grants take it
    labels: Mapping[str, str]  # the labels its message showed: what a silence matches
    sent_at: float


@dataclass(frozen=True)
class Escalation:
    """Where one alert's escalation stands (store/escalations.py; the steps are its rule's
    `escalate`, pipeline/escalation.py decides what is due).

    `key` is the notification log's key of the alert (a group's key, for a rule with group_by);
    `fingerprint` what `ack <id>` and the acknowledgements take. `started_at` is when it first
    fired, and tells one firing from the next (a claim names it: a step due for a firing that
    resolved and fired again since is not sent). `stopped`: None while it runs, "ack" once
    acknowledged, "resolve" once resolved (until the worker counts and forgets it)."""

    rule: str
    key: str
    fingerprint: str
    labels: Mapping[str, str]
    started_at: float
    steps_done: int = 0
    stopped: str | None = None


# The outcomes of one attempt to send a message, as the history keeps them (store/history.py).
DELIVERED = "delivered"
ACCEPTED = "accepted"  # a work notice DingTalk took; who received it is polled for later
RETRYING = "retrying"  # this attempt failed, the row stays queued
DEAD_LETTER = "dead"
OUTCOMES = (DELIVERED, ACCEPTED, RETRYING, DEAD_LETTER)


@dataclass(frozen=True)
class Sent:
    """One attempt to send a message and what came of it (store/history.py): what the console's
    Messages page lists, kept after the outbox row is gone (a delivered row is deleted).

    `bodies` are the JSON texts the channel posted in this attempt, in order (dingtalk/sizing.py's
    `encode`, so exactly the bytes sent): robot, work notice and app robot bodies carry no URL,
    token or secret (those travel in the URL's query or a header), and the signature of a one-tap
    link is masked (delivery/recording.py's `posted_text`). A failure before any body was built
    (a template or decoding error) has none. The store keeps at most BODY_KEEP bytes of
    each (store/history.py)."""

    id: str  # the message id (the outbox row's; a digest's is ids_of: "first+N")
    target: str
    rule: str  # "" for a digest of several rules
    outcome: str  # one of OUTCOMES
    at: float  # when this attempt ended
    attempt: int  # 1 for the first attempt of this id
    parts: int  # how many bodies were posted
    errcode: int | None
    errmsg: str | None
    reason: str | None  # bridge.errors.Reason value for a failure, None on success
    title: str
    bodies: tuple[str, ...]
    covers: tuple[str, ...] = ()  # for a digest: the ids of the rows it carried
