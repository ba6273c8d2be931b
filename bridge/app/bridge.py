"""Composition root: builds the long-lived parts and wires inputs to the pipeline and senders.

Long-lived (whole process): the state store, the HTTP session, the DingTalk client and its token
cache, the one clock. Config-scoped: the compiled Config (rules, templates, targets, input
routes), one sender per target and one tailer per file input, replaced by `Reloader` (reload.py).
The desk (desk.py) answers operators, health.py says whether the bridge is alive and ready, and
run.py owns the process (listener, signals, systemd). `Bridge` is the only object that knows
every part; the inputs see it through their own protocols.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import tzinfo
from functools import partial
from typing import Any

import requests

from bridge.alerting.actions import Verified
from bridge.alerting.alertstate import PostedAlert
from bridge.app import health, metrics
from bridge.app.actionkey import ActionKey
from bridge.app.cardclicks import CardClicks
from bridge.app.console.app import Console
from bridge.app.console.routes import ROUTES as CONSOLE_ROUTES
from bridge.app.desk import Desk
from bridge.app.firing import FiringIndex, SeenAlert
from bridge.app.firing import from_shared as firing_from_shared
from bridge.app.reload import Reloader
from bridge.app.rendering import QueuedRenderer
from bridge.app.siblings import Share, Siblings, fresh_samples, group_readiness
from bridge.app.streams import Streams
from bridge.clock import SYSTEM_CLOCK, Clock
from bridge.config.model import (
    AppRobotTarget,
    ChatInput,
    Config,
    FileInput,
    PrometheusInput,
    RoutedInput,
    Rule,
    Target,
)
from bridge.delivery.claims import free_predecessors, new_replica_id
from bridge.delivery.noticepoll import NoticePoller
from bridge.delivery.recall import recall_storm_singles
from bridge.delivery.robots import RobotWindows
from bridge.delivery.sender import TargetSender
from bridge.delivery.turns import StoredWindows
from bridge.dingtalk.channels import channel_for
from bridge.dingtalk.client import DingTalkClient
from bridge.dingtalk.session import make_session
from bridge.errors import InputError, Reason, StoreError
from bridge.inputs import streamframes as sf
from bridge.inputs.chat import ChatMessage
from bridge.inputs.filetail.offsets import OffsetUpdate
from bridge.inputs.filetail.tailer import Tailer
from bridge.inputs.received import Received, ReceivedBodies, from_shared, newest
from bridge.inputs.signed import SignedOnce
from bridge.locales import Locale
from bridge.logs import RECENT, REDACTOR, fmt_fields, interleaved
from bridge.model import Accepted, Event
from bridge.pipeline.escalator import Escalator, signed_ack_links
from bridge.pipeline.expiry import Expirer
from bridge.pipeline.grouper import Grouper
from bridge.pipeline.ids import new_id
from bridge.pipeline.intake import Intake
from bridge.pipeline.tracking import posted_events
from bridge.store import records
from bridge.store.api import Store, Tx
from bridge.store.backend import open_store
from bridge.store.offsets import StoreOffsets
from bridge.store.records import Row

log = logging.getLogger("bridge")

ACTION_LINKS = "-/act"  # the replays table's "input" for used action links


# The shares a worker writes for its siblings (app/siblings.py Share).
BODIES = "bodies"  # the playground's recent bodies
FIRING = "firing"  # the silence preview's alerts


class Bridge:
    def __init__(
        self,
        config: Config,
        store: Store | None = None,
        session: requests.Session | None = None,
        clock: Clock = SYSTEM_CLOCK,
        reads_files: bool = True,
        sends: bool = True,
    ) -> None:
        """`reads_files` False: this process runs no file input (a worker of `server.workers`
        but one, app/workers.py: several tailers of one file under one node id would read each
        line more than once). `sends` False: it runs no sender and none of the timed jobs (an
        HTTP worker, when `server.background_worker` runs them); what it queues, it wakes that
        process for (Store.wake_senders)."""
        self.config = config
        self.reads_files = reads_files
        self.sends = sends
        self.clock = clock
        self.loaded_at = clock.now()
        # Names this process in the claims it makes on shared rows (outbox, notice tasks).
        self.replica = new_replica_id()
        # Before anything can log: opening a database store may (its URL holds a password).
        REDACTOR.set_secrets(config.secrets())
        self.store = store or open_store(config)
        # Long-lived like the store: the file inputs' offsets are kept under it (state.node_id).
        self.node_id = config.node_id
        self.session = session or make_session()
        self.client = DingTalkClient(self.session, clock=clock)
        # One rate window per robot, shared by its targets and kept across reloads.
        self.windows = RobotWindows(StoredWindows(self.store, clock))
        self.action_key = ActionKey(self.store)  # signs the one-tap links (app/actionkey.py)
        self.senders = {n: self._sender(target) for n, target in self._sent(config).items()}
        # Asks DingTalk who received each work notice (getsendresult) and settles it.
        self.notice_poller = NoticePoller(
            self.store,
            self.client,
            lambda: self.config.targets,
            clock=clock,
            owner=self.replica,
            lease=config.claim_lease,
        )
        # The alerts this process saw firing, with labels: the console's silence preview.
        self.firing = FiringIndex()
        self.intake = Intake(self.store, self.wake_senders, self.firing.note)
        self.bodies_received = ReceivedBodies()  # the console's playground offers them
        self.grouper = Grouper(self.store, lambda: self.config, self.wake_senders, clock)
        # Resolves the alerts of prometheus inputs whose endsAt passed without a fresh post.
        self.expirer = Expirer(self.store, self.intake, lambda: self.config, clock)
        self._routes = {spec.path: spec for spec in config.routed_inputs().values()}
        self.tailers = {name: self._tailer(spec) for name, spec in self.file_inputs(config).items()}
        self.desk = Desk(
            self.store,
            lambda: self.config,
            self.session,
            clock,
            lambda: self.readiness()[1],
            self.intake.forget_cache,
            self.wake_senders,
        )
        # Sends the escalation steps that fall due (pipeline/escalator.py).
        self.escalator = Escalator(
            self.store,
            lambda: self.config,
            self.wake_senders,
            self.desk.silences,
            clock,
            ack_links=signed_ack_links(self.action_key.get),
        )
        # DingTalk's Stream connections of `listen: stream` inputs, one per app key; other
        # CALLBACK topics are handled by what is plugged into `streams.topics` before start().
        # Like the file inputs, they run in one process of `server.workers` (reads_files):
        # DingTalk would split an app's messages between the workers' connections.
        self.streams = Streams(self, self.reject, self.session, clock)
        # Clicks on the app robot's interactive cards (app/cardclicks.py): plugged into the
        # links while some target sends cards (sync_streams).
        self.card_clicks = CardClicks(self.store, lambda: self.config, self.desk, clock)
        # The operator's pages (server.console), served while configured (app/console/).
        self._console = Console(self, clock, CONSOLE_ROUTES)
        self.after_reload: Callable[[Config], None] = lambda config: None
        self.reloader = Reloader(self)
        # Set by run.py in a worker of `server.workers`: /metrics and /-/ready then answer for
        # the whole group, from the siblings' snapshots (app/siblings.py).
        self.siblings: Siblings | None = None

    def _sender(self, target: Target) -> TargetSender:
        def recall_singles(rows: list[Row]) -> None:  # delivery/recall.py
            recall_storm_singles(
                self.store, self.client, self.config, target.name, rows, self.clock.time()
            )

        return TargetSender(
            channel_for(target, self.client),
            self.store,
            QueuedRenderer(
                self._rules,
                lambda: self.config.locale,
                lambda: self.config.actions,
                self.action_key,
                self._sends_cards,
                lambda name: getattr(self.config.targets.get(name), "recipients", ()),
            ),
            clock=self.clock,
            windows=self.windows,
            timezone=self._tz,
            owner=self.replica,
            lease=self.config.claim_lease,
            after_digest=recall_singles if isinstance(target, AppRobotTarget) else None,
            new_id=new_id,
        )

    def _sent(self, config: Config) -> Mapping[str, Target]:
        """The targets this process sends to: all of `config`'s, or none (`sends`)."""
        return config.targets if self.sends else {}

    def _sends_cards(self, target: str) -> bool:
        return self._sends_cards_in(self.config, target)

    @staticmethod
    def _sends_cards_in(config: Config, target: str) -> bool:
        spec = config.targets.get(target)
        return isinstance(spec, AppRobotTarget) and bool(spec.card_template_id)

    def _tz(self) -> tzinfo:
        return self.config.timezone

    def _rules(self) -> Mapping[str, Rule]:
        return self.config.rules_by_name

    def wake_senders(self, targets: Iterable[str]) -> None:
        """Rows were committed for `targets`: their senders look now, not at their next poll."""
        if not self.sends:  # the background worker sends them
            if any(True for _ in targets):
                self.store.wake_senders()
            return
        for name in targets:
            sender = self.senders.get(name)
            if sender is not None:
                sender.wake()

    def _queued_elsewhere(self, target: str | None) -> None:
        """Another replica queued rows for `target` (None: for any, maybe)."""
        self.wake_senders(list(self.senders) if target is None else [target])

    def file_inputs(self, config: Config) -> Mapping[str, FileInput]:
        """The file inputs this process runs: all of `config`'s, or none (`reads_files`)."""
        return config.file_inputs() if self.reads_files else {}

    def _tailer(self, spec: FileInput) -> Tailer:
        return Tailer(spec, StoreOffsets(self.store, self.node_id), self.accept_lines, self.clock)

    # -- what the inputs call ------------------------------------------------------------------

    def routes(self) -> Mapping[str, RoutedInput]:
        return self._routes

    def store_is_local(self) -> bool:
        return self.store.local

    # Both after the commit of the batch the request is in (store.batch): a batch whose commit
    # fails is served again, and its requests must not count or be kept twice.
    def reject(self, input_name: str, reason: Reason) -> None:
        self.store.after_commit(partial(self.intake.reject, input_name, reason))

    def received(self, input_name: str, body: bytes) -> None:
        self.store.after_commit(
            partial(self.bodies_received.record, input_name, self.clock.time(), body)
        )

    def log_lines(self, containing: str, limit: int = 200) -> list[str]:
        """The recent log lines holding `containing`, oldest first: this process's, and with
        `server.workers` its siblings' too (a message may be queued by one, sent by another)."""
        own = RECENT.lines(containing, limit=limit)
        if self.siblings is None:
            return own
        return interleaved([own, *self.siblings.others_log_lines(containing, limit)], limit)

    def recent_bodies(self, input_name: str) -> list[Received]:
        """The bodies `input_name` took lately, newest first: this worker's and its
        siblings' (inputs/received.py)."""
        own = self.bodies_received.recent(input_name)
        if self.siblings is None:
            return own
        others = self.siblings.others_shared(BODIES)
        return newest([own, *(from_shared(shared, input_name) for shared in others)])

    def seen_alerts(self) -> list[list[SeenAlert]]:
        """The alerts seen firing with their labels, latest first: this worker's, then (under
        `server.workers`) each sibling's SHARED_ALERTS newest (app/firing.py; `latest_of`
        merges them against the notification log)."""
        own = self.firing.seen()
        if self.siblings is None:
            return [own]
        return [
            own,
            *(firing_from_shared(shared) for shared in self.siblings.others_shared(FIRING)),
        ]

    def shares(self) -> dict[str, Share]:
        """What this worker's siblings show of it (app/siblings.py), by name."""
        return {BODIES: self.bodies_received, FIRING: self.firing}

    def accept(self, spec: RoutedInput, events: list[Event]) -> Accepted:
        return self.intake.accept(self.config, spec, events, self.clock.now())

    def accept_once(
        self, spec: RoutedInput, events: list[Event], request: SignedOnce
    ) -> Accepted | None:
        """A signed DingTalk request's events, taken once: its memory commits with them (a 503
        leaves no trace, so DingTalk may send it again)."""
        now = self.clock.now()

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

    def accept_posted(self, spec: PrometheusInput, alerts: list[PostedAlert]) -> Accepted:
        now = self.clock.now()
        return self.intake.accept_from(
            self.config, spec, lambda tx: posted_events(tx, spec, alerts, now), now
        )

    def claim(self, request: SignedOnce) -> None:
        """A chat command's timestamp+sign pair, used once (whatever the body)."""
        try:
            with self.store.transaction() as tx:
                seen = tx.replays.claim(
                    request.input,
                    request.key,
                    request.digest,
                    request.expires,
                    self.clock.time(),
                )
        except StoreError as exc:
            raise InputError(503, Reason.STORE, "the state store cannot take it now") from exc
        if seen is not records.Seen.NEW:
            raise InputError(409, Reason.REPLAY, "this timestamp and sign were used before")

    def accept_lines(self, spec: FileInput, events: list[Event], offsets: OffsetUpdate) -> Accepted:
        """A file input's events and the offsets past their lines, in one transaction: an
        offset advances exactly when the events before it are in the outbox."""

        def record(tx: Tx) -> None:
            tx.tailstate.record(
                self.node_id, spec.name, offsets.positions, offsets.forget, offsets.seen_at
            )

        return self.intake.accept(self.config, spec, events, self.clock.now(), record)

    # -- one-tap action links (inputs/actionlink.py) -----------------------------------------------

    def action_settings(self) -> tuple[bytes, Locale] | None:
        config = self.config
        if config.actions.base_url is None:
            return None  # links are off: none were made, none are taken
        try:
            return self.action_key.get(config.actions), config.locale
        except StoreError as exc:
            raise InputError(503, Reason.STORE, "the state store cannot be read now") from exc

    def link_used(self, verified: Verified) -> bool:
        try:
            with self.store.reading() as tx:
                return tx.replays.taken(ACTION_LINKS, verified.once_key, self.clock.time())
        except StoreError:
            return False  # the page shows; the POST finds out

    def act_on_link(self, verified: Verified, who: str, source: str) -> tuple[bool, str]:
        """A link's action, for whoever holds the link (it is the permission), once: its use
        is remembered in the action's commit (store/replays.py, as signed DingTalk requests)."""
        grant = verified.grant
        once = SignedOnce(ACTION_LINKS, verified.once_key, verified.once_key, grant.expires + 1)
        now = self.clock.time()

        def remember(tx: Tx) -> None:
            seen = tx.replays.claim(once.input, once.key, once.digest, once.expires, now)
            if seen is not records.Seen.NEW:
                raise InputError(409, Reason.REPLAY, "this link was used before")

        try:
            result = self.desk.act(grant, who, True, now, remember, source)
        except StoreError as exc:
            raise InputError(503, Reason.STORE, "the state store cannot take it now") from exc
        return result.done, result.text

    # -- chat commands (dingtalk_robot inputs) --------------------------------------------------

    def command(self, spec: ChatInput, message: ChatMessage) -> dict[str, Any]:
        return self.desk.command(spec, message)

    # -- the console (app/console/) -------------------------------------------------------------

    def console(self) -> tuple[str, Console] | None:
        settings = self.config.server.console
        return (settings.path, self._console) if settings is not None else None

    # -- health ----------------------------------------------------------------------------------

    def metrics(self) -> bytes:
        others = self.siblings.others() if self.siblings is not None else {}
        return metrics.render(self, list(fresh_samples(others)))

    def healthy(self) -> bool:
        return health.healthy(self)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        own = health.readiness(self)
        if self.siblings is None:
            return own
        return group_readiness(self.siblings.role, own, self.siblings.others(), self._counts())

    def _counts(self) -> dict[str, Any]:
        """What each worker's line in /-/ready says of its share and its config."""
        part = self.siblings.role.part if self.siblings is not None else "whole"
        return {
            "events_received": sum(self.intake.counters.events.values()),
            "config": self.config.digest[:12],
            "part": part,  # "http" / "background" with server.background_worker, else "whole"
        }

    def snapshot(self) -> dict[str, Any]:
        """What this worker tells its siblings and the supervisor (app/siblings.py)."""
        state = health.local_state(self)  # not the store's: the one answering reads that
        files = state["files"]
        local = metrics.BridgeCollector(self).local_families(files)
        return {
            **self._counts(),
            "replica": self.replica,
            "ready": not state["problems"],
            "healthy": self.healthy(),
            "problems": state["problems"],
            "warnings": state["warnings"],
            "files": files,
            "streams": state["streams"],
            # The senders' state, which the HTTP workers show when this is the background worker.
            "senders": state["senders"],
            "sending": state["sending"],
            "wakeups": self.store.wakeups,
            "metrics": metrics.as_samples(local),
        }

    def reload_over_http(self, authorization: str) -> tuple[int, dict[str, Any]]:
        status, answer = self.reloader.reload_over_http(authorization)
        if status != 401 and self.siblings is not None:
            self.siblings.role.reload_group()  # one worker took the request; all reload
        return status, answer

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self.store.start_upkeep()  # keeps the WAL small and retries after a full disk
        with self.store.reading() as tx:
            pending = tx.outbox.pending_count()
        if pending:
            log.info(fmt_fields("resuming", pending=pending))
        log.info(fmt_fields("replica", id=self.replica, lease=f"{self.config.claim_lease:g}s"))
        free_predecessors(self.store, self.replica, self.clock.time())  # a restart resumes at once
        if self.sends:
            for sender in self.senders.values():
                sender.start()
            self.store.listen(self._queued_elsewhere)  # wake-ups from the other processes
            self.notice_poller.start()
            self.grouper.start()
            self.expirer.start()
            self.escalator.start()
        for tailer in self.tailers.values():
            tailer.start()
        self.sync_streams(self.config)

    def sync_streams(self, config: Config) -> list[str]:
        """Open, keep or close the Stream connections for `config`'s inputs."""
        wanted = config if self.reads_files else replace(config, inputs={})
        cards = [t for t in config.targets.values() if self._sends_cards_in(config, t.name)]
        if cards:
            self.streams.topics[sf.CARD_TOPIC] = self.card_clicks.handle
        else:
            self.streams.topics.pop(sf.CARD_TOPIC, None)
        return self.streams.sync(wanted, config.shutdown_timeout)

    def stop(self, grace: float) -> int:
        """Stop senders within `grace` seconds in total; return how many messages stay queued."""
        deadline = time.monotonic() + grace
        self.streams.stop(grace / 2)  # first, with the file inputs: nothing new comes in
        for tailer in self.tailers.values():  # first: their last lines go to the outbox
            tailer.stop(max(0.0, deadline - time.monotonic()))
        if self.sends:  # (not started otherwise)
            self.expirer.stop()
            self.escalator.stop()
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
