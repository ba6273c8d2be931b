"""File-system events that wake a file input early (inotify through watchdog).

Only a hint: polling stays the source of truth, so an inotify queue overflow or a watch limit
can delay lines but never lose them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from bridge.inputs.filetail.discovery import watch_roots
from bridge.logs import fmt_fields

log = logging.getLogger("bridge.inputs.file")

Wake = Callable[[str, str], None]  # (event type, path)


def watch(input_name: str, paths: Iterable[str], wake: Wake) -> Any:
    """A started observer calling `wake` for the directories the globs can match in; None if
    the system refuses (inotify limits): polling alone still finds everything."""
    handler = _Waker(wake)
    observer = Observer()
    try:
        for directory, recursive in watch_roots(paths).items():
            observer.schedule(handler, directory, recursive=recursive)
        observer.daemon = True
        observer.start()
    except OSError as exc:
        log.warning(fmt_fields("no file-system events, polling only", input=input_name, error=exc))
        return None
    return observer


class _Waker(FileSystemEventHandler):
    def __init__(self, wake: Wake) -> None:
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        self.wake(event.event_type, os.fsdecode(event.src_path))
