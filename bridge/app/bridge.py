"""Composition root: builds the long-lived parts, wires inputs to senders, runs until a signal.

Long-lived (whole process): the state store, the HTTP session, the DingTalk client and its token
cache, the HTTP listener. Config-scoped: the compiled Config (rules, templates, targets, input
routes) and one sender per target. `Bridge` is the only object that knows every part.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import queue
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from types import FrameType
from typing import Any

import requests
from waitress.server import create_server

from bridge.alerting.grouping import group_key
from bridge.alerting.matchers import Matcher
from bridge.alerting.silences import Silence
from bridge.app import alertmanager_api, commands
from bridge.app.fdlimit import ensure_descriptors
from bridge.app.systemd import Notifier
from bridge.app.watch import ConfigWatcher
from bridge.config.compile import load_config
from bridge.config.model import ChatInput, Config, FileInput, RoutedInput, Rule, Target
from bridge.delivery.noticepoll import NoticePoller
from bridge.delivery.robots import RobotWindows
from bridge.delivery.sender import TargetSender, store_loader
from bridge.dingtalk.client import DingTalkClient
from bridge.errors import ConfigError, InputError, Reason, StoreError
from bridge.inputs.chat import ChatMessage, reply_body
from bridge.inputs.filetail.offsets import OffsetUpdate
from bridge.inputs.filetail.tailer import Tailer
from bridge.inputs.http import HttpApp
from bridge.inputs.signed import SignedOnce
from bridge.logs import REDACTOR, fmt_fields
from bridge.model import Accepted, Event
from bridge.pipeline.grouper import Grouper
from bridge.pipeline.intake import Intake
from bridge.store import records
from bridge.store.api import Store, Tx
from bridge.store.backend import open_store
from bridge.store.offsets import StoreOffsets

log = logging.getLogger("bridge")


class Bridge:
    def __init__(
        self,
        config: Config,
        store: Store | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.clock = clock
        self.loaded_at = clock()
        self.store = store or open_store(config.state_dir, config.synchronous)
        self.session = session or make_session()
        self.client = DingTalkClient(self.session, clock=time.time)
        # One rate window per robot, shared by its targets and kept across reloads.
        self.windows = RobotWindows(store_loader(self.store, time.time))
        self.senders = {name: self._sender(target) for name, target in config.targets.items()}
        # Asks DingTalk who received each work notice (getsendresult) and settles it.
        self.notice_poller = NoticePoller(self.store, self.client, lambda: self.config.targets)
        self.intake = Intake(self.store, self._queued)
        self.grouper = Grouper(self.store, lambda: self.config, self._queued, clock)
        self._routes = {spec.path: spec for spec in config.routed_inputs().values()}
        self.tailers = {name: self._tailer(spec) for name, spec in config.file_inputs().items()}
        self._reload_lock = threading.Lock()
        self.last_reload: dict[str, Any] | None = None
        # What /-/ready and status say about the config, replaced in one assignment once a reload
        # has finished: a reader never sees the new hash beside the previous reload's result.
        self.config_status = self._config_status()
        self.after_reload: Callable[[Config], None] = lambda config: None
        REDACTOR.set_secrets(config.secrets())

    def _sender(self, target: Target) -> TargetSender:
        return TargetSender(
            target, self.store, self.client, self._rules, windows=self.windows, timezone=self._tz
        )

    def _tz(self) -> tzinfo:
        return self.config.timezone

    def _rules(self) -> Mapping[str, Rule]:
        return {rule.name: rule for rule in self.config.rules}

    def _queued(self, targets: Iterable[str]) -> None:
        for name in targets:
            sender = self.senders.get(name)
            if sender is not None:
                sender.wake()

    def _tailer(self, spec: FileInput) -> Tailer:
        return Tailer(spec, StoreOffsets(self.store), self.accept_lines, self.clock)

    # -- what the inputs call ------------------------------------------------------------------

    def routes(self) -> Mapping[str, RoutedInput]:
        return self._routes

    def reject(self, input_name: str, reason: Reason) -> None:
        self.intake.reject(input_name, reason)

    def accept(self, spec: RoutedInput, events: list[Event]) -> Accepted:
        return self.intake.accept(self.config, spec, events, self.clock())

    def accept_once(
        self, spec: RoutedInput, events: list[Event], request: SignedOnce
    ) -> Accepted | None:
        """A signed DingTalk request's events, taken once: its memory commits with them (a 503
        leaves no trace, so DingTalk may send it again)."""
        now = self.clock()

        def remember(tx: Tx) -> None:
            seen = tx.replays.claim(
                request.input, request.key, request.digest, request.expires, now.timestamp()
            )
            if seen is records.Seen.SAME:
                raise _TakenBefore  # rolls back what this second copy would have queued
            if seen is records.Seen.OTHER:
                raise InputError(409, Reason.REPLAY, "this nonce and timestamp were used before")

        try:
            return self.intake.accept(self.config, spec, events, now, remember)
        except _TakenBefore:
            return None

    def claim(self, request: SignedOnce) -> None:
        """A chat command's timestamp+sign pair, used once (whatever the body)."""
        try:
            with self.store.transaction() as tx:
                seen = tx.replays.claim(
                    request.input,
                    request.key,
                    request.digest,
                    request.expires,
                    self.clock().timestamp(),
                )
        except StoreError as exc:
            raise InputError(503, Reason.STORE, "the state store cannot take it now") from exc
        if seen is not records.Seen.NEW:
            raise InputError(409, Reason.REPLAY, "this timestamp and sign were used before")

    def accept_lines(self, spec: FileInput, events: list[Event], offsets: OffsetUpdate) -> Accepted:
        """A file input's events and the offsets past their lines, in one transaction: an
        offset advances exactly when the events before it are in the outbox."""

        def record(tx: Tx) -> None:
            tx.tailstate.record(spec.name, offsets.positions, offsets.forget, offsets.seen_at)

        return self.intake.accept(self.config, spec, events, self.clock(), record)

    # -- chat commands (dingtalk_robot inputs) --------------------------------------------------

    def command(self, spec: ChatInput, message: ChatMessage) -> dict[str, Any]:
        """Answer a command from the chat: into the conversation through its sessionWebhook
        when DingTalk gave one (then the HTTP answer is empty), else as the HTTP answer."""
        now = self.clock().timestamp()
        text = commands.answer(message.text, message.sender, self, now, self.config.timezone)
        log.info(
            fmt_fields(
                "chat command",
                input=spec.name,
                sender=message.sender.staff_id,
                command=(message.text.split() or ["help"])[0],
                allowed=message.sender.allowed,
            )
        )
        reply = reply_body(text, message.sender)
        if not message.session_webhook:
            return reply
        try:
            response = self.session.post(message.session_webhook, json=reply, timeout=5)
            errcode = response.json().get("errcode")
        except (requests.RequestException, ValueError) as exc:
            log.warning(fmt_fields("chat reply failed", input=spec.name, error=type(exc).__name__))
            return reply  # DingTalk may still show the answer given in the response
        if errcode != 0:
            log.warning(fmt_fields("chat reply refused", input=spec.name, errcode=errcode))
            return reply
        return {}

    def status(self) -> dict[str, Any]:
        _ready, details = self.readiness()
        details["silences"] = len(self.silences(self.clock().timestamp()))
        return details

    def silences(self, now: float) -> list[Silence]:
        with self.store.reading() as tx:
            runtime = tx.silences.load(ended_after=now)
        return [s for s in [*self.config.silences, *runtime] if s.active(now)]

    def add_silence(
        self,
        parsed: tuple[Matcher, ...],
        starts: float,
        ends: float,
        comment: str,
        author: str,
    ) -> tuple[Silence, str]:
        with self.store.transaction() as tx:
            silence = tx.silences.add(parsed, starts, ends, comment, author, starts)
        self.intake.forget_cache()
        log.info(fmt_fields("silence added", id=silence.id, matchers=silence.describe(), by=author))
        api = self.config.alertmanager
        if api is None:
            return silence, ""
        try:
            am_id = alertmanager_api.create_silence(self.session, api, silence)
        except alertmanager_api.AlertmanagerError as exc:
            log.warning(fmt_fields("alertmanager silence failed", id=silence.id, error=exc))
            return silence, f" Not in Alertmanager: {exc}; the bridge's silence holds."
        with self.store.transaction() as tx:
            tx.silences.link(silence.id, am_id)
        log.info(fmt_fields("alertmanager silence created", id=silence.id, am_id=am_id))
        return silence, f" Also in Alertmanager ({am_id})."

    def acknowledge(self, short_id: str, by: str, now: float) -> str:
        """The firing alert (group) whose message showed `short_id`: its reminders stop until
        it resolves. Ids are prefixes of the event fingerprint, as `short_id` in templates."""
        rules = {rule.name: rule for rule in self.config.rules}
        with self.store.transaction() as tx:
            found: dict[str, str] = {}  # fingerprint -> rule
            for rule_name, key in tx.alertlog.firing():
                rule = rules.get(rule_name)
                grouped = rule is not None and rule.group_by is not None
                fingerprint = group_key({"rule": rule_name, "group": key}) if grouped else key
                if short_id and fingerprint.startswith(short_id):
                    found[fingerprint] = rule_name
            if len(found) != 1:
                what = "no firing alert" if not found else f"{len(found)} firing alerts"
                return f"There is {what} with id {short_id}."
            [(fingerprint, rule_name)] = found.items()
            earlier = tx.acks.acknowledged_by(fingerprint)
            if earlier is None:
                tx.acks.acknowledge(fingerprint, by, now)
        if earlier is not None:
            return f"{fingerprint[:8]} was already acknowledged by {earlier}."
        log.info(fmt_fields("alert acknowledged", id=fingerprint[:8], rule=rule_name, by=by))
        return (
            f"{by} acknowledged {fingerprint[:8]} (rule {rule_name}): "
            "no more reminders until it resolves."
        )

    def expire_silence(self, id_prefix: str, now: float) -> tuple[list[str], str]:
        with self.store.transaction() as tx:
            ids = tx.silences.expire(id_prefix, now)
            am_id = tx.silences.linked(ids[0]) if len(ids) == 1 else None
        self.intake.forget_cache()
        if len(ids) != 1:
            return ids, ""
        log.info(fmt_fields("silence expired", id=ids[0]))
        api = self.config.alertmanager
        if api is None or am_id is None:
            return ids, ""
        try:
            alertmanager_api.expire_silence(self.session, api, am_id)
        except alertmanager_api.AlertmanagerError as exc:
            log.warning(fmt_fields("alertmanager expire failed", id=ids[0], error=exc))
            return ids, f" Still in Alertmanager ({am_id}): {exc}."
        return ids, f" Expired in Alertmanager too ({am_id})."

    def metrics(self) -> bytes:
        from bridge.app.metrics import render

        return render(self)

    def healthy(self) -> bool:
        """Senders and file inputs running (what the systemd watchdog pings vouch for)."""
        return (
            all(s.alive() for s in self.senders.values())
            and all(t.alive() for t in self.tailers.values())
            and self.notice_poller.alive()
        )

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        now = self.clock().timestamp()
        probe = self.store.probe()
        depths, dead, writable = probe.depths, probe.dead_letters, probe.writable
        senders = {name: s.alive() for name, s in self.senders.items()}
        sending = {name: s.status() for name, s in self.senders.items()}
        tailers = {name: t.status() for name, t in self.tailers.items()}
        # Why not ready, in words, so the answer to a failing probe says what to look at.
        problems = [] if writable else ["the state store cannot take commits"]
        problems += [
            f"the sender of target {name} is not running" for name, up in senders.items() if not up
        ]
        problems += [
            f"target {name} holds a {st['unrecorded']['outcome']} outcome the store could not"
            f" record ({st['unrecorded']['error']}): it sends nothing until the store commits"
            for name, st in sending.items()
            if st["unrecorded"]
        ]
        problems += [
            f"file input {name} is {t['state']}" + (f": {t['error']}" if t["error"] else "")
            for name, t in tailers.items()
            if t["state"] != "running"
        ]
        # Worth a look, but not a reason to turn traffic away: a message that met a bug of ours
        # is a dead letter and its queue moved on. Refusing every input for it (503 makes
        # Alertmanager retry and load balancers drop the instance) would stop the alerts that
        # can still be delivered, and fix nothing: dingtalk_bridge_internal_errors_total is the
        # thing to alert on.
        warnings = [
            f"target {name} dead-lettered {st['internal_errors']} message(s) on an internal"
            f" error, the last {st['last_internal_error']['id']}:"
            f" {st['last_internal_error']['error']}"
            for name, st in sending.items()
            if st["last_internal_error"]
        ]
        return not problems, {
            "problems": problems,
            "warnings": warnings,
            "config": self.config_status,
            "store": {"writable": writable, "dead_letters": int(dead)},
            "queues": {
                name: {
                    "pending": depths.get(name, (0, None))[0],
                    "oldest_age_seconds": round(now - oldest, 1)
                    if (oldest := depths.get(name, (0, None))[1]) is not None
                    else None,
                    "sender_running": senders[name],
                    **sending.get(name, {}),
                }
                for name in self.config.targets
            },
            "files": tailers,
        }

    # -- reload --------------------------------------------------------------------------------

    def reload(self, trigger: str) -> dict[str, Any]:
        """Load the config file again and, if it is valid and different, switch to it.

        Everything fallible happens first (reading, validating, compiling); a failure changes
        nothing that runs. Then one assignment swaps the config (rules, templates, routes,
        targets); senders are replaced only for targets that changed, and only after the old one
        stopped, so a target never has two senders. Queued messages stay in the outbox through
        it all. The listener, the state store and the HTTP session are long-lived: a change to
        `server` (other than its reload token), `state_dir` or `synchronous` needs a restart.
        """
        with self._reload_lock:
            result = self._reload(trigger)
            self.last_reload = {**result, "at": self.clock().isoformat(timespec="seconds")}
            self.config_status = self._config_status()
            self.after_reload(self.config)
            return result

    def _config_status(self) -> dict[str, Any]:
        return {
            "path": str(self.config.path),
            "hash": self.config.digest[:12],
            "loaded_at": self.loaded_at.isoformat(timespec="seconds"),
            "last_reload": self.last_reload,
        }

    def reload_over_http(self, authorization: str) -> tuple[int, dict[str, Any]]:
        """POST /-/reload: 200 reloaded or unchanged, 422 with the problems, 401 without the
        configured token."""
        token = self.config.server.reload_token
        if token is not None:
            scheme, _, given = authorization.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.encode()
            ):
                return 401, {
                    "status": "error",
                    "reason": "unauthorized",
                    "error": "POST /-/reload needs the reload token",
                }
        result = self.reload("POST /-/reload")
        return (422 if result["result"] == "failed" else 200), result

    def _reload(self, trigger: str) -> dict[str, Any]:
        old = self.config
        try:
            new = load_config(old.path)
        except ConfigError as exc:
            log.error(
                fmt_fields(
                    "reload failed, old config kept", trigger=trigger, problems=len(exc.problems)
                )
            )
            for problem in exc.problems:
                log.error(f"  {problem.format()}")
            return {
                "result": "failed",
                "trigger": trigger,
                "problems": [p.format() for p in exc.problems],
            }
        if new.digest == old.digest:
            log.info(fmt_fields("reload skipped, nothing changed", trigger=trigger))
            return {"result": "unchanged", "trigger": trigger, "hash": old.digest[:12]}
        kept = []
        if replace(new.server, reload_token=None) != replace(old.server, reload_token=None):
            kept.append("server")
        if (new.state_dir, new.synchronous) != (old.state_dir, old.synchronous):
            kept.append("state_dir/synchronous")
        new = replace(
            new,
            server=replace(old.server, reload_token=new.server.reload_token),
            state_dir=old.state_dir,
            synchronous=old.synchronous,
        )
        changed = {n for n, t in new.targets.items() if old.targets.get(n) != t}
        removed = set(old.targets) - set(new.targets)
        fresh = {n: self._sender(new.targets[n]) for n in changed}
        REDACTOR.set_secrets([*old.secrets(), *new.secrets()])
        retiring = [self.senders[n] for n in changed | removed if n in self.senders]
        # The swap: from here on requests route, match and render with the new config.
        self.config = new
        self._routes = {spec.path: spec for spec in new.routed_inputs().values()}
        restarted_inputs = self._swap_tailers(old, new)
        for sender in retiring:
            sender.stop(self.config.shutdown_timeout)
        self.senders = {
            **{n: s for n, s in self.senders.items() if n not in changed | removed},
            **fresh,
        }
        for sender in fresh.values():
            sender.start()
        self.loaded_at = self.clock()
        REDACTOR.set_secrets(new.secrets())
        summary = {
            "result": "success",
            "trigger": trigger,
            "hash": new.digest[:12],
            "targets_changed": sorted(changed - set(old.targets))
            + sorted(changed & set(old.targets)),
            "targets_removed": sorted(removed),
            "file_inputs_restarted": restarted_inputs,
            "needs_restart": kept,
        }
        log.info(
            fmt_fields(
                "config reloaded",
                trigger=trigger,
                hash=new.digest[:12],
                rules=len(new.rules),
                inputs=len(new.inputs),
                targets=len(new.targets),
                restarted_senders=",".join(sorted(changed)) or None,
                removed=",".join(sorted(removed)) or None,
                restarted_inputs=",".join(restarted_inputs) or None,
            )
        )
        if kept:
            log.warning(
                fmt_fields("reload kept old settings, restart to apply", settings=",".join(kept))
            )
        return summary

    def _swap_tailers(self, old: Config, new: Config) -> list[str]:
        """Keep every file input whose definition is unchanged (its files, offsets and partial
        lines untouched); stop the others, then start the new and changed ones. A restarted
        input resumes from the offsets it committed."""
        old_files, new_files = old.file_inputs(), new.file_inputs()
        changed = sorted(
            n
            for n in set(old_files) | set(new_files)
            if n not in old_files
            or n not in new_files
            or old_files[n].definition != new_files[n].definition
        )
        for name in changed:
            if name in self.tailers:
                self.tailers.pop(name).stop(self.config.shutdown_timeout)
        for name in changed:
            if name in new_files:
                self.tailers[name] = self._tailer(new_files[name])
                self.tailers[name].start()
        return changed

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self.store.start_upkeep()  # keeps the WAL small and retries after a full disk
        with self.store.reading() as tx:
            pending = tx.outbox.pending_count()
        if pending:
            log.info(fmt_fields("resuming", pending=pending))
        for sender in self.senders.values():
            sender.start()
        self.notice_poller.start()
        self.grouper.start()
        for tailer in self.tailers.values():
            tailer.start()

    def stop(self, grace: float) -> int:
        """Stop senders within `grace` seconds in total; return how many messages stay queued."""
        deadline = time.monotonic() + grace
        for tailer in self.tailers.values():  # first: their last lines go to the outbox
            tailer.stop(max(0.0, deadline - time.monotonic()))
        self.grouper.stop()
        for sender in self.senders.values():
            sender.request_stop()
        for sender in self.senders.values():
            sender.stop(max(0.0, deadline - time.monotonic()))
        self.notice_poller.stop(max(0.0, deadline - time.monotonic()))
        with self.store.reading() as tx:
            return tx.outbox.pending_count()


