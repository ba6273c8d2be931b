"""One sender thread per target: outbox rows -> DingTalk, paced, merged, split and retried.

The loop, for its target, one step at a time (`step` makes at most one call to DingTalk):
1. wait for the robot's next slot: its rate window and any lockout DingTalk imposed are shared
   by every target of the robot (delivery/robots.py), and while the robot fails (5xx, no
   connection) only one probe at a time goes out, spaced by a backoff;
2. take the due rows, oldest first; when more are queued than the rate carries soon, merge them
   into one digest message, else take the oldest;
3. send its bodies (parts of a long message are paced like messages, and progress is recorded
   so a restart resumes at the next part);
4. delivered: delete the rows. Retryable failure: back off (a 130101 lockout waits it out).
   Permanent failure, or undelivered for longer than give_up_after: dead letter with the reason,
   DingTalk's errcode and errmsg. Nothing leaves the outbox without one of these outcomes.

A message that cannot be built or sent because of a bug of ours (say, a template context that
raises on odd timestamps) is a dead letter with reason `internal` and the error: it must not
hold up the messages behind it, and it stays in the outbox for `outbox retry` once fixed.

An outcome is recorded in the store with the calls it made, in one transaction. If that commit
fails (a full disk), the outcome is held in memory and the commit retried with backoff, and the
target sends nothing until it succeeds: sending the next message would resend the one DingTalk
just accepted, which the store still lists as pending.

A row is deleted only after DingTalk answered errcode 0: if the process dies between the answer
and the delete, that message is sent once more after the restart (never lost, at most one extra).
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from bridge.config.model import RobotTarget, Rule, Target
from bridge.delivery.backoff import backoff_ceiling, backoff_delay
from bridge.delivery.digest import Item, build_digest
from bridge.delivery.noticepoll import first_poll_at
from bridge.delivery.robots import HISTORY_KEEP, RobotWindow, RobotWindows, Ticket
from bridge.dingtalk.client import DingTalkClient, Sent, bodies_for
from bridge.dingtalk.robot import ROBOT_MAX_BYTES, robot_bodies
from bridge.dingtalk.worknotice import UNIQUE_PLACEHOLDER, work_notice_body
from bridge.errors import DeliveryError, Reason
from bridge.logs import REDACTOR, fmt_fields
from bridge.model import Message
from bridge.pipeline.render import queued_message, queued_title
from bridge.store import records
from bridge.store.api import Store, Tx
from bridge.store.records import Row

log = logging.getLogger("bridge.delivery")

# Work notices have no documented body limit we trust (an old page says 2,048 bytes of msg);
# keep digests for them modest.
WORK_NOTICE_DIGEST_BYTES = 16_384
IDLE_POLL = 1.0  # seconds: also notices rows revived by `outbox retry` from another process
ERROR_PAUSE = 5.0  # seconds: after an error outside any one message (the store cannot be read)
STORE_RETRY_INITIAL = 0.5  # seconds: first retry of an outcome the store could not commit
# ... doubling up to this: a commit tried every few seconds costs nothing, and once the disk has
# room again the target resumes within this time.
STORE_RETRY_MAX = 4.0
ERROR_TEXT_MAX = 500
# DingTalk locks a robot out for 10 minutes after the 21st call of a minute (§1.7); 143103/143104
# say the app's (or the organisation's) recipients per minute are used up: wait the minute out.
ROBOT_LOCKOUT_CODES = frozenset({130101, 410100})
APP_QUOTA_CODES = frozenset({143103, 143104})


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
    internal_errors: int = 0  # messages dead-lettered because of an error of ours


@dataclass
class _Current:
    """The message being sent: its rows, its bodies and how many of them DingTalk has."""

    batch: list[Row]
    bodies: list[dict[str, Any]]
    done: int
    started: float = field(default_factory=time.monotonic)


@dataclass
class _Record:
    """An outcome to commit: the calls DingTalk counted, a lockout, and the outbox change."""

    what: str  # for the log: delivered, part, retry, dead letter
    ids: list[str]
    calls: list[float]
    lockout: float | None
    write: Callable[[Tx], None]
    error: str = ""  # why the last commit failed


def _dead_letters(
    ids: list[str],
    calls: list[float],
    reason: str,
    errcode: int | None,
    errmsg: str | None,
    now: float,
) -> _Record:
    """The outcome that makes `ids` dead letters, with the calls that led there."""
    return _Record(
        "dead letter",
        ids,
        calls,
        None,
        lambda tx: tx.outbox.dead_letter(ids, reason, errcode, errmsg, now),
    )


class TargetSender:
    def __init__(
        self,
        target: Target,
        store: Store,
        client: DingTalkClient,
        rules: Callable[[], Mapping[str, Rule]],
        clock: Callable[[], float] = time.time,
        windows: RobotWindows | None = None,
        rand: Callable[[], float] = random.random,
        timezone: Callable[[], tzinfo] = lambda: UTC,
    ) -> None:
        """`windows`: the process's shared rate windows (one per robot); a sender made without
        them (a test, `send-test`) has a registry of its own, loaded from the store."""
        self.target = target
        self.rules = rules
        self.timezone = timezone  # the config's, for the time in a work notice's unique line
        self.store = store
        self.client = client
        self.clock = clock
        self.rand = rand
        self.windows = windows or RobotWindows(store_loader(store, clock))
        self._window: RobotWindow | None = None
        self.stats = SenderStats()
        self.last_internal_error: dict[str, str] | None = None
        self._current: _Current | None = None
        self._unrecorded: _Record | None = None
        self._store_failures = 0
        self._store_retry_at = 0.0
        self._no_digest_once = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        # True while the loop waits for rows to appear. Waking a sender that waits for its rate
        # slot would only make it look at the clock and sleep again: under a storm that is one
        # pointless thread switch per accepted request.
        self._idle = False
        self._thread = threading.Thread(target=self._run, name=f"sender-{target.name}", daemon=True)

    @property
    def window(self) -> RobotWindow:
        """The rate window of this target's robot (shared with its other targets)."""
        if self._window is None:
            self._window = self.windows.for_target(self.target)
        return self._window

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        _ = self.window  # read the robot's calls and lockout from the store before the first turn
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

    def status(self) -> dict[str, Any]:
        """For /-/ready: the robot it shares, its internal errors, an outcome held unrecorded."""
        held = self._unrecorded
        window = self.window
        return {
            "robot": window.key,
            "robot_locked_until": window.locked_until or None,
            "robot_failing": window.failures,
            "internal_errors": self.stats.internal_errors,
            "last_internal_error": self.last_internal_error,
            "unrecorded": {"outcome": held.what, "id": _ids_of(held.ids), "error": held.error}
            if held is not None
            else None,
        }

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                wait = self.step()
                failures = 0
            except Exception:  # not one message's fault (those are dead-lettered): the store
                failures += 1
                log.exception(fmt_fields("sender error", target=self.target.name))
                wait = min(ERROR_PAUSE * failures, 60.0)
            if wait > 0:
                self._sleep(wait)
            self._idle = False
        if self._unrecorded is not None:  # one last try: else a restart sends it once more
            self._store_retry_at = 0.0
            self._record_again()
            if self._unrecorded is not None:
                log.warning(
                    fmt_fields(
                        "outcome lost at stop: the store still lists it, a restart sends it again",
                        target=self.target.name,
                        outcome=self._unrecorded.what,
                        id=_ids_of(self._unrecorded.ids),
                    )
                )

    def step(self) -> float:
        """One turn: record a held outcome, or take the next message, or send its next body.
        Returns how many seconds to wait before the next turn (0: go on at once)."""
        if self._unrecorded is not None:
            return self._record_again()
        if self._current is None:
            wait = self._take()
            if self._current is None:
                return wait
        return self._send_next()

    def _take(self) -> float:
        now = self.clock()
        policy = self.target.policy
        ready = self.window.ready_at(policy.rate, now)
        if ready > now:
            return ready - now
        try:
            with self.store.reading() as tx:
                rows = tx.outbox.due(self.target.name, now, limit=policy.digest_max)
                if not rows:
                    next_due = tx.outbox.next_due_at(self.target.name)
                elif len(rows) > 1 and policy.digest:
                    backlog = tx.outbox.pending_count(self.target.name)
        except records.UnreadableRow as exc:  # stored by an older version, or damaged
            self._dead_internal([exc.id], exc.rule, f"unreadable row: {exc.error}", [])
            return 0.0
        if not rows:
            self._idle = True
            return IDLE_POLL if next_due is None else max(0.0, min(IDLE_POLL, next_due - now))
        digest = (
            len(rows) > 1
            and policy.digest
            and not self._no_digest_once
            and backlog > self._digest_threshold(now)
            and rows[0].parts_sent == 0
        )
        self._no_digest_once = False
        try:
            if digest:
                batch, message = self._digest(rows, backlog)
            else:
                batch, message = [rows[0]], self._body(rows[0])
            ids = [r.id for r in batch]
            bodies = bodies_for(self.target, message, ids, batch[0].created_at, self.timezone())
        except Exception as exc:  # a bug of ours meets this message: do not let it block the rest
            if digest:  # which alert of the digest? Send the oldest alone, to find out
                self._no_digest_once = True
                log.error(
                    fmt_fields(
                        "digest failed, sending alone",
                        target=self.target.name,
                        id=_ids(rows),
                        error=_error_text(exc),
                    )
                )
                return 0.0
            self._internal([rows[0]], exc)
            return 0.0
        if digest:
            self.stats.digests += 1
        done = batch[0].parts_sent if len(batch) == 1 else 0
        self._current = _Current(batch, bodies, done)
        return 0.0

    def _digest_threshold(self, now: float) -> int:
        """Merge once more are queued than the calls left in the robot's current window (or
        than `digest.after`, whichever is smaller): spending the window's last calls on single
        alerts while hundreds wait would leave them waiting for the next window."""
        rate = self.target.policy.rate
        if rate.unlimited:
            return self.target.policy.digest_after
        left = rate.messages - self.window.used(rate, now)
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

    def _send_next(self) -> float:
        """Send the current message's next body when the robot gives a turn."""
        current = self._current
        assert current is not None
        if current.done >= len(current.bodies):  # every part went out before a restart
            self._current = None
            self._succeeded(current, None, [])
            return 0.0
        now = self.clock()
        ticket = self.window.acquire(self.target.policy.rate, now)
        if not isinstance(ticket, Ticket):  # the next part waits its turn like any message
            self.stats.rate_waits += 1
            return ticket - now
        try:
            sent = self._post(current.bodies[current.done])
        except DeliveryError as exc:
            self._current = None
            self.stats.calls += 1
            key = (exc.reason.value, str(exc.errcode) if exc.errcode is not None else "")
            self.stats.failures[key] += 1
            self._failed(current.batch, exc, ticket)
            return 0.0
        except Exception as exc:  # ours, around the call: it may have been made, so it counts
            self._current = None
            self.window.released(ticket, self.clock())
            self._internal(current.batch, exc, calls=[self.clock()])
            return 0.0
        at = self.clock()
        self.stats.calls += 1
        self.window.settle(ticket, at, counted=True, failing=False)
        current.done += 1
        if current.done < len(current.bodies):
            head, done = current.batch[0].id, current.done
            self._commit(
                _Record(
                    "part",
                    [head],
                    [at],
                    None,
                    lambda tx: tx.outbox.progress(head, done, at),
                )
            )
            return 0.0
        self._current = None
        self._succeeded(current, sent, [at])
        return 0.0

    def _succeeded(self, current: _Current, sent: Sent | None, calls: list[float]) -> None:
        """DingTalk accepted every body of the message: the rows leave the outbox."""
        batch = current.batch
        ids = [r.id for r in batch]
        self.stats.delivered += len(batch)
        # A work notice DingTalk took is delivered only once getsendresult says who received it:
        # until then its rows stay 'sent' with the task id (store/notices.py, delivery/noticepoll).
        task_id = sent.task_id if sent is not None else None
        now = self.clock()

        def record(tx: Tx) -> None:
            if task_id is not None:
                tx.notices.awaiting(batch, self.target.name, task_id, now, first_poll_at(now))
            else:
                tx.outbox.delivered(ids)

        recorded = self._commit(_Record("delivered", ids, calls, None, record))
        log.info(
            fmt_fields(
                "delivered" if task_id is None else "accepted, awaiting result",
                rule=_rules(batch),
                target=self.target.name,
                id=_ids(batch),
                parts=len(current.bodies) if len(current.bodies) > 1 else None,
                digest=len(batch) if len(batch) > 1 else None,
                task_id=sent.task_id if sent else None,
                ms=round((time.monotonic() - current.started) * 1000),
                recorded=None if recorded else "no",
            )
        )

    def _post(self, body: dict[str, object]) -> Sent:
        if isinstance(self.target, RobotTarget):
            return self.client.send_robot(self.target, body)
        return self.client.send_work_notice(self.target, body)

    # -- outcomes ------------------------------------------------------------------------------

    def _failed(self, batch: list[Row], exc: DeliveryError, ticket: Ticket) -> None:
        now = self.clock()
        head = batch[0]
        policy = self.target.policy
        ids = [r.id for r in batch]
        # DingTalk counted the call if it answered with an errcode, and may have if we stopped
        # waiting for its answer. A 5xx, a connection that failed, a page that is not its JSON,
        # an HTTP 429 from a gateway: its counter never saw the call.
        counted = exc.errcode is not None or exc.reason is Reason.TIMEOUT
        # The robot, not this message, is failing: retry by probing with one message at a time.
        outage = exc.retryable and (exc.errcode is None or exc.reason is Reason.DINGTALK_BUSY)

        def retry_at(failures: int) -> float:
            return now + backoff_delay(
                failures,
                policy.retry_initial,
                policy.retry_max,
                rand=self.rand,
                at_least=exc.retry_after,
            )

        probe_at = self.window.settle(
            ticket, now, counted=counted, failing=outage, retry_at=retry_at
        )
        calls = [now] if counted else []
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
            self.stats.dead_letters += len(batch)
            log.error(fmt_fields("dead letter", **{**fields, "reason": reason}))
            if expired and outage:
                # While the robot is down only its oldest message probes it: the others past
                # give_up_after would each wait a probe (up to retry.max apart) to expire.
                stale = self._stale(now - policy.give_up_after, set(ids))
                if stale:
                    ids = ids + stale
                    self.stats.dead_letters += len(stale)
                    log.error(
                        fmt_fields(
                            "dead letter",
                            target=self.target.name,
                            id=_ids_of(stale),
                            reason=reason,
                            error=f"older than give_up_after while the robot fails: {exc}",
                        )
                    )
            self._commit(_dead_letters(ids, calls, reason, exc.errcode, exc.errmsg, now))
            return
        lockout: float | None = None
        if exc.reason is Reason.RATE_LIMITED and exc.errcode in ROBOT_LOCKOUT_CODES:
            # Locked out (someone else shares this robot, or DingTalk counts differently): every
            # target of the robot waits the lockout out instead of extending it with more calls.
            lockout = now + policy.lockout
        elif exc.reason is Reason.RATE_LIMITED and exc.errcode in APP_QUOTA_CODES:
            lockout = now + (exc.retry_after or 60.0)
        if lockout is not None:
            self.window.lock_out(lockout)
            not_before = lockout
        elif outage:
            not_before = probe_at  # the probe after this one: the oldest message again
        else:
            not_before = retry_at(head.attempts + 1)
        self.stats.retries += 1
        log.warning(
            fmt_fields(
                "delivery retry",
                **fields,
                retry_in=f"{not_before - now:.1f}s",
                attempt=head.attempts + 1,
            )
        )
        self._commit(
            _Record(
                "retry",
                ids,
                calls,
                lockout,
                lambda tx: tx.outbox.retry_later(
                    ids, not_before, exc.reason.value, exc.errcode, exc.errmsg, now
                ),
            )
        )

    def _stale(self, created_before: float, skip: set[str]) -> list[str]:
        """Ids of this target's pending rows created before `created_before` (oldest first)."""
        try:
            with self.store.reading() as tx:
                rows = tx.outbox.listing(records.PENDING, self.target.name, limit=10_000)
        except Exception:  # they expire when their own turn comes, then
            return []
        return [r.id for r in rows if r.created_at < created_before and r.id not in skip]

    def _internal(self, batch: list[Row], exc: Exception, calls: list[float] | None = None) -> None:
        """An error of ours on this message: dead-letter it (reason `internal`) and go on."""
        self._dead_internal([r.id for r in batch], _rules(batch), _error_text(exc), calls or [])
        log.debug("internal error on a message", exc_info=exc)

    def _dead_internal(self, ids: list[str], rules: str, error: str, calls: list[float]) -> None:
        now = self.clock()
        shown = _ids_of(ids)
        self.stats.internal_errors += 1
        self.stats.dead_letters += len(ids)
        self.last_internal_error = {
            "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
            "id": shown,
            "error": error,
        }
        log.error(
            fmt_fields(
                "dead letter",
                rule=rules,
                target=self.target.name,
                id=shown,
                reason=Reason.INTERNAL.value,
                error=error,
            )
        )
        self._commit(_dead_letters(ids, calls, Reason.INTERNAL.value, None, error, now))

    # -- recording -----------------------------------------------------------------------------

    def _commit(self, record: _Record) -> bool:
        """Write an outcome with the calls it made; if the store cannot, hold it (see above)."""
        try:
            self._write(record)
        except Exception as exc:
            record.error = _error_text(exc)
            self._unrecorded = record
            self._store_failures = 1
            self._store_retry_at = self.clock() + STORE_RETRY_INITIAL
            log.error(
                fmt_fields(
                    "outcome not recorded, target holds until the store commits",
                    target=self.target.name,
                    outcome=record.what,
                    id=_ids_of(record.ids),
                    reason=Reason.STORE.value,
                    error=record.error,
                )
            )
            return False
        return True

    def _write(self, record: _Record) -> None:
        key = self.window.key
        with self.store.transaction() as tx:
            if record.calls and self.window.keep > 0:
                forget = max(record.calls) - self.window.keep
                tx.ratewindows.record_calls(key, record.calls, forget)
            if record.lockout is not None:
                tx.ratewindows.lock_out(key, record.lockout)
            record.write(tx)

    def _record_again(self) -> float:
        record = self._unrecorded
        assert record is not None
        now = self.clock()
        if now < self._store_retry_at:
            return self._store_retry_at - now
        try:
            self._write(record)
        except Exception as exc:
            record.error = _error_text(exc)
            self._store_failures += 1
            # No jitter: one local disk, not a crowd of clients to spread out.
            delay = backoff_ceiling(self._store_failures, STORE_RETRY_INITIAL, STORE_RETRY_MAX)
            self._store_retry_at = now + delay
            return delay
        self._unrecorded = None
        log.info(
            fmt_fields(
                "outcome recorded",
                target=self.target.name,
                outcome=record.what,
                id=_ids_of(record.ids),
                tries=self._store_failures + 1,
            )
        )
        self._store_failures = 0
        return 0.0


