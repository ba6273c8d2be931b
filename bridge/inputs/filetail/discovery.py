"""Which files an input's globs name right now, and which directories to watch for wake-ups."""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from bridge.model import FileKey


def excluded(path: str, exclude: Iterable[str]) -> bool:
    name = os.path.basename(path)
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in exclude)


def find_files(
    patterns: Iterable[str], exclude: Iterable[str]
) -> dict[FileKey, tuple[str, os.stat_result]]:
    """Regular files the globs match, by identity: a file two globs (or a symlink and its
    target) both name is followed once, under the first name found."""
    found: dict[FileKey, tuple[str, os.stat_result]] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            if excluded(path, exclude):
                continue
            try:
                info = os.stat(path)  # follows symlinks: the target is what is read
            except OSError:
                continue  # gone between the glob and the stat
            if stat.S_ISREG(info.st_mode):
                found.setdefault((info.st_dev, info.st_ino), (path, info))
    return found


def find_by_identity(directory: str, key: FileKey) -> str | None:
    """The file in `directory` with this identity (a file renamed while the bridge was down)."""
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if (
                    entry.inode() == key[1]
                    and entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_dev == key[0]
                ):
                    return entry.path
    except OSError:
        return None
    return None


def watch_roots(patterns: Iterable[str]) -> dict[str, bool]:
    """For each glob, the deepest directory that holds every file it can match (if it exists),
    and whether files can be deeper than that (so the watch must be recursive)."""
    roots: dict[str, bool] = {}
    for pattern in patterns:
        parts = Path(pattern).parts
        fixed: list[str] = []
        for part in parts[:-1]:
            if glob.has_magic(part):
                break
            fixed.append(part)
        recursive = len(fixed) < len(parts) - 1
        directory = Path(*fixed) if fixed else Path("/")
        if not directory.is_dir():
            continue  # polling finds the files once the directory exists
        key = str(directory)
        roots[key] = roots.get(key, False) or recursive
    return roots
