"""The thread that runs one sender's loop: step, sleep as long as the step says, stop on request.

Kept apart from the sender's decisions (delivery/sender.py) so those can be driven one step at a
time in tests, with a fake clock and no thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bridge.logs import fmt_fields

log = logging.getLogger("bridge.delivery")

ERROR_PAUSE = 5.0  # seconds: after an error outside any one message (the store cannot be read)
ERROR_PAUSE_MAX = 60.0


class Worker:
    def __init__(
        self,
        name: str,
        step: Callable[[], float],
        at_stop: Callable[[], None],
        call_timeout: float,
    ) -> None:
        """`step()`: one turn, returning the seconds to wait before the next; `at_stop()`: runs
        once the loop ends; `call_timeout`: the longest a call in flight may take."""
        self.name = name
        self._step = step
        self._at_stop = at_stop
        self._call_timeout = call_timeout
        self._wake = threading.Event()
        self._stop = threading.Event()
        # True while the loop waits for rows to appear (the sender sets it). Waking a sender that
        # waits for its rate slot would only make it look at the clock and sleep again: under a
        # storm that is one pointless thread switch per accepted request.
        self.idle = False
        self._thread = threading.Thread(target=self._run, name=f"sender-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def wake(self) -> None:
        """New rows were queued."""
        if self.idle:
            self._wake.set()

    def stop(self, timeout: float) -> None:
        """Stop taking new rows; a send in flight may finish within `timeout` (then its target's
        HTTP timeout bounds it). Rows not sent stay in the outbox for the next start."""
        self.request_stop()
        self._thread.join(max(timeout, 0.0))
        if self._thread.is_alive():
            self._thread.join(self._call_timeout + 1.0)

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(max(0.0, seconds))
        self._wake.clear()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                wait = self._step()
                failures = 0
            except Exception:  # not one message's fault (those are dead-lettered): the store
                failures += 1
                log.exception(fmt_fields("sender error", target=self.name))
                wait = min(ERROR_PAUSE * failures, ERROR_PAUSE_MAX)
            if wait > 0:
                self._sleep(wait)
            self.idle = False
        self._at_stop()
