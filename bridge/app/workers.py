"""`server.workers: N`: N processes of one config on one host, so the bridge uses every core.

One Python process holds the GIL for the HTTP server, JSON, the commit of each request and the
senders' calls; a second process has its own. The processes share what a set of replicas shares
(delivery/claims.py): each message is claimed by one sender with a lease, each robot has one
rate window in the store, a group is flushed by the one that claims it. So a worker is a whole
bridge (HTTP inputs, intake, senders, pollers, groupers) with its own replica id, except that
file inputs run in worker 0 only: their offsets belong to the node, and two tailers of one file
under one node id would read each line twice.

With `server.background_worker` the work is split instead: the N workers serve HTTP only, and
one more, the background worker (the last index, given no socket), runs the rest: senders, file
inputs, Stream connections and the timed jobs. One process doing both spends its GIL on the
senders' digests while requests wait; split, the HTTP worker accepted about a third more
requests under `bench.saturate` (bench/README.md). What an HTTP worker queues it wakes the
background worker for through the store (Store.wake_senders).

This module is the supervisor, the process `dingtalk-bridge run` becomes when N > 1 (or with a
background worker). It holds the listening socket and each worker inherits it
(app/httpserver.py serves it): connections wait in one kernel queue and whichever worker polls
first accepts the next, so a busy or restarting worker does not strand the connections the
kernel would have hashed to it (SO_REUSEPORT gives
each process a queue of its own and spreads connections by a hash of their addresses;
connections queued to a worker that dies are reset with it).
DINGTALK_BRIDGE_WORKER_SOCKETS=reuseport switches to that for comparison. Measured
(bench/README.md, `bench.saturate --workers 2`): SO_REUSEPORT spreads 8 keep-alive connections
more evenly (46/54 % of the requests against 33/67 %; both about even at 32), with throughput
alike within the host's noise; the shared socket stays the default for the reasons above.
The supervisor opens no store and serves nothing itself.

Workers are the same command run again (`python -m bridge run -c FILE`), told their place
through the environment (app/siblings.py), rather than forked: a fresh interpreter has no
threads or locks copied from the parent, and a worker restarted later reads the config file as
it is then, as a reload would.

Signals: SIGTERM/SIGINT stop every worker, each with its own drain (app/run.py), and the
supervisor exits when all have; SIGHUP is passed to each worker (each reloads; a worker that
takes POST /-/reload sends its supervisor a SIGHUP, so that too reloads every worker). Workers
run in their own process group, so a terminal's Ctrl-C reaches them through the supervisor only,
and each stops by itself if the supervisor disappears (kill -9). A worker that dies otherwise is
logged and started again after a backoff (RESTART_FIRST doubling to RESTART_MAX; back to the
first once a worker ran RESTART_RESET seconds). A worker that fails before the group first
served stops the whole start (a bad state directory fails every worker alike). systemd hears
READY=1 once every worker has written its first snapshot (it serves), and WATCHDOG=1 only
while every worker is alive and reports itself healthy. The exit code is 0 when every worker
stopped cleanly and none died on the way, 1 otherwise (a worker that SIGTERM ended before it
had its handler, while starting, stopped cleanly: it was asked to).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bridge.app.siblings import (
    ENV_GROUP_DIR,
    ENV_PARENT,
    ENV_PART,
    ENV_SOCKET_FD,
    ENV_WORKER,
    fresh,
    read_snapshot,
)
from bridge.app.systemd import Notifier
from bridge.config.model import Config
from bridge.logs import fmt_fields

log = logging.getLogger("bridge")

ENV_SOCKETS = "DINGTALK_BRIDGE_WORKER_SOCKETS"  # "shared" (default) or "reuseport"
RESTART_FIRST = 1.0  # seconds
RESTART_MAX = 30.0
RESTART_RESET = 60.0  # a worker that ran this long starts its next backoff from the first
STOP_MARGIN = 15.0  # seconds past shutdown_timeout before a worker that will not stop is killed
TICK = 0.25
# The systemd and watchdog variables are the supervisor's: a worker must not say READY itself.
SUPERVISOR_ONLY = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")


def listen_socket(host: str, port: int, reuseport: bool) -> socket.socket:
    """A TCP socket bound to host:port (SO_REUSEPORT: one of several on that address), not yet
    listening: the first worker's HTTP server calls listen(), so until a worker serves, a client
    is refused at once (as before a single process binds) rather than left waiting in a queue
    nobody accepts from."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    return sock


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = RESTART_FIRST
    restart_at: float | None = None
    deaths: list[int] = field(default_factory=list)  # exit codes of unexpected ends


