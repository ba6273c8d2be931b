"""DingTalk Stream connections: the bridge dials out to DingTalk, so chat commands and events
arrive without a public URL (`listen: stream` inputs; the wire format is in
bridge/inputs/streamframes.py).

One `StreamLink` per app key: one thread owns its WebSocket (`websockets.sync.client`). It asks
`connections/open` for a ticket (single use, 90 s: a new one for every connection), connects,
and answers every frame at once: a robot message is acknowledged before its command runs (on the
link's worker thread: a reply to the chat may take seconds), an event once its commit is done
(SUCCESS) or failed (LATER: DingTalk sends it again, so an accepted event is never lost), a
ping with its own data, a CALLBACK topic with no handler with 404. `disconnect` and any end of
the socket lead to a new connection: at once after `disconnect`, else after a backoff that
doubles from 1 s to 60 s with jitter and starts again once a frame arrives. Refused
credentials are reported (log, /-/ready) and retried at that pace, never faster.

Which topic goes where is a table: robot messages to the `dingtalk_robot` input of the app,
events to its `dingtalk_callback` input, and any other CALLBACK topic to a handler the
composition root plugs into `Streams.topics` (interactive-card clicks). `Streams.sync` opens,
keeps, updates or closes links when the config changes.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from bridge.clock import Clock
from bridge.config.inputs.listening import StreamApp
from bridge.config.model import CallbackInput, ChatInput, Config
from bridge.errors import InputError, Reason
from bridge.inputs import callback, chat
from bridge.inputs import streamframes as sf
from bridge.inputs.request import Sink
from bridge.logs import REDACTOR, fmt_fields

log = logging.getLogger("bridge.stream")

OPEN_TIMEOUT = (5.0, 10.0)  # connect, read: connections/open
_WORK_QUEUE = 256  # robot messages acknowledged and waiting for their command to run


@dataclass(frozen=True)
class Handled:
    """What a frame gets: its ack, sent at once, and the work to do after it (if any)."""

    ack: sf.Ack
    then: Callable[[], None] | None = None


Handler = Callable[[sf.Frame], Handled]


@dataclass(frozen=True)
class LinkInputs:
    """The inputs one app's connection serves; what it subscribes to follows from them."""

    app: StreamApp
    chat: ChatInput | None = None
    events: CallbackInput | None = None

    def names(self) -> list[str]:
        return sorted(i.name for i in (self.chat, self.events) if i is not None)


@dataclass
class LinkStats:
    frames: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, topic)
    acks: Counter[int] = field(default_factory=Counter)  # by code
    reconnects: int = 0


