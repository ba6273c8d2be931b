"""The loop of one file input: find the files, read them, and commit events with offsets.

One thread per input. Polling every `poll_interval` is the source of truth (globs again, checks
every open file); a file-system event only wakes the loop early, so an inotify queue overflow or
a watch limit can delay lines but never lose them.

Offsets are committed in the same transaction as the outbox rows of the events read before
them: the tailer hands them to `submit` with the events (see offsets.py) and never touches the
store itself. When the intake refuses (the store is busy, or a target's queue is full) the batch
is retried and reading pauses: back-pressure, never a dropped line. A crash loses only what was
not committed, and that is read again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from bridge.config.model import FileInput
from bridge.errors import InputError, StoreError
from bridge.inputs.filetail.discovery import find_by_identity, find_files, watch_roots
from bridge.inputs.filetail.multiline import Record
from bridge.inputs.filetail.offsets import Offsets, OffsetUpdate, Submit
from bridge.inputs.filetail.reader import (
    FP_BYTES,
    FileReader,
    head_hash,
    lines_behind,
    start_at_end,
)
from bridge.inputs.filetail.records import ThresholdWindow, find_pattern, make_event
from bridge.inputs.filetail.scan import searcher
from bridge.logs import fmt_fields
from bridge.model import Event, FileKey, Position

log = logging.getLogger("bridge.inputs.file")

READ_BUDGET = 8 << 20  # bytes per file per round, so one busy file cannot starve the others
BATCH_EVENTS = 500  # commit at least this often while reading a backlog
COMMIT_EVERY = 1.0  # seconds between commits of offsets that moved without events
RETRY_AFTER = 1.0  # seconds before retrying a batch the intake refused
MIN_ROUND = 0.01  # a burst of file-system events becomes one round
FORGET_AFTER = 86_400.0  # positions of files gone this long are dropped from the store
PRUNE_EVERY = 3_600.0
COPY_WINDOW = 300.0  # seconds after a truncation in which a copy of the old content is known
# A copy is opened once its original was seen truncated and it holds what was read there, or once
# it kept its size this long (logrotate copies in chunks, then truncates at once).
COPY_SETTLE = 1.0
SCAN_COST_FACTOR = 50  # the time between full scans is at least 50 times what one took
START_RETRY_FIRST = 5.0  # seconds before trying again to start (the store was busy, say) ...
START_RETRY_MAX = 60.0  # ... doubling up to this


@dataclass
class TailStats:
    lines_matched: int = 0
    events: int = 0
    below_threshold: int = 0
    rotations: int = 0
    truncations: int = 0
    refused_batches: int = 0


@dataclass
class _Pending:
    events: list[Event] = field(default_factory=list)
    positions: dict[FileKey, Position] = field(default_factory=dict)
    forget: set[FileKey] = field(default_factory=set)


class Tailer:
    def __init__(
        self,
        spec: FileInput,
        offsets: Offsets,
        submit: Submit,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.offsets = offsets
        self.submit = submit
        self.clock = clock
        self.monotonic = monotonic
        self.readers: dict[FileKey, FileReader] = {}
        self.stats = TailStats()
        self.started_at = clock()
        self._searchers = [searcher(p.regex) for p in spec.patterns]
        self._threshold = ThresholdWindow(spec.threshold) if spec.threshold else None
        self._pending = _Pending()
        self._last_commit = 0.0
        # Positions of files not followed now: from the store at start, and of files retired
        # since (a rotated file the globs find again later resumes, not starts over).
        self._known: dict[FileKey, Position] = {}
        self._initial: set[FileKey] = set()  # files present at the first start: read_from
        self._first_run = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._rescan = True
        self._unreadable: set[str] = set()
        self._idle_paths: set[str] = set()  # files whose descriptors were closed for idleness
        self._unsettled_copies: dict[FileKey, tuple[int, float]] = {}  # size, unchanged since
        self._observer: Any = None
        self._started = False
        self._error: str | None = None  # why the last start or round failed; None when fine
        self._thread = threading.Thread(target=self._run, name=f"tail-{spec.name}", daemon=True)
        # Guards `readers` and their descriptors for status(), which runs on other threads.
        self._lock = threading.Lock()

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
        with self._lock:
            # Descriptors are closed under this lock, so a dup taken here names the same file.
            held = [(r, os.dup(r.fd) if r.fd is not None else None) for r in self.readers.values()]
        try:
            # The size now, not at the last round: the lag is what a scrape should see.
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
        return {
            "started_at": self.started_at.isoformat(timespec="milliseconds"),
            "state": self.state(),
            "error": self._error,
            "files": sorted(files, key=lambda f: str(f["path"])),
            "lines_cut": sum(r.lines_cut for r in self.readers.values()),
            **self.stats.__dict__,
        }

    def _run(self) -> None:
        if not self._start():
            with self._lock:
                for reader in self.readers.values():
                    reader.close()
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
        wall = self.clock().timestamp()
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
            self._watch()
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
        wall = self.clock().timestamp()
        dropped = self.offsets.prune(self.spec.name, self.readers, wall - FORGET_AFTER)
        kept = self.offsets.load(self.spec.name)  # what the store still keeps
        self._known = {**kept, **self._pending.positions}
        if dropped:
            log.info(fmt_fields("forgot gone files", input=self.spec.name, files=dropped))

    def _shutdown(self) -> None:
        if self._observer is not None:
            self._observer.stop()
        for reader in self.readers.values():
            if reader.joiner is not None and (done := reader.joiner.flush()) is not None:
                self._add_records(reader, [done])
            self._pending.positions[reader.key] = reader.position()
        self._commit(force=True)
        with self._lock:
            for reader in self.readers.values():
                reader.close()
        log.info(fmt_fields("file input stopped", input=self.spec.name))

    # -- discovery -----------------------------------------------------------------------------

    def _discover(
        self, now: float, found: dict[FileKey, tuple[str, os.stat_result]] | None = None
    ) -> None:
        if found is None:
            found = find_files(self.spec.paths, self.spec.exclude)
        for key, reader in list(self.readers.items()):
            if key in found:
                if reader.fd is None and reader.path != found[key][0]:
                    self._idle_paths.discard(reader.path)
                    self._idle_paths.add(found[key][0])
                reader.path = found[key][0]
                reader.rotated_at = None
                if reader.fd is None and found[key][1].st_size != reader.pos:
                    self._reopen(reader)
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
        for key in self._unsettled_copies.keys() - found.keys():
            del self._unsettled_copies[key]  # removed before it settled

    def _open(self, key: FileKey, path: str, now: float, rotated: bool = False) -> None:
        if not self._room():
            return  # found again at the next scan, when a descriptor is free
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            if path not in self._unreadable:
                self._unreadable.add(path)
                log.warning(
                    fmt_fields("cannot open", input=self.spec.name, path=path, error=exc.strerror)
                )
            return
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != key:  # replaced between the glob and the open
            os.close(fd)
            return
        known = self._known.get(key)
        how = "new file, from its start"
        offset = 0
        if known is not None:
            if known.fp_len and (
                info.st_size < known.fp_len or head_hash(fd, known.fp_len)[0] != known.fp
            ):
                how = "same inode but other content (reused), from its start"
            elif info.st_size < known.offset:
                how = "truncated while stopped, from its start"
            else:
                offset, how = known.offset, "resumed"
        elif key in self._initial and self._first_run:
            if self.spec.read_from == "end":
                offset, how = start_at_end(fd, info.st_size), "existing file, from its end"
            else:
                how = "existing file, from its start"
        elif (copied := self._copy_of(fd, info.st_size, now)) is not None:
            source, offset, live = copied
            # Where to start is known once the original was seen truncated (it was read up to
            # `offset` before that) and the copy holds that much. Until then the original may
            # still be read past `offset`, and logrotate may still be writing the copy: started
            # now, the copy would give lines read in the original a second time.
            if (live or offset > info.st_size) and not self._copy_settled(key, info.st_size, now):
                os.close(fd)
                return
            if live:  # not truncated after all (a plain copy): its content is read there
                offset = info.st_size
            offset = min(offset, start_at_end(fd, info.st_size))
            how = f"a copy of {source} (copytruncate), past what was read there"
        reader = FileReader(self.spec, key, path, fd, offset, self._searchers, now)
        if rotated:
            reader.rotated_at = now
        with self._lock:
            self.readers[key] = reader
        self._pending.positions[key] = reader.position()
        log.info(fmt_fields("following", input=self.spec.name, path=path, offset=offset, how=how))

    def _copy_settled(self, key: FileKey, size: int, now: float) -> bool:
        """Has this copy kept its size for COPY_SETTLE seconds? (A copy whose original is not
        truncated meanwhile is a plain copy; one shorter than what was read of its original was
        made before the original was read that far, so it holds nothing new.)"""
        seen = self._unsettled_copies.get(key)
        if seen is None or seen[0] != size:
            self._unsettled_copies[key] = (size, now)
            self._rescan = True  # look again soon, not after a long scan interval
            return False
        if now - seen[1] < COPY_SETTLE:
            self._rescan = True
            return False
        del self._unsettled_copies[key]
        return True

    def _copy_of(self, fd: int, size: int, now: float) -> tuple[str, int, bool] | None:
        """Is this new file a copy of one we follow (logrotate's copytruncate with a glob that
        also matches the copies)? Then its start was read already: the original's name, how far
        it was read, and whether that may still grow (see FileReader.copied_up_to)."""
        if size < FP_BYTES:
            return None  # too short to tell a copy from a file with the same first lines
        head = head_hash(fd, FP_BYTES)[0]
        for reader in self.readers.values():
            found = reader.copied_up_to(head, now, COPY_WINDOW)
            if found is not None:
                return reader.label_path, *found
        return None

    def _room(self) -> bool:
        """Is a descriptor free under max_open_files? Closes the longest-idle file if not."""
        open_readers = [r for r in self.readers.values() if r.fd is not None]
        if len(open_readers) < self.spec.max_open_files:
            return True
        idle = [r for r in open_readers if r.at_eof and r.rotated_at is None]
        if not idle:
            return False
        self._idle_close(min(idle, key=lambda r: r.last_change))
        return True

    def _reopen(self, reader: FileReader) -> None:
        if not self._room():
            return
        try:
            fd = os.open(reader.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        if reader.reopen(fd):
            self._idle_paths.discard(reader.path)
        else:
            os.close(fd)

    def _idle_close(self, reader: FileReader) -> None:
        """Close an idle file's descriptor; the next scan (or an event for it) reopens it when
        it grows."""
        with self._lock:
            reader.close()
        self._idle_paths.add(reader.path)

    def _retire(self, reader: FileReader) -> None:
        """Stop following a file: hand on what it held, remember or forget its position."""
        self._add_records(reader, reader.finish())
        self._idle_paths.discard(reader.path)
        with self._lock:
            reader.close()
            del self.readers[reader.key]
        if reader.deleted:
            self._pending.forget.add(reader.key)
            self._pending.positions.pop(reader.key, None)
        else:
            # A scan that came late (a loaded host) may find it again under a rotated name.
            self._known[reader.key] = self._pending.positions[reader.key] = reader.position()

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
            self._add_records(reader, records)
            busy |= not reader.at_eof
            if reader.position() != before:
                self._pending.positions[reader.key] = reader.position()
            if len(self._pending.events) >= BATCH_EVENTS:
                self._commit(force=True)
            if reader.rotated_at is not None and reader.at_eof:
                # Renamed away or deleted: the writer may still append to it for a while.
                if now - max(reader.last_change, reader.rotated_at) >= self.spec.rotate_wait:
                    self._retire(reader)
            elif reader.at_eof and now - reader.last_change >= self.spec.close_inactive:
                self._idle_close(reader)
        self._commit(force=now - self._last_commit >= COMMIT_EVERY)
        return busy

    def _add_records(self, reader: FileReader, records: list[Record]) -> None:
        if not records:
            return
        when = self.clock()
        for record in records:
            found = find_pattern(self.spec, record.text)
            if found is None:
                continue
            self.stats.lines_matched += 1
            extra: dict[str, Any] = {}
            if self._threshold is not None:
                count = self._threshold.hit(self.monotonic())
                if count is None:
                    self.stats.below_threshold += 1
                    continue
                extra = {"count": count, "within": self._threshold.spec.within}
            pattern, groups = found
            self._pending.events.append(
                make_event(self.spec, reader.label_path, record, pattern, groups, when, extra)
            )

    # -- committing ----------------------------------------------------------------------------

    def _commit(self, force: bool) -> None:
        pending = self._pending
        if not pending.events and not (force and (pending.positions or pending.forget)):
            return
        offsets = OffsetUpdate(pending.positions, pending.forget, self.clock().timestamp())
        while True:
            try:
                self.submit(self.spec, pending.events, offsets)
                break
            except (InputError, StoreError) as exc:
                self.stats.refused_batches += 1
                log.warning(
                    fmt_fields(
                        "file input paused, the outbox refused its lines; retrying",
                        input=self.spec.name,
                        events=len(pending.events),
                        reason=getattr(exc, "reason", "store"),
                    )
                )
                if self._stop.is_set() or self._stop.wait(RETRY_AFTER):
                    return  # stopping: the final commit tries once more; else read again later
        self.stats.events += len(pending.events)
        self._pending = _Pending()
        self._last_commit = self.monotonic()

    # -- wake-ups ------------------------------------------------------------------------------

    def _watch(self) -> None:
        handler = _Waker(self)
        observer = Observer()
        try:
            for directory, recursive in watch_roots(self.spec.paths).items():
                observer.schedule(handler, directory, recursive=recursive)
            observer.daemon = True
            observer.start()
        except OSError as exc:  # inotify limits: polling alone still finds everything
            log.warning(
                fmt_fields("no file-system events, polling only", input=self.spec.name, error=exc)
            )
            return
        self._observer = observer

    def wake(self, event_type: str, path: str) -> None:
        """A file-system event: read now; scan the globs again if files came or went, or if a
        file whose descriptor was closed for idleness grew."""
        came_or_went = event_type in ("created", "moved", "deleted")
        if came_or_went or (event_type == "modified" and path in self._idle_paths):
            self._rescan = True
        self._wake.set()


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


class _Waker(FileSystemEventHandler):
    def __init__(self, tailer: Tailer) -> None:
        self.tailer = tailer

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        self.tailer.wake(event.event_type, os.fsdecode(event.src_path))
