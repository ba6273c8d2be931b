"""Sends the escalation steps that fall due (pipeline/escalation.py decides which): a thread of
its own, like the expiry sweep (pipeline/expiry.py), that wakes at the earliest step due (or
once a second, to see acks and new firings).

Each step is claimed and its messages queued in one transaction (`advance` is a compare-and-set
on the step reached, store/escalations.py): a restart continues where the store says (no step
twice, none lost), and replicas sharing a database each run one of these, a step sent by the
one that claimed it. The ack is read again in that transaction, so an ack committed before the
claim stops the step. A refused commit (the store unreachable) leaves the step due: the next
round tries again.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

from bridge.alerting.actions import ACK as ACK_ACTION
from bridge.alerting.silences import Silence, silencing
from bridge.clock import SYSTEM_CLOCK, Clock
from bridge.config.model import ActionsConfig, Config, Rule
from bridge.errors import StoreError
from bridge.logs import fmt_fields
from bridge.model import Event
from bridge.pipeline.actionlinks import LinkSettings, action_links
from bridge.pipeline.escalation import (
    AckLink,
    Plan,
    StepDue,
    due_steps,
    next_due_at,
    step_deliveries,
)
from bridge.store.api import Store
from bridge.store.escalations import ACK
from bridge.store.records import Escalation

log = logging.getLogger("bridge.escalation")

MAX_WAIT = 1.0  # seconds between rounds at most: acks, resolutions and firings come any time

# The signed Ack link of a step's message: (config, rule, escalation, target, message id, now).
AckLinks = Callable[[Config, Rule, Escalation, str, str, float], str]


def no_links(
    config: Config, rule: Rule, one: Escalation, target: str, message_id: str, now: float
) -> str:
    return ""


def signed_ack_links(key: Callable[[ActionsConfig], bytes]) -> AckLinks:
    """Ack links signed with `key(actions)` (app/actionkey.py), for rules whose messages carry
    one (`actions: [ack]`): the same link as on the alert's own message, for this message."""

    def ack_link(
        config: Config, rule: Rule, one: Escalation, target: str, message_id: str, now: float
    ) -> str:
        if ACK_ACTION not in rule.actions or config.actions.base_url is None:
            return ""
        at = datetime.fromtimestamp(now, UTC)
        alert = Event("", "escalation", "firing", one.labels, {}, one.fingerprint, at)
        try:
            settings = LinkSettings(
                config.actions, key(config.actions), target, message_id, now, config.locale
            )
        except StoreError:
            return ""  # no key now: the message says `ack <id>`, which always works
        return action_links(rule, alert, settings).ack

    return ack_link


class Escalator:
    def __init__(
        self,
        store: Store,
        config: Callable[[], Config],
        queued: Callable[[Iterable[str]], None],
        silences: Callable[[float], Sequence[Silence]],
        clock: Clock = SYSTEM_CLOCK,
        ack_links: AckLinks = no_links,
    ) -> None:
        """`queued` wakes the senders of targets a step was queued for; `silences(now)` the
        silences in force (the config's and the runtime ones); `ack_links` makes a step
        message's Ack link."""
        self.store = store
        self.config = config
        self._queued = queued
        self._silences = silences
        self.clock = clock
        self._ack_links = ack_links
        self._lock = threading.Lock()
        self.steps_sent: Counter[str] = Counter()  # by rule
        self.stopped: Counter[str] = Counter()  # by why: ack, resolve
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="escalation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        with self._lock:
            return Counter(self.steps_sent), Counter(self.stopped)

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = MAX_WAIT
            try:
                next_at = self.round()
                # A step still due after the round (held by a silence, or its commit refused)
                # waits for the next round, not a busy loop.
                if next_at is not None and next_at > self.clock.time():
                    wait = min(MAX_WAIT, next_at - self.clock.time())
            except StoreError as exc:  # the store out of reach: the steps wait, none is lost
                log.warning(fmt_fields("escalation round skipped", error=str(exc)))
            except Exception:  # never let one failure stop every later round
                log.exception("escalation round failed")
            self._stop.wait(wait)

    def round(self) -> float | None:
        """Count the escalations resolutions stopped, stop the acknowledged, send the steps due;
        when the next step falls due (None: none waits)."""
        config = self.config()
        rules = config.rules_by_name
        now = self.clock.time()
        with self.store.reading() as tx:
            ended = tx.escalations.ended()
            running = tx.escalations.running()
            acked = {
                one.fingerprint: by
                for one in running
                if (by := tx.acks.acknowledged_by(one.fingerprint)) is not None
            }
        self._count_resolved(ended, rules)
        silences = self._silences(now)
        plan = due_steps(
            running, rules, acked, lambda labels: silencing(silences, labels, now) is not None, now
        )
        self._apply(config, plan, now)
        with self.store.reading() as tx:
            return next_due_at(tx.escalations.running(), rules)

    def _count_resolved(self, ended: list[Escalation], rules: Mapping[str, Rule]) -> None:
        for one in ended:
            with self.store.transaction() as tx:
                forgotten = tx.escalations.forget(one)
            rule = rules.get(one.rule)
            if forgotten and rule is not None and one.steps_done < len(rule.escalate):
                self._stopped(one, "resolve")

    def _apply(self, config: Config, plan: Plan, now: float) -> None:
        for rule_name in sorted(plan.orphaned):
            with self.store.transaction() as tx:
                tx.escalations.drop(rule_name)
            log.info(fmt_fields("escalations dropped", rule=rule_name, why="rule not escalating"))
        for one, by in plan.acked:
            with self.store.transaction() as tx:
                stopped = tx.escalations.stop(one, ACK, now)
            if stopped:
                self._stopped(one, "ack", by=by)
        for due in plan.due:
            try:
                self._send(config, due, now)
            except StoreError as exc:
                log.warning(
                    fmt_fields(
                        "escalation step not sent yet",
                        rule=due.escalation.rule,
                        alert=due.escalation.fingerprint[:8],
                        step=due.step + 1,
                        error=str(exc),
                    )
                )
                return  # the later steps wait behind this one

    def _send(self, config: Config, due: StepDue, now: float) -> None:
        one = due.escalation
        rule = config.rules_by_name[one.rule]

        def link(target: str, message_id: str) -> str:
            return self._ack_links(config, rule, one, target, message_id, now)

        ack_link: AckLink = link
        deliveries = step_deliveries(rule, due, now, ack_link)
        with self.store.transaction() as tx:
            if tx.acks.acknowledged_by(one.fingerprint) is not None:
                return  # acked since the round read: the next round stops it
            if not tx.escalations.advance(one, due.step, now):
                return  # another replica sent it, or it stopped or started over meanwhile
            tx.outbox.enqueue(deliveries, now)
        targets = [d.target for d in deliveries]
        self._queued(targets)
        with self._lock:
            self.steps_sent[one.rule] += 1
        log.info(
            fmt_fields(
                "escalation step",
                rule=one.rule,
                alert=one.fingerprint[:8],
                step=due.step + 1,
                targets=",".join(targets),
                unacknowledged=f"{now - one.started_at:.0f}s",
            )
        )

    def _stopped(self, one: Escalation, why: str, by: str | None = None) -> None:
        with self._lock:
            self.stopped[why] += 1
        log.info(
            fmt_fields(
                "escalation stopped",
                rule=one.rule,
                alert=one.fingerprint[:8],
                why=why,
                by=by,
                steps_sent=one.steps_done,
            )
        )
