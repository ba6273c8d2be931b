"""`dingtalk-bridge silence ...`: silences from the command line, through the same desk as
the chat's `silence` and `expire` (app/desk.py): kept in the state store, mirrored to
Alertmanager when its API is configured. The daemon picks them up within a second.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from bridge.alerting import matchers
from bridge.alerting.silences import silence_end
from bridge.app.desk import Desk
from bridge.cli.common import Action, config_arg, on_store, table, when
from bridge.clock import SYSTEM_CLOCK
from bridge.config.model import Config
from bridge.dingtalk.session import make_session
from bridge.store.api import Store


def _desk(config: Config, store: Store) -> Desk:
    """The daemon's desk on this process's store handle: the running daemon has no silence
    cache to tell (it reloads silences within a second), and no status to give here."""
    return Desk(
        store, lambda: config, make_session(), SYSTEM_CLOCK, dict, lambda: None, locale="en"
    )


def cmd_silence(args: argparse.Namespace) -> int:
    return on_store(args, _SILENCE)


def _parse_match(text: str) -> matchers.Matcher:
    matcher, note = matchers.parse_typed(text)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return matcher


def _silence_add(args: argparse.Namespace, config: Config, store: Store) -> int:
    try:
        parsed = tuple(_parse_match(m) for m in args.match)
        now = time.time()
        ends = silence_end(args.duration, args.until or "", config.timezone, now)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    silence, note = _desk(config, store).add_silence(parsed, now, ends, args.comment, args.author)
    print(f"silence {silence.id} until {when(ends, config.timezone)}: {silence.describe()}{note}")
    return 0


def _silence_list(args: argparse.Namespace, config: Config, store: Store) -> int:
    now = time.time()
    with store.reading() as tx:
        runtime = tx.silences.load(None if args.all else now)
    rows = [
        [
            s.id,
            s.describe(),
            when(s.starts_at, config.timezone),
            when(s.ends_at, config.timezone),
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
    table(rows, ["ID", "MATCHERS", "STARTS", "ENDS", "STATE", "SOURCE", "AUTHOR", "COMMENT"])
    return 0


def _silence_expire(args: argparse.Namespace, config: Config, store: Store) -> int:
    ids, note = _desk(config, store).expire_silence(args.id, time.time(), args.author)
    if len(ids) != 1:
        problem = "no active silence" if not ids else "more than one silence"
        print(f"{problem} with id {args.id}…", file=sys.stderr)
        return 1
    print(f"silence {ids[0]} expired{note}")
    return 0


_SILENCE: dict[str, Action] = {
    "add": _silence_add,
    "list": _silence_list,
    "expire": _silence_expire,
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    p.add_argument("--author", default=getpass.getuser(), help="who ends it (default: you)")
