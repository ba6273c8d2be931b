"""`dingtalk-bridge outbox ...`: the messages in the state store, pending, sent (awaiting
DingTalk's answer on who received a work notice) and dead, and acting on them.

It runs beside the daemon: it opens the same state store (SQLite's WAL lets it read while the
daemon writes) and the daemon picks up revived rows within a second.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from bridge.cli.common import Action, config_arg, on_store, table, when
from bridge.config.model import Config, Rule
from bridge.delivery.recall import recall_ids
from bridge.dingtalk.client import DingTalkClient
from bridge.dingtalk.session import make_session
from bridge.durations import format_duration, parse_duration
from bridge.logs import REDACTOR
from bridge.model import Message
from bridge.pipeline.render import queued_message, queued_title
from bridge.store import records
from bridge.store.api import ReadTx, Store


def cmd_outbox(args: argparse.Namespace) -> int:
    return on_store(args, _OUTBOX)


def _outbox_list(args: argparse.Namespace, config: Config, store: Store) -> int:
    with store.reading() as tx:
        rows = tx.outbox.listing(args.status, args.target, args.limit)
    now = time.time()
    if args.json:
        print(json.dumps([_row_json(config, r) for r in rows], ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("the outbox is empty" if not args.status else f"no {args.status} messages")
        return 0
    table(
        [
            [
                r.id[:12],
                r.status,
                r.target,
                r.rule,
                format_duration(now - r.created_at),
                str(r.attempts),
                r.reason or "",
                str(r.errcode or ""),
                _title(config, r)[:60],
            ]
            for r in rows
        ],
        ["ID", "STATUS", "TARGET", "RULE", "AGE", "TRIES", "REASON", "ERRCODE", "TITLE"],
    )
    return 0


def _outbox_history(args: argparse.Namespace, config: Config, store: Store) -> int:
    """What was sent, newest first: each attempt with DingTalk's answer (store/history.py)."""
    with store.reading() as tx:
        sent = tx.history.recent(
            text=args.search or "", target=args.target, outcome=args.outcome, limit=args.limit
        )
    if args.json:
        print(json.dumps([asdict(s) for s in sent], ensure_ascii=False, indent=2))
        return 0
    if not sent:
        print("nothing sent yet" if not args.search else f"nothing sent matches {args.search!r}")
        return 0
    now = time.time()
    table(
        [
            [
                format_duration(now - s.at),
                s.id[:16],
                s.outcome,
                s.target,
                str(s.attempt),
                str(s.errcode if s.errcode is not None else ""),
                (s.errmsg or "")[:40],
                s.title[:50],
            ]
            for s in sent
        ],
        ["AGO", "ID", "OUTCOME", "TARGET", "TRY", "ERRCODE", "ERRMSG", "TITLE"],
    )
    return 0


def _rule(config: Config, name: str) -> Rule | None:
    return config.rules_by_name.get(name)


def _title(config: Config, row: records.Row) -> str:
    """A row's title as the sender would render it now (rows hold the event, not the text)."""
    return queued_title(_rule(config, row.rule), row.message, row.event, datetime.now(UTC))


def _message(config: Config, row: records.Row) -> Message:
    """The whole message as the sender would render it now."""
    now = datetime.now(UTC)
    return queued_message(_rule(config, row.rule), row.rule, row.message, row.event, now).message


def _row_json(config: Config, row: records.Row) -> dict[str, object]:
    message = _message(config, row)
    return {
        "id": row.id,
        "status": row.status,
        "target": row.target,
        "rule": row.rule,
        "fingerprint": row.fingerprint,
        "event_status": row.event_status,
        "created_at": row.created_at,
        "not_before": row.not_before,
        "attempts": row.attempts,
        "parts_sent": row.parts_sent,
        "reason": row.reason,
        "errcode": row.errcode,
        "errmsg": row.errmsg,
        "title": message.title,
        "msgtype": row.message.msgtype,
        "text": message.text,
    }


def _one(store: Store, prefix: str) -> records.Row | None:
    with store.reading() as tx:
        found = tx.outbox.find(prefix)
    if len(found) != 1:
        print(
            f"{'no' if not found else 'more than one'} message with id {prefix}…", file=sys.stderr
        )
        return None
    return found[0]


