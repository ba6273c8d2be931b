"""The state directory and its database file as things on disk: is the directory usable, is the
database whole, and what to tell the operator when not (`check`, and `Store` when it opens).

Every failure here is a StateError whose message says what is wrong, where, and what to do; a
corrupt database is moved aside (see README, "The state directory")."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("bridge.store")

DB_NAME = "state.db"

# SQLite's primary result codes (sqlite3.h) that decide what a failure means.
_SQLITE_PERM, _SQLITE_READONLY, SQLITE_IOERR, _SQLITE_CORRUPT = 3, 8, 10, 11
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 13, 14, 26


class Corrupt(Exception):
    """SQLite's quick check found damage (the file opened, its pages are wrong)."""


class StateError(Exception):
    """The state directory or its database cannot be used. The message says what is wrong,
    where, and what the operator can do; it is shown as it is (no traceback)."""


def result_code(exc: sqlite3.Error) -> int:
    """The primary result code of an sqlite3 error (extended codes carry it in the low byte)."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_corrupt(exc: sqlite3.Error) -> bool:
    return result_code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def is_out_of_space(exc: sqlite3.Error) -> bool:
    return result_code(exc) == _SQLITE_FULL


def describe_path(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return "a dangling symlink"
    if path.is_dir():
        return "a directory"
    return "a regular file" if path.is_file() else "not a directory"


def check_directory(directory: Path, create: bool) -> None:
    """Raise StateError unless `directory` is a directory we can write in (made if `create`;
    else it must exist or its nearest existing parent must be writable)."""
    if directory.exists() and not directory.is_dir():
        raise StateError(
            f"state_dir {directory} is {describe_path(directory)}, not a directory: "
            "point state_dir at a directory (the bridge creates it) or move that file away"
        )
    if not directory.exists():
        if not create:
            parent = directory.parent
            while not parent.exists():
                parent = parent.parent
            if not parent.is_dir():
                raise StateError(
                    f"state_dir {directory} cannot be created: {parent} is "
                    f"{describe_path(parent)}: choose another state_dir"
                )
            _probe_write(parent, f"state_dir {directory} cannot be created in {parent}")
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"state_dir {directory} cannot be created ({exc.strerror}): create it, "
                "writable by the user the bridge runs as, or choose another state_dir"
            ) from None
    _probe_write(directory, f"state_dir {directory} is not writable")


def _probe_write(directory: Path, what: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=directory)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return  # full, not unusable: the store answers 503 until there is room again
        hint = (
            "it is on a read-only file system: mount it read-write or choose another state_dir"
            if exc.errno == errno.EROFS
            else "make it writable by the user the bridge runs as, or choose another state_dir"
        )
        raise StateError(f"{what} ({exc.strerror}): {hint}") from None
    os.close(fd)
    os.unlink(probe)


def unusable(path: Path, exc: sqlite3.Error) -> StateError:
    """The StateError for a database file SQLite cannot use (other than corruption)."""
    code = result_code(exc)
    if code == _SQLITE_FULL:
        advice = "its file system is full: free space there and start the bridge again"
    elif code in (_SQLITE_READONLY, _SQLITE_PERM):
        advice = (
            "it can only be read: make it (and its directory) writable by the user the bridge "
            "runs as, or mount the file system read-write"
        )
    elif code == _SQLITE_CANTOPEN:
        advice = (
            "make sure it is a regular file (or absent), readable and writable by the user the "
            "bridge runs as, in a writable directory"
        )
    else:
        advice = "check the file and its file system (dmesg may say more)"
    return StateError(f"state database {path} cannot be used ({exc}): {advice}")


def verify_state_dir(directory: Path) -> str:
    """For `check`: is `directory` usable as the state directory? Changes nothing (the database,
    when there is one, is opened read-only and checked). Returns what was found; raises
    StateError with a located message otherwise."""
    check_directory(directory, create=False)
    path = directory / DB_NAME
    if not path.exists():
        return f"state_dir {directory}: writable, no database yet (created at the first start)"
    if not path.is_file():
        raise StateError(
            f"state database {path} is {describe_path(path)}: move it away (the bridge creates the "
            "database) or choose another state_dir"
        )
    try:
        conn = connect_read_only(path)
    except sqlite3.Error as exc:
        raise unusable(path, exc) from None
    try:
        problem = integrity_problem(conn)
    except sqlite3.Error as exc:
        if not is_corrupt(exc):
            raise unusable(path, exc) from None
        problem = str(exc)
    finally:
        conn.close()
    if problem:
        raise StateError(
            f"state database {path} is corrupt ({problem}): `run` moves it aside to "
            f"{DB_NAME}.corrupt-<time> and starts an empty one (messages still queued in it are "
            "not sent); stop here to salvage it first (see README, 'The state directory')"
        )
    return f"state_dir {directory}: writable, database {path} opens and checks out"


def connect_read_only(path: Path) -> sqlite3.Connection:
    """The database at `path`, opened so that nothing can be written through it (for `check`
    and `render`, which look at the state beside a running daemon and must change nothing)."""
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5.0)


def integrity_problem(conn: sqlite3.Connection) -> str:
    """'' if SQLite's quick check passes, else its first complaint. quick_check reads every page
    (O(size), milliseconds for a queue of thousands), but skips the costly index cross-checks."""
    row = conn.execute("PRAGMA quick_check(1)").fetchone()
    result = str(row[0]) if row else "no answer to quick_check"
    return "" if result == "ok" else result


def move_aside(path: Path, reason: str) -> Path:
    """Rename a corrupt database (and its WAL, so SQLite still pairs them) out of the way."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        path.rename(aside)
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            wal.rename(aside.with_name(aside.name + "-wal"))
        path.with_name(path.name + "-shm").unlink(missing_ok=True)  # derived from the WAL
    except OSError as exc:
        raise StateError(
            f"state database {path} is corrupt ({reason}) and cannot be moved aside "
            f"({exc.strerror}): move it away by hand and start the bridge again"
        ) from None
    log.error(
        f'state database corrupt, moved aside path={path} moved_to={aside} error="{reason}"'
        " (an empty database is started; messages still queued in the old one are not sent;"
        " see README, 'The state directory')"
    )
    return aside
