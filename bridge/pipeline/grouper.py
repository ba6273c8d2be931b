"""Flushes aggregation groups when their time comes (group_wait, then group_interval).

A thread of its own: it wakes at the earliest next flush (or once a second), and for each due
group decides one notification of all its held alerts through the same decide step as direct
events (pipeline.decide), committing the outbox rows, the log entry and the group's new state in
one transaction.

Every replica sharing the store runs one, so a due group is flushed by the one transaction that
claims it (`groups.claim`): another replica that saw it due at the same moment finds it flushed
(its next flush moved on, or the group ended) and leaves it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from bridge.clock import SYSTEM_CLOCK, Clock
from bridge.config.model import Config
from bridge.logs import fmt_fields
from bridge.pipeline.commit import commit_flush, log_queued
from bridge.pipeline.decide import RULE_GONE, decide_flush
from bridge.pipeline.decision import Queued
from bridge.pipeline.ids import new_id
from bridge.pipeline.state import DecidingView
from bridge.store.api import Store

log = logging.getLogger("bridge.grouper")

PRUNE_EVERY = 3600.0  # seconds between notification-log clean-ups
LOG_KEEP = 7 * 86_400.0  # the least time a notification-log entry is kept


class Grouper:
    def __init__(
        self,
        store: Store,
        config: Callable[[], Config],
        on_queued: Callable[[Iterable[str]], None],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.config = config
        self.on_queued = on_queued
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grouper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        pruned_at = float("-inf")
        while not self._stop.is_set():
            try:
                self.flush_due()
                if time.monotonic() - pruned_at > PRUNE_EVERY:
                    self.prune_log()
                    pruned_at = time.monotonic()
                with self.store.reading() as tx:
                    next_at = tx.groups.next_flush_at()
            except Exception:  # never let one bad group stop all grouping
                log.exception("group flush failed")
                next_at = None
            wait = 1.0 if next_at is None else min(1.0, max(0.0, next_at - self.clock.time()))
            self._wake.wait(wait)
            self._wake.clear()

    def prune_log(self) -> int:
        """Forget notification-log entries nobody has touched for long (an alert that stopped
        arriving without ever resolving): beyond twice the longest repeat_interval, and at least
        a week, an entry can no longer suppress anything useful. Returns how many went."""
        longest = max((r.repeat_interval for r in self.config().rules), default=0.0)
        older_than = self.clock.time() - max(LOG_KEEP, 2 * longest)
        with self.store.transaction() as tx:
            return tx.alertlog.prune_entries(older_than)

    def flush_due(self) -> int:
        """Flush every group whose time has come; returns how many messages were queued."""
        now = self.clock.now()
        stamp = now.timestamp()
        rules = self.config().rules_by_name
        queued: set[str] = set()
        count = 0
        with self.store.reading() as tx:
            due = tx.groups.due(stamp)
        for group in due:
            with self.store.transaction() as tx:
                if not tx.groups.claim(group.rule, group.key, stamp):
                    continue  # another replica flushed it meanwhile
                held = tx.groups.members(group.rule, group.key)
                flush = decide_flush(
                    rules.get(group.rule),
                    group.rule,
                    group.key,
                    held,
                    DecidingView(tx),
                    now,
                    new_id,
                )
                commit_flush(tx, flush, stamp)
            if flush.dropped == RULE_GONE:
                log.warning(
                    fmt_fields("group dropped", rule=group.rule, key=group.key, reason=RULE_GONE)
                )
            outcome = flush.outcome
            deliveries = outcome.deliveries if isinstance(outcome, Queued) else ()
            log_queued(deliveries, group=group.key)
            if isinstance(outcome, Queued) and deliveries:
                log.info(
                    fmt_fields(
                        "group flushed",
                        rule=flush.rule,
                        key=group.key,
                        alerts=flush.held,
                        reason=outcome.reason,
                    )
                )
            queued.update(d.target for d in deliveries)
            count += len(deliveries)
        if queued:
            self.on_queued(queued)
        return count
