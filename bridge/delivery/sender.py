"""One sender thread per target: outbox rows -> DingTalk, paced, merged, split and retried.

The loop, for its target, one step at a time (`step` makes at most one call to DingTalk):
1. wait for the robot's next slot: its rate window and any lockout DingTalk imposed are shared
   by every target of the robot (delivery/robots.py), and while the robot fails (5xx, no
   connection) only one probe at a time goes out, spaced by a backoff;
2. claim the due rows, oldest first (delivery/claims.py: several replicas share the outbox, and
   a row is sent by the one holding it); when more are queued than the rate carries soon, merge
   them into one digest message, else take the oldest (and let go of the rest);
3. send its bodies through the target's channel (parts of a long message are paced like
   messages, and progress is recorded so a restart resumes at the next part), renewing the
   claim while it is in flight; a claim lost meanwhile (this replica stalled past its lease and
   another took the rows) leaves the message to its new holder;
4. delivered: delete the rows. Retryable failure: back off (a lockout waits it out).
   Permanent failure, or undelivered for longer than give_up_after: dead letter with the reason,
   DingTalk's errcode and errmsg (delivery/failures.py decides). Nothing leaves the outbox
   without one of these outcomes.

The sender knows no target type: the channel (bridge/dingtalk/channel.py) builds the bodies,
posts them and says what came of it, as a typed outcome.

A message that cannot be built or sent because of a bug of ours (say, a template context that
raises on odd timestamps) is a dead letter with reason `internal` and the error: it must not
hold up the messages behind it, and it stays in the outbox for `outbox retry` once fixed.

An outcome is recorded in the store with the calls it made, in one transaction; one the store
could not take is held and the target sends nothing until it is recorded (delivery/recording.py).

A row is deleted only after DingTalk answered errcode 0: if the process dies between the answer
and the delete, that message is sent once more after the restart (never lost, at most one extra).

Over 400 lines as one idea: one target's send loop, with every outcome of a send beside it (the
claims, the window, the recording and the failure decisions live in their own modules).
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any

from bridge.clock import SYSTEM_CLOCK, Clock
from bridge.delivery import messages, recording
from bridge.delivery.backoff import backoff_delay
from bridge.delivery.claims import DEFAULT_LEASE, Claims, Hold, new_replica_id
from bridge.delivery.failures import DeadLetter, after_failure, is_outage
from bridge.delivery.labels import error_text, ids_of, ids_of_rows, rules_of
from bridge.delivery.messages import Current, Renderer
from bridge.delivery.recording import Recorder, dead_letters
from bridge.delivery.robots import RobotWindow, RobotWindows, Ticket
from bridge.delivery.turns import StoredWindows
from bridge.delivery.worker import Worker
from bridge.dingtalk.channel import Channel
from bridge.dingtalk.responses import FLOW_CONTROLLED, AwaitingResult, Failed
from bridge.errors import DeliveryError, Reason
from bridge.logs import fmt_fields
from bridge.model import Message
from bridge.store import records
from bridge.store.api import Store
from bridge.store.records import AppRobotSend, Row

log = logging.getLogger("bridge.delivery")

# Seconds between looks while nothing is due. Rows queued by this process wake the sender at
# once, and rows queued by another replica too while it listens (Store.listen); the poll finds
# what a wake-up missed, rows whose claimer died, and rows revived by `outbox retry`.
IDLE_POLL = 1.0


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


class TargetSender:
    def __init__(
        self,
        channel: Channel,
        store: Store,
        renderer: Renderer,
        clock: Clock = SYSTEM_CLOCK,
        windows: RobotWindows | None = None,
        rand: Callable[[], float] = random.random,
        timezone: Callable[[], tzinfo] = lambda: UTC,
        owner: str | None = None,
        lease: float = DEFAULT_LEASE,
        after_digest: Callable[[list[Row]], None] | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        """`windows`: the process's shared rate windows (one per robot); a sender made without
        them (a test) has a registry of its own, loaded from the store. `timezone`: the
        config's, for the time in a work notice's unique line. `owner`: the replica id its
        claims are made in (a new one when not given), for `lease` seconds. `after_digest`:
        called with a digest's rows once DingTalk took it and it is recorded (the recall of a
        storm's singles, delivery/recall.py); an error of it is logged, never raised.
        `new_id`: the outbox's id source, for a follow-up to the users an app robot's send
        was flow-controlled for (without one they are only recorded)."""
        self.channel = channel
        self.name = channel.name
        self.renderer = renderer
        self.timezone = timezone
        self.store = store
        self.clock = clock
        self.rand = rand
        self.owner = owner or new_replica_id()
        self.lease = lease
        self.after_digest = after_digest
        self.new_id = new_id
        self.claims = Claims(store, self.name, self.owner, lease, clock)
        self.windows = windows or RobotWindows(StoredWindows(store, clock))
        self._window: RobotWindow | None = None
        self.recorder = Recorder(store, lambda: self.window, self.name, clock)
        self.stats = SenderStats()
        self.last_internal_error: dict[str, str] | None = None
        self._current: Current | None = None
        self._no_digest_once = False
        self._digest_fitted: int | None = None  # alerts in the last digest its size cut short
        self.worker = Worker(self.name, self.step, self._at_stop, channel.timeout)

    @property
    def window(self) -> RobotWindow:
        """The rate window of this target's robot (shared with its other targets)."""
        if self._window is None:
            self._window = self.windows.for_channel(self.channel)
        return self._window

    # -- lifecycle (the thread is delivery/worker.py's) -----------------------------------------

    def start(self) -> None:
        _ = self.window  # read the robot's calls and lockout from the store before the first turn
        self.worker.start()

    def alive(self) -> bool:
        return self.worker.alive()

    def wake(self) -> None:
        self.worker.wake()

    def stop(self, timeout: float) -> None:
        self.worker.stop(timeout)

    def request_stop(self) -> None:
        self.worker.request_stop()

    def status(self) -> dict[str, Any]:
        """For /-/ready: the robot it shares, its internal errors, an outcome held unrecorded."""
        held = self.recorder.held
        window = self.window
        return {
            "robot": window.key,
            "robot_locked_until": window.locked_until or None,
            "robot_failing": window.failures,
            "internal_errors": self.stats.internal_errors,
            "last_internal_error": self.last_internal_error,
            "unrecorded": {"outcome": held.what, "id": ids_of(held.ids), "error": held.error}
            if held is not None
            else None,
        }

    # -- the loop ------------------------------------------------------------------------------

    def step(self) -> float:
        """One turn: record a held outcome, or take the next message, or send its next body.
        Returns how many seconds to wait before the next turn (0: go on at once)."""
        if self.recorder.held is not None:
            return self.recorder.again()
        if self._current is None:
            wait = self._take()
            if self._current is None:
                return wait
        current = self._current
        if current.hold.renew_due(self.clock.time()):
            kept = self.claims.renew(current.hold)
            if kept == "lost":
                self._current = None
                return 0.0
            if kept == "wait":  # no renewal, and the lease is over: send no more until one
                return 1.0
        wait = self._send_next()
        if self._current is not None:  # mid-message, waiting for the robot: wake to renew
            wait = min(wait, self._current.hold.seconds_to_renewal(self.clock.time()))
        return wait

    def _at_stop(self) -> None:
        self.recorder.last_try()
        if self._current is not None and self.recorder.held is None:
            self.claims.let_go(self._current.hold.ids)

    def _take(self) -> float:
        now = self.clock.time()
        policy = self.channel.policy
        ready = self.window.ready_at(policy.rate, now)
        if ready > now:
            return ready - now
        threshold = messages.digest_threshold(policy, self.window.used(policy.rate, now))
        try:
            taken = self.claims.take(
                now,
                count_backlog=policy.digest and not self._no_digest_once,
                # One row, unless a digest may be due.
                limit=lambda backlog: (
                    messages.digest_claim(policy.digest_max, self._digest_fitted)
                    if backlog > threshold
                    else 1
                ),
            )
        except records.UnreadableRow as exc:  # stored by an older version, or damaged
            # Claimed by this sender with the rest of its turn (decoded after the claim
            # committed): dead-lettered here; the others are claimed again at the next turn.
            error = f"unreadable row: {exc.error}"
            unread = records.Sent(
                exc.id, self.name, exc.rule, records.DEAD_LETTER, now, attempt=1, parts=0,
                errcode=None, errmsg=error, reason=Reason.INTERNAL.value, title="", bodies=(),
            )  # fmt: skip
            self._dead_unsent([exc.id], exc.rule, error, [], None, history=[unread])
            return 0.0
        rows, backlog, next_due = taken.rows, taken.backlog, taken.next_due
        if not rows:
            self.worker.idle = True
            if next_due is None or next_due <= now:  # none, or due but held by another replica
                return IDLE_POLL
            return min(IDLE_POLL, next_due - now)
        digest = messages.wants_digest(rows, policy, backlog, threshold)
        self._no_digest_once = False
        try:
            batch, message = self._message(rows, digest, backlog if digest else 0)
            ids = [r.id for r in batch]
            bodies = self.channel.bodies(message, ids, batch[0].created_at, self.timezone())
        except Exception as exc:  # a bug of ours meets this message: do not let it block the rest
            if digest:  # which alert of the digest? Send the oldest alone, to find out
                self._no_digest_once = True
                messages.log_digest_failed(self.channel, rows, exc)
                self.claims.let_go([r.id for r in rows[1:]])
                return 0.0
            self.claims.let_go([r.id for r in rows[1:]])
            if isinstance(exc, DeliveryError) and not exc.retryable:  # nothing to send it to
                self._unsendable(rows[0], exc)
                return 0.0
            self._internal([rows[0]], exc, title=rows[0].message.title)  # no body was built
            return 0.0
        if digest:
            self.stats.digests += 1
            cut = len(batch) < sum(1 for r in rows if r.parts_sent == 0)
            self._digest_fitted = len(batch) if cut else None
        kept = set(ids)
        self.claims.let_go([r.id for r in rows if r.id not in kept])
        done = batch[0].parts_sent if len(batch) == 1 else 0
        hold = Hold(ids, now + self.lease, self.lease)
        self._current = Current(batch, bodies, done, hold, message=message)
        return 0.0

    def _message(self, rows: list[Row], digest: bool, backlog: int) -> tuple[list[Row], Message]:
        now = self.clock.now()
        if digest:
            return messages.digest(self.renderer, self.channel, rows, backlog, now)
        return [rows[0]], messages.single(self.renderer, self.channel, rows[0], now)

    def _send_next(self) -> float:
        """Send the current message's next body when the robot gives a turn."""
        current = self._current
        assert current is not None
        if current.done >= len(current.bodies):  # every part went out before a restart
            self._current = None
            self._succeeded(current, None, [])
            return 0.0
        now = self.clock.time()
        ticket = self.window.acquire(self.channel.policy.rate, now)
        if not isinstance(ticket, Ticket):  # the next part waits its turn like any message
            self.stats.rate_waits += 1
            return ticket - now
        body = current.bodies[current.done]
        current.posted.append(recording.posted_text(body))
        try:
            sent = self.channel.post(body)
        except Exception as exc:  # ours, around the call: it may have been made, so it counts
            self._current = None
            self.window.released(ticket, self.clock.time())
            self._internal(
                current.batch,
                exc,
                calls=[self.clock.time()],
                ticket=ticket,
                title=current.title,
                posted=current.posted,
            )
            return 0.0
        self.stats.calls += 1
        if isinstance(sent, Failed):
            self._current = None
            key = (sent.reason.value, str(sent.errcode) if sent.errcode is not None else "")
            self.stats.failures[key] += 1
            self._failed(current, sent, ticket)
            return 0.0
        at = self.clock.time()
        self.window.settle(ticket, at, counted=True, failing=False)
        current.done += 1
        sends = recording.app_robot_sends(current.batch, self.name, sent, at)
        if sends:
            current.refused += len(sends[0].refused)
            current.addressed += len(sends[0].users)
            current.flow_controlled += [u for u, why in sends[0].refused if why == FLOW_CONTROLLED]
        if current.done < len(current.bodies):
            self.recorder.commit(
                recording.part_sent(current.batch[0].id, current.done, at, self.owner, sends),
                ticket,
            )
            return 0.0
        self._current = None
        task_id = sent.task_id if isinstance(sent, AwaitingResult) else None
        self._succeeded(current, task_id, [at], ticket, sends)
        return 0.0

    def _succeeded(
        self,
        current: Current,
        task_id: int | None,
        calls: list[float],
        ticket: Ticket | None = None,
        sends: list[AppRobotSend] | None = None,
    ) -> None:
        """DingTalk accepted every body of the message: the rows leave the outbox (an app
        robot's answers, with the users it refused, are kept: store/appsends.py)."""
        batch = current.batch
        self.stats.delivered += len(batch)
        now = self.clock.time()
        follow_up = recording.flow_follow_up(current, self.name, now, self.new_id)
        outcome = records.DELIVERED if task_id is None else records.ACCEPTED
        history = recording.attempt(batch, self.name, outcome, now, current.title, current.posted)
        record = recording.accepted(
            batch, self.name, task_id, calls, now, sends or (), follow_up, history
        )
        recorded = self.recorder.commit(record, ticket)
        nobody = 0 < current.addressed <= current.refused  # a one-to-one send nobody got
        word = "delivered" if task_id is None else "accepted, awaiting result"
        log.log(
            logging.WARNING if nobody else logging.INFO,
            fmt_fields(
                "delivered to nobody: DingTalk refused every user" if nobody else word,
                rule=rules_of(batch),
                target=self.name,
                id=ids_of_rows(batch),
                parts=len(current.bodies) if len(current.bodies) > 1 else None,
                digest=len(batch) if len(batch) > 1 else None,
                task_id=task_id,
                refused_users=current.refused or None,
                follow_up=follow_up.delivery.id if follow_up else None,
                ms=round((time.monotonic() - current.started) * 1000),
                recorded=None if recorded else "no",
            ),
        )
        if recorded and len(batch) > 1 and self.after_digest is not None:
            try:
                self.after_digest(batch)
            except Exception as exc:  # a recall that failed must not stop the sends
                log.error(
                    fmt_fields("after digest failed", target=self.name, error=error_text(exc))
                )

    # -- failures ------------------------------------------------------------------------------

    def _failed(self, current: Current, failed: Failed, ticket: Ticket) -> None:
        now = self.clock.time()
        batch = current.batch
        head = batch[0]
        policy = self.channel.policy
        ids = [r.id for r in batch]

        def retry_at(failures: int) -> float:
            return now + backoff_delay(
                failures,
                policy.retry_initial,
                policy.retry_max,
                rand=self.rand,
                at_least=failed.retry_after,
            )

        counted = failed.counted
        probe_at = self.window.settle(
            ticket, now, counted=counted, failing=is_outage(failed), retry_at=retry_at
        )
        calls = [now] if counted else []
        fields = dict(
            rule=rules_of(batch),
            target=self.name,
            id=ids_of_rows(batch),
            digest=len(batch) if len(batch) > 1 else None,
            reason=failed.reason.value,
            errcode=failed.errcode,
            error=failed.detail,
        )
        decision = after_failure(
            failed, policy, head.created_at, head.attempts, now, probe_at, retry_at
        )
        if isinstance(decision, DeadLetter):
            self.stats.dead_letters += len(batch)
            log.error(fmt_fields("dead letter", **{**fields, "reason": decision.reason}))
            history = [
                recording.attempt(
                    batch, self.name, records.DEAD_LETTER, now, current.title, current.posted,
                    failed, decision.reason,
                )
            ]  # fmt: skip
            stale: list[str] = []
            if decision.sweep_expired:
                stale_rows = self._stale(now - policy.give_up_after, set(ids))
                stale = [r.id for r in stale_rows]
                if stale:
                    self.stats.dead_letters += len(stale)
                    log.error(
                        fmt_fields(
                            "dead letter",
                            target=self.name,
                            id=ids_of(stale),
                            reason=decision.reason,
                            error=f"older than give_up_after while the robot fails: "
                            f"{failed.detail}",
                        )
                    )
                history += [
                    recording.attempt(
                        [row], self.name, records.DEAD_LETTER, now, row.message.title, (),
                        failed, decision.reason,
                    )
                    for row in stale_rows
                ]  # fmt: skip
            self.recorder.commit(
                dead_letters(
                    ids,
                    calls,
                    decision.reason,
                    failed.errcode,
                    failed.errmsg,
                    now,
                    self.owner,
                    stale,
                    history,
                ),
                ticket,
            )
            return
        if decision.lockout is not None:
            self.window.lock_out(decision.lockout)
        not_before = decision.not_before
        self.stats.retries += 1
        log.warning(
            fmt_fields(
                "delivery retry",
                **fields,
                retry_in=f"{not_before - now:.1f}s",
                attempt=head.attempts + 1,
            )
        )
        tried = recording.attempt(
            batch, self.name, records.RETRYING, now, current.title, current.posted, failed
        )
        self.recorder.commit(
            recording.retry(
                ids, calls, not_before, decision.lockout, failed, now, self.owner, tried
            ),
            ticket,
        )

    def _stale(self, created_before: float, skip: set[str]) -> list[Row]:
        """This target's pending rows created before `created_before` (oldest first)."""
        try:
            with self.store.reading() as tx:
                rows = tx.outbox.listing(records.PENDING, self.name, limit=10_000)
        except Exception:  # they expire when their own turn comes, then
            return []
        return [r for r in rows if r.created_at < created_before and r.id not in skip]

    def _internal(
        self,
        batch: list[Row],
        exc: Exception,
        calls: list[float] | None = None,
        ticket: Ticket | None = None,
        title: str = "",
        posted: list[str] | None = None,
    ) -> None:
        """An error of ours on this message: dead-letter it (reason `internal`) and go on.
        `posted`: the bodies posted before it (none when it failed before any was built)."""
        ids = [r.id for r in batch]
        error = error_text(exc)
        now = self.clock.time()
        tried = recording.attempt(
            batch, self.name, records.DEAD_LETTER, now, title, posted or (),
            reason=Reason.INTERNAL.value, error=error,
        )  # fmt: skip
        self._dead_unsent(
            ids, rules_of(batch), error, calls or [], self.owner, ticket, history=[tried]
        )
        log.debug("internal error on a message", exc_info=exc)

    def _unsendable(self, row: Row, exc: DeliveryError) -> None:
        """A message the channel cannot make a body of, and why (its recipients resolve to
        nobody): a dead letter with that reason, not an internal error (no bug: /-/ready does
        not warn, dingtalk_bridge_internal_errors_total does not count it)."""
        error = str(exc)
        tried = recording.attempt(
            [row], self.name, records.DEAD_LETTER, self.clock.time(), row.message.title, (),
            reason=exc.reason.value, error=error,
        )  # fmt: skip
        self._dead_unsent(
            [row.id], row.rule, error, [], self.owner, history=[tried], why=exc.reason
        )

    def _dead_unsent(
        self,
        ids: list[str],
        rules: str,
        error: str,
        calls: list[float],
        owner: str | None,
        ticket: Ticket | None = None,
        history: list[records.Sent] | None = None,
        why: Reason = Reason.INTERNAL,
    ) -> None:
        """Dead letters DingTalk gave no answer about: an error of ours (`internal`, counted and
        shown in /-/ready as one), or a message with nothing to send it to (`why`)."""
        now = self.clock.time()
        shown = ids_of(ids)
        self.stats.dead_letters += len(ids)
        if why is Reason.INTERNAL:
            self.stats.internal_errors += 1
            self.last_internal_error = {
                "at": self.clock.now().isoformat(timespec="seconds"),
                "id": shown,
                "error": error,
            }
        log.error(
            fmt_fields(
                "dead letter", rule=rules, target=self.name, id=shown, reason=why.value, error=error
            )
        )
        self.recorder.commit(
            dead_letters(ids, calls, why.value, None, error, now, owner, history=history or ()),
            ticket,
        )