class StreamLink:
    """One app key's Stream connection, its thread and its worker."""

    def __init__(
        self,
        inputs: LinkInputs,
        topics: Mapping[str, Handler],
        sink: Sink,
        reject: Callable[[str, Reason], None],
        session: requests.Session,
        clock: Clock,
    ) -> None:
        self.inputs = inputs  # replaced whole by `update` (a reload that kept the connection)
        self.topics = dict(topics)  # as subscribed: a topic plugged in later needs a new link
        self.sink = sink
        self.reject = reject
        self.session = session
        self.clock = clock
        self.stats = LinkStats()
        self._state, self._since, self._error = "connecting", clock.time(), ""
        self._stop = threading.Event()
        self._attempt = 0  # connection attempts since a frame last arrived
        self._reconnect_now = False  # DingTalk sent `disconnect`
        self._connected_before = False
        self._socket: ClientConnection | None = None
        self._lock = threading.Lock()
        self._work: queue.Queue[Callable[[], None]] = queue.Queue(_WORK_QUEUE)
        key = inputs.app.app_key
        self._thread = threading.Thread(target=self._run, name=f"stream:{key}", daemon=True)
        self._worker = threading.Thread(target=self._drain, name=f"stream-work:{key}", daemon=True)

    # -- what it subscribes to ------------------------------------------------------------------

    def subscriptions(self) -> list[dict[str, str]]:
        return subscriptions_of(self.inputs, self.topics)

    def update(self, inputs: LinkInputs) -> None:
        self.inputs = inputs

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._worker.start()
        self._thread.start()

    def request_stop(self) -> None:
        """Close the socket cleanly (a close frame) and end the threads soon."""
        self._stop.set()
        with self._lock:
            socket = self._socket
        if socket is not None:
            socket.close()

    def stop(self, timeout: float) -> None:
        """`request_stop`, then wait at most `timeout` seconds for both threads."""
        self.request_stop()
        deadline = time.monotonic() + timeout
        self._thread.join(timeout)
        # The worker runs the commands already acknowledged, then ends.
        self._worker.join(max(0.1, deadline - time.monotonic()))
        self._set("stopped")

    def alive(self) -> bool:
        return self._thread.is_alive() and self._worker.is_alive()

    def status(self) -> dict[str, Any]:
        with self._lock:
            state, since, error = self._state, self._since, self._error
        return {
            "app_key": self.inputs.app.app_key,
            "inputs": self.inputs.names(),
            "subscriptions": [f"{s['type']} {s['topic']}" for s in self.subscriptions()],
            "state": state,
            "since": datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds"),
            "last_error": error or None,
            "reconnects": self.stats.reconnects,
        }

    def _set(self, state: str, error: str = "") -> None:
        with self._lock:
            if state != self._state:
                self._state, self._since = state, self.clock.time()
            if error:
                self._error = REDACTOR.scrub(error)

    # -- the connection -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._set("connecting")
            try:
                self._serve(self._open())
            except _Retry as exc:
                self._set("failing", str(exc))
                log.warning(fmt_fields("stream connection failed", app_key=self._key, error=exc))
            except Exception as exc:  # a bug of ours must not end the link for good
                self._set("failing", f"{type(exc).__name__}: {exc}")
                log.exception(fmt_fields("stream connection error", app_key=self._key))
            if self._stop.is_set():
                break
            if self._reconnect_now:
                continue  # after `disconnect`: a new ticket at once
            if self._stop.wait(sf.backoff(self._attempt, random.random())):
                break
            self._attempt += 1

    @property
    def _key(self) -> str:
        return self.inputs.app.app_key

    def _open(self) -> str:
        """A new ticket's WebSocket URL from connections/open (raises _Retry)."""
        app = self.inputs.app
        body = sf.open_body(app.app_key, app.app_secret, self.subscriptions())
        try:
            answer = self.session.post(
                f"{app.api_base}{sf.OPEN_PATH}", json=body, timeout=OPEN_TIMEOUT
            )
        except requests.RequestException as exc:
            raise _Retry(f"connections/open: {type(exc).__name__}: {exc}") from None
        try:
            payload = answer.json()
        except ValueError:
            payload = None
        if answer.status_code != 200:
            raise _Retry(sf.open_refusal(answer.status_code, payload))
        try:
            endpoint, ticket = sf.parse_open_answer(payload)
        except InputError as exc:
            raise _Retry(str(exc)) from None
        return sf.socket_url(endpoint, ticket)

    def _serve(self, url: str) -> None:
        """One connection, until it ends (raises _Retry unless it ended because DingTalk asked
        for a new one or the link stops)."""
        self._reconnect_now = False
        try:
            with connect(
                url,
                max_size=sf.MAX_FRAME_BYTES,
                proxy=None,  # DingTalk is reached directly, as requests' calls are
                open_timeout=10,
                ping_interval=30,
                ping_timeout=20,
                close_timeout=2,
                user_agent_header=sf.UA,
            ) as socket:
                with self._lock:
                    self._socket = socket
                if self._stop.is_set():
                    return
                if self._connected_before:
                    self.stats.reconnects += 1
                self._connected_before = True
                self._set("connected")
                log.info(fmt_fields("stream connected", app_key=self._key))
                for raw in socket:
                    self._attempt = 0
                    self._frame(socket, raw)
                    if self._reconnect_now:
                        return
        except (WebSocketException, OSError, TimeoutError) as exc:
            if not self._stop.is_set():
                raise _Retry(f"the connection ended: {type(exc).__name__}: {exc}") from None
        finally:
            with self._lock:
                self._socket = None
        if not self._stop.is_set():
            raise _Retry("DingTalk closed the connection")

    def _frame(self, socket: ClientConnection, raw: str | bytes) -> None:
        try:
            frame = sf.parse_frame(raw)
        except InputError as exc:
            self.stats.frames[("invalid", "")] += 1
            log.warning(fmt_fields("stream frame refused", app_key=self._key, error=exc))
            return  # nothing to acknowledge: it has no messageId we could trust
        self.stats.frames[(frame.type, frame.topic)] += 1
        handled = self._respond(frame)
        socket.send(handled.ack.text)
        self.stats.acks[handled.ack.code] += 1
        if handled.then is not None:
            try:
                self._work.put_nowait(handled.then)
            except queue.Full:
                log.warning(
                    fmt_fields("stream work queue full, message dropped", app_key=self._key)
                )

    def _respond(self, frame: sf.Frame) -> Handled:
        if frame.type == "SYSTEM":
            if frame.topic == "disconnect":
                self._reconnect_now = True
                log.info(fmt_fields("stream disconnect asked, reconnecting", app_key=self._key))
            return Handled(sf.ping_reply(frame))  # ping: its data echoed; others: taken
        inputs = self.inputs
        if frame.type == "EVENT":
            if inputs.events is None:
                return Handled(sf.unknown_topic_ack(frame.message_id))
            return Handled(self._event(inputs.events, frame))
        if frame.topic == sf.ROBOT_TOPIC and inputs.chat is not None:
            spec = inputs.chat
            return Handled(sf.callback_ack(frame.message_id), lambda: self._command(spec, frame))
        handler = self.topics.get(frame.topic)
        if handler is None:
            return Handled(sf.unknown_topic_ack(frame.message_id))
        try:
            return handler(frame)
        except Exception:  # a plugged handler's bug: this frame fails, the link goes on
            log.exception(fmt_fields("stream handler failed", topic=frame.topic))
            return Handled(sf.ack(frame.message_id, 500, {"response": None}, "handler failed"))

    def _event(self, spec: CallbackInput, frame: sf.Frame) -> sf.Ack:
        try:
            taken = callback.take_streamed(spec, frame, self.sink, self.clock.now())
        except InputError as exc:  # no event: taken, so DingTalk does not send it forever
            self.reject(spec.name, exc.reason)
            log.warning(fmt_fields("stream event refused", input=spec.name, error=exc))
            return sf.event_ack(frame.message_id, True, f"refused: {exc}")
        return sf.event_ack(frame.message_id, taken, "" if taken else "the store is busy")

    def _command(self, spec: ChatInput, frame: sf.Frame) -> None:
        try:
            chat.take_streamed(spec, frame, self.sink, self.clock.time())
        except InputError as exc:
            if exc.status == 409:
                log.info(fmt_fields("stream message taken before", input=spec.name))
                return
            self.reject(spec.name, exc.reason)
            log.warning(fmt_fields("stream message refused", input=spec.name, error=exc))

    def _drain(self) -> None:
        while True:
            try:
                work = self._work.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            try:
                work()
            except Exception:  # one message's failure must not end the worker
                log.exception(fmt_fields("stream message failed", app_key=self._key))