def _outbox_show(args: argparse.Namespace, config: Config, store: Store) -> int:
    """One message: queued, sent (a work notice awaiting its result) or dead, from the outbox;
    a work notice already settled (delivered, partly delivered) from its recorded results."""
    with store.reading() as tx:
        found = tx.outbox.find(args.id)
        settled = tx.notices.find_results(args.id) if not found else []
        if not found and not settled:
            settled = tx.appsends.find(args.id)
    if len(found) == 1:
        shown = _row_json(config, found[0])
        with store.reading() as tx:
            shown.update(_notice_json(tx, found[0].id, config))
            shown.update(_app_robot_json(tx, found[0].id, config))
    elif not found and len(settled) == 1:
        with store.reading() as tx:
            report = _notice_json(tx, settled[0], config)
            report.update(_app_robot_json(tx, settled[0], config))
        shown = _settled_json(settled[0], report)
    else:
        print(
            f"{'more than one' if found or settled else 'no'} message with id {args.id}…",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(shown, ensure_ascii=False, indent=2))
    return 0


def _settled_json(id_: str, report: dict[str, Any]) -> dict[str, Any]:
    """A message no longer in the outbox, from what DingTalk said of it."""
    if "results" not in report:  # an app robot's: delivered, or recalled since
        sends = report["app_robot_sends"]
        recalled = all(s["recalled_at"] for s in sends)
        # A one-to-one call reached someone unless DingTalk refused each of its users.
        reached = any(not s["userids"] or len(s["refused"]) < len(s["userids"]) for s in sends)
        last = sends[-1]
        return {
            "id": id_,
            "status": "recalled" if recalled else "delivered" if reached else "refused",
            "target": last["target"],
            "rule": last["rule"],
            **report,
        }
    last = report["results"][-1]
    return {
        "id": id_,
        "status": "delivered",  # no longer in the outbox: see the results for who got it
        "target": last["target"],
        "rule": last["rule"],
        **report,
    }


def _app_robot_json(tx: ReadTx, id_: str, config: Config) -> dict[str, Any]:
    """An app robot's calls that carried the message: the key a recall needs, the users
    DingTalk refused (and why), and whether it was recalled."""
    sends = tx.appsends.of(id_)
    if not sends:
        return {}
    return {
        "app_robot_sends": [
            {
                "target": s.target,
                "rule": s.rule,
                "process_query_key": s.process_query_key,
                "open_conversation_id": s.conversation,
                "userids": list(s.users),
                "refused": [{"userid": u, "why": w} for u, w in s.refused],
                "sent_at": when(s.sent_at, config.timezone),
                "recalled_at": when(s.recalled_at, config.timezone) if s.recalled_at else None,
                "recall_failed": s.recall_note,
            }
            for s in sends
        ]
    }


def _outbox_recall(args: argparse.Namespace, config: Config, store: Store) -> int:
    """Recall sent app-robot messages (see delivery/recall.py): one line per message."""
    ids: list[str] = []
    for prefix in args.ids:
        with store.reading() as tx:
            found = sorted({*tx.appsends.find(prefix), *(r.id for r in tx.outbox.find(prefix))})
        if len(found) != 1:
            print(
                f"{'no' if not found else 'more than one'} message with id {prefix}…",
                file=sys.stderr,
            )
            return 1
        ids.append(found[0])
    REDACTOR.set_secrets(config.secrets())
    client = DingTalkClient(make_session())
    results = recall_ids(store, client, config.targets, ids, time.time())
    for result in results:
        text = "recalled" if result.recalled else "not recalled"
        why = f" ({result.why})" if result.why else ""
        print(REDACTOR.scrub(f"{result.id}: {text}{why}"))
    return 0 if all(r.recalled for r in results) else 1


