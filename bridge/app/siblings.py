"""One worker of `server.workers` (app/workers.py starts them): who it is, and what it tells its
siblings so that whichever worker takes a /metrics or /-/ready connection describes them all.

The kernel hands each connection to one worker, so a scrape sees one process. Each worker
therefore writes a snapshot every second (SNAPSHOT_EVERY) into the group's directory (made by
the supervisor, removed when it exits; same host only): its pid and replica id, whether it is
healthy and ready and why not, and the samples of its own counters (metrics.local_families: the
intake's, the senders', the notice poller's, the file inputs'). The worker answering adds its
siblings' latest snapshots to its own numbers; what comes from the shared store (queue depths,
dead letters) it reads itself and does not add. So a sibling's counters are up to a second
(plus a scrape) stale, never counted twice, and a restarted worker's start from 0 again, which
Prometheus takes as a counter reset, as after a restart of a single process.

A snapshot is written to a temporary name and renamed, so a reader never sees half of one. One
older than STALE_AFTER belongs to a worker that is gone or wedged: /-/ready names it among its
warnings (the others still serve, and the supervisor restarts it), and its numbers are left out.

The supervisor reads the same snapshots: a worker serves once its first one is there (systemd's
READY=1 waits for every worker), and its watchdog pings only while every snapshot is fresh and
says healthy.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from bridge import jsontext
from bridge.logs import LogRing, matching

log = logging.getLogger("bridge")

# The supervisor tells each worker who it is through these (a worker is the same command, run
# again, so its environment is the one channel that needs no new command-line option).
ENV_WORKER = "DINGTALK_BRIDGE_WORKER"  # "index/count"
ENV_SOCKET_FD = "DINGTALK_BRIDGE_WORKER_FD"  # the inherited listening socket, if shared
ENV_GROUP_DIR = "DINGTALK_BRIDGE_WORKER_DIR"  # where the snapshots are
ENV_PARENT = "DINGTALK_BRIDGE_WORKER_PARENT"  # the supervisor's pid: gone means stop
ENV_PART = "DINGTALK_BRIDGE_WORKER_PART"  # with server.background_worker: "http" or "background"

# What a worker runs: everything ("whole": every worker of a group without a background
# worker), HTTP only ("http"), or everything but HTTP ("background").
Part = Literal["whole", "http", "background"]

SNAPSHOT_EVERY = 1.0  # seconds
STALE_AFTER = 5.0  # seconds without a snapshot: the worker is gone, restarting or wedged
SHARED_LOG_BYTES = 1 << 20  # a worker's shared log file; the older one is as large at most


@dataclass(frozen=True)
class WorkerRole:
    """This process's place in the group."""

    index: int
    count: int
    group_dir: Path
    parent_pid: int
    socket_fd: int | None  # None: bind the address itself with SO_REUSEPORT
    part: Part = "whole"

    @property
    def reads_files(self) -> bool:
        """File inputs (and Stream connections) run in one process only: their offsets are the
        node's, not the process's. The background worker's, or else worker 0's."""
        return self.part == "background" or (self.part == "whole" and self.index == 0)

    @property
    def serves_http(self) -> bool:
        return self.part != "background"

    @property
    def sends(self) -> bool:
        """Runs the senders and the timed jobs (group flushes, expiry, escalations, notices)."""
        return self.part != "http"

    def snapshot_path(self, index: int) -> Path:
        return self.group_dir / f"worker-{index}.json"

    def log_paths(self, index: int) -> tuple[Path, Path]:
        """Worker `index`'s recent log lines: the older file, then the one being written."""
        return self.group_dir / f"log-{index}.old.txt", self.group_dir / f"log-{index}.txt"

    def share_path(self, name: str, index: int) -> Path:
        """Worker `index`'s share `name` (see Share)."""
        return self.group_dir / f"{name}-{index}.json"

    def orphaned(self) -> bool:
        """The supervisor is gone (kill -9): this worker stops too, rather than serve alone."""
        return self.parent_pid > 0 and os.getppid() != self.parent_pid

    def reload_group(self) -> None:
        """POST /-/reload reached this worker: the supervisor passes a SIGHUP to every worker
        (this one finds its config unchanged by then)."""
        if self.parent_pid > 0:
            os.kill(self.parent_pid, signal.SIGHUP)


