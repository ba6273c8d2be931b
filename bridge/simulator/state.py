"""The simulated DingTalk itself: pure request handling over an in-memory registry.

Nothing here reads the clock, touches sockets or sleeps: every handler takes `now` (Unix
seconds, float) and returns `(http_status, json_body)`. That keeps every rule (rate windows,
10-minute lockouts, token expiry, per-day dedupe) testable with an injected clock, and keeps the
WSGI layer a thin translator. One lock serialises all state: waitress serves requests from
several threads and the rules are read-modify-write.

`SimulatorState` is the one face of the parts, one per DingTalk API family: robots.py (the
webhook and session replies), apps.py (access tokens and work notifications), faults.py (the
injected faults), traffic.py (what was seen: requests, messages, counters), checks.py (pure
checks of a request's parts). It holds the lock, logs outside it, injects faults across the
families, and answers the control API (registry and inspection).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any

from bridge.simulator.apps import Apps
from bridge.simulator.faults import Fault, FaultAction, FaultQueue
from bridge.simulator.openapi import OpenApi
from bridge.simulator.robots import Robots
from bridge.simulator.spec import DEFAULT_RATE_PER_MINUTE, AppSpec, RobotSpec, SimulatorSpec
from bridge.simulator.traffic import (
    ASYNCSEND_PATH,
    GETTOKEN_PATH,
    JSON,
    ROBOT_SEND_PATH,
    Reply,
    Traffic,
    kind_of,
    mask,
)


class SimulatorState:
    """Registry + runtime state of the simulated DingTalk. Thread-safe.

    `log` receives one human-readable line per delivered message, rejection and fault (called
    outside the lock). `new_token` makes access tokens / request ids (injectable for tests).
    """

    def __init__(
        self,
        spec: SimulatorSpec | None = None,
        *,
        accept_unknown_robots: bool = False,
        default_rate_per_minute: int = DEFAULT_RATE_PER_MINUTE,
        log: Callable[[str], None] | None = None,
        new_token: Callable[[], str] | None = None,
    ) -> None:
        spec = spec or SimulatorSpec()
        self._lock = threading.Lock()
        self._log = log
        self._traffic = Traffic()
        self._robots = Robots(
            spec.robots, self._traffic, accept_unknown_robots, default_rate_per_minute
        )
        new_token = new_token or (lambda: secrets.token_hex(16))
        self._apps = Apps(spec.apps, self._traffic, new_token)
        self._openapi = OpenApi(self._apps, self._traffic, new_token)
        self._faults = FaultQueue()

    @property
    def accept_unknown_robots(self) -> bool:
        return self._robots.accept_unknown

    @property
    def default_rate_per_minute(self) -> int:
        return self._robots.default_rate_per_minute

    # --- robots ----------------------------------------------------------------------------------

    def robot_send(self, now: float, query: Mapping[str, str], body: bytes) -> Reply:
        """POST /robot/send?access_token=…[&timestamp=…&sign=…] (sign already URL-decoded once)."""
        return self._logged(lambda: self._robots.send(now, query, body))

    def session_send(self, now: float, query: Mapping[str, str], body: bytes) -> Reply:
        """POST /robot/sendBySession?session=… : a reply into the conversation a robot was
        @-mentioned in (reference §5.4); the URL itself is the credential."""
        return self._logged(lambda: self._robots.session_send(now, query, body))

    # --- apps: access tokens and work notifications ----------------------------------------------

    def gettoken(self, now: float, query: Mapping[str, str]) -> Reply:
        """GET /gettoken?appkey=…&appsecret=…"""
        return self._logged(lambda: self._apps.gettoken(now, query))

    def expire_tokens(self, now: float, app_key: str) -> int:
        """Make every unexpired token of `app_key` expire now; returns how many. KeyError if the
        app is unknown. The next topapi call with such a token gets 42001."""
        with self._lock:
            expired = self._apps.expire_tokens(now, app_key)
            return expired + self._openapi.expire_tokens(now, app_key)

    # --- the v1.0 API (openapi.py) ---------------------------------------------------------------

    def openapi(self, now: float, method: str, path: str, token: str, body: bytes) -> Reply:
        """One v1.0 call (`token`: the x-acs-dingtalk-access-token header)."""
        return self._logged(lambda: self._openapi.handle(now, method, path, token, body))

    def cards(self, since: int = 0) -> list[JSON]:
        """Card calls recorded (createAndDeliver, updates), oldest first."""
        with self._lock:
            return list(self._openapi.cards[max(since, 0) :])

    def card_answered(self, out_track_id: str, params: JSON, now: float) -> None:
        """A click's answer changed card `out_track_id` (cardboard.py)."""
        with self._lock:
            self._openapi.cards.append(
                {
                    "index": len(self._openapi.cards),
                    "time": now,
                    "op": "answered",
                    "body": {"outTrackId": out_track_id, "cardData": {"cardParamMap": params}},
                }
            )

    def app(self, app_key: str) -> AppSpec | None:
        with self._lock:
            return self._apps.registered.get(app_key)

    def authenticated_app(self, now: float, query: Mapping[str, str]) -> tuple[str, AppSpec]:
        """The app whose access token the query carries; `Rejected` if it is unknown or
        expired (for APIs outside the families here, such as callback registration)."""
        with self._lock:
            return self._apps.authenticate(now, query)

    def asyncsend(self, now: float, query: Mapping[str, str], body: bytes) -> Reply:
        """POST /topapi/message/corpconversation/asyncsend_v2?access_token=…"""
        return self._logged(lambda: self._apps.asyncsend(now, query, body))

    def getsendresult(self, now: float, query: Mapping[str, str], body: bytes) -> Reply:
        """POST /topapi/message/corpconversation/getsendresult?access_token=… {agent_id, task_id}"""
        with self._lock:
            return self._apps.getsendresult(now, query, body)

    # --- faults ----------------------------------------------------------------------------------

    def add_fault(self, data: Any) -> Fault:
        """Register a fault from its JSON definition (raises faults.FaultError)."""
        with self._lock:
            return self._faults.add(data)

    def take_fault(self, now: float, path: str, query: Mapping[str, str]) -> FaultAction | None:
        """Consume one matching fault for this request, oldest first, if any.

        Every fault except `delay` replaces the normal handling, so the request is recorded
        here (not delivered), counted as its family counts it. A delayed request is recorded
        when it is handled afterwards.
        """
        with self._lock:
            app_key = self._apps.app_of_token(query)
            identities = tuple(
                i for i in (query.get("access_token"), query.get("appkey"), app_key) if i
            )
            fault = self._faults.take(path, identities)
            if fault is None:
                return None
            self._traffic.totals["faults_injected"] += 1
            action = fault.action
            if action.kind == "delay":
                return action
            robot_token = query.get("access_token", "") if path == ROBOT_SEND_PATH else None
            if robot_token in self._robots.registered:
                self._traffic.robot_counter(robot_token)["faulted"] += 1
            if path == GETTOKEN_PATH:
                app_key = self._apps.count_gettoken(query)
            elif path == ASYNCSEND_PATH:
                self._apps.count_asyncsend(query)
            errcode = action.errcode if action.kind == "errcode" else None
            self._traffic.record(
                now,
                path,
                kind_of(path),
                errcode,
                action.errmsg or action.describe(),
                token=robot_token,
                app_key=app_key,
                http_status=action.status_seen(),
                fault=action.describe(),
            )
            who = mask(robot_token) if robot_token else (app_key or "")
        self._emit(f"fault {path} {who} {action.describe()}".replace("  ", " "))
        return action

    def faults(self) -> list[JSON]:
        with self._lock:
            return self._faults.as_json()

    # --- registry and inspection (control API) ---------------------------------------------------

    def register_robots(self, robots: Mapping[str, RobotSpec]) -> None:
        with self._lock:
            self._robots.register(robots)

    def register_apps(self, apps: Mapping[str, AppSpec]) -> None:
        with self._lock:
            self._apps.register(apps)

    def robots(self) -> JSON:
        """Registered robots, without their secrets."""
        with self._lock:
            return self._robots.describe()

    def apps(self) -> JSON:
        """Registered apps, without their secrets."""
        with self._lock:
            return self._apps.describe()

    def reset(self) -> None:
        """Forget all traffic, tokens, rate windows, lockouts, stats and faults; keep the
        registered robots and apps."""
        with self._lock:
            self._traffic.clear()
            self._robots.clear()
            self._apps.clear()
            self._openapi.clear()
            self._faults.clear()

    def messages(self, since: int = 0, token: str | None = None) -> list[JSON]:
        """Delivered robot messages and work notices, oldest first, from index `since`;
        `token` keeps only one robot token's (or one app_key's) messages."""
        with self._lock:
            selected = self._traffic.messages[max(since, 0) :]
        if token is not None:
            selected = [
                m for m in selected if token in (m.get("token"), m.get("app_key"), m.get("session"))
            ]
        return selected

    def requests(self, since: int = 0) -> list[JSON]:
        """Every API request seen (delivered, rejected or faulted), oldest first."""
        with self._lock:
            return self._traffic.requests[max(since, 0) :]

    def stats(self) -> JSON:
        with self._lock:
            return self._traffic.stats()

    def _logged(self, handle: Callable[[], tuple[Reply, str | None]]) -> Reply:
        """Run a family's handler under the lock; log its line (if any) outside it."""
        with self._lock:
            reply, line = handle()
        if line is not None:
            self._emit(line)
        return reply

    def _emit(self, line: str) -> None:
        if self._log is not None:
            self._log(line)
