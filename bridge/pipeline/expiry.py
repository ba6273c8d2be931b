"""Resolves the alerts of `prometheus` inputs whose endsAt passed without a fresh post.

Prometheus posts a firing alert again every resend delay, each time with an endsAt a few
evaluation intervals ahead; when it stops (it was stopped, lost its rules, cannot reach us) the
alert would fire forever. Alertmanager resolves such an alert when its endsAt passes, and so
does this sweep: a thread of its own that wakes at the earliest endsAt (or once a second), and
for each prometheus input claims the expired alerts (as resolved) in the transaction that
decides and queues their resolved events, through the same intake as a post
(Intake.accept_from). Every replica sharing the store runs one; the claim is atomic
(store/alertstate.py), so each expired alert is resolved once. A refused commit (a full queue,
the store unreachable) leaves the alerts firing, and the next sweep tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bridge.clock import SYSTEM_CLOCK, Clock
from bridge.config.model import Config, PrometheusInput
from bridge.errors import InputError, StoreError
from bridge.logs import fmt_fields
from bridge.model import Event
from bridge.pipeline.intake import Intake
from bridge.pipeline.tracking import SWEEP_BATCH, expired_events
from bridge.store.api import Store, Tx

log = logging.getLogger("bridge.expiry")

PRUNE_EVERY = 3600.0  # seconds between clean-ups of the alerts kept
# Resolved alerts are kept this long after their last post: Prometheus re-sends a resolved
# alert for 15 minutes, and one re-sent after it was forgotten is told at most once more (the
# notification log forgot it too, so nothing is sent).
RESOLVED_KEEP = 3600.0
# An alert not posted for this long belongs to an input that is gone, or a Prometheus that is;
# a week, like the notification log's entries (grouper.LOG_KEEP).
UNTOUCHED_KEEP = 7 * 86_400.0


def prometheus_inputs(config: Config) -> list[PrometheusInput]:
    return [spec for spec in config.inputs.values() if isinstance(spec, PrometheusInput)]


class Expirer:
    def __init__(
        self,
        store: Store,
        intake: Intake,
        config: Callable[[], Config],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.intake = intake
        self.config = config
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="expiry", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        pruned_at = float("-inf")
        while not self._stop.is_set():
            wait = 1.0
            try:
                inputs = prometheus_inputs(self.config())
                if inputs:
                    self.sweep()
                    if time.monotonic() - pruned_at > PRUNE_EVERY:
                        self.prune()
                        pruned_at = time.monotonic()
                    with self.store.reading() as tx:
                        next_at = tx.alertstate.next_expiry([spec.name for spec in inputs])
                    if next_at is not None:
                        wait = min(1.0, max(0.0, next_at - self.clock.time()))
            except Exception:  # never let one failure stop every later sweep
                log.exception("alert expiry sweep failed")
            self._stop.wait(wait)

    def sweep(self) -> int:
        """Resolve every expired alert of every prometheus input; how many."""
        config = self.config()
        resolved = 0
        for spec in prometheus_inputs(config):
            while (taken := self._batch(config, spec)) is not None:
                resolved += taken
                if taken < SWEEP_BATCH:
                    break
        return resolved

    def _batch(self, config: Config, spec: PrometheusInput) -> int | None:
        """Resolve up to SWEEP_BATCH expired alerts of `spec` in one commit; how many (None:
        the commit was refused, the alerts stay firing until the next sweep)."""
        now = self.clock.now()
        taken: list[Event] = []

        def claim(tx: Tx) -> list[Event]:
            taken[:] = expired_events(tx, spec, now)  # again from scratch if the store retries
            return taken

        try:
            self.intake.accept_from(config, spec, claim, now)
        except (InputError, StoreError) as exc:
            log.warning(fmt_fields("alerts not resolved yet", input=spec.name, error=str(exc)))
            return None
        if taken:
            log.info(fmt_fields("alerts expired", input=spec.name, alerts=len(taken)))
        return len(taken)

    def prune(self) -> int:
        """Forget resolved alerts past RESOLVED_KEEP and any not posted for UNTOUCHED_KEEP."""
        now = self.clock.time()
        with self.store.transaction() as tx:
            return tx.alertstate.prune(now - RESOLVED_KEEP, now - UNTOUCHED_KEEP)
