"""Flushes aggregation groups when their time comes (group_wait, then group_interval).

A thread of its own: it wakes at the earliest next flush (or once a second), and for each due
group renders one notification of all its held alerts through the same notify() as direct events,
committing the outbox rows, the log entry and the group's new state in one transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from bridge.alerting.grouping import group_event
from bridge.config.model import Config
from bridge.logs import fmt_fields
from bridge.pipeline.notify import log_queued, notify
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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
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
            wait = (
                1.0 if next_at is None else min(1.0, max(0.0, next_at - self.clock().timestamp()))
            )
            self._wake.wait(wait)
            self._wake.clear()

    def prune_log(self) -> int:
        """Forget notification-log entries nobody has touched for long (an alert that stopped
        arriving without ever resolving): beyond twice the longest repeat_interval, and at least
        a week, an entry can no longer suppress anything useful. Returns how many went."""
        longest = max((r.repeat_interval for r in self.config().rules), default=0.0)
        older_than = self.clock().timestamp() - max(LOG_KEEP, 2 * longest)
        with self.store.transaction() as tx:
            return tx.alertlog.prune_entries(older_than)

    def flush_due(self) -> int:
        """Flush every group whose time has come; returns how many messages were queued."""
        now = self.clock()
        stamp = now.timestamp()
        config = self.config()
        rules = {r.name: r for r in config.rules}
        queued: set[str] = set()
        count = 0
        with self.store.reading() as tx:
            due = tx.groups.due(stamp)
        for group in due:
            with self.store.transaction() as tx:
                rule = rules.get(group.rule)
                if rule is None or rule.group_by is None:
                    log.warning(
                        fmt_fields(
                            "group dropped",
                            rule=group.rule,
                            key=group.key,
                            reason="rule no longer groups",
                        )
                    )
                    tx.groups.drop(group.rule, group.key)
                    continue
                held = tx.groups.members(group.rule, group.key)
                if not held:
                    tx.groups.drop(group.rule, group.key)
                    continue
                event = group_event(group.rule, group.key, held, now)
                result = notify(tx, rule, event, group.key, now)
                tx.outbox.enqueue(result.deliveries, stamp)
                tx.groups.after_flush(group.rule, group.key, stamp, rule.group_interval)
            log_queued(result.deliveries, group=group.key)
            if result.deliveries:
                log.info(
                    fmt_fields(
                        "group flushed",
                        rule=rule.name,
                        key=group.key,
                        alerts=len(held),
                        reason=result.reason,
                    )
                )
            queued.update(d.target for d in result.deliveries)
            count += len(result.deliveries)
        if queued:
            self.on_queued(queued)
        return count