class _Retry(Exception):
    """This connection attempt failed; the link tries again after its backoff."""


def subscriptions_of(inputs: LinkInputs, topics: Mapping[str, Handler]) -> list[dict[str, str]]:
    """Robot messages when the app has a chat input, events when it has a callback input, and
    every topic a handler was plugged in for."""
    callbacks = [*topics, *([sf.ROBOT_TOPIC] if inputs.chat else [])]
    return sf.subscriptions(callbacks, events=inputs.events is not None)


def link_inputs(config: Config) -> dict[str, LinkInputs]:
    """The stream inputs of `config`, by app key (the config has checked one per kind)."""
    links: dict[str, LinkInputs] = {}
    for spec in config.stream_inputs().values():
        assert spec.stream is not None
        app = spec.stream
        current = links.get(app.app_key, LinkInputs(app))
        if isinstance(spec, ChatInput):
            links[app.app_key] = LinkInputs(app, spec, current.events)
        else:
            links[app.app_key] = LinkInputs(app, current.chat, spec)
    return links


class Streams:
    """Every Stream link of the running config. `topics`: handlers of other CALLBACK topics,
    plugged in by the composition root before `sync` (e.g. interactive-card clicks)."""

    def __init__(
        self,
        sink: Sink,
        reject: Callable[[str, Reason], None],
        session: requests.Session,
        clock: Clock,
    ) -> None:
        self.sink, self.reject, self.session, self.clock = sink, reject, session, clock
        self.topics: dict[str, Handler] = {}
        self.links: dict[str, StreamLink] = {}

    def sync(self, config: Config, grace: float) -> list[str]:
        """Open, keep or close links to match `config`; the app keys whose connection was
        opened or closed. A change of inputs that keeps the app and what it subscribes to keeps
        the connection and serves the new inputs at once."""
        wanted = link_inputs(config)
        changed = []
        for key in sorted(set(self.links) | set(wanted)):
            link, inputs = self.links.get(key), wanted.get(key)
            if link is not None and inputs is not None:
                same_subs = subscriptions_of(inputs, self.topics) == link.subscriptions()
                if inputs.app == link.inputs.app and same_subs:
                    link.update(inputs)
                    continue
            changed.append(key)
            if link is not None:
                self.links.pop(key).stop(grace)
            if inputs is not None:
                self.links[key] = self._link(inputs)
                self.links[key].start()
        return changed

    def _link(self, inputs: LinkInputs) -> StreamLink:
        return StreamLink(inputs, self.topics, self.sink, self.reject, self.session, self.clock)

    def stop(self, grace: float) -> None:
        """Close every connection, all at once, within `grace` seconds in total."""
        deadline = time.monotonic() + grace
        for link in self.links.values():
            link.request_stop()
        for link in self.links.values():
            link.stop(max(0.0, deadline - time.monotonic()))

    def alive(self) -> bool:
        return all(link.alive() for link in self.links.values())

    def status(self) -> dict[str, dict[str, Any]]:
        return {key: link.status() for key, link in sorted(self.links.items())}
