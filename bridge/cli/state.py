"""`dingtalk-bridge state migrate`: copy a single host's SQLite state into PostgreSQL.

    dingtalk-bridge state migrate --from sqlite:/var/lib/dingtalk-bridge \\
        --to-file /etc/dingtalk-bridge/database-url [--force]

The work is bridge/store/transfer.py's; here are the arguments, the summary and the exit codes
(EXIT_CODES, also in `--help` and README "Moving to PostgreSQL"). The database URL may hold a
password, so it can come from a file (`--to-file`, as `state: {url_file}`) rather than the
command line, and it is only ever shown redacted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bridge.cli.common import table
from bridge.config.dburl import redacted
from bridge.store.statedir import DB_NAME

OK, REFUSED, USAGE, FAILED = 0, 1, 2, 3
EXIT_CODES = f"""exit codes:
  {OK}  copied, and the row counts verified
  {REFUSED}  refused, nothing written: the source is in use or at another schema version, or
     the target holds data (without --force) or is newer; the message says what to do
  {USAGE}  wrong arguments (--from is not sqlite:PATH or names no database, --to is not a
     PostgreSQL URL, ...)
  {FAILED}  the copy failed (the database went away, a count differed): rolled back, the
     target holds what it held before
"""
SCHEMES = ("postgresql://", "postgres://")


def source_path(text: str) -> Path | None:
    """`sqlite:PATH`: the state directory (its state.db) or the database file itself."""
    if not text.startswith("sqlite:") or not text[len("sqlite:") :]:
        return None
    path = Path(text[len("sqlite:") :])
    return path / DB_NAME if path.is_dir() else path


def target_url(args: argparse.Namespace) -> str | None:
    """The URL from --to or --to-file (None after saying what is wrong)."""
    if args.to_file is not None:
        try:
            url: str = Path(args.to_file).read_text("utf-8").strip()
        except OSError as exc:
            print(f"error: --to-file {args.to_file}: {exc.strerror}", file=sys.stderr)
            return None
    else:
        url = args.to
    if not url.startswith(SCHEMES):
        where = f"the URL in {args.to_file}" if args.to_file else "--to"
        print(f"error: {where} must be a PostgreSQL URL (postgresql://...)", file=sys.stderr)
        return None
    return url


def cmd_migrate(args: argparse.Namespace) -> int:
    from bridge.store import transfer

    source = source_path(args.source)
    if source is None:
        print("error: --from must be sqlite:PATH (the state_dir, or its state.db)", file=sys.stderr)
        return USAGE
    if not source.is_file():
        print(f"error: --from: no SQLite state database at {source}", file=sys.stderr)
        return USAGE
    url = target_url(args)
    if url is None:
        return USAGE
    print(f"migrating {source} to {redacted(url)}", flush=True)
    try:
        report = transfer.migrate(source, url, force=args.force)
    except transfer.Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return REFUSED
    except transfer.Failed as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return FAILED
    if report.replaced:
        replaced = ", ".join(f"{t} {n}" for t, n in report.replaced.items())
        print(f"replaced what the target held (--force): {replaced}")
    table(
        [[c.table, str(c.rows), c.detail] for c in report.copied],
        ["TABLE", "ROWS", ""],
    )
    if report.skipped:
        print(f"not copied (an older version's tables, unused now): {', '.join(report.skipped)}")
    print(
        f"copied {report.rows} rows in {len(report.copied)} tables in one transaction;"
        f" counts verified; {report.target} is at schema version {report.version}"
    )
    print(
        "next: point the config's state at it (state: {url_file: FILE}) and start the bridge;"
        " never start a bridge on the SQLite file again (keep it until the new state runs)"
    )
    return OK


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    state = sub.add_parser("state", help="move the state between backends")
    actions = state.add_subparsers(dest="action", required=True)
    p = actions.add_parser(
        "migrate",
        help="copy an SQLite state into PostgreSQL (the bridge stopped)",
        description=(
            "Copy every table of a stopped bridge's SQLite state (pending messages, dead letters,"
            " silences, the notification log, ...) into a PostgreSQL database, in one"
            " transaction, and verify the row counts."
        ),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="sqlite:PATH",
        help="the SQLite state: its state_dir, or the state.db file",
    )
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--to", metavar="URL", help="postgresql://user:password@host:port/database")
    to.add_argument(
        "--to-file",
        metavar="FILE",
        help="a file holding the URL (as state: {url_file}), so the password is on no command line",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace what the target database holds already (default: refuse)",
    )
    p.set_defaults(func=cmd_migrate)
