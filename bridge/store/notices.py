"""Work notices between DingTalk's "accepted" and its "received by": tasks to poll, and results.

The lifecycle of a work notice's outbox row (see README, "What delivered means"):

    pending --asyncsend_v2 errcode 0, task_id--> sent          (awaiting: a notice_tasks row)
    sent --getsendresult: everyone got it----------> deleted   (result 'delivered')
    sent --some got it, some were refused----------> deleted   (result 'partial', per user)
    sent --nobody got it---------------------------> dead      (errcode of the refusal)
    sent --refused for flow control (143103/4)-----> pending   (sent again later; result 'retry')
    sent --no final answer within the poll window--> deleted   (result 'unverified')

A 'sent' row is never picked up by the sender again, survives a restart (the poller resumes from
notice_tasks), and is not counted as delivered until DingTalk says who received it.

Several replicas poll one table: a poller claims the tasks it polls for a lease (as the sender
claims outbox rows, store/outbox.py), and its answer (`poll_later`, `settle`) ends the claim,
unless another poller claimed the task since: a poller whose lease ran out records nothing over
the one that took the task (settle says so, and the caller then leaves the outbox rows alone).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from bridge.store.codec import like_containing
from bridge.store.records import RESULTS_KEEP, Result, Row, Task
from bridge.store.sqlconn import SQLITE, Connection, Dialect, held_by

_TASK_COLUMNS = "target, task_id, ids, rules, created_at, sent_at, next_poll, polls, last_answer"


def _task(values: tuple[object, ...]) -> Task:
    target, task_id, ids, rules, created_at, sent_at, next_poll, polls, last = values
    return Task(
        str(target),
        int(task_id),  # type: ignore[call-overload]
        tuple(json.loads(str(ids))),
        tuple(json.loads(str(rules))),
        float(created_at),  # type: ignore[arg-type]
        float(sent_at),  # type: ignore[arg-type]
        float(next_poll),  # type: ignore[arg-type]
        int(polls),  # type: ignore[call-overload]
        str(last) if last is not None else None,
    )


class SqlNotices:
    def __init__(self, conn: Connection, dialect: Dialect = SQLITE) -> None:
        self._conn = conn
        self._dialect = dialect

    def awaiting(
        self,
        rows: Sequence[Row],
        target: str,
        task_id: int,
        now: float,
        first_poll: float,
    ) -> None:
        """DingTalk took the notice carrying `rows` as `task_id`: mark them sent, poll at
        `first_poll`. In the sender's transaction, instead of deleting the rows."""
        self._conn.executemany(
            "UPDATE outbox SET status = 'sent', updated_at = ?, claimed_by = NULL,"
            " claimed_until = NULL WHERE id = ?",
            [(now, r.id) for r in rows],
        )
        self._conn.execute(
            "INSERT INTO notice_tasks (target, task_id, ids, rules, created_at, sent_at,"
            " next_poll, polls, last_answer) VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL)"
            " ON CONFLICT (target, task_id) DO UPDATE SET ids = excluded.ids,"
            " rules = excluded.rules, created_at = excluded.created_at,"
            " sent_at = excluded.sent_at, next_poll = excluded.next_poll, polls = 0,"
            " last_answer = NULL",
            (
                target,
                task_id,
                json.dumps([r.id for r in rows]),
                json.dumps([r.rule for r in rows]),
                min(r.created_at for r in rows),
                now,
                first_poll,
            ),
        )

    def due(self, now: float, limit: int) -> list[Task]:
        """Tasks whose next poll has come, the most overdue first."""
        cursor = self._conn.execute(
            f"SELECT {_TASK_COLUMNS} FROM notice_tasks WHERE next_poll <= ?"
            " ORDER BY next_poll LIMIT ?",
            (now, limit),
        )
        return [_task(r) for r in cursor.fetchall()]

    def claim(self, owner: str, now: float, until: float, limit: int) -> list[Task]:
        """Up to `limit` tasks due for a poll that nobody else holds, now `owner`'s until
        `until`; the most overdue first (see SqlOutbox.claim for how the picking works)."""
        cursor = self._conn.execute(
            "WITH picked AS MATERIALIZED (SELECT target, task_id FROM notice_tasks"
            " WHERE next_poll <= ? AND (claimed_by IS NULL OR claimed_by = ? OR claimed_until <= ?)"
            f" ORDER BY next_poll LIMIT ?{self._dialect.row_locks})"
            " UPDATE notice_tasks SET claimed_by = ?, claimed_until = ?"
            " WHERE (target, task_id) IN (SELECT target, task_id FROM picked)"
            f" RETURNING {_TASK_COLUMNS}",
            (now, owner, now, limit, owner, until),
        )
        tasks = [_task(r) for r in cursor.fetchall()]
        return sorted(tasks, key=lambda t: (t.next_poll, t.target, t.task_id))

    def release(self, owner: str, tasks: Iterable[Task] | None = None) -> None:
        """`owner` lets go of `tasks` (all it holds when None), unpolled."""
        if tasks is None:
            self._conn.execute(
                "UPDATE notice_tasks SET claimed_by = NULL, claimed_until = NULL"
                " WHERE claimed_by = ?",
                (owner,),
            )
            return
        self._conn.executemany(
            "UPDATE notice_tasks SET claimed_by = NULL, claimed_until = NULL"
            " WHERE target = ? AND task_id = ? AND claimed_by = ?",
            [(t.target, t.task_id, owner) for t in tasks],
        )

    def next_poll_at(self) -> float | None:
        value = self._conn.execute("SELECT MIN(next_poll) FROM notice_tasks").fetchone()[0]
        return float(value) if value is not None else None

    def waiting(self) -> dict[str, int]:
        """Per target: notices awaiting their result."""
        rows = self._conn.execute(
            "SELECT target, COUNT(*) FROM notice_tasks GROUP BY target"
        ).fetchall()
        return {str(t): int(n) for t, n in rows}

    def poll_later(
        self, task: Task, next_poll: float, answer: str | None, *, owner: str | None = None
    ) -> None:
        held, of = held_by(owner)
        self._conn.execute(
            "UPDATE notice_tasks SET next_poll = ?, polls = polls + 1,"
            " last_answer = COALESCE(?, last_answer), claimed_by = NULL, claimed_until = NULL"
            f" WHERE target = ? AND task_id = ?{held}",
            (next_poll, answer, task.target, task.task_id, *of),
        )

    def settle(
        self,
        task: Task,
        outcome: str,
        received: Iterable[str],
        refused: Iterable[tuple[str, str]],
        note: str | None,
        now: float,
        *,
        owner: str | None = None,
    ) -> bool:
        """Record what DingTalk said for every message of `task` and stop polling it. The caller
        moves the outbox rows (delivered, dead_letter, again) in the same transaction, if this
        returns True: False when `owner` (if given) no longer held the task (nothing recorded)."""
        held, of = held_by(owner)
        cursor = self._conn.execute(
            f"DELETE FROM notice_tasks WHERE target = ? AND task_id = ?{held}",
            (task.target, task.task_id, *of),
        )
        if owner is not None and not cursor.rowcount:
            return False
        received_json = json.dumps(list(received), ensure_ascii=False)
        refused_json = json.dumps([list(r) for r in refused], ensure_ascii=False)
        self._conn.executemany(
            "INSERT INTO notice_results (id, task_id, target, rule, outcome, received,"
            " refused, note, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id, task_id) DO UPDATE SET target = excluded.target,"
            " rule = excluded.rule, outcome = excluded.outcome, received = excluded.received,"
            " refused = excluded.refused, note = excluded.note, at = excluded.at",
            [
                (
                    id_,
                    task.task_id,
                    task.target,
                    rule,
                    outcome,
                    received_json,
                    refused_json,
                    note,
                    now,
                )
                for id_, rule in zip(task.ids, task.rules, strict=True)
            ],
        )
        self._conn.execute("DELETE FROM notice_results WHERE at < ?", (now - RESULTS_KEEP,))
        return True

    def results(self, id_: str) -> list[Result]:
        """What DingTalk said about message `id_`, oldest task first."""
        cursor = self._conn.execute(
            "SELECT id, task_id, target, rule, outcome, received, refused, note, at"
            " FROM notice_results WHERE id = ? ORDER BY at, task_id",
            (id_,),
        )
        return [
            Result(
                str(i),
                int(task_id),
                str(target),
                str(rule),
                str(outcome),
                tuple(json.loads(received)),
                tuple((str(u), str(c)) for u, c in json.loads(refused)),
                note,
                float(at),
            )
            for i, task_id, target, rule, outcome, received, refused, note, at in cursor.fetchall()
        ]

    def find_results(self, part: str) -> list[str]:
        """Ids of settled notices (no longer in the outbox) containing `part` (at most 2)."""
        cursor = self._conn.execute(
            "SELECT DISTINCT id FROM notice_results WHERE id LIKE ? ESCAPE '\\'"
            " ORDER BY id LIMIT 2",
            (like_containing(part),),
        )
        return [str(r[0]) for r in cursor.fetchall()]

    def task_of(self, id_: str) -> Task | None:
        """The task a sent message awaits the result of."""
        cursor = self._conn.execute(
            f"SELECT {_TASK_COLUMNS} FROM notice_tasks WHERE ids LIKE ?", (f'%"{id_}"%',)
        )
        row = cursor.fetchone()
        return _task(row) if row else None
