"""One sender thread per target, each with its own bounded in-memory queue.

A target that is throttled or down only ever blocks its own thread, never another target's.
Retryable failures are retried with backoff; permanent ones are logged with their reason and
DingTalk's errcode. (The durable outbox that survives restarts replaces this queue in a later
step; the interface - submit, stop - stays.)
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bridge.config.model import Target
from bridge.delivery.backoff import backoff_delay
from bridge.dingtalk.client import DingTalkClient
from bridge.errors import DeliveryError
from bridge.logs import fmt_fields
from bridge.model import Delivery

log = logging.getLogger("bridge.delivery")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0


@dataclass
class WorkerStats:
    delivered: int = 0
    failed: int = 0
    retries: int = 0


class TargetWorker:
    def __init__(
        self,
        target: Target,
        client: DingTalkClient,
        policy: RetryPolicy | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.target = target
        self.client = client
        self.policy = policy or RetryPolicy()
        self.now = now
        self.queue: queue.Queue[Delivery | None] = queue.Queue(maxsize=target.queue_size)
        self.stats = WorkerStats()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sender-{target.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def free(self) -> int:
        return self.queue.maxsize - self.queue.qsize()

    def submit(self, delivery: Delivery) -> bool:
        try:
            self.queue.put_nowait(delivery)
        except queue.Full:
            return False
        return True

    def stop(self, timeout: float) -> int:
        """Finish what is queued within `timeout` seconds; return how many were left unsent."""
        deadline = time.monotonic() + timeout
        # The sentinel: everything queued before it is still sent. If the queue does not move
        # within the grace period, we stop without it.
        with contextlib.suppress(queue.Full):
            self.queue.put(None, timeout=max(0.001, timeout))
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._stopping.set()  # cut retry sleeps short; a call in flight ends by its timeout
            self._thread.join(self.target.timeout + 1.0)
        left = 0
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return left
            if item is not None:
                left += 1
                log.warning(
                    fmt_fields(
                        "unsent at shutdown",
                        rule=item.rule,
                        target=item.target,
                        id=item.id,
                        reason="shutdown",
                    )
                )

    def _run(self) -> None:
        while True:
            delivery = self.queue.get()
            if delivery is None or self._stopping.is_set():
                if delivery is not None:
                    self.queue.put_nowait(delivery)  # leave it for stop() to count
                return
            self._deliver(delivery)

    def _deliver(self, d: Delivery) -> None:
        for attempt in range(1, self.policy.max_attempts + 1):
            started = time.monotonic()
            try:
                sent = self.client.send(self.target, d.message, d.id, self.now())
            except DeliveryError as exc:
                fields = dict(
                    rule=d.rule,
                    target=d.target,
                    id=d.id,
                    reason=exc.reason.value,
                    errcode=exc.errcode,
                    attempt=attempt,
                    error=str(exc),
                )
                if not exc.retryable or attempt == self.policy.max_attempts:
                    self.stats.failed += 1
                    log.error(fmt_fields("delivery failed", **fields))
                    return
                self.stats.retries += 1
                delay = backoff_delay(
                    attempt, self.policy.base_delay, self.policy.max_delay, at_least=exc.retry_after
                )
                log.warning(fmt_fields("delivery retry", **fields, retry_in=f"{delay:.1f}s"))
                if self._stopping.wait(delay):
                    log.warning(
                        fmt_fields(
                            "unsent at shutdown",
                            rule=d.rule,
                            target=d.target,
                            id=d.id,
                            reason="shutdown",
                        )
                    )
                    return
                continue
            self.stats.delivered += 1
            log.info(
                fmt_fields(
                    "delivered",
                    rule=d.rule,
                    target=d.target,
                    id=d.id,
                    task_id=sent.task_id,
                    ms=round((time.monotonic() - started) * 1000),
                    fallback="yes" if d.message.fallback else None,
                )
            )
            return
