"""The daemon's process: the HTTP listener, signals (SIGTERM/SIGINT stop, SIGHUP reloads),
systemd's notify protocol and watchdog, and an orderly stop that leaves the outbox consistent."""

from __future__ import annotations

import logging
import queue
import signal
import socket
import threading
from types import FrameType

from bridge.app.bridge import Bridge
from bridge.app.fdlimit import ensure_descriptors
from bridge.app.httpserver import HttpServer, Limits
from bridge.app.siblings import Siblings, WorkerRole, role_from_env
from bridge.app.systemd import Notifier
from bridge.app.watch import ConfigWatcher
from bridge.app.workers import listen_socket
from bridge.config.model import Config
from bridge.inputs.http import HttpApp
from bridge.logs import RECENT, fmt_fields
from bridge.store.backend import describe as describe_state
from bridge.store.waiting import WouldWait, waiting_at_most

log = logging.getLogger("bridge")
INLINE_LOCK_WAIT = 0.005  # seconds (see HttpServer(inline_guard=...) below)


def run(config: Config) -> int:
    """Serve until SIGTERM/SIGINT; return the process exit code. In a worker of
    `server.workers` (app/workers.py started it) the socket is the group's, file inputs run in
    one worker only, and /metrics and /-/ready speak for the group (app/siblings.py); the
    background worker (`server.background_worker`) serves no HTTP and runs what the others
    do not: the senders, the file inputs and the timed jobs."""
    role = role_from_env()
    bridge = Bridge(
        config,
        reads_files=role is None or role.reads_files,
        sends=role is None or role.sends,
    )
    server_cfg = config.server
    serves = role is None or role.serves_http
    budget = ensure_descriptors(
        server_cfg.connection_limit if serves else 0,
        sum(i.max_open_files for i in bridge.file_inputs(config).values()),
    )
    if budget.raised_from is not None:
        log.info(fmt_fields("raised open files limit", soft=budget.soft, was=budget.raised_from))
    if budget.error is not None:
        log.warning(
            fmt_fields(
                "cannot raise open files limit",
                soft=budget.soft,
                error=budget.error,
                connection_limit=budget.connection_limit,
                configured=server_cfg.connection_limit,
                hint="raise LimitNOFILE= (systemd) or ulimit -n, or lower server.connection_limit",
            )
        )
    server = _http_server(config, bridge, role, budget.connection_limit) if serves else None
    listen = f"{server_cfg.host}:{server.effective_port}" if server is not None else None
    stop = threading.Event()
    reloads: queue.Queue[str] = queue.Queue()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info(fmt_fields("stopping", signal=signal.Signals(signum).name))
        stop.set()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        reloads.put("SIGHUP")  # the reload runs in the main loop, not in the signal handler

    def after_reload(config: Config) -> None:
        watcher.watch([config.path, *config.template_files, *config.secret_files])

    # Handlers first: once /-/healthy answers, a SIGHUP must reload, not kill (its default).
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    watcher = ConfigWatcher(lambda: reloads.put("file change"))
    after_reload(config)
    bridge.after_reload = after_reload
    bridge.start()
    serving = threading.Thread(target=server.run, name="http", daemon=True) if server else None
    if serving is not None:
        serving.start()
    siblings = (
        Siblings(role, bridge.snapshot, bridge.shares(), RECENT) if role is not None else None
    )
    if siblings is not None:
        bridge.siblings = siblings
        siblings.start()  # its first snapshot tells the supervisor this worker serves
    log.info(
        fmt_fields(
            "started",
            worker=f"{role.index}/{role.count}" if role is not None else None,
            part=role.part if role is not None and role.part != "whole" else None,
            listen=listen,
            config=str(config.path),
            hash=config.digest[:12],
            state=describe_state(config),
            node=bridge.node_id,
            inputs=len(config.inputs),
            rules=len(config.rules),
            targets=len(config.targets),
        )
    )

    systemd = Notifier()
    systemd.ready(f"serving on {listen}" if listen else "running in the background")
    tick = min(0.5, systemd.watchdog_interval or 0.5)
    while not stop.is_set():
        http_up = serving is None or serving.is_alive()
        systemd.watchdog(healthy=http_up and bridge.healthy())
        try:
            trigger = reloads.get(timeout=tick)
        except queue.Empty:
            if not http_up:
                log.error("http server stopped unexpectedly")
                break
            if role is not None and role.orphaned():
                log.error("the supervisor is gone: stopping this worker")
                break
            continue
        systemd.reloading()
        result = bridge.reloader.reload(trigger)
        systemd.ready(f"config {result.get('hash', '?')}: reload {result['result']}")
    systemd.stopping()
    watcher.stop()
    if server is not None:
        server.close()  # stop accepting; requests in flight finish on their threads
    left = bridge.stop(config.shutdown_timeout)
    if siblings is not None:
        siblings.stop()
    bridge.store.close()
    log.info(fmt_fields("stopped", queued=left))
    return 0


def _http_server(
    config: Config, bridge: Bridge, role: WorkerRole | None, connection_limit: int
) -> HttpServer:
    """The listener on the configured address (or the supervisor's socket) and its server."""
    server_cfg = config.server
    largest_body = max(
        [server_cfg.max_body_bytes, *(i.max_body_bytes for i in config.routed_inputs().values())]
    )
    if role is None:
        sock = listen_socket(server_cfg.host, server_cfg.port, reuseport=False)
    elif role.socket_fd is not None:  # the supervisor's socket, inherited
        sock = socket.socket(fileno=role.socket_fd)
    else:  # DINGTALK_BRIDGE_WORKER_SOCKETS=reuseport: a queue of its own on the address
        sock = listen_socket(server_cfg.host, server_cfg.port, reuseport=True)
    app = HttpApp(bridge, bridge.clock)
    server = HttpServer(
        app,
        [sock],
        Limits(
            connection_limit=connection_limit,
            idle_timeout=server_cfg.idle_timeout,
            max_body_bytes=largest_body,
        ),
        threads=server_cfg.threads,
        inline=app.runs_inline,
        # On the loop's thread a request waits for the store's locks this long at most, then
        # moves to an application thread: a sender's claim takes milliseconds, another
        # worker's commit less, but a CLI command or a checkpoint may hold the file for the
        # busy timeout, and every connection would wait with it.
        inline_guard=lambda: waiting_at_most(INLINE_LOCK_WAIT),
        moved_by=(WouldWait,),
        # The inline requests of one turn of the loop commit together (store/db.py batch).
        inline_batch=bridge.store.batch,
        inline_prepare=app.prepare,
    )
    return server