def store_loader(store: Store, clock: Callable[[], float]) -> Callable[[str, str, bool], Any]:
    """RobotWindows' loader: adopt a target's rows of the old per-target tables, and read the
    robot's counted calls and lockout when the robot is first used."""

    def load(robot: str, target: str, fresh: bool) -> tuple[list[float], float]:
        now = clock()
        with store.transaction() as tx:
            adopted = tx.ratewindows.adopt_legacy(target, robot, now, HISTORY_KEEP)
            if not fresh:
                return adopted
            return tx.ratewindows.load(robot, now - HISTORY_KEEP)

    return load


def _error_text(exc: BaseException) -> str:
    """One line naming the error, without secrets, short enough for a log line and a column."""
    text = REDACTOR.scrub(f"{type(exc).__name__}: {exc}")
    return " ".join(text.split())[:ERROR_TEXT_MAX]


def _rules(batch: list[Row]) -> str:
    """The rule(s) of a message, for its log lines: a digest names every rule it merges."""
    return ",".join(sorted({r.rule for r in batch}))


def _ids(batch: list[Row]) -> str:
    """The first message's id, and how many more a digest merged ("3f2a…+4")."""
    return _ids_of([r.id for r in batch])


def _ids_of(ids: list[str]) -> str:
    return ids[0] if len(ids) == 1 else f"{ids[0]}+{len(ids) - 1}"
