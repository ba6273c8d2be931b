"""`dingtalk-bridge outbox ...` and `dingtalk-bridge silence ...`: operating on the state store.

These run beside the daemon: they open the same SQLite file (WAL lets them read while it writes)
and the daemon picks up their changes within a second (revived rows, new or expired silences).
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bridge.alerting import matchers
from bridge.config.compile import load_config
from bridge.config.model import Config, Rule
from bridge.durations import MAX_SILENCE, format_duration, format_time, parse_duration
from bridge.errors import ConfigError
from bridge.model import Message
from bridge.pipeline.render import queued_message, queued_title
from bridge.store import records
from bridge.store.api import ReadTx, Store
from bridge.store.backend import open_store
from bridge.store.statedir import StateError

DEFAULT_CONFIG = "/etc/dingtalk-bridge/config.yaml"
_REGEX_CHARS = re.compile(r"[.*+?()\[\]{}|^$\\]")


def load_or_report(path: str) -> Config | None:
    """The compiled config, or None after printing every problem (for the commands)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        count = len(exc.problems)
        print(f"{path}: {count} problem{'s' if count != 1 else ''}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem.format()}", file=sys.stderr)
        return None


def _when(stamp: float, tz: object) -> str:
    if isinstance(stamp, int | float) and stamp <= 0:
        return "always"
    return format_time(stamp, tz)  # type: ignore[arg-type]


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


# -- outbox ------------------------------------------------------------------------------------


Action = Callable[[argparse.Namespace, Config, Store], int]


def _on_store(args: argparse.Namespace, actions: dict[str, Action]) -> int:
    """Run the chosen action with the config's state store open."""
    config = load_or_report(args.config)
    if config is None:
        return 1
    try:
        store = open_store(config.state_dir, config.synchronous)
    except StateError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 1
    try:
        return actions[args.action](args, config, store)
    finally:
        store.close()