class Supervisor:
    def __init__(self, config: Config, worker_args: list[str]) -> None:
        self.config = config
        # The HTTP workers, then the background worker if any (the last index).
        self.background = config.server.background_worker
        self.count = config.server.workers + int(self.background)
        self.worker_args = worker_args
        self.reuseport = os.environ.get(ENV_SOCKETS, "shared") == "reuseport"
        self.group_dir = Path(tempfile.mkdtemp(prefix="dingtalk-bridge-workers-"))
        host, port = config.server.host, config.server.port
        self.sock = None if self.reuseport else listen_socket(host, port, reuseport=False)
        self.workers = [Worker(i) for i in range(self.count)]
        self.stop = threading.Event()
        self.systemd = Notifier()

    def _is_background(self, index: int) -> bool:
        return self.background and index == self.count - 1

    def _env(self, index: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SUPERVISOR_ONLY}
        env.update(
            {
                ENV_WORKER: f"{index}/{self.count}",
                ENV_GROUP_DIR: str(self.group_dir),
                ENV_PARENT: str(os.getpid()),
            }
        )
        if self.background:
            env[ENV_PART] = "background" if self._is_background(index) else "http"
        if self.sock is not None and not self._is_background(index):
            env[ENV_SOCKET_FD] = str(self.sock.fileno())
        return env

    def _start(self, worker: Worker) -> None:
        # No old snapshot may pass for the new process's first one.
        self._snapshot_path(worker.index).unlink(missing_ok=True)
        shared = self.sock is not None and not self._is_background(worker.index)
        worker.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", *self.worker_args],
            env=self._env(worker.index),
            pass_fds=(self.sock.fileno(),) if shared and self.sock is not None else (),
            process_group=0,  # Ctrl-C reaches the supervisor, which stops each worker
        )
        worker.started = time.monotonic()
        worker.restart_at = None
        part = "background" if self._is_background(worker.index) else None
        log.info(fmt_fields("worker started", worker=worker.index, pid=worker.proc.pid, part=part))

    def _snapshot_path(self, index: int) -> Path:
        return self.group_dir / f"worker-{index}.json"

    def _serving(self, worker: Worker) -> bool:
        """Its first snapshot is written: the worker serves (run.py writes it once listening)."""
        snapshot = read_snapshot(self._snapshot_path(worker.index))
        return (
            worker.proc is not None
            and snapshot is not None
            and snapshot.get("pid") == worker.proc.pid
        )

    def _healthy(self) -> bool:
        now = time.time()
        for worker in self.workers:
            snapshot = read_snapshot(self._snapshot_path(worker.index))
            if worker.proc is None or worker.proc.poll() is not None:
                return False
            if not fresh(snapshot, now) or not (snapshot or {}).get("healthy"):
                return False
        return True

    def _signal_all(self, signum: int, only: Callable[[Worker], bool] = lambda w: True) -> None:
        for worker in self.workers:
            if worker.proc is not None and worker.proc.poll() is None and only(worker):
                worker.proc.send_signal(signum)

    def run(self) -> int:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            log.info(fmt_fields("stopping", signal=signal.Signals(signum).name, workers=self.count))
            self.stop.set()

        def on_hangup(_signum: int, _frame: FrameType | None) -> None:
            # systemd (Type=notify-reload) waits for RELOADING=1 and READY=1; each worker
            # reloads on its own time, and says how in its log and /-/ready.
            self.systemd.reloading()
            log.info(fmt_fields("reload passed to the workers", signal="SIGHUP"))
            # Only to those serving: one still starting has no handler yet (SIGHUP would kill
            # it), and reads the config file as it is now anyway.
            self._signal_all(signal.SIGHUP, only=self._serving)
            self.systemd.ready(f"reload passed to {self.count} workers")

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hangup)
        try:
            # Worker 0 first, alone: opening the state creates or migrates its schema, which
            # two processes must not do at once (SQLite would see a column added twice).
            self._start(self.workers[0])
            started = self._wait_serving(self.workers[:1])
            if started and not self.stop.is_set():
                for worker in self.workers[1:]:
                    self._start(worker)
                started = self._wait_serving(self.workers)
            if started:
                self._supervise()
            return self._stop_all(failed=not started)
        finally:
            if self.sock is not None:
                self.sock.close()
            for path in self.group_dir.iterdir():
                path.unlink(missing_ok=True)
            self.group_dir.rmdir()

    def _wait_serving(self, workers: list[Worker]) -> bool:
        """Until each of `workers` serves: True; False when one failed first (a stop ends the
        wait with True: what runs is stopped, and that is no failure)."""
        while not self.stop.is_set():
            for worker in workers:
                assert worker.proc is not None
                code = worker.proc.poll()
                if code is not None:
                    log.error(fmt_fields("worker failed to start", worker=worker.index, code=code))
                    worker.deaths.append(code)
                    return False
            if not all(self._serving(w) for w in workers):
                self.stop.wait(TICK)
                continue
            if len(workers) == self.count:
                where = f"{self.config.server.host}:{self.config.server.port}"
                background = self.background or None
                log.info(
                    fmt_fields(
                        "workers serving", workers=self.count, background=background, listen=where
                    )
                )
                self.systemd.ready(f"serving on {where} with {self.count} workers")
            return True
        return True  # stopped while starting: stop what runs, no failure of its own

    def _supervise(self) -> None:
        tick = min(TICK, self.systemd.watchdog_interval or TICK)
        while not self.stop.wait(tick):
            self.systemd.watchdog(healthy=self._healthy())
            now = time.monotonic()
            for worker in self.workers:
                assert worker.proc is not None
                if worker.restart_at is None:
                    code = worker.proc.poll()
                    if code is None:
                        continue
                    worker.deaths.append(code)
                    if now - worker.started >= RESTART_RESET:
                        worker.backoff = RESTART_FIRST
                    worker.restart_at = now + worker.backoff
                    log.error(
                        fmt_fields(
                            "worker died, restarting",
                            worker=worker.index,
                            pid=worker.proc.pid,
                            code=code,
                            after=f"{worker.backoff:g}s",
                        )
                    )
                    worker.backoff = min(RESTART_MAX, worker.backoff * 2)
                elif now >= worker.restart_at:
                    self._start(worker)

    def _stop_all(self, failed: bool) -> int:
        self.systemd.stopping()
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.config.shutdown_timeout + STOP_MARGIN
        for worker in self.workers:
            if worker.proc is None or worker.restart_at is not None:
                continue  # died and not restarted: its death is counted already
            try:
                code = worker.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error(fmt_fields("worker did not stop, killed", worker=worker.index))
                worker.proc.kill()
                code = worker.proc.wait()
            # -SIGTERM: a worker still starting, before it had its handler, ended as asked.
            if code not in (0, -signal.SIGTERM):
                worker.deaths.append(code)
        failures = {w.index: w.deaths for w in self.workers if w.deaths}
        log.info(fmt_fields("workers stopped", failed=",".join(map(str, failures)) or None))
        return 1 if failed or failures else 0


def supervise(config: Config, worker_args: list[str]) -> int:
    """Run `config` as `server.workers` processes until SIGTERM/SIGINT; the exit code."""
    return Supervisor(config, worker_args).run()
