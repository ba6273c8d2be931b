"""One sender thread per target: outbox rows -> DingTalk, paced, merged, split and retried.

The loop, for its target:
1. wait for the rate limiter's next slot and any lockout DingTalk imposed;
2. take the due rows, oldest first; when more are queued than the rate carries soon, merge them
   into one digest message, else take the oldest;
3. send its bodies (parts of a long message are paced like messages, and progress is recorded
   so a restart resumes at the next part);
4. delivered: delete the rows. Retryable failure: back off (a 130101 lockout waits it out).
   Permanent failure, or undelivered for longer than give_up_after: dead letter with the reason,
   DingTalk's errcode and errmsg. Nothing leaves the outbox without one of these outcomes.

A row is deleted only after DingTalk answered errcode 0: if the process dies between the answer
and the delete, that message is sent once more after the restart (never lost, at most one extra).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from bridge.config.model import RobotTarget, Rule, Target
from bridge.delivery.backoff import backoff_delay
from bridge.delivery.digest import Item, build_digest
from bridge.delivery.noticepoll import first_poll_at
from bridge.delivery.ratelimit import SAFETY_MARGIN, next_slot
from bridge.dingtalk.client import DingTalkClient, Sent, bodies_for
from bridge.dingtalk.robot import ROBOT_MAX_BYTES, robot_bodies
from bridge.dingtalk.worknotice import UNIQUE_PLACEHOLDER, work_notice_body
from bridge.errors import DeliveryError, Reason
from bridge.logs import fmt_fields
from bridge.model import Message
from bridge.render import queued_message, queued_title
from bridge.store import notices, outbox
from bridge.store.db import Store
from bridge.store.outbox import Row

log = logging.getLogger("bridge.delivery")

# Work notices have no documented body limit we trust (an old page says 2,048 bytes of msg);
# keep digests for them modest.
WORK_NOTICE_DIGEST_BYTES = 16_384
IDLE_POLL = 1.0  # seconds: also notices rows revived by `outbox retry` from another process
HISTORY_KEEP = 3600.0


@dataclass
class SenderStats:
    """Counters for /metrics (monotonic for the life of this sender)."""

    delivered: int = 0  # messages (each one merged into a digest counts)
    calls: int = 0  # HTTP calls answered or failed
    failures: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    retries: int = 0
    dead_letters: int = 0
    digests: int = 0
    rate_waits: int = 0  # times a message waited for the rate window or a lockout


class TargetSender:
    def __init__(
        self,
        target: Target,
        store: Store,
        client: DingTalkClient,
        rules: Callable[[], Mapping[str, Rule]],
        clock: Callable[[], float] = time.time,
        timezone: Callable[[], tzinfo] = lambda: UTC,
    ) -> None:
        self.target = target
        self.rules = rules
        self.timezone = timezone  # the config's, for the time in a work notice's unique line
        self.store = store
        self.client = client
        self.clock = clock
        self.history: deque[float] = deque()
        self.locked_until = 0.0
        self.stats = SenderStats()
        self._wake = threading.Event()
        self._stop = threading.Event()
        # True while the loop waits for rows to appear. Waking a sender that waits for its rate
        # slot would only make it look at the clock and sleep again: under a storm that is one
        # pointless thread switch per accepted request.
        self._idle = False
        self._thread = threading.Thread(target=self._run, name=f"sender-{target.name}", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        now = self.clock()
        with self.store.reading() as conn:
            rows = conn.execute(
                "SELECT at FROM sends WHERE target = ? AND at > ? ORDER BY at",
                (self.target.name, now - HISTORY_KEEP),
            ).fetchall()
            lock = conn.execute(
                "SELECT until FROM lockouts WHERE target = ?", (self.target.name,)
            ).fetchone()
        self.history.extend(float(r[0]) for r in rows)
        self.locked_until = float(lock[0]) if lock else 0.0
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def wake(self) -> None:
        """New rows were queued."""
        if self._idle:
            self._wake.set()

    def stop(self, timeout: float) -> None:
        """Stop taking new rows; a send in flight may finish within `timeout` (then its target's
        HTTP timeout bounds it). Rows not sent stay in the outbox for the next start."""
        self.request_stop()
        self._thread.join(max(timeout, 0.0))
        if self._thread.is_alive():
            self._thread.join(self.target.timeout + 1.0)

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(max(0.0, seconds))
        self._wake.clear()

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # a bug must not silence a target for good: log, pause, go on
                log.exception(fmt_fields("sender error", target=self.target.name))
                self._sleep(5.0)

    def _ready_at(self, now: float) -> float:
        return max(next_slot(self.target.policy.rate, self.history, now), self.locked_until)

    def _step(self) -> None:
        now = self.clock()
        ready = self._ready_at(now)
        if ready > now:
            self._sleep(ready - now)
            return
        policy = self.target.policy
        with self.store.reading() as conn:
            rows = outbox.due(conn, self.target.name, now, limit=policy.digest_max)
            if not rows:
                next_due = outbox.next_due_at(conn, self.target.name)
            elif len(rows) > 1 and policy.digest:
                backlog = outbox.pending_count(conn, self.target.name)
        if not rows:
            self._idle = True
            self._sleep(IDLE_POLL if next_due is None else min(IDLE_POLL, next_due - now))
            self._idle = False
            return
        if (
            len(rows) > 1
            and policy.digest
            and backlog > self._digest_threshold(now)
            and rows[0].parts_sent == 0
        ):
            batch, message = self._digest(rows, backlog)
            self.stats.digests += 1
        else:
            batch, message = [rows[0]], self._body(rows[0])
        self._send(batch, message)

    def _digest_threshold(self, now: float) -> int:
        """Merge once more are queued than the calls left in the current window (or than
        `digest.after`, whichever is smaller): spending the window's last calls on single alerts
        while hundreds wait would leave them waiting for the next window."""
        rate = self.target.policy.rate
        if rate.unlimited:
            return self.target.policy.digest_after
        window = rate.per + SAFETY_MARGIN
        left = rate.messages - sum(1 for t in self.history if t > now - window)
        return max(1, min(self.target.policy.digest_after, left))

    def _title(self, row: Row) -> str:
        now = datetime.fromtimestamp(self.clock(), UTC)
        return queued_title(self.rules().get(row.rule), row.message, row.event, now)

    def _body(self, row: Row) -> Message:
        """The whole message for a row sent on its own, rendered now from its event."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        rule = self.rules().get(row.rule)
        rendered = queued_message(rule, row.rule, row.message, row.event, now)
        if rendered.error:
            log.error(
                fmt_fields(
                    "template failed, sent fallback" if rule else "rule gone, sent fallback",
                    rule=row.rule,
                    target=self.target.name,
                    id=row.id,
                    reason="template" if rule else "rule_removed",
                    error=rendered.error,
                )
            )
        return rendered.message

    def _digest(self, rows: list[Row], backlog: int) -> tuple[list[Row], Message]:
        fresh = [r for r in rows if r.parts_sent == 0]
        items = [Item(self._title(r), r.event_status, r.message.mention) for r in fresh]
        target = self.target

        def body_of(message: Message) -> dict[str, object]:
            # Measured whole (never cut), so build_digest sees when it holds too many alerts.
            if isinstance(target, RobotTarget):
                return robot_bodies(message, target.keywords, limit=sys.maxsize)[0]
            return work_notice_body(target, message, UNIQUE_PLACEHOLDER)

        limit = ROBOT_MAX_BYTES if isinstance(target, RobotTarget) else WORK_NOTICE_DIGEST_BYTES
        message, count = build_digest(items, backlog, body_of, limit)
        return fresh[:count], message

    def _send(self, batch: list[Row], message: Message) -> None:
        head = batch[0]
        ids = [r.id for r in batch]
        bodies = bodies_for(self.target, message, ids, head.created_at, self.timezone())
        done = head.parts_sent if len(batch) == 1 else 0
        sent: Sent | None = None
        started = time.monotonic()
        while done < len(bodies):
            now = self.clock()
            ready = self._ready_at(now)
            if ready > now:  # the next part waits its turn like any message
                self.stats.rate_waits += 1
                if self._stop.is_set():
                    return
                self._sleep(ready - now)
                continue
            try:
                sent = self._post(bodies[done])
            except DeliveryError as exc:
                self._record_call(self.clock())
                key = (exc.reason.value, str(exc.errcode) if exc.errcode is not None else "")
                self.stats.failures[key] += 1
                self._failed(batch, exc)
                return
            # Counted when answered, not when sent: DingTalk counts a call when it handles it,
            # which may be late in a slow answer; the later time keeps us inside its window.
            self._record_call(self.clock())
            done += 1
            if done < len(bodies):
                with self.store.transaction() as conn:
                    outbox.progress(conn, head.id, done, self.clock())
        # A work notice DingTalk took is delivered only once getsendresult says who received it:
        # until then its rows stay 'sent' with the task id (store/notices.py, delivery/noticepoll).
        task_id = sent.task_id if sent is not None else None
        now = self.clock()
        with self.store.transaction() as conn:
            if task_id is not None:
                notices.awaiting(conn, batch, self.target.name, task_id, now, first_poll_at(now))
            else:
                outbox.delivered(conn, ids)
        self.stats.delivered += len(batch)
        log.info(
            fmt_fields(
                "delivered" if task_id is None else "accepted, awaiting result",
                rule=_rules(batch),
                target=self.target.name,
                id=_ids(batch),
                parts=len(bodies) if len(bodies) > 1 else None,
                digest=len(batch) if len(batch) > 1 else None,
                task_id=sent.task_id if sent else None,
                ms=round((time.monotonic() - started) * 1000),
            )
        )

    def _post(self, body: dict[str, object]) -> Sent:
        if isinstance(self.target, RobotTarget):
            return self.client.send_robot(self.target, body)
        return self.client.send_work_notice(self.target, body)

    def _record_call(self, now: float) -> None:
        """Every call counts against DingTalk's window, answered or not: remember it durably."""
        self.stats.calls += 1
        self.history.append(now)
        while self.history and self.history[0] < now - HISTORY_KEEP:
            self.history.popleft()
        with self.store.transaction() as conn:
            conn.execute("INSERT INTO sends (target, at) VALUES (?, ?)", (self.target.name, now))
            conn.execute(
                "DELETE FROM sends WHERE target = ? AND at < ?",
                (self.target.name, now - HISTORY_KEEP),
            )

    def _failed(self, batch: list[Row], exc: DeliveryError) -> None:
        now = self.clock()
        head = batch[0]
        policy = self.target.policy
        fields = dict(
            rule=_rules(batch),
            target=self.target.name,
            id=_ids(batch),
            digest=len(batch) if len(batch) > 1 else None,
            reason=exc.reason.value,
            errcode=exc.errcode,
            error=str(exc),
        )
        expired = now - head.created_at > policy.give_up_after
        if not exc.retryable or expired:
            reason = exc.reason.value if not expired else f"expired:{exc.reason.value}"
            with self.store.transaction() as conn:
                outbox.dead_letter(
                    conn, [r.id for r in batch], reason, exc.errcode, exc.errmsg, now
                )
            self.stats.dead_letters += len(batch)
            log.error(fmt_fields("dead letter", **{**fields, "reason": reason}))
            return
        if exc.reason is Reason.RATE_LIMITED and exc.errcode in (130101, 410100):
            # Locked out (someone else shares this robot, or DingTalk counts differently):
            # wait the lockout out instead of extending it with more calls.
            self.locked_until = now + policy.lockout
            with self.store.transaction() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO lockouts (target, until) VALUES (?, ?)",
                    (self.target.name, self.locked_until),
                )
            not_before = self.locked_until
        else:
            delay = backoff_delay(
                head.attempts + 1, policy.retry_initial, policy.retry_max, at_least=exc.retry_after
            )
            not_before = now + delay
        with self.store.transaction() as conn:
            outbox.retry_later(
                conn,
                [r.id for r in batch],
                not_before,
                exc.reason.value,
                exc.errcode,
                exc.errmsg,
                now,
            )
        self.stats.retries += 1
        log.warning(
            fmt_fields(
                "delivery retry",
                **fields,
                retry_in=f"{not_before - now:.1f}s",
                attempt=head.attempts + 1,
            )
        )


def _rules(batch: list[Row]) -> str:
    """The rule(s) of a message, for its log lines: a digest names every rule it merges."""
    return ",".join(sorted({r.rule for r in batch}))


def _ids(batch: list[Row]) -> str:
    """The first message's id, and how many more a digest merged ("3f2a…+4")."""
    return batch[0].id if len(batch) == 1 else f"{batch[0].id}+{len(batch) - 1}"
