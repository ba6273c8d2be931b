"""A robot's rate window in the state store: read when the robot is first used, and each turn
taken atomically there, so that every replica sharing the store keeps to one window.

DingTalk counts 20 calls a minute per robot, whoever makes them; three replicas keeping a
window each would make 60. So a limited robot's turn is one short transaction
(store/ratewindows.py): lock the robot, read its calls (every replica's, with the calls in
flight as reservations) and its lockout, decide with the same maths as the process's own window
(delivery/ratelimit.py), and record the call about to be made. The outcome's transaction
(delivery/recording.py) replaces the reservation by the call DingTalk counted.

Unlimited robots take no turns (nothing to count, no transaction per call); they only read,
once a second, whether another replica met a lockout (`lockout`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.clock import Clock
from bridge.store.api import Store

HISTORY_KEEP = 3600.0  # seconds of stored calls read back at start: longer than any sensible window


@dataclass(frozen=True)
class Turn:
    """What a turn found in the store: the robot's calls (reservation or None each), its lockout,
    and when the window has room (granted: the call is reserved)."""

    calls: list[tuple[float, str | None]]
    locked_until: float
    ready: float
    granted: bool


class StoredWindows:
    """The robots' windows in `store`: what the process's windows (delivery/robots.py) load
    at first use and the turns they take."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def load(self, robot: str, target: str, fresh: bool) -> tuple[list[float], float]:
        """Adopt a target's rows of the old per-target tables, and read the robot's counted
        calls and lockout when the robot is first used (`fresh`)."""
        now = self.clock.time()
        with self.store.transaction() as tx:
            adopted = tx.ratewindows.adopt_legacy(target, robot, now, HISTORY_KEEP)
            if not fresh:
                return adopted
            return tx.ratewindows.load(robot, now - HISTORY_KEEP)

    def take(
        self,
        robot: str,
        since: float,
        ready_at: Callable[[list[float], float], float],
        now: float,
        reservation: str,
        counted_at: float,
    ) -> Turn:
        """One turn of `robot` at `now`: `ready_at(calls, locked_until)` says when the window
        has room, given the robot's calls after `since`; when that is now, the call is reserved
        as `reservation`, counted at `counted_at` until settled. Raises StoreError."""
        with self.store.transaction() as tx:
            calls, until = tx.ratewindows.window_for_update(robot, since)
            ready = ready_at([at for at, _ in calls], until)
            granted = ready <= now
            if granted:
                tx.ratewindows.reserve(robot, reservation, counted_at)
        return Turn(calls, until, ready, granted)

    def lockout(self, robot: str, now: float) -> float:
        """The robot's lockout end (0: none), as any replica recorded it. Raises StoreError."""
        with self.store.reading() as tx:
            return tx.ratewindows.load(robot, now)[1]
