"""The files an input follows, and their descriptors under `max_open_files`.

A file read to its end and unchanged for `close_inactive` gives its descriptor back (an idle
close); the next scan, or a file-system event for its path, reopens it when it grows. When every
descriptor is taken, the longest-idle file is closed to make room. Descriptors are opened,
closed and removed under one lock, because the status report (on other threads) duplicates them
to measure how far each file is behind.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from bridge.inputs.filetail.reader import FileReader, lines_behind
from bridge.logs import fmt_fields
from bridge.model import FileKey

log = logging.getLogger("bridge.inputs.file")


class FollowedFiles:
    def __init__(self, input_name: str, max_open_files: int) -> None:
        self.input_name = input_name
        self.max_open_files = max_open_files
        self.readers: dict[FileKey, FileReader] = {}
        self.idle_paths: set[str] = set()  # files whose descriptors were closed for idleness
        self._unreadable: set[str] = set()  # warned about once
        self._lock = threading.Lock()

    def open(self, key: FileKey, path: str) -> tuple[int, os.stat_result] | None:
        """A descriptor for the file the globs found as `key` at `path`, and its stat; None if
        no descriptor is free (found again at the next scan), it cannot be opened, or `path`
        names another file by now."""
        if not self._room():
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            if path not in self._unreadable:
                self._unreadable.add(path)
                log.warning(
                    fmt_fields("cannot open", input=self.input_name, path=path, error=exc.strerror)
                )
            return None
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != key:  # replaced between the glob and the open
            os.close(fd)
            return None
        return fd, info

    def add(self, reader: FileReader) -> None:
        with self._lock:
            self.readers[reader.key] = reader

    def found_at(self, reader: FileReader, path: str) -> None:
        """The globs found a followed file (again) at `path`, renamed or not."""
        if reader.fd is None and reader.path != path:
            self.idle_paths.discard(reader.path)
            self.idle_paths.add(path)
        reader.path = path

    def reopen(self, reader: FileReader) -> None:
        """A new descriptor for a file closed while idle, if one is free and its path still
        names it."""
        if not self._room():
            return
        try:
            fd = os.open(reader.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        if reader.reopen(fd):
            self.idle_paths.discard(reader.path)
        else:
            os.close(fd)

    def idle_close(self, reader: FileReader) -> None:
        """Close an idle file's descriptor; the next scan (or an event for it) reopens it when
        it grows."""
        with self._lock:
            reader.close()
        self.idle_paths.add(reader.path)

    def remove(self, reader: FileReader) -> None:
        """Stop following a file and close its descriptor."""
        self.idle_paths.discard(reader.path)
        with self._lock:
            reader.close()
            del self.readers[reader.key]

    def close_all(self) -> None:
        with self._lock:
            for reader in self.readers.values():
                reader.close()

    def _room(self) -> bool:
        """Is a descriptor free under max_open_files? Closes the longest-idle file if not."""
        open_readers = [r for r in self.readers.values() if r.fd is not None]
        if len(open_readers) < self.max_open_files:
            return True
        idle = [r for r in open_readers if r.at_eof and r.rotated_at is None]
        if not idle:
            return False
        self.idle_close(min(idle, key=lambda r: r.last_change))
        return True

    def report(self) -> list[dict[str, Any]]:
        """Each file as the status shows it, sorted by path, with the lines not read yet as the
        file is now (not at the last round: the lag is what a scrape should see)."""
        with self._lock:
            # Descriptors are closed under this lock, so a dup taken here names the same file.
            held = [(r, os.dup(r.fd) if r.fd is not None else None) for r in self.readers.values()]
        try:
            spans = [
                (
                    fd,
                    r.offset,
                    os.fstat(fd).st_size if fd is not None else max(r.size_seen, r.offset),
                )
                for r, fd in held
            ]
            behind = lines_behind(spans)
        finally:
            for _, fd in held:
                if fd is not None:
                    os.close(fd)
        files = [
            {
                "path": r.path,
                "offset": r.offset,
                "size": size,
                "lines_behind": lines,
                "open": fd is not None,
                "rotated": r.rotated_at is not None,
            }
            for (r, fd), (_, _, size), lines in zip(held, spans, behind, strict=True)
        ]
        return sorted(files, key=lambda f: str(f["path"]))