def cmd_outbox(args: argparse.Namespace) -> int:
    return _on_store(args, _OUTBOX)


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
    _table(
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


def _rule(config: Config, name: str) -> Rule | None:
    return next((r for r in config.rules if r.name == name), None)


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
    if len(found) == 1:
        shown = _row_json(config, found[0])
        with store.reading() as tx:
            shown.update(_notice_json(tx, found[0].id, config))
    elif not found and len(settled) == 1:
        with store.reading() as tx:
            report = _notice_json(tx, settled[0], config)
        last = report["results"][-1]
        shown = {
            "id": settled[0],
            "status": "delivered",  # no longer in the outbox: see the results for who got it
            "target": last["target"],
            "rule": last["rule"],
            **report,
        }
    else:
        print(
            f"{'more than one' if found or settled else 'no'} message with id {args.id}…",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(shown, ensure_ascii=False, indent=2))
    return 0


def _notice_json(tx: ReadTx, id_: str, config: Config) -> dict[str, Any]:
    """A work notice's task awaiting its result and what getsendresult said, per recipient."""
    shown: dict[str, Any] = {}
    task = tx.notices.task_of(id_)
    if task is not None:
        shown["awaiting_result"] = {
            "task_id": task.task_id,
            "sent_at": _when(task.sent_at, config.timezone),
            "polls": task.polls,
            "next_poll": _when(task.next_poll, config.timezone),
        }
    results = tx.notices.results(id_)
    if results:
        shown["results"] = [
            {
                "task_id": r.task_id,
                "target": r.target,
                "rule": r.rule,
                "outcome": r.outcome,
                "at": _when(r.at, config.timezone),
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
}


# -- silences ----------------------------------------------------------------------------------


def cmd_silence(args: argparse.Namespace) -> int:
    return _on_store(args, _SILENCE)


def _parse_match(text: str) -> matchers.Matcher:
    matcher = matchers.parse(text)
    if matcher.op == "=" and _REGEX_CHARS.search(matcher.value):
        # `--match 'alertname=Disk.*'` means a pattern to nearly everyone who types it.
        print(
            f'note: matching {matcher.name}=~"{matcher.value}" as a regular expression',
            file=sys.stderr,
        )
        return matchers.parse(f'{matcher.name}=~"{matcher.value}"')
    return matcher


def _silence_add(args: argparse.Namespace, config: Config, store: Store) -> int:
    try:
        parsed = tuple(_parse_match(m) for m in args.match)
        now = time.time()
        if args.until:
            until = datetime.fromisoformat(args.until.replace("Z", "+00:00"))
            if until.tzinfo is None:
                until = until.replace(tzinfo=config.timezone)
            ends = until.timestamp()
        else:
            ends = now + parse_duration(args.duration)  # bounded below
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if ends <= now:
        print("error: the silence would end before it starts", file=sys.stderr)
        return 2
    if ends - now > MAX_SILENCE:
        print(
            f"error: a silence lasts at most {format_duration(MAX_SILENCE)} (a year); "
            "for longer, change the rules in the config",
            file=sys.stderr,
        )
        return 2
    with store.transaction() as tx:
        silence = tx.silences.add(parsed, now, ends, args.comment, args.author, now)
    print(f"silence {silence.id} until {_when(ends, config.timezone)}: {silence.describe()}")
    return 0


def _silence_list(args: argparse.Namespace, config: Config, store: Store) -> int:
    now = time.time()
    with store.reading() as tx:
        runtime = tx.silences.load(None if args.all else now)
    rows = [
        [
            s.id,
            s.describe(),
            _when(s.starts_at, config.timezone),
            _when(s.ends_at, config.timezone),
            "active" if s.active(now) else ("expired" if s.ends_at <= now else "pending"),
            s.source,
            s.author,
            s.comment,
        ]
        for s in [*config.silences, *runtime]
        if args.all or s.ends_at > now
    ]
    if not rows:
        print("no silences")
        return 0
    _table(rows, ["ID", "MATCHERS", "STARTS", "ENDS", "STATE", "SOURCE", "AUTHOR", "COMMENT"])
    return 0


def _silence_expire(args: argparse.Namespace, config: Config, store: Store) -> int:
    with store.transaction() as tx:
        ids = tx.silences.expire(args.id, time.time())
    if len(ids) != 1:
        problem = "no active silence" if not ids else "more than one silence"
        print(f"{problem} with id {args.id}…", file=sys.stderr)
        return 1
    print(f"silence {ids[0]} expired")
    return 0


_SILENCE: dict[str, Action] = {
    "add": _silence_add,
    "list": _silence_list,
    "expire": _silence_expire,
}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-c",
            "--config",
            default=DEFAULT_CONFIG,
            help=f"the YAML config (for state_dir); default {DEFAULT_CONFIG}",
        )

    box = sub.add_parser("outbox", help="see and act on pending and dead messages")
    box.set_defaults(func=cmd_outbox)
    actions = box.add_subparsers(dest="action", required=True)
    p = actions.add_parser("list", help="pending and dead messages, oldest first")
    config_arg(p)
    p.add_argument("--status", choices=[records.PENDING, records.SENT, records.DEAD])
    p.add_argument("--target")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="machine-readable output")
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

    sil = sub.add_parser("silence", help="add, list and expire silences")
    sil.set_defaults(func=cmd_silence)
    actions = sil.add_subparsers(dest="action", required=True)
    p = actions.add_parser("add", help="silence matching alerts for a while")
    config_arg(p)
    p.add_argument(
        "--match",
        action="append",
        required=True,
        help="label=value, label!=value, label=~regex, label!~regex (repeatable)",
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument("--for", dest="duration", default="1h", help="how long, e.g. 2h (default 1h)")
    when.add_argument("--until", help="an end time, e.g. 2026-12-01T08:00 (config's time zone)")
    p.add_argument("--comment", default="", help="why")
    p.add_argument("--author", default=getpass.getuser(), help="who (default: you)")
    p = actions.add_parser("list", help="active and pending silences")
    config_arg(p)
    p.add_argument("--all", action="store_true", help="also expired ones")
    p = actions.add_parser("expire", help="end a silence now")
    config_arg(p)
    p.add_argument("id", help="the silence id (a unique prefix is enough)")
