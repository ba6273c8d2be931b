"""Recording a sender's outcomes in the store, and holding one the store could not take.

An outcome is recorded with the calls it made (and a lockout DingTalk imposed), in one
transaction; a call whose turn was taken in the store (delivery/turns.py) replaces its
reservation there, or drops it when DingTalk never counted the call. If that commit fails (a
full disk), the outcome is held in memory and the commit retried with backoff, and the target
sends nothing until it succeeds: sending the next message would resend the one DingTalk just
accepted, which the store still lists as pending.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bridge.clock import Clock
from bridge.delivery.backoff import backoff_ceiling
from bridge.delivery.labels import error_text, ids_of
from bridge.delivery.noticepoll import first_poll_at
from bridge.delivery.robots import RobotWindow, Ticket
from bridge.dingtalk.responses import Delivered, Failed, SendOutcome
from bridge.dingtalk.sizing import encode
from bridge.errors import Reason
from bridge.logs import REDACTOR, fmt_fields
from bridge.model import Delivery
from bridge.store.api import Store, Tx
from bridge.store.records import AppRobotSend, Card, Row, Sent

if TYPE_CHECKING:
    from bridge.delivery.messages import Current

log = logging.getLogger("bridge.delivery")

STORE_RETRY_INITIAL = 0.5  # seconds: first retry of an outcome the store could not commit
# ... doubling up to this: a commit tried every few seconds costs nothing, and once the disk has
# room again the target resumes within this time.
STORE_RETRY_MAX = 4.0

# The history of sends (store/history.py) is pruned by the senders, its only writers, every
# HISTORY_PRUNE_EVERY seconds: attempts older than HISTORY_KEEP go, and all but the newest
# HISTORY_ROWS. The sender, not the store's upkeep: PostgreSQL has no upkeep thread, and the
# sender's clock is the one its records are stamped with. Each target's sender prunes the whole
# table; with an index on the time that is one cheap statement every few minutes.
HISTORY_KEEP = 7 * 86400.0
HISTORY_ROWS = 10_000
HISTORY_PRUNE_EVERY = 600.0


@dataclass
class Record:
    """An outcome to commit: the calls DingTalk counted, a lockout, and the outbox change."""

    what: str  # for the log: delivered, part, retry, dead letter
    ids: list[str]
    calls: list[float]
    lockout: float | None
    write: Callable[[Tx], None]
    error: str = ""  # why the last commit failed
    settles: str | None = None  # the reservation of the call in the store's window
    history: list[Sent] = field(default_factory=list)  # the attempts it ends (store/history.py)


# The signature of a one-tap link's token (pipeline/actionlinks.py: `/-/act/<payload>.<mac>`,
# alerting/actions.py's `sign`, both base64url): whoever holds the link may ack or silence.
_ACT_SIGNATURE = re.compile(r"(/-/act/[A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+")


def posted_text(body: dict[str, Any]) -> str:
    """The JSON text of `body` as a channel posts it (dingtalk/sizing.py's `encode`, which every
    channel sends), for the history. No channel puts its URL, token or secret in a body; the
    redactor still masks any configured secret a template might have copied into one, and the
    signature of each one-tap link is masked (`.../-/act/<payload>.***`): the history is shown
    on pages (a wall screen too) where a working link would grant an ack or a silence."""
    text = REDACTOR.scrub(encode(body).decode())
    return _ACT_SIGNATURE.sub(r"\1.***", text)


def attempt(
    batch: Sequence[Row],
    target: str,
    outcome: str,
    at: float,
    title: str,
    posted: Sequence[str] = (),
    failed: Failed | None = None,
    reason: str | None = None,
    error: str | None = None,
) -> Sent:
    """The history's record of one attempt to send `batch` (a digest when several rows), which
    posted the bodies `posted` and ended in `outcome`; `failed`: DingTalk's (or the network's)
    answer when it failed, `reason` the reason recorded when not the answer's own, `error` what
    failed when DingTalk did not answer (an error of ours)."""
    ids = [r.id for r in batch]
    rules = {r.rule for r in batch}
    return Sent(
        id=ids_of(ids),
        target=target,
        rule=rules.pop() if len(rules) == 1 else "",
        outcome=outcome,
        at=at,
        attempt=batch[0].attempts + 1,
        parts=len(posted),
        errcode=failed.errcode if failed is not None else None,
        # DingTalk's errmsg when it answered, else what failed (a line without URL or token).
        errmsg=(failed.errmsg or failed.detail) if failed is not None else error,
        reason=reason or (failed.reason.value if failed is not None else None),
        title=title,
        bodies=tuple(posted),
        covers=tuple(ids) if len(ids) > 1 else (),
    )


def dead_letters(
    ids: list[str],
    calls: list[float],
    reason: str,
    errcode: int | None,
    errmsg: str | None,
    now: float,
    owner: str | None,
    swept: list[str] | None = None,
    history: Sequence[Sent] = (),
) -> Record:
    """The outcome that makes `ids` (held by `owner`, when given) dead letters, with the calls
    that led there; and `swept`, pending rows of the target too old to wait any longer, whoever
    holds them. `history`: the attempts it ends."""

    def write(tx: Tx) -> None:
        tx.outbox.dead_letter(ids, reason, errcode, errmsg, now, owner=owner)
        if swept:
            tx.outbox.dead_letter(swept, reason, errcode, errmsg, now)

    return Record("dead letter", ids + (swept or []), calls, None, write, history=list(history))


def app_robot_sends(
    batch: Sequence[Row], target: str, sent: SendOutcome, at: float
) -> list[AppRobotSend]:
    """What an app robot's answer said of the call (its processQueryKey, the users it refused),
    for every message the call carried; nothing for other channels."""
    receipt = sent.receipt if isinstance(sent, Delivered) else None
    if receipt is None:
        return []
    return [
        AppRobotSend(
            row.id,
            receipt.process_query_key,
            target,
            row.rule,
            receipt.robot_code,
            receipt.conversation,
            receipt.users,
            receipt.refused(),
            at,
            card=_card(row, target, receipt.card, at) if receipt.card else None,
        )
        for row in batch
    ]


def _card(row: Row, target: str, out_track_id: str, at: float) -> Card:
    """The card a call delivered for `row`: its alert as the message's event named it (the
    one-tap grants' fingerprint and labels: pipeline/actionlinks.py)."""
    event = row.event
    fingerprint = event.fingerprint if event is not None else row.fingerprint
    labels = dict(event.labels) if event is not None else {}
    return Card(out_track_id, row.id, target, row.rule, fingerprint, labels, at)


