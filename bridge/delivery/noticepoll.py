"""One thread that asks DingTalk who received each work notice (getsendresult), and settles it.

asyncsend_v2's errcode 0 means "queued", not "received": DingTalk may still refuse some or all
users (daily limit 143105, same content 143106, unknown user ids) and says so only in
getsendresult (reference/dingtalk.md §3.2). The sender leaves such a message 'sent' with its task
id (store/notices.py has the lifecycle); this poller asks for the result of each task, on a
growing interval, and once DingTalk's answer is final records per user who received it and who
did not and why, and moves the message on: delivered, partly delivered, dead letter, or back to
pending (flow control). With no final answer `POLL_FOR` after the send it is counted delivered
but unverified, and logged. The verdict is also a history entry (store/history.py), beside the
send's "accepted", so the console's Messages page and `outbox history` tell the whole story.

Quotas: one call at a time, at least `CALL_SPACING` apart (at most 10 a second for all apps
together, half the 20 QPS per API and app usually quoted as DingTalk's default), and at most
`BATCH` tasks taken from the store per round. getsendresult works for tasks of the last 24 hours,
far longer than we poll.

Replicas sharing the store each run a poller: a round claims its tasks (delivery/claims.py), so
one replica polls a task at a time; tasks left when half the lease is gone are let go (the next
round claims them again), and an answer recorded after the claim was lost changes nothing.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bridge.clock import SYSTEM_CLOCK, Clock
from bridge.config.model import Target
from bridge.delivery.claims import DEFAULT_LEASE, Hold, new_replica_id
from bridge.delivery.labels import ids_of
from bridge.dingtalk.channel import ResultChannel
from bridge.dingtalk.channels import channel_for
from bridge.dingtalk.client import DingTalkClient
from bridge.dingtalk.sendresult import (
    SendResult,
    Verdict,
    code_counts,
    is_final,
    judge,
    parse_send_result,
    refusal_summary,
)
from bridge.errors import DeliveryError
from bridge.logs import fmt_fields
from bridge.store import records
from bridge.store.api import Store, Tx
from bridge.store.records import Sent, Task

log = logging.getLogger("bridge.delivery")

# Seconds after the send for each poll: DingTalk usually knows within a second or two; the
# interval grows so a slow answer costs few calls, then stays at the last value.
POLL_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
POLL_FOR = 600.0  # then the notice is counted delivered-unverified
BATCH = 20
CALL_SPACING = 0.1
IDLE = 1.0
# Flow-controlled recipients (143103/143104, per minute): send again after the minute.
FLOW_CONTROL_WAIT = 60.0


def first_poll_at(sent_at: float) -> float:
    return sent_at + POLL_DELAYS[0]


def next_poll_at(task: Task, now: float) -> float:
    step = POLL_DELAYS[min(task.polls + 1, len(POLL_DELAYS) - 1)]
    return now + step


@dataclass
class PollStats:
    """Counters for /metrics (monotonic for the life of the process)."""

    calls: int = 0
    # messages settled, by (target, outcome): delivered, partial, dead, retry, unverified
    outcomes: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    received: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # recipients
    # recipients refused, by (target, code): "143105", "invalid_user", ...
    refused: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))


class NoticePoller:
    def __init__(
        self,
        store: Store,
        client: DingTalkClient,
        targets: Callable[[], Mapping[str, Target]],
        clock: Clock = SYSTEM_CLOCK,
        pause: Callable[[float], None] | None = None,
        owner: str | None = None,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        """`owner`, `lease`: the replica id and lease its claims are made in (TargetSender's)."""
        self.store = store
        self.owner = owner or new_replica_id()
        self.lease = lease
        self.client = client
        self.targets = targets
        self.clock = clock
        self.stats = PollStats()
        self._stop = threading.Event()
        self._pause = pause or self._stop.wait
        self._thread = threading.Thread(target=self._run, name="notice-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float) -> None:
        """Stop polling; tasks not settled stay in the store for the next start."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(max(timeout, 0.0))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.step() == 0:
                    with self.store.reading() as tx:
                        upcoming = tx.notices.next_poll_at()
                    now = self.clock.time()
                    # None due, or due but polled by another replica now: the idle pace.
                    wait = IDLE if upcoming is None or upcoming <= now else upcoming - now
                    self._stop.wait(min(IDLE, max(wait, 0.05)))
            except Exception:  # a bug must not stop every verification for good: log, go on
                log.exception("notice poller error")
                self._stop.wait(5.0)

    def step(self) -> int:
        """Claim the tasks that are due (at most BATCH) and poll them; how many were claimed."""
        now = self.clock.time()
        with self.store.reading() as read:  # nothing due: no claim, no write (claims.py's take)
            upcoming = read.notices.next_poll_at()
        if upcoming is None or upcoming > now:
            return 0
        with self.store.transaction() as tx:
            tasks = tx.notices.claim(self.owner, now, now + self.lease, BATCH)
        hold = Hold([], now + self.lease, self.lease)
        for index, task in enumerate(tasks):
            if self._stop.is_set() or hold.renew_due(self.clock.time()):
                with self.store.transaction() as tx:  # the next round claims them again
                    tx.notices.release(self.owner, tasks[index:])
                break
            if index:
                self._pause(CALL_SPACING)
            self._poll(task)
        return len(tasks)

    def _poll(self, task: Task) -> None:
        now = self.clock.time()
        target = self.targets().get(task.target)
        channel = channel_for(target, self.client) if target is not None else None
        if not isinstance(channel, ResultChannel):  # gone, or now a type that is not polled
            self._unverified(task, now, None, "the target is no longer configured")
            return
        try:
            self.stats.calls += 1
            answer = channel.send_result(task.task_id)
            result = parse_send_result(answer)
        except DeliveryError as exc:
            self.stats.failures[(task.target, exc.reason.value)] += 1
            if not exc.retryable:  # e.g. 40035: DingTalk does not know the task (any more)
                self._unverified(task, now, None, f"getsendresult: {exc}")
            else:
                self._later(task, now, None, None, f"getsendresult: {exc}")
            return
        except ValueError as exc:  # an answer without send_result: ask again later
            self.stats.failures[(task.target, "bad_answer")] += 1
            self._later(task, now, None, None, f"getsendresult: {exc}")
            return
        previous = _previous(task)
        if not is_final(result, channel.recipients(), previous):
            self._later(task, now, result, _answer_json(answer), "no final answer yet")
            return
        may_retry = now - task.created_at < channel.policy.give_up_after
        self._settle(task, now, result, judge(result, may_retry))

    def _later(
        self,
        task: Task,
        now: float,
        result: SendResult | None,
        answer: str | None,
        why: str,
    ) -> None:
        when = next_poll_at(task, now)
        if when > task.sent_at + POLL_FOR:
            self._unverified(task, now, result or _previous(task), why)
            return
        with self.store.transaction() as tx:
            tx.notices.poll_later(task, when, answer, owner=self.owner)

    def _settle(self, task: Task, now: float, result: SendResult, verdict: Verdict) -> None:
        refused = [(r.userid, r.code) for r in result.refused]
        note = (
            f"had it already from an earlier try (143106): {','.join(result.duplicates)}"
            if result.duplicates
            else None
        )
        with self.store.transaction() as tx:
            held = tx.notices.settle(
                task, verdict.outcome, result.got_it(), refused, note, now, owner=self.owner
            )
            if held:  # (not held: another replica polls it now, this one stalled past its lease)
                _move_on(tx, task, now, result, verdict)
                _told(tx, task, verdict.outcome, now, result, verdict)
        if not held:
            return
        self._count(task, verdict.outcome, result)
        fields = dict(
            rule=",".join(sorted(set(task.rules))),
            target=task.target,
            id=ids_of(task.ids),
            task_id=task.task_id,
            received=len(result.got_it()),
            refused=len(result.refused) or None,
            errcodes=code_counts(result.refused) or None,
            duplicates=len(result.duplicates) or None,
        )
        if verdict.outcome == "delivered":
            log.info(fmt_fields("delivered", **fields))
        elif verdict.outcome == "partial":
            log.warning(fmt_fields("partly delivered", **fields))
        elif verdict.outcome == "retry":
            log.warning(
                fmt_fields("work notice retry", **fields, retry_in=f"{FLOW_CONTROL_WAIT:g}s")
            )
        else:
            reason = verdict.reason.value if verdict.reason else None
            log.error(fmt_fields("dead letter", **fields, reason=reason, errcode=verdict.errcode))

    def _unverified(self, task: Task, now: float, result: SendResult | None, why: str) -> None:
        """No final answer: count it delivered (DingTalk did take it), record what is known."""
        got = result.got_it() if result else ()
        refused = [(r.userid, r.code) for r in result.refused] if result else []
        with self.store.transaction() as tx:
            held = tx.notices.settle(task, "unverified", got, refused, why, now, owner=self.owner)
            if held:
                tx.outbox.delivered(task.ids)
                _told(tx, task, "unverified", now, result, None, why)
        if not held:
            return
        if result is not None:
            self._count(task, "unverified", result)
        else:
            self.stats.outcomes[(task.target, "unverified")] += len(task.ids)
        log.warning(
            fmt_fields(
                "delivered unverified",
                rule=",".join(sorted(set(task.rules))),
                target=task.target,
                id=ids_of(task.ids),
                task_id=task.task_id,
                received=len(got) if result else None,
                why=why,
            )
        )

    def _count(self, task: Task, outcome: str, result: SendResult) -> None:
        self.stats.outcomes[(task.target, outcome)] += len(task.ids)
        self.stats.received[task.target] += len(result.got_it())
        for r in result.refused:
            self.stats.refused[(task.target, r.code)] += 1


def _move_on(tx: Tx, task: Task, now: float, result: SendResult, verdict: Verdict) -> None:
    """The message's rows after the verdict: a dead letter, pending again, or delivered."""
    if verdict.outcome == "dead":
        tx.outbox.dead_letter(
            task.ids,
            verdict.reason.value if verdict.reason else "dingtalk_rejected",
            verdict.errcode,
            verdict.errmsg,
            now,
        )
    elif verdict.outcome == "retry":
        tx.outbox.retry_later(
            task.ids,
            now + FLOW_CONTROL_WAIT,
            verdict.reason.value if verdict.reason else "rate_limited",
            verdict.errcode,
            "flow-controlled: " + refusal_summary(result.refused),
            now,
            was=records.SENT,
        )
    else:
        tx.outbox.delivered(task.ids)


# The poller's verdicts as the history's outcomes: a partial or unverified delivery is a
# delivery (errmsg says who did not get it, or why nobody knows).
_HISTORY_OUTCOME = {
    "delivered": records.DELIVERED,
    "partial": records.DELIVERED,
    "unverified": records.DELIVERED,
    "dead": records.DEAD_LETTER,
    "retry": records.RETRYING,
}


def _told(
    tx: Tx,
    task: Task,
    outcome: str,
    now: float,
    result: SendResult | None,
    verdict: Verdict | None,
    why: str = "",
) -> None:
    """The verdict as a history entry of the send DingTalk accepted: the same message id,
    title and attempt, who received it and who did not."""
    accepted = [a for a in tx.history.attempts(task.ids[0]) if a.outcome == records.ACCEPTED]
    said = []
    if result is not None:
        got = result.got_it()
        said.append(f"received by {', '.join(got)}" if got else "received by nobody")
        if result.refused:
            said.append(f"refused: {refusal_summary(result.refused)}")
    if why:
        said.append(f"unverified: {why}")
    last = accepted[-1] if accepted else None
    tx.history.record(
        Sent(
            id=last.id if last else ids_of(task.ids),
            target=task.target,
            rule=last.rule if last else ",".join(sorted(set(task.rules))),
            outcome=_HISTORY_OUTCOME[outcome],
            at=now,
            attempt=last.attempt if last else 1,
            parts=0,
            errcode=verdict.errcode if verdict else None,
            errmsg="; ".join(said) or None,
            reason=verdict.reason.value if verdict and verdict.reason else None,
            title=last.title if last else "",
            bodies=(),
            covers=last.covers if last else (task.ids if len(task.ids) > 1 else ()),
        )
    )


def _answer_json(answer: Mapping[str, object]) -> str:
    return json.dumps(answer.get("send_result"), ensure_ascii=False, sort_keys=True)


def _previous(task: Task) -> SendResult | None:
    if task.last_answer is None:
        return None
    try:
        return parse_send_result({"send_result": json.loads(task.last_answer)})
    except ValueError:
        return None
