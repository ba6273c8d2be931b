"""Composition root: builds the long-lived parts, wires inputs to senders, runs until a signal.

Long-lived (whole process): the HTTP session, the DingTalk client and its token cache, the HTTP
listener. Config-scoped: the compiled Config (rules, templates, targets, input routes) and one
sender per target. `Bridge` is the only object that knows every part.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import urllib.request
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import requests
from waitress.server import create_server

from bridge.config.model import Config, HttpInput
from bridge.delivery.workers import RetryPolicy, TargetWorker
from bridge.dingtalk.client import DingTalkClient
from bridge.errors import InputError, Reason
from bridge.inputs.http import HttpApp
from bridge.logs import REDACTOR, fmt_fields
from bridge.model import Event
from bridge.pipeline import plan

log = logging.getLogger("bridge")

SHUTDOWN_GRACE = 10.0  # seconds senders get to empty their queues on SIGTERM
_UNMATCHED_MEMORY = 10_000  # distinct unmatched events remembered so each is logged once


@dataclass
class Counters:
    events: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rejected: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    unmatched: int = 0
    render_errors: int = 0


class Bridge:
    def __init__(
        self,
        config: Config,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        retry: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.loaded_at = clock()
        self.session = session or _make_session()
        self.client = DingTalkClient(self.session, clock=time.time)
        self.workers = {
            name: TargetWorker(t, self.client, retry or RetryPolicy(), clock)
            for name, t in config.targets.items()
        }
        self.counters = Counters()
        self._routes = {spec.path: spec for spec in config.inputs.values()}
        self._unmatched_seen: OrderedDict[str, None] = OrderedDict()
        self._accept_lock = threading.Lock()  # queue capacity check and submit, as one step
        self._counter_lock = threading.Lock()
        REDACTOR.set_secrets(config.secrets())

    # -- Intake (what the HTTP inputs call) ----------------------------------------------------

    def routes(self) -> Mapping[str, HttpInput]:
        return self._routes

    def reject(self, input_name: str, reason: Reason) -> None:
        with self._counter_lock:
            self.counters.rejected[(input_name, reason.value)] += 1

    def accept(self, spec: HttpInput, events: list[Event]) -> int:
        now = self.clock()
        deliveries = []
        for event in events:
            result = plan(self.config, event, now)
            with self._counter_lock:
                self.counters.events[spec.name] += 1
                self.counters.render_errors += len(result.render_errors)
            for rule, error in result.render_errors:
                log.error(
                    fmt_fields(
                        "template failed, sent fallback",
                        rule=rule,
                        input=spec.name,
                        fingerprint=event.fingerprint,
                        reason="template",
                        error=error,
                    )
                )
            if not result.matched_rules:
                self._note_unmatched(event)
            deliveries += result.deliveries
        # All or nothing: a request is either queued whole or refused (503, the sender retries),
        # so a retried request does not duplicate the part that had fitted.
        with self._accept_lock:
            needed: dict[str, int] = defaultdict(int)
            for d in deliveries:
                needed[d.target] += 1
            for target, count in needed.items():
                if self.workers[target].free() < count:
                    log.warning(
                        fmt_fields(
                            "queue full", target=target, input=spec.name, reason="queue_full"
                        )
                    )
                    raise InputError(
                        503, Reason.QUEUE_FULL, f"target {target} is backlogged; retry later"
                    )
            for d in deliveries:
                self.workers[d.target].submit(d)
        return len(deliveries)

    def _note_unmatched(self, event: Event) -> None:
        key = f"{event.input}/{event.fingerprint}"
        with self._counter_lock:
            self.counters.unmatched += 1
            if key in self._unmatched_seen:
                return
            self._unmatched_seen[key] = None
            if len(self._unmatched_seen) > _UNMATCHED_MEMORY:
                self._unmatched_seen.popitem(last=False)
        labels = ",".join(f"{k}={v}" for k, v in sorted(event.labels.items()))
        log.info(
            fmt_fields(
                "no rule matched", input=event.input, fingerprint=event.fingerprint, labels=labels
            )
        )

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        queues = {name: w.queue.qsize() for name, w in self.workers.items()}
        return True, {
            "config": {
                "path": str(self.config.path),
                "hash": self.config.digest[:12],
                "loaded_at": self.loaded_at.isoformat(timespec="seconds"),
            },
            "queues": queues,
        }

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        for worker in self.workers.values():
            worker.start()

    def stop(self, grace: float = SHUTDOWN_GRACE) -> int:
        """Stop senders, giving them `grace` seconds in total to send what is queued."""
        deadline = time.monotonic() + grace
        return sum(w.stop(max(0.0, deadline - time.monotonic())) for w in self.workers.values())


def _make_session() -> requests.Session:
    session = requests.Session()
    # With trust_env, requests looks up proxy variables, NO_PROXY and ~/.netrc on every call
    # (~0.2 ms of CPU each). Only pay for that when the environment has something to honour.
    session.trust_env = bool(
        urllib.request.getproxies() or {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"} & set(os.environ)
    )
    adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=32, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def run(config: Config) -> int:
    """Serve until SIGTERM/SIGINT; return the process exit code."""
    bridge = Bridge(config)
    server_cfg = config.server
    largest_body = max(
        [server_cfg.max_body_bytes, *(i.max_body_bytes for i in config.inputs.values())]
    )
    server = create_server(
        HttpApp(bridge, bridge.clock),
        host=server_cfg.host,
        port=server_cfg.port,
        threads=server_cfg.threads,
        # Our own limit answers 413 with a reason; waitress's must not fire first.
        max_request_body_size=largest_body + 1,
        ident="dingtalk-bridge",
        clear_untrusted_proxy_headers=True,
    )
    port = getattr(server, "effective_port", server_cfg.port)
    bridge.start()
    serving = threading.Thread(target=server.run, name="http", daemon=True)
    serving.start()
    log.info(
        fmt_fields(
            "started",
            listen=f"{server_cfg.host}:{port}",
            config=str(config.path),
            hash=config.digest[:12],
            inputs=len(config.inputs),
            rules=len(config.rules),
            targets=len(config.targets),
        )
    )

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info(fmt_fields("stopping", signal=signal.Signals(signum).name))
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(0.5):
        if not serving.is_alive():
            log.error("http server stopped unexpectedly")
            break
    server.close()  # stop accepting; requests in flight finish on their threads
    left = bridge.stop()
    log.info(fmt_fields("stopped", unsent=left))
    return 0
