"""The loop of one file input: find the files, read them, and commit events with offsets.

One thread per input. Polling every `poll_interval` is the source of truth (globs again, checks
every open file); a file-system event only wakes the loop early (wakeups.py), so an inotify
queue overflow or a watch limit can delay lines but never lose them.

The parts: where to start reading a file found (start.py, copies.py), the files followed and
their descriptors (followed.py), events and offsets committed together with back-pressure
(batch.py), what the input reports (status.py). This module holds the loop and the life of a
followed file: found, rotated away, read to its end, retired. A crash loses only what was not
committed, and that is read again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from bridge.clock import Clock
from bridge.config.model import FileInput
from bridge.errors import StoreError
from bridge.inputs.filetail.batch import Batch
from bridge.inputs.filetail.copies import COPY_SETTLE, CopySettling, original_of
from bridge.inputs.filetail.discovery import find_by_identity, find_files
from bridge.inputs.filetail.followed import FollowedFiles
from bridge.inputs.filetail.offsets import Offsets, Submit
from bridge.inputs.filetail.reader import FileReader
from bridge.inputs.filetail.scan import searcher
from bridge.inputs.filetail.start import OpenedFile, where_to_start
from bridge.inputs.filetail.status import TailStats, input_status
from bridge.inputs.filetail.wakeups import watch
from bridge.logs import fmt_fields
from bridge.model import FileKey, Position

# COPY_SETTLE and TailStats are named here too: tests step a Tailer by them.
__all__ = ["COPY_SETTLE", "TailStats", "Tailer"]

log = logging.getLogger("bridge.inputs.file")

READ_BUDGET = 8 << 20  # bytes per file per round, so one busy file cannot starve the others
BATCH_EVENTS = 500  # commit at least this often while reading a backlog
COMMIT_EVERY = 1.0  # seconds between commits of offsets that moved without events
MIN_ROUND = 0.01  # a burst of file-system events becomes one round
FORGET_AFTER = 86_400.0  # positions of files gone this long are dropped from the store
PRUNE_EVERY = 3_600.0
SCAN_COST_FACTOR = 50  # the time between full scans is at least 50 times what one took
START_RETRY_FIRST = 5.0  # seconds before trying again to start (the store was busy, say) ...
START_RETRY_MAX = 60.0  # ... doubling up to this


class Tailer:
    def __init__(
        self,
        spec: FileInput,
        offsets: Offsets,
        submit: Submit,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.offsets = offsets
        self.submit = submit
        self.clock = clock
        self.monotonic = monotonic
        self.stats = TailStats()
        self.started_at = clock.now()
        self._searchers = [searcher(p.regex) for p in spec.patterns]
        self._files = FollowedFiles(spec.name, spec.max_open_files)
        self._copies = CopySettling()
        self._stop = threading.Event()
        self._batch = Batch(spec, submit, self.stats, clock, monotonic, self._stop)
        # Positions of files not followed now: from the store at start, and of files retired
        # since (a rotated file the globs find again later resumes, not starts over).
        self._known: dict[FileKey, Position] = {}
        self._initial: set[FileKey] = set()  # files present at the first start: read_from
        self._first_run = False
        self._wake = threading.Event()
        self._rescan = True
        self._observer: Any = None
        self._started = False
        self._error: str | None = None  # why the last start or round failed; None when fine
        self._thread = threading.Thread(target=self._run, name=f"tail-{spec.name}", daemon=True)

    @property
    def readers(self) -> dict[FileKey, FileReader]:
        """The files followed now, by identity."""
        return self._files.readers

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def alive(self) -> bool:
        """The thread runs (what the systemd watchdog vouches for): it may still be retrying
        its start."""
        return self._thread.is_alive()

    def state(self) -> str:
        """running, starting (or retrying its start), failing (its last round raised), stopped."""
        if not self.alive():
            return "stopped"
        if not self._started:
            return "starting"
        return "running" if self._error is None else "failing"

    def status(self) -> dict[str, Any]:
        files = self._files.report()
        return input_status(
            self.started_at,
            self.state(),
            self._error,
            files,
            sum(r.lines_cut for r in self.readers.values()),
            self.stats,
        )

    def _run(self) -> None:
        if not self._start():
            self._files.close_all()
            return
        next_scan = 0.0
        next_prune = self.monotonic()
        while not self._stop.is_set():
            now = self.monotonic()
            busy = False
            try:
                if now >= next_prune:
                    self._prune()
                    next_prune = now + PRUNE_EVERY
                if now >= next_scan or self._rescan:
                    self._rescan = False
                    self._discover(now)
                    # Globbing thousands of files costs: keep it under ~2% of a core. Events
                    # for new, moved and deleted files still trigger a scan at once.
                    spent = self.monotonic() - now
                    next_scan = now + max(self.spec.poll_interval, SCAN_COST_FACTOR * spent)
                busy = self._round(now)
                self._error = None
            except Exception as exc:  # never let one bad file stop the input
                self._error = _describe(exc)
                log.exception(fmt_fields("file input round failed", input=self.spec.name))
            if not busy:
                self._wake.wait(max(0.0, min(self.spec.poll_interval, next_scan - now)))
                self._wake.clear()
                self._stop.wait(MIN_ROUND)
        self._shutdown()

    def _start(self) -> bool:
        """Start, retrying with a growing wait until it works or the input is stopped: a store
        locked for a while must not leave the input dead until the next restart."""
        delay = START_RETRY_FIRST
        while not self._stop.is_set():
            try:
                self._startup()
            except Exception as exc:
                self._error = f"cannot start: {_describe(exc)}"
                log.error(
                    fmt_fields(
                        "file input failed to start",
                        input=self.spec.name,
                        error=self._error,
                        retry_in=f"{delay:.0f}s",
                    ),
                    # Expected troubles (a busy store, an unreadable directory) need no trace.
                    exc_info=not isinstance(exc, StoreError | OSError),
                )
                self._stop.wait(delay)
                delay = min(delay * 2, START_RETRY_MAX)
                continue
            self._error = None
            self._started = True
            return True
        return False

    def _startup(self) -> None:
        wall = self.clock.time()
        # `or`: an earlier attempt that failed later on may have recorded the first run.
        self._first_run = self.offsets.first_run(self.spec.name, wall) or self._first_run
        self._known = self.offsets.load(self.spec.name)
        found = find_files(self.spec.paths, self.spec.exclude)
        self._initial = set(found)
        now = self.monotonic()
        self._discover(now, found)
        # Files followed before a restart that were renamed away meanwhile (rotation while the
        # bridge was down): found by identity next to their old name, and read to their end.
        for key, position in self._known.items():
            if key in self.readers or key in found:
                continue
            moved = find_by_identity(os.path.dirname(position.path), key)
            if moved is not None:
                self._open(key, moved, now, rotated=True)
        if self.spec.inotify:
            self._observer = watch(self.spec.name, self.spec.paths, self.wake)
        log.info(
            fmt_fields(
                "file input started",
                input=self.spec.name,
                files=len(self.readers),
                first_run=self._first_run,
                wakeups="inotify" if self._observer is not None else "polling only",
            )
        )

    def _prune(self) -> None:
        """Forget positions of files gone for a day (a rotated file read to its end, a deleted
        one): the table stays as small as the set of files that exist."""
        wall = self.clock.time()
        dropped = self.offsets.prune(self.spec.name, self.readers, wall - FORGET_AFTER)
        kept = self.offsets.load(self.spec.name)  # what the store still keeps
        self._known = {**kept, **self._batch.pending.positions}
        if dropped:
            log.info(fmt_fields("forgot gone files", input=self.spec.name, files=dropped))

    def _shutdown(self) -> None:
        if self._observer is not None:
            self._observer.stop()
        for reader in self.readers.values():
            if reader.joiner is not None and (done := reader.joiner.flush()) is not None:
                self._batch.add_records(reader.label_path, [done])
            self._batch.position(reader.key, reader.position())
        self._commit(force=True)
        self._files.close_all()
        log.info(fmt_fields("file input stopped", input=self.spec.name))

    # -- the life of a followed file -----------------------------------------------------------

    def _discover(
        self, now: float, found: dict[FileKey, tuple[str, os.stat_result]] | None = None
    ) -> None:
        if found is None:
            found = find_files(self.spec.paths, self.spec.exclude)
        for key, reader in list(self.readers.items()):
            if key in found:
                path, info = found[key]
                self._files.found_at(reader, path)
                reader.rotated_at = None
                if reader.fd is None and info.st_size != reader.pos:
                    self._files.reopen(reader)
            elif reader.rotated_at is None:
                reader.rotated_at = now
                self.stats.rotations += 1
                log.info(
                    fmt_fields(
                        "file rotated or removed, reading it to its end",
                        input=self.spec.name,
                        path=reader.label_path,
                    )
                )
                if reader.fd is None:
                    self._retire(reader)
        for key, (path, _info) in found.items():
            if key not in self.readers:
                self._open(key, path, now)
        self._copies.keep_only(found.keys())

    def _open(self, key: FileKey, path: str, now: float, rotated: bool = False) -> None:
        opened = self._files.open(key, path)
        if opened is None:
            return
        fd, info = opened
        file = OpenedFile(
            fd, info.st_size, lambda head: original_of(self.readers.values(), head, now)
        )
        start = where_to_start(
            file,
            self._known.get(key),
            key in self._initial and self._first_run,
            self.spec.read_from,
            lambda: self._copies.settled(key, info.st_size, now),
        )
        if start is None:
            os.close(fd)
            self._rescan = True  # a copy that may still change: look again soon
            return
        reader = FileReader(self.spec, key, path, fd, start.offset, self._searchers, now)
        if rotated:
            reader.rotated_at = now
        self._files.add(reader)
        self._batch.position(key, reader.position())
        log.info(
            fmt_fields(
                "following", input=self.spec.name, path=path, offset=start.offset, how=start.how
            )
        )

    def _retire(self, reader: FileReader) -> None:
        """Stop following a file: hand on what it held, remember or forget its position."""
        self._batch.add_records(reader.label_path, reader.finish())
        self._files.remove(reader)
        if reader.deleted:
            self._batch.forget(reader.key)
        else:
            # A scan that came late (a loaded host) may find it again under a rotated name.
            self._known[reader.key] = position = reader.position()
            self._batch.position(reader.key, position)

    # -- reading -------------------------------------------------------------------------------

    def _round(self, now: float) -> bool:
        """Read every open file once; True if some file has more to read right away."""
        busy = False
        for reader in list(self.readers.values()):
            if reader.fd is None:
                continue
            before = reader.position()
            try:
                records = reader.read(READ_BUDGET, now)
            except OSError as exc:
                log.warning(
                    fmt_fields("read failed", input=self.spec.name, path=reader.path, error=exc)
                )
                continue
            records += reader.timed_out(now)
            if reader.truncations:
                self.stats.truncations += reader.truncations
                log.warning(
                    fmt_fields(
                        "file truncated, reading it from its start",
                        input=self.spec.name,
                        path=reader.path,
                    )
                )
                reader.truncations = 0
            self._batch.add_records(reader.label_path, records)
            busy |= not reader.at_eof
            if reader.position() != before:
                self._batch.position(reader.key, reader.position())
            if len(self._batch.pending.events) >= BATCH_EVENTS:
                self._commit(force=True)
            if reader.rotated_at is not None and reader.at_eof:
                # Renamed away or deleted: the writer may still append to it for a while.
                if now - max(reader.last_change, reader.rotated_at) >= self.spec.rotate_wait:
                    self._retire(reader)
            elif reader.at_eof and now - reader.last_change >= self.spec.close_inactive:
                self._files.idle_close(reader)
        self._commit(force=now - self._batch.last_commit >= COMMIT_EVERY)
        return busy

    def _commit(self, force: bool) -> None:
        self._batch.commit(force)

    def wake(self, event_type: str, path: str) -> None:
        """A file-system event: read now; scan the globs again if files came or went, or if a
        file whose descriptor was closed for idleness grew."""
        came_or_went = event_type in ("created", "moved", "deleted")
        if came_or_went or (event_type == "modified" and path in self._files.idle_paths):
            self._rescan = True
        self._wake.set()


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
