"""The one clock every stateful part is given, from the composition root.

Wall time is what the state store records and what messages show; the same clock answers both
as a float (seconds since the epoch, for the store and rate windows) and as an aware UTC datetime
(for events and templates), so a test that moves one moves the other. Elapsed-time measures that
must not jump with the wall clock (timeouts, template budgets) stay on `time.monotonic` where
they are used: they are not state and never need faking across parts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    def now(self) -> datetime:
        """The same instant as an aware UTC datetime."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to: for in-process tests of stateful parts."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def set(self, when: float) -> None:
        with self._lock:
            self._now = when


SYSTEM_CLOCK: Clock = SystemClock()


class DatetimeClock:
    """A Clock over a datetime source: for a composition root whose injected clock is still a
    `Callable[[], datetime]` (Bridge's, until it takes a Clock itself)."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now

    def time(self) -> float:
        return self._now().timestamp()

    def now(self) -> datetime:
        return self._now()
