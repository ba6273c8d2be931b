"""Interactive cards DingTalk delivered (dingtalk/cards.py): what a click on one leads back to
(its message, its alert, the labels a silence matches), and which cards an acknowledgement or
the alert's resolution changes. Kept for RESULTS_KEEP (a week), as the app robot's sends.

A card is `settled` once its alert resolved and the card was told: a later firing of the same
alert is a new card, and its acknowledgement must not turn the old card back to "acked".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from bridge.store.records import RESULTS_KEEP, Card
from bridge.store.sqlconn import Connection

_COLUMNS = "out_track_id, id, target, rule, fingerprint, labels, sent_at"


def _card(values: Sequence[object]) -> Card:
    track, id_, target, rule, fingerprint, labels, sent = values
    return Card(
        str(track),
        str(id_),
        str(target),
        str(rule),
        str(fingerprint),
        dict(json.loads(str(labels))),
        float(sent),  # type: ignore[arg-type]
    )


class SqlCards:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def record(self, cards: Iterable[Card], now: float) -> None:
        """Keep `cards` (a card delivered again after a lost answer: the newer record wins);
        forget those older than RESULTS_KEEP."""
        self._conn.executemany(
            f"INSERT INTO cards ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (out_track_id) DO UPDATE SET id = excluded.id,"
            " target = excluded.target, rule = excluded.rule,"
            " fingerprint = excluded.fingerprint, labels = excluded.labels,"
            " sent_at = excluded.sent_at",
            [
                (
                    c.out_track_id,
                    c.id,
                    c.target,
                    c.rule,
                    c.fingerprint,
                    json.dumps(dict(c.labels), ensure_ascii=False, sort_keys=True),
                    c.sent_at,
                )
                for c in cards
            ],
        )
        self._conn.execute("DELETE FROM cards WHERE sent_at < ?", (now - RESULTS_KEEP,))

    def get(self, out_track_id: str) -> Card | None:
        """The card `out_track_id` (None: never ours, or forgotten)."""
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM cards WHERE out_track_id = ?", (out_track_id,)
        ).fetchone()
        return _card(row) if row else None

    def live(self, fingerprint: str) -> list[Card]:
        """The cards of alert `fingerprint` not settled yet, oldest first."""
        cursor = self._conn.execute(
            f"SELECT {_COLUMNS} FROM cards WHERE fingerprint = ? AND settled_at IS NULL"
            " ORDER BY sent_at, out_track_id",
            (fingerprint,),
        )
        return [_card(r) for r in cursor.fetchall()]

    def settle(self, out_track_ids: Iterable[str], now: float) -> None:
        """These cards were told their alert resolved: no later update is theirs."""
        self._conn.executemany(
            "UPDATE cards SET settled_at = ? WHERE out_track_id = ?",
            [(now, track) for track in out_track_ids],
        )