def _record_sends(tx: Tx, sends: Sequence[AppRobotSend], at: float) -> None:
    tx.appsends.record(sends, at)
    cards = [s.card for s in sends if s.card is not None]
    if cards:
        tx.cards.record(cards, at)


# How long flow-controlled users wait before their follow-up: DingTalk's flow control is counted
# per minute (as the work notice's 143103 is; uncertain for the app robot, docs/dingtalk-v1.md).
FLOW_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class FollowUp:
    """The message again, for the users DingTalk flow-controlled, due at `not_before`."""

    delivery: Delivery
    not_before: float


def flow_follow_up(
    current: Current, target: str, now: float, new_id: Callable[[], str] | None
) -> FollowUp | None:
    """A follow-up for the users DingTalk flow-controlled while sending `current` (only them:
    the others have it), or None. `new_id`: the outbox's id source (none: no follow-up)."""
    users = tuple(dict.fromkeys(current.flow_controlled))
    if not users or current.message is None or new_id is None:
        return None
    head = current.batch[0]
    delivery = Delivery(
        id=new_id(),
        rule=head.rule,
        target=target,
        message=replace(current.message, only_users=users),
        fingerprint=head.fingerprint,
        created_at=datetime.fromtimestamp(now, UTC),
        event_status="resolved" if head.event_status == "resolved" else "firing",
    )
    return FollowUp(delivery, now + FLOW_RETRY_SECONDS)


def part_sent(
    head: str, done: int, at: float, owner: str, sends: Sequence[AppRobotSend] = ()
) -> Record:
    """Part `done` of a long message went out: a restart resumes at the next part."""

    def write(tx: Tx) -> None:
        tx.outbox.progress(head, done, at, owner=owner)
        if sends:
            _record_sends(tx, sends, at)

    return Record("part", [head], [at], None, write)


def accepted(
    batch: list[Row],
    target: str,
    task_id: int | None,
    calls: list[float],
    now: float,
    sends: Sequence[AppRobotSend] = (),
    follow_up: FollowUp | None = None,
    history: Sent | None = None,
) -> Record:
    """DingTalk took every body: the rows leave the outbox, or, for a send awaiting its result
    (a work notice), stay 'sent' with the task id until the poller settles them
    (store/notices.py, delivery/noticepoll.py). `sends`: what an app robot's answer said of the
    last call (store/appsends.py); `follow_up`: the message again for the users DingTalk
    flow-controlled, queued in the same transaction; `history`: the attempt it ends."""
    ids = [r.id for r in batch]

    def write(tx: Tx) -> None:
        if sends:
            _record_sends(tx, sends, now)
        if follow_up is not None:
            users = ",".join(follow_up.delivery.message.only_users)
            tx.outbox.enqueue([follow_up.delivery], now)
            tx.outbox.retry_later(
                [follow_up.delivery.id],
                follow_up.not_before,
                Reason.RATE_LIMITED.value,
                None,
                f"flow-controlled by DingTalk, sent again to: {users}"[:500],
                now,
            )
        if task_id is not None:
            tx.notices.awaiting(batch, target, task_id, now, first_poll_at(now))
        else:
            tx.outbox.delivered(ids)

    return Record("delivered", ids, calls, None, write, history=[history] if history else [])


