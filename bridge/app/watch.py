"""What triggers a config reload: file changes (watchdog), debounced.

The directories holding the config file and its template files are watched, not the files:
editors save by writing a new file and renaming it over the old one, and Kubernetes swaps a
ConfigMap by re-pointing a `..data` symlink; both show up as events in the directory. Any event
there (re)starts a short timer; when it fires, the reload runs once, and the reload itself skips
when nothing it reads has changed (so a burst of fifty saves costs one or two reloads).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("bridge.reload")
# watchdog logs every inotify event it reads at debug level. With `--log-level debug` and the log
# written beside the config, each of those lines is itself a write in the watched directory: an
# endless loop (150,000 lines in 12 s). Its debug lines describe events we mostly ignore anyway.
logging.getLogger("watchdog").setLevel(logging.INFO)

DEBOUNCE = 1.0  # seconds of quiet after the last change before reloading


class Debouncer:
    """Calls `action` once, `delay` seconds after the last `poke()`."""

    def __init__(self, action: Callable[[], None], delay: float = DEBOUNCE) -> None:
        self.action = action
        self.delay = delay
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.delay, self.action)
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()


class _Handler(FileSystemEventHandler):
    def __init__(self, debouncer: Debouncer, names: frozenset[str]) -> None:
        self.debouncer = debouncer
        self.names = names

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads (our own, among others) change nothing
        touched = {os.path.basename(os.fsdecode(p)) for p in (event.src_path, event.dest_path)}
        # Our files by name (written in place, or renamed over by an editor), or Kubernetes'
        # `..data` swap (`..data_tmp`, `..2026_11_28...`). Other files in the directory (a state
        # directory or logs kept beside the config) are none of our business.
        if touched & self.names or any(name.startswith("..") for name in touched):
            self.debouncer.poke()


class ConfigWatcher:
    """Watches the directories of `files`; `reload` runs after changes settle."""

    def __init__(self, reload: Callable[[], Any], delay: float = DEBOUNCE) -> None:
        self.debouncer = Debouncer(lambda: reload(), delay)
        self._observer: Any = None
        self._watched: set[Path] = set()
        self._names: frozenset[str] = frozenset()

    def watch(self, files: Iterable[Path]) -> None:
        """(Re)point the watches at the directories of `files` (after each reload)."""
        paths = [Path(f).absolute() for f in files]
        directories = {p.parent for p in paths}
        names = frozenset(p.name for p in paths)
        if (directories, names) == (self._watched, self._names):
            return
        self.stop()
        observer = Observer()
        handler = _Handler(self.debouncer, names)
        for directory in sorted(directories):
            if directory.is_dir():
                observer.schedule(handler, str(directory), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer, self._watched, self._names = observer, directories, names
        log.debug("watching %s", ", ".join(str(d) for d in sorted(directories)))

    def stop(self) -> None:
        self.debouncer.cancel()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(2.0)
            self._observer = None
        self._watched = set()
