"""App-robot sends DingTalk took: what `outbox recall` and `outbox show` need after the outbox
row is gone (a delivered row is deleted).

One record per call DingTalk answered with a `processQueryKey` (reference/dingtalk.md §6): a
message is one call per part (and per batch of 20 users), a digest's call is recorded for every
message it carried. Kept for RESULTS_KEEP (a week) like the work notices' results, though
DingTalk recalls only within 24 hours: `outbox show` still tells who was refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from bridge.store.codec import like_containing
from bridge.store.records import RESULTS_KEEP, AppRobotSend
from bridge.store.sqlconn import Connection

_COLUMNS = (
    "id, process_query_key, target, rule, robot_code, conversation, users, refused, sent_at,"
    " recalled_at, recall_note"
)


def _send(values: Sequence[object]) -> AppRobotSend:
    id_, key, target, rule, robot, conversation, users, refused, sent, recalled, note = values
    return AppRobotSend(
        str(id_),
        str(key),
        str(target),
        str(rule),
        str(robot),
        str(conversation) if conversation is not None else None,
        tuple(json.loads(str(users))),
        tuple((str(u), str(w)) for u, w in json.loads(str(refused))),
        float(sent),  # type: ignore[arg-type]
        float(recalled) if recalled is not None else None,  # type: ignore[arg-type]
        str(note) if note is not None else None,
    )


class SqlAppRobotSends:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def record(self, sends: Iterable[AppRobotSend], now: float) -> None:
        """Keep `sends` (a call retried after a lost answer: the newer record wins); forget
        those older than RESULTS_KEEP."""
        self._conn.executemany(
            f"INSERT INTO app_robot_sends ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id, process_query_key) DO UPDATE SET target = excluded.target,"
            " rule = excluded.rule, robot_code = excluded.robot_code,"
            " conversation = excluded.conversation, users = excluded.users,"
            " refused = excluded.refused, sent_at = excluded.sent_at",
            [
                (
                    s.id,
                    s.process_query_key,
                    s.target,
                    s.rule,
                    s.robot_code,
                    s.conversation,
                    json.dumps(list(s.users), ensure_ascii=False),
                    json.dumps([list(r) for r in s.refused], ensure_ascii=False),
                    s.sent_at,
                    s.recalled_at,
                    s.recall_note,
                )
                for s in sends
            ],
        )
        self._conn.execute("DELETE FROM app_robot_sends WHERE sent_at < ?", (now - RESULTS_KEEP,))

    def of(self, id_: str) -> list[AppRobotSend]:
        """The calls that carried message `id_`, in the order they were made."""
        cursor = self._conn.execute(
            f"SELECT {_COLUMNS} FROM app_robot_sends WHERE id = ?"
            " ORDER BY sent_at, process_query_key",
            (id_,),
        )
        return [_send(r) for r in cursor.fetchall()]

    def find(self, part: str) -> list[str]:
        """Ids of recorded sends containing `part` literally (at most 2)."""
        cursor = self._conn.execute(
            "SELECT DISTINCT id FROM app_robot_sends WHERE id LIKE ? ESCAPE '\\'"
            " ORDER BY id LIMIT 2",
            (like_containing(part),),
        )
        return [str(r[0]) for r in cursor.fetchall()]

    def singles(self, target: str, rule: str, since: float) -> list[AppRobotSend]:
        """`rule`'s messages sent alone (a call that carried one message, not a digest) to
        `target` from `since` on and not recalled: a storm's singles, for recall once its
        digest is sent. Not interactive cards (keys `card:...`, dingtalk/approbot.py): the
        robot's recall takes no card back."""
        cursor = self._conn.execute(
            f"SELECT {_COLUMNS} FROM app_robot_sends WHERE target = ? AND rule = ?"
            " AND sent_at >= ? AND recalled_at IS NULL AND process_query_key NOT LIKE 'card:%'"
            " AND process_query_key IN"
            " (SELECT process_query_key FROM app_robot_sends GROUP BY process_query_key"
            " HAVING COUNT(*) = 1) ORDER BY sent_at, id",
            (target, rule, since),
        )
        return [_send(r) for r in cursor.fetchall()]

    def recalled(self, keys: Iterable[str], now: float) -> None:
        """DingTalk recalled the calls of `keys`."""
        self._conn.executemany(
            "UPDATE app_robot_sends SET recalled_at = ?, recall_note = NULL"
            " WHERE process_query_key = ?",
            [(now, key) for key in keys],
        )

    def recall_failed(self, notes: Iterable[tuple[str, str]]) -> None:
        """DingTalk did not recall these calls: (key, why)."""
        self._conn.executemany(
            "UPDATE app_robot_sends SET recall_note = ? WHERE process_query_key = ?",
            [(note, key) for key, note in notes],
        )
