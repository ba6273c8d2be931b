"""Rate windows and lockouts, per robot: the calls DingTalk counted, kept across restarts.

DingTalk's 20-a-minute limit and its 10-minute lockout belong to the robot (its access token),
or for work notices to the app, not to one of our targets: two targets may post to one robot with
different keywords or mentions. So both tables are keyed by the robot's key (a hash of its access
token or of the app key, see delivery.robots.robot_key), never by the token itself: the state
file must not hold credentials.

Earlier versions kept them in `sends` and `lockouts`, keyed by target name. Their rows are
adopted on the first start of each target's sender (`adopt_legacy`): a restart right after an
upgrade still knows the calls of the last minute and waits out a lockout in progress, instead of
risking a 130101 with a window it forgot. Once no legacy row is left the old tables are dropped.

Several replicas share a robot's window through these rows. A turn is taken in one short
transaction that locks the robot (store/locks.py), reads its calls and lockout
(`window_for_update`) and, when the window has room, records the call about to be made as a
reservation (`reserve`): counted at the latest time DingTalk could count it (the end of its HTTP
timeout), so a replica killed mid-call leaves a call that ages out like any other, never one too
few. The outcome's transaction replaces the reservation by the call DingTalk counted, or drops it
when the call never reached DingTalk's counter (`record_calls(..., settles=...)`).
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.store.locks import ROBOT, Locks
from bridge.store.sqlconn import Connection


class SqlRateWindows:
    def __init__(self, conn: Connection, legacy: bool, locks: Locks) -> None:
        """`legacy`: the database may still hold an older version's per-target tables (SQLite
        files from before robot keys; a PostgreSQL database never had them)."""
        self._conn = conn
        self._legacy = legacy
        self._locks = locks

    def load(self, robot: str, since: float) -> tuple[list[float], float]:
        """The robot's counted calls after `since` (oldest first) and its lockout end (0: none)."""
        calls = [
            float(r[0])
            for r in self._conn.execute(
                "SELECT at FROM robot_calls WHERE robot = ? AND at > ? ORDER BY at", (robot, since)
            ).fetchall()
        ]
        row = self._conn.execute(
            "SELECT until FROM robot_lockouts WHERE robot = ?", (robot,)
        ).fetchone()
        return calls, float(row[0]) if row else 0.0

    def window_for_update(
        self, robot: str, since: float
    ) -> tuple[list[tuple[float, str | None]], float]:
        """The robot locked until the transaction ends; its calls after `since` (oldest first,
        each with its reservation while in flight, else None) and its lockout end (0: none)."""
        self._locks.lock(ROBOT, robot)
        calls = [
            (float(r[0]), None if r[1] is None else str(r[1]))
            for r in self._conn.execute(
                "SELECT at, reservation FROM robot_calls WHERE robot = ? AND at > ? ORDER BY at",
                (robot, since),
            ).fetchall()
        ]
        row = self._conn.execute(
            "SELECT until FROM robot_lockouts WHERE robot = ?", (robot,)
        ).fetchone()
        return calls, float(row[0]) if row else 0.0

    def reserve(self, robot: str, reservation: str, at: float) -> None:
        """A call about to be made, counted at `at` until its outcome settles it."""
        self._conn.execute(
            "INSERT INTO robot_calls (robot, at, reservation) VALUES (?, ?, ?)",
            (robot, at, reservation),
        )

    def record_calls(
        self,
        robot: str,
        times: Iterable[float],
        forget_before: float,
        settles: str | None = None,
    ) -> None:
        """Remember calls DingTalk counted, in place of the reservation `settles` (if any), and
        forget this robot's calls older than any window."""
        if settles is not None:
            self._conn.execute(
                "DELETE FROM robot_calls WHERE robot = ? AND reservation = ?", (robot, settles)
            )
        self._conn.executemany(
            "INSERT INTO robot_calls (robot, at) VALUES (?, ?)", [(robot, t) for t in times]
        )
        self._conn.execute(
            "DELETE FROM robot_calls WHERE robot = ? AND at < ?", (robot, forget_before)
        )

    def lock_out(self, robot: str, until: float) -> None:
        """The robot is locked out until `until` (a later lockout already recorded wins)."""
        self._conn.execute(
            "INSERT INTO robot_lockouts (robot, until) VALUES (?, ?)"
            " ON CONFLICT (robot) DO UPDATE SET until = excluded.until"
            " WHERE excluded.until > robot_lockouts.until",
            (robot, until),
        )

    def _has_legacy(self) -> bool:
        if not self._legacy:
            return False
        names = {
            str(r[0])
            for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name IN ('sends', 'lockouts')"
            ).fetchall()
        }
        return names == {"sends", "lockouts"}

    def adopt_legacy(
        self, target: str, robot: str, now: float, keep: float
    ) -> tuple[list[float], float]:
        """Move target `target`'s rows of the old per-target tables to robot `robot`; return what
        was moved (calls within `keep` seconds, lockout end). Drops the old tables when empty."""
        if not self._has_legacy():
            return [], 0.0
        calls = [
            float(r[0])
            for r in self._conn.execute(
                "SELECT at FROM sends WHERE target = ? AND at > ? ORDER BY at", (target, now - keep)
            ).fetchall()
        ]
        row = self._conn.execute(
            "SELECT until FROM lockouts WHERE target = ?", (target,)
        ).fetchone()
        until = float(row[0]) if row and float(row[0]) > now else 0.0
        self.record_calls(robot, calls, now - keep)
        if until:
            self.lock_out(robot, until)
        self._conn.execute("DELETE FROM sends WHERE target = ? OR at < ?", (target, now - keep))
        self._conn.execute("DELETE FROM lockouts WHERE target = ? OR until < ?", (target, now))
        left = self._conn.execute(
            "SELECT (SELECT COUNT(*) FROM sends) + (SELECT COUNT(*) FROM lockouts)"
        ).fetchone()[0]
        if not left:  # every target adopted its rows, or the rest are too old to matter
            self._conn.execute("DROP TABLE sends")
            self._conn.execute("DROP TABLE lockouts")
        return calls, until