def role_from_env(environ: dict[str, str] | None = None) -> WorkerRole | None:
    """This process's role when a supervisor started it, else None (a process of its own)."""
    env = os.environ if environ is None else environ
    worker = env.get(ENV_WORKER, "")
    index_text, _, count_text = worker.partition("/")
    if not (index_text.isdigit() and count_text.isdigit()):
        return None
    fd_text = env.get(ENV_SOCKET_FD, "")
    parts: dict[str, Part] = {"http": "http", "background": "background"}
    return WorkerRole(
        index=int(index_text),
        count=int(count_text),
        group_dir=Path(env[ENV_GROUP_DIR]),
        parent_pid=int(env.get(ENV_PARENT, "0") or 0),
        socket_fd=int(fd_text) if fd_text.isdigit() else None,
        part=parts.get(env.get(ENV_PART, ""), "whole"),
    )


def write_snapshot(path: Path, snapshot: Any, fast: bool = False) -> None:
    """Atomically: a reader sees the previous snapshot or this one, never a part. `fast`:
    through orjson, for a share (thousands of alerts a second under a storm: 5 ms, not 15),
    which holds only strings and finite numbers; a snapshot's metrics may hold an infinity,
    which only the standard encoder writes."""
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    if fast:
        partial.write_bytes(jsontext.dumps_bytes(snapshot))
    else:
        partial.write_text(json.dumps(snapshot), "utf-8")
    os.replace(partial, path)


def read_snapshot(path: Path) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):  # not written yet, or removed with the group
        return None
    return loaded


def fresh(snapshot: dict[str, Any] | None, now: float) -> bool:
    return snapshot is not None and now - float(snapshot.get("at", 0)) <= STALE_AFTER


class Share(Protocol):
    """Something of a worker's the others show too: a JSON value, and a version that changes
    whenever it does (inputs/received.py ReceivedBodies, app/firing.py FiringIndex)."""

    @property
    def version(self) -> int: ...

    def shared(self) -> Any: ...