def _notice_json(tx: ReadTx, id_: str, config: Config) -> dict[str, Any]:
    """A work notice's task awaiting its result and what getsendresult said, per recipient."""
    shown: dict[str, Any] = {}
    task = tx.notices.task_of(id_)
    if task is not None:
        shown["awaiting_result"] = {
            "task_id": task.task_id,
            "sent_at": when(task.sent_at, config.timezone),
            "polls": task.polls,
            "next_poll": when(task.next_poll, config.timezone),
        }
    results = tx.notices.results(id_)
    if results:
        shown["results"] = [
            {
                "task_id": r.task_id,
                "target": r.target,
                "rule": r.rule,
                "outcome": r.outcome,
                "at": when(r.at, config.timezone),
                "received": list(r.received),
                "refused": [{"userid": u, "errcode": c} for u, c in r.refused],
                "note": r.note,
            }
            for r in results
        ]
    return shown


def _outbox_retry(args: argparse.Namespace, config: Config, store: Store) -> int:
    now = time.time()
    with store.reading() as tx:
        if args.all_dead:
            ids = [r.id for r in tx.outbox.listing(records.DEAD, args.target, limit=1_000_000)]
        else:
            ids = [row.id for prefix in args.ids if (row := _one(store, prefix)) is not None]
    with store.transaction() as tx:
        revived = tx.outbox.revive(ids, now)
        # A pending message named explicitly is made due now (skipping its backoff).
        tx.outbox.due_now(ids, now)
    print(f"{len(ids)} message(s) queued for delivery ({revived} were dead letters)")
    return 0 if ids or args.all_dead else 1


def _outbox_purge(args: argparse.Namespace, config: Config, store: Store) -> int:
    if not args.ids and not args.dead:
        print("name message ids, or --dead to purge dead letters", file=sys.stderr)
        return 2
    cutoff = time.time() - parse_duration(args.older_than) if args.older_than else float("inf")
    with store.reading() as tx:
        if args.dead:
            ids = [
                r.id
                for r in tx.outbox.listing(records.DEAD, args.target, limit=1_000_000)
                if r.created_at < cutoff
            ]
        else:
            ids = [row.id for prefix in args.ids if (row := _one(store, prefix)) is not None]
    with store.transaction() as tx:
        removed = tx.outbox.purge(ids)
    print(f"{removed} message(s) removed")
    return 0


_OUTBOX: dict[str, Action] = {
    "list": _outbox_list,
    "show": _outbox_show,
    "retry": _outbox_retry,
    "purge": _outbox_purge,
    "recall": _outbox_recall,
    "history": _outbox_history,
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    box = sub.add_parser("outbox", help="see and act on pending and dead messages")
    box.set_defaults(func=cmd_outbox)
    actions = box.add_subparsers(dest="action", required=True)
    p = actions.add_parser("list", help="pending and dead messages, oldest first")
    config_arg(p)
    p.add_argument("--status", choices=[records.PENDING, records.SENT, records.DEAD])
    p.add_argument("--target")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = actions.add_parser("history", help="what was sent, newest first, with DingTalk's answer")
    config_arg(p)
    p.add_argument("--search", help="only attempts whose id, title, target, rule, error or body"
                   " holds this text (any case)")  # fmt: skip
    p.add_argument("--target")
    p.add_argument("--outcome", choices=records.OUTCOMES)
    p.add_argument("--limit", type=int, default=100, help="at most this many (500 at most)")
    p.add_argument("--json", action="store_true", help="machine-readable, with the bodies sent")
    p = actions.add_parser("show", help="one message in full")
    config_arg(p)
    p.add_argument("id", help="the message id (any unique part of it, e.g. as listed)")
    p = actions.add_parser("retry", help="send dead letters again (or pending ones now)")
    config_arg(p)
    p.add_argument("ids", nargs="*", help="message ids (unique parts, e.g. as listed)")
    p.add_argument("--all-dead", action="store_true", help="every dead letter")
    p.add_argument("--target", help="with --all-dead: only this target's")
    p = actions.add_parser("purge", help="delete messages for good")
    config_arg(p)
    p.add_argument("ids", nargs="*", help="message ids (unique parts, e.g. as listed)")
    p.add_argument("--dead", action="store_true", help="every dead letter")
    p.add_argument("--older-than", help="with --dead: only those older than this, e.g. 7d")
    p.add_argument("--target", help="with --dead: only this target's")
    p = actions.add_parser(
        "recall", help="take back sent app-robot messages (within 24 hours of sending)"
    )
    config_arg(p)
    p.add_argument("ids", nargs="+", help="message ids (unique parts, e.g. as logged or listed)")
