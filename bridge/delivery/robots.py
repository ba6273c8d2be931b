"""One rate window, one lockout and one outage state per robot, shared by its targets.

DingTalk counts a robot's 20 messages a minute, and locks it out for 10 minutes after the 21st,
by its access token (reference/dingtalk.md §1.7; the channel's `rate_key` names it): two targets
that post to the same robot with different keywords or mentions share one budget. A work-notice
app likewise has one recipients-per-minute quota (§3.1, errcode 143103) whatever target uses it.
So every target sender asks its robot's `RobotWindow` for a turn before each call and tells it
the outcome.

What the window counts: only calls DingTalk processed, i.e. answered with an errcode, and calls
that timed out (DingTalk may have handled them after we stopped waiting: counting one costs a
slot for a minute, not counting one that DingTalk counted risks a 10-minute lockout). An HTTP 5xx,
a refused or reset connection or a non-JSON page never reached the robot's counter, so a
10-second outage does not use up the minute after it.

While the robot fails that way, the window lets one call through at a time, spaced by an
exponential backoff: the queue is probed with its oldest message instead of being burnt through
(every message retried on its own schedule, each failure a wasted call). The first call DingTalk
processes ends the outage and the queue flows at the rate limit again.

The window lives for the whole process (a reload that replaces a target's sender keeps its
robot's window); the calls it counted and its lockout are also written to the store, so a
restart knows them too.

Across replicas: a window made with the store's windows (delivery/turns.py) takes each turn of a
limited robot in the store too, atomically, after its own checks said yes: the store counts every
replica's calls and knows a lockout any of them met, and what it read becomes this window's
picture of the robot's calls. While the store cannot take the turn (a full disk, the database
away), the window gives it on what this process knows, as a single bridge always did, and says so
once in the log. An outage's probing stays per process (each replica probes with one call).
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bridge.config.model import RateLimit
from bridge.delivery.ratelimit import SAFETY_MARGIN, next_slot
from bridge.delivery.turns import StoredWindows
from bridge.dingtalk.channel import Channel
from bridge.errors import StoreError
from bridge.logs import fmt_fields

PROBE_POLL = 0.5  # seconds: how often a target looks again while another one's probe is out
LOCKOUT_LOOK = 1.0  # seconds: how often an unlimited robot reads the lockout other replicas met

log = logging.getLogger("bridge.delivery")


@dataclass(frozen=True)
class Ticket:
    """Permission for one call, held while it is in flight (it counts in the window meanwhile)."""

    id: int
    at: float
    probe: bool  # the robot was failing: this call is the one probe allowed
    reservation: str | None = None  # its row in the store's window, which its outcome settles


class RobotWindow:
    """The shared state of one robot. Thread-safe: every target of the robot calls it."""

    def __init__(
        self,
        key: str,
        calls: Iterable[float] = (),
        locked_until: float = 0.0,
        stored: StoredWindows | None = None,
    ) -> None:
        """`stored`: the store's windows, shared with other replicas (None: this process's
        window only)."""
        self.key = key
        self._stored = stored
        self._lock = threading.Lock()
        self._calls: list[float] = sorted(calls)  # counted by DingTalk, oldest first
        self._in_flight: dict[int, float] = {}
        self._reservations: dict[int, str] = {}  # in-flight ticket id -> its row in the store
        self._unshared = False  # the store could not take the last turn (said once in the log)
        self._lockout_read_at = float("-inf")  # unlimited: when the stored lockout was read
        # How long a call may be in flight: the longest HTTP timeout of the robot's targets. A
        # reservation counts at its end, the latest time DingTalk may count the call.
        self.hold = 0.0
        self._ids = itertools.count(1)
        self.locked_until = locked_until
        self.failures = 0  # consecutive calls that failed before reaching DingTalk's counter
        self.probe_at = 0.0  # while failing: no call before this time
        # How long a counted call matters: the longest window of the targets using this robot
        # (0 while they are all unlimited). Kept longer, the calls of a busy unlimited target
        # were an hour of timestamps in memory and in the store (the soak's slow RSS creep).
        self.keep = 0.0

    # -- reading ---------------------------------------------------------------------------------

    def ready_at(self, rate: RateLimit, now: float) -> float:
        """The earliest time at which `acquire` may give a ticket (for waiting, not a promise:
        another target of the robot may take that turn first)."""
        with self._lock:
            return self._ready_at(rate, now)

    def _ready_at(self, rate: RateLimit, now: float) -> float:
        ready = max(
            next_slot(rate, itertools.chain(self._calls, self._in_flight.values()), now),
            self.locked_until,
        )
        if self.failures:
            # One probe at a time: the answer to the one in flight decides what comes next.
            ready = max(ready, self.probe_at if not self._in_flight else now + PROBE_POLL)
        return ready

    def used(self, rate: RateLimit, now: float) -> int:
        """Calls counted (or in flight) in the current window of `rate`."""
        since = now - rate.per - SAFETY_MARGIN
        with self._lock:
            in_flight = len(self._in_flight)
            return len(self._calls) - bisect.bisect_right(self._calls, since) + in_flight

    def calls(self) -> list[float]:
        with self._lock:
            return list(self._calls)

    # -- taking turns -----------------------------------------------------------------------------

    def acquire(self, rate: RateLimit, now: float) -> Ticket | float:
        """A ticket for one call now, or the time to try again."""
        with self._lock:
            self._keep_for(rate)
            ready = self._ready_at(rate, now)
            if ready > now:
                return ready
            reservation = None
            if self._stored is not None and rate.unlimited:
                locked = self._lockout_stored(now)
                if locked > now:
                    return locked
            elif self._stored is not None:
                taken = self._take_stored(rate, now)
                if isinstance(taken, float):
                    return taken
                reservation = taken
            ticket = Ticket(next(self._ids), now, self.failures > 0, reservation)
            self._in_flight[ticket.id] = now
            if reservation is not None:
                self._reservations[ticket.id] = reservation
            return ticket

    def _lockout_stored(self, now: float) -> float:
        """An unlimited robot takes no turns, but a lockout another replica met holds it too:
        read at most every LOCKOUT_LOOK seconds (under self._lock)."""
        assert self._stored is not None
        if now - self._lockout_read_at >= LOCKOUT_LOOK:
            self._lockout_read_at = now
            # Unreadable: the turn goes on what this process knows, as for a limited robot.
            with contextlib.suppress(StoreError):
                self.locked_until = max(self.locked_until, self._stored.lockout(self.key, now))
        return self.locked_until

    def _take_stored(self, rate: RateLimit, now: float) -> str | float | None:
        """The turn taken in the store (under self._lock): its reservation, or the time the
        shared window has room, or None when the store cannot take it (this window decides)."""
        assert self._stored is not None
        ours = set(self._reservations.values())
        unreserved = [at for id_, at in self._in_flight.items() if id_ not in self._reservations]

        def ready_at(calls: list[float], locked_until: float) -> float:
            slot = next_slot(rate, itertools.chain(calls, unreserved), now)
            return max(slot, locked_until)

        reservation = uuid.uuid4().hex
        try:
            turn = self._stored.take(
                self.key, now - self.keep, ready_at, now, reservation, now + self.hold
            )
        except StoreError as exc:
            if not self._unshared:
                self._unshared = True
                log.warning(
                    fmt_fields(
                        "rate window not shared: the store cannot take the turn, this process's"
                        " window decides",
                        robot=self.key,
                        error=str(exc),
                    )
                )
            return None
        if self._unshared:
            self._unshared = False
            log.info(fmt_fields("rate window shared again", robot=self.key))
        # The store's calls are the robot's: every replica's, ours among them (a call of ours in
        # flight stays counted at its time here, not at its reservation's).
        self._calls = sorted(at for at, r in turn.calls if r is None or r not in ours)
        self.locked_until = max(self.locked_until, turn.locked_until)
        if not turn.granted:
            return max(turn.ready, self._ready_at(rate, now))
        return reservation

    def settle(
        self,
        ticket: Ticket,
        at: float,
        *,
        counted: bool,
        failing: bool,
        retry_at: Callable[[int], float] | None = None,
    ) -> float:
        """The call of `ticket` ended at `at`.

        `counted`: DingTalk processed it (an answer with an errcode) or may have (a timeout).
        Counted when answered, not when sent: DingTalk counts a call when it handles it, which may
        be late in a slow answer, and the later time keeps us inside its window.
        `failing`: the robot did not work (5xx, connection, timeout, busy); `retry_at(failures)`
        says when the next probe may go, given how many calls failed in a row. Any other answer
        ends an outage. Returns the time before which the robot takes no call for an outage
        (0 when it is not failing)."""
        with self._lock:
            self._in_flight.pop(ticket.id, None)
            self._reservations.pop(ticket.id, None)
            if counted:
                self._count(at)
            if failing:
                self.failures += 1
                probe = retry_at(self.failures) if retry_at is not None else at
                self.probe_at = max(self.probe_at, probe)
            else:
                self.failures = 0
                self.probe_at = 0.0
            return self.probe_at

    def released(self, ticket: Ticket, at: float | None = None) -> None:
        """The call's fate is unknown to DingTalk's side (an error of ours around it): it counts
        if it may have been made (`at` given), and says nothing about an outage."""
        with self._lock:
            self._in_flight.pop(ticket.id, None)
            self._reservations.pop(ticket.id, None)
            if at is not None:
                self._count(at)

    def lock_out(self, until: float) -> None:
        with self._lock:
            self.locked_until = max(self.locked_until, until)

    def merge(self, calls: Iterable[float], locked_until: float) -> None:
        """Add calls and a lockout read from the store (a target's adopted legacy rows)."""
        with self._lock:
            for at in calls:
                bisect.insort(self._calls, at)
            self.locked_until = max(self.locked_until, locked_until)

    def keep_for(self, rate: RateLimit, timeout: float = 0.0) -> None:
        """A target with this rate (and HTTP timeout) uses the window: keep calls as long as
        its window needs, and hold a reservation as long as its calls may take."""
        with self._lock:
            self._keep_for(rate)
            self.hold = max(self.hold, timeout)

    def _keep_for(self, rate: RateLimit) -> None:
        if not rate.unlimited:
            self.keep = max(self.keep, rate.per + SAFETY_MARGIN)

    def _count(self, at: float) -> None:
        if self.keep <= 0:
            return  # no target limits this robot: nothing reads its calls
        bisect.insort(self._calls, at)
        drop = bisect.bisect_left(self._calls, at - self.keep)
        del self._calls[:drop]

    def describe(self) -> dict[str, object]:
        with self._lock:
            return {
                "robot": self.key,
                "locked_until": self.locked_until or None,
                "failing": self.failures,
            }


class RobotWindows:
    """The process's windows, one per robot key, made on first use from what the store kept
    (and sharing each limited robot's turns through it)."""

    def __init__(self, stored: StoredWindows | None = None) -> None:
        self._stored = stored
        self._lock = threading.Lock()
        self._windows: dict[str, RobotWindow] = {}
        self._loaded: set[tuple[str, str]] = set()

    def for_channel(self, channel: Channel) -> RobotWindow:
        """The window of the robot (or app) `channel` counts against (Channel.rate_key)."""
        key, name = channel.rate_key, channel.name
        with self._lock:
            window = self._windows.get(key)
            fresh = window is None
            if window is None:
                window = self._windows[key] = RobotWindow(key, stored=self._stored)
            window.keep_for(channel.policy.rate, channel.timeout)
            if self._stored is not None and (key, name) not in self._loaded:
                try:
                    calls, until = self._stored.load(key, name, fresh)
                except Exception as exc:  # the store is failing: start empty, try again later
                    log.warning(
                        fmt_fields("rate window not loaded", target=name, robot=key, error=str(exc))
                    )
                else:
                    self._loaded.add((key, name))
                    window.merge(calls, until)
            return window

    def all(self) -> dict[str, RobotWindow]:
        with self._lock:
            return dict(self._windows)