class Siblings:
    """The worker side: writes this worker's snapshot every second, reads the others'."""

    def __init__(
        self,
        role: WorkerRole,
        take: Callable[[], dict[str, Any]],
        shares: Mapping[str, Share] | None = None,
        ring: LogRing | None = None,
    ) -> None:
        self.role = role
        self._take = take  # this worker's snapshot now (app/run.py builds it from the bridge)
        # What the console shows of every worker (the playground's bodies, the silence
        # preview's alerts): each written beside the snapshot, only when it changed (under a
        # storm once a second; idle, never).
        self._shares = dict(shares or {})
        self._written: dict[str, int] = {}  # each share's version last written
        # So do a message's console page and its log lines (the sender of another worker may
        # have sent it): the lines logged since the last second, appended as one write.
        self._ring = ring
        self._ring_mark = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="snapshots", daemon=True)

    def start(self) -> None:
        self.write()  # at once: the supervisor counts this worker as serving from here
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def write(self) -> None:
        try:
            snapshot = {**self._take(), "index": self.role.index, "pid": os.getpid()}
            snapshot["at"] = time.time()
            write_snapshot(self.role.snapshot_path(self.role.index), snapshot)
            for name, share in self._shares.items():
                version = share.version
                if version != self._written.get(name):
                    path = self.role.share_path(name, self.role.index)
                    write_snapshot(path, share.shared(), fast=True)
                    self._written[name] = version
            if self._ring is not None:
                self._share_log(self._ring)
        except Exception as exc:  # never fatal: the next second tries again
            log.warning("cannot write this worker's snapshot: %s", exc)

    def _loop(self) -> None:
        while not self._stop.wait(SNAPSHOT_EVERY):
            self.write()

    def _share_log(self, ring: LogRing) -> None:
        """Append the lines logged since the last call (one JSON string a line: a traceback
        spans lines); past SHARED_LOG_BYTES the file becomes the older one, replacing it."""
        lines, self._ring_mark = ring.since(self._ring_mark)
        if not lines:
            return
        old, current = self.role.log_paths(self.role.index)
        with current.open("a", encoding="utf-8") as out:
            out.write("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
            size = out.tell()
        if size > SHARED_LOG_BYTES:
            os.replace(current, old)

    def others_log_lines(self, containing: str, limit: int) -> list[list[str]]:
        """Each other worker's recent log lines holding `containing` (its last `limit`)."""
        found: list[list[str]] = []
        for index in range(self.role.count):
            if index == self.role.index:
                continue
            lines: list[str] = []
            for path in self.role.log_paths(index):
                try:
                    text = path.read_text("utf-8", errors="replace")
                except OSError:  # not written yet, or moved to the older name meanwhile
                    continue
                lines += [line for line in map(_logged, text.splitlines()) if line is not None]
            found.append(matching(lines, containing, limit))
        return found

    def others_shared(self, name: str) -> list[Any]:
        """Each other worker's share `name`, as it last wrote it (None where it wrote none);
        the reader makes sense of it, distrusting what it cannot."""
        return [
            read_snapshot(self.role.share_path(name, index))
            for index in range(self.role.count)
            if index != self.role.index
        ]

    def others(self) -> dict[int, dict[str, Any] | None]:
        """Each other worker's latest snapshot (None when there is none)."""
        return {
            index: read_snapshot(self.role.snapshot_path(index))
            for index in range(self.role.count)
            if index != self.role.index
        }


def _logged(text: str) -> str | None:
    """One line of a sibling's log file, or None when it is not one (cut by a crash)."""
    try:
        line = json.loads(text)
    except ValueError:
        return None
    return line if isinstance(line, str) else None


def group_readiness(
    role: WorkerRole,
    own: tuple[bool, dict[str, Any]],
    others: dict[int, dict[str, Any] | None],
    own_counts: dict[str, Any],
) -> tuple[bool, dict[str, Any]]:
    """/-/ready of the group: this worker's answer, with each sibling's problems (named by
    worker) added to its own, and a `workers` entry per worker (pid, replica id, ready, the
    events it took and its config hash: `own_counts` for this one). A sibling with no fresh
    snapshot is a warning, not a problem: the others take its connections meanwhile."""
    ready, details = own
    now = time.time()
    problems = list(details["problems"])
    warnings = list(details["warnings"])
    workers: dict[str, Any] = {
        str(role.index): {
            "pid": os.getpid(),
            "replica": details["replica"],
            "ready": ready,
            "answering": True,
            **own_counts,
        }
    }
    for index, snapshot in sorted(others.items()):
        if not fresh(snapshot, now):
            warnings.append(f"worker {index} has not reported for {STALE_AFTER:g}s (restarting?)")
            workers[str(index)] = {"ready": False, "reporting": False}
            continue
        assert snapshot is not None
        problems += [f"worker {index}: {p}" for p in snapshot["problems"]]
        warnings += [f"worker {index}: {w}" for w in snapshot["warnings"]]
        workers[str(index)] = {
            "pid": snapshot["pid"],
            "replica": snapshot["replica"],
            "ready": snapshot["ready"],
            "events_received": snapshot["events_received"],
            "config": snapshot["config"],
            "part": snapshot.get("part", "whole"),
            "snapshot_age_seconds": round(now - float(snapshot["at"]), 1),
        }
        # The background worker's senders, for the queues this (HTTP) worker does not send.
        if snapshot.get("part") == "background":
            details = with_senders(details, snapshot)
        # The file inputs run in one worker (0, or the background one): whoever answers shows them.
        if snapshot.get("files") and not details["files"]:
            details = {**details, "files": snapshot["files"]}
        if snapshot.get("streams") and not details.get("streams"):  # so do Stream connections
            details = {**details, "streams": snapshot["streams"]}
    return not problems, {**details, "problems": problems, "warnings": warnings, "workers": workers}


def with_senders(details: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    """/-/ready's `queues` with the sender state of `snapshot`'s worker filled in where this
    process has no sender (`sender_running` None: health.readiness), and the store's `wakeups`
    as those senders hear them."""
    senders, sending = snapshot.get("senders", {}), snapshot.get("sending", {})
    store = details.get("store")
    if isinstance(store, dict) and "wakeups" in snapshot:
        details = {**details, "store": {**store, "wakeups": snapshot["wakeups"]}}
    queues = {
        name: (
            {**queue, "sender_running": senders.get(name), **sending.get(name, {})}
            if queue.get("sender_running") is None
            else queue
        )
        for name, queue in details["queues"].items()
    }
    return {**details, "queues": queues}


def fresh_samples(others: dict[int, dict[str, Any] | None]) -> Iterable[list[Any]]:
    """The metric families of every sibling whose snapshot is fresh (to add to one's own)."""
    now = time.time()
    for snapshot in others.values():
        if fresh(snapshot, now):
            assert snapshot is not None
            yield snapshot["metrics"]