class _TakenBefore(Exception):
    """A signed request found in the replay memory with the same digest: answered again as the
    first time, processed once."""


def make_session() -> requests.Session:
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
        [server_cfg.max_body_bytes, *(i.max_body_bytes for i in config.routed_inputs().values())]
    )
    budget = ensure_descriptors(
        server_cfg.connection_limit,
        sum(i.max_open_files for i in config.inputs.values() if isinstance(i, FileInput)),
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
    server = create_server(
        HttpApp(bridge, bridge.clock),
        host=server_cfg.host,
        port=server_cfg.port,
        threads=server_cfg.threads,
        # Waitress's defaults (100 connections, 120 s) let a hundred idle sockets lock every
        # client out for minutes; see ServerConfig. poll(), not select(): select() cannot watch a
        # descriptor numbered over 1023, and with thousands of connections there are such.
        connection_limit=budget.connection_limit,
        channel_timeout=max(1, math.ceil(server_cfg.idle_timeout)),  # waitress counts seconds
        # How often idle connections are looked for: often enough to honour a short timeout.
        cleanup_interval=max(1, min(30, math.ceil(server_cfg.idle_timeout / 2))),
        asyncore_use_poll=True,
        # Our own limit answers 413 with a reason; waitress's must not fire first.
        max_request_body_size=largest_body + 1,
        ident="dingtalk-bridge",
        clear_untrusted_proxy_headers=True,
    )
    port = getattr(server, "effective_port", server_cfg.port)
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
    serving = threading.Thread(target=server.run, name="http", daemon=True)
    serving.start()
    log.info(
        fmt_fields(
            "started",
            listen=f"{server_cfg.host}:{port}",
            config=str(config.path),
            hash=config.digest[:12],
            state=str(config.state_dir),
            inputs=len(config.inputs),
            rules=len(config.rules),
            targets=len(config.targets),
        )
    )

    systemd = Notifier()
    systemd.ready(f"serving on {server_cfg.host}:{port}")
    tick = min(0.5, systemd.watchdog_interval or 0.5)
    while not stop.is_set():
        systemd.watchdog(healthy=serving.is_alive() and bridge.healthy())
        try:
            trigger = reloads.get(timeout=tick)
        except queue.Empty:
            if not serving.is_alive():
                log.error("http server stopped unexpectedly")
                break
            continue
        systemd.reloading()
        result = bridge.reload(trigger)
        systemd.ready(f"config {result.get('hash', '?')}: reload {result['result']}")
    systemd.stopping()
    watcher.stop()
    server.close()  # stop accepting; requests in flight finish on their threads
    left = bridge.stop(config.shutdown_timeout)
    bridge.store.close()
    log.info(fmt_fields("stopped", queued=left))
    return 0