def retry(
    ids: list[str],
    calls: list[float],
    not_before: float,
    lockout: float | None,
    failed: Failed,
    now: float,
    owner: str,
    history: Sent | None = None,
) -> Record:
    """Send `ids` (held by `owner`) again from `not_before`, noting why (and a lockout of the
    robot); `history`: the attempt it ends."""
    reason = failed.reason.value
    return Record(
        "retry",
        ids,
        calls,
        lockout,
        lambda tx: tx.outbox.retry_later(
            ids, not_before, reason, failed.errcode, failed.errmsg, now, owner=owner
        ),
        history=[history] if history else [],
    )


def write_window(
    tx: Tx,
    window: RobotWindow,
    calls: Sequence[float],
    settles: str | None,
    lockout: float | None,
    now: float,
) -> None:
    """The robot's calls DingTalk counted, in place of the turn's reservation `settles`, and a
    lockout it answered: what every replica's window reads (delivery/turns.py)."""
    if (calls or settles) and window.keep > 0:
        forget = max(calls, default=now) - window.keep
        tx.ratewindows.record_calls(window.key, calls, forget, settles)
    if lockout is not None:
        tx.ratewindows.lock_out(window.key, lockout)


class Recorder:
    """Commits one target's outcomes; holds the one the store refused (see above)."""

    def __init__(
        self, store: Store, window: Callable[[], RobotWindow], target: str, clock: Clock
    ) -> None:
        self.store = store
        self.window = window
        self.target = target
        self.clock = clock
        self.held: Record | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._prune_at = 0.0  # the first outcome recorded prunes the history

    def commit(self, record: Record, ticket: Ticket | None = None) -> bool:
        """Write an outcome with the calls it made (`ticket`'s, when it had one); if the store
        cannot, hold it."""
        if ticket is not None:
            record.settles = ticket.reservation
        try:
            self._write(record)
        except Exception as exc:
            record.error = error_text(exc)
            self.held = record
            self._failures = 1
            self._retry_at = self.clock.time() + STORE_RETRY_INITIAL
            self._log(
                logging.ERROR,
                "outcome not recorded, target holds until the store commits",
                record,
                reason=Reason.STORE.value,
                error=record.error,
            )
            return False
        self._prune_history()
        return True

    def _prune_history(self) -> None:
        """Now and then, forget old attempts (see HISTORY_KEEP). Its own transaction, after the
        outcome's: a prune that fails is tried again later and never holds an outcome."""
        now = self.clock.time()
        if now < self._prune_at:
            return
        self._prune_at = now + HISTORY_PRUNE_EVERY
        try:
            with self.store.transaction() as tx:
                gone = tx.history.prune(now - HISTORY_KEEP, HISTORY_ROWS)
        except Exception as exc:
            log.warning(fmt_fields("history not pruned", target=self.target, error=error_text(exc)))
            return
        if gone:
            log.debug(fmt_fields("history pruned", target=self.target, attempts=gone))

    def _write(self, record: Record) -> None:
        window = self.window()
        with self.store.transaction() as tx:
            write_window(
                tx, window, record.calls, record.settles, record.lockout, self.clock.time()
            )
            record.write(tx)
            for sent in record.history:
                tx.history.record(sent)

    def again(self, now_or_never: bool = False) -> float:
        """Try the held outcome again when its backoff is over (at once if `now_or_never`):
        seconds to wait before the next try, 0 once it is recorded."""
        record = self.held
        assert record is not None
        now = self.clock.time()
        if now < self._retry_at and not now_or_never:
            return self._retry_at - now
        try:
            self._write(record)
        except Exception as exc:
            record.error = error_text(exc)
            self._failures += 1
            # No jitter: one local disk, not a crowd of clients to spread out.
            delay = backoff_ceiling(self._failures, STORE_RETRY_INITIAL, STORE_RETRY_MAX)
            self._retry_at = now + delay
            return delay
        self.held = None
        self._log(logging.INFO, "outcome recorded", record, tries=self._failures + 1)
        self._failures = 0
        return 0.0

    def last_try(self) -> None:
        """At stop: one last try for a held outcome, else a restart sends its message again."""
        if self.held is None:
            return
        self.again(now_or_never=True)
        if self.held is not None:
            self._log(
                logging.WARNING,
                "outcome lost at stop: the store still lists it, a restart sends it again",
                self.held,
            )

    def _log(self, level: int, text: str, record: Record, **fields: object) -> None:
        log.log(
            level,
            fmt_fields(
                text, target=self.target, outcome=record.what, id=ids_of(record.ids), **fields
            ),
        )
