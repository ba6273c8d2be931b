"""The simulated DingTalk itself: pure request handling over an in-memory registry.

Nothing here reads the clock, touches sockets or sleeps: every handler takes `now` (Unix
seconds, float) and returns `(http_status, json_body)`. That keeps every rule (rate windows,
10-minute lockouts, token expiry, per-day dedupe) testable with an injected clock, and keeps the
WSGI layer a thin translator. One lock serialises all state: waitress serves requests from
several threads and the rules are read-modify-write.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from bridge.simulator import codes
from bridge.simulator.content import (
    Mentions,
    inspected_texts,
    robot_mentions,
    robot_summary,
    work_notice_summary,
)
from bridge.simulator.crypto import robot_sign_ok
from bridge.simulator.faults import Fault, FaultAction, parse_fault
from bridge.simulator.shapes import check_robot_message, check_work_notice_msg, invalid, missing
from bridge.simulator.spec import DEFAULT_RATE_PER_MINUTE, AppSpec, RobotSpec, SimulatorSpec

Reply = tuple[int, dict[str, Any]]
JSON = dict[str, Any]

ROBOT_SEND_PATH = "/robot/send"
GETTOKEN_PATH = "/gettoken"
ASYNCSEND_PATH = "/topapi/message/corpconversation/asyncsend_v2"
GETSENDRESULT_PATH = "/topapi/message/corpconversation/getsendresult"
SESSION_PATH = "/robot/sendBySession"
API_PATHS = (ROBOT_SEND_PATH, GETTOKEN_PATH, ASYNCSEND_PATH, GETSENDRESULT_PATH, SESSION_PATH)

MAX_ROBOT_BODY_BYTES = 20000  # §1.6: counted on the raw UTF-8 body
RATE_WINDOW_SECONDS = 60.0
TIMESTAMP_TOLERANCE_MS = 3600 * 1000  # §1.3: at most 1 hour of clock skew
# DingTalk's "day" for its per-user limits is China's (UTC+8, no summer time): the reference
# does not name the zone, but DingTalk is run from there and its quotas reset at Beijing midnight.
DINGTALK_DAY = timezone(timedelta(hours=8), "Asia/Shanghai")
_DIGITS = re.compile(r"[0-9]{1,18}")
_ERRMSG_LOG_LIMIT = 200


def mask(secretish: str) -> str:
    """At most the first 4 characters (never more than half) of a token, for human output."""
    return secretish[: min(4, len(secretish) // 2)] + "…"


@dataclass
class _RobotRuntime:
    accepted: deque[float] = field(default_factory=deque)  # accept times, oldest first
    locked_until: float = 0.0


@dataclass
class _Token:
    app_key: str
    expires_at: float


@dataclass
class _Task:
    app_key: str
    recipients: list[str]
    forbidden: list[tuple[str, int]]  # (userid, forbidden code)
    invalid: list[str]  # user ids the organisation does not have
    known_at: float  # when getsendresult starts to report the outcome (AppSpec.result_delay)


@dataclass
class _UserDay:
    """What one app delivered to one user on one DingTalk day (for dedupe and the daily cap)."""

    contents: set[str] = field(default_factory=set)
    delivered: int = 0


class _Rejected(Exception):
    """Raised inside a handler to answer with an errcode; caught at the handler's edge."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg


Rejected = _Rejected  # what callers outside this module catch


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
        self._robots: dict[str, RobotSpec] = dict(spec.robots)
        self._apps: dict[str, AppSpec] = dict(spec.apps)
        self.accept_unknown_robots = accept_unknown_robots
        self.default_rate_per_minute = default_rate_per_minute
        self._log = log
        self._new_token = new_token or (lambda: secrets.token_hex(16))
        self._next_task_id = 1  # never reset, so task ids stay unique across /_sim/reset
        self._next_fault_id = 1
        self._clear()

    def _clear(self) -> None:
        self._runtime: dict[str, _RobotRuntime] = {}
        self._tokens: dict[str, _Token] = {}
        self._current_token: dict[str, str] = {}  # app_key -> its newest token
        self._tasks: dict[int, _Task] = {}
        self._user_days: dict[tuple[str, str, str], _UserDay] = {}
        self._messages: list[JSON] = []
        self._requests: list[JSON] = []
        self._faults: list[Fault] = []
        self._robot_stats: dict[str, JSON] = {}
        self._app_stats: dict[str, Counter[str]] = {}
        self._totals: Counter[str] = Counter()

    # --- robot webhook ---------------------------------------------------------------------------

    def robot_send(self, now: float, query: Mapping[str, str], body: bytes) -> Reply:
        """POST /robot/send?access_token=…[&timestamp=…&sign=…] (sign already URL-decoded once)."""
        with self._lock:
            token = query.get("access_token", "")
            try:
                parsed, mentions = self._robot_checks(now, token, query, body)
            except _Rejected as rejected:
                line = self._robot_rejected(now, token, rejected)
                reply: Reply = (200, {"errcode": rejected.errcode, "errmsg": rejected.errmsg})
            else:
                line = self._robot_deliver(now, token, parsed, mentions)
                reply = (200, {"errcode": codes.OK, "errmsg": codes.MSG_OK})
        self._emit(line)
        return reply

    def _robot_checks(
        self, now: float, token: str, query: Mapping[str, str], body: bytes
    ) -> tuple[JSON, Mentions]:
        # The order mirrors what a client can observe from DingTalk: identity first, then the
        # throttle, then the payload, the security settings, and the rate count last (only a
        # message that would otherwise be delivered uses up the budget).
        robot = self._robots.get(token)
        if robot is None and token and self.accept_unknown_robots:
            robot = self._robots[token] = RobotSpec()
        if robot is None:
            raise _Rejected(codes.ROBOT_TOKEN_NOT_EXIST, codes.MSG_TOKEN_NOT_EXIST)
        runtime = self._runtime.setdefault(token, _RobotRuntime())
        rate = self._rate_for(robot)
        if now < runtime.locked_until:
            raise _Rejected(codes.ROBOT_SEND_TOO_FAST, codes.send_too_fast(rate))
        if len(body) > MAX_ROBOT_BODY_BYTES:
            raise _Rejected(codes.ROBOT_MESSAGE_TOO_LONG, codes.MSG_MESSAGE_TOO_LONG)
        parsed = _parse_json_object(body)
        if robot.secret is not None:
            _check_sign(now, robot.secret, query)
        shape_error = check_robot_message(parsed)
        if shape_error:
            raise _Rejected(codes.INVALID_PARAMETER, shape_error)
        if robot.keywords:
            texts = inspected_texts(parsed)
            if not any(k in t for k in robot.keywords for t in texts):
                raise _Rejected(codes.ROBOT_SECURITY_FAILED, codes.MSG_KEYWORDS_NOT_IN_CONTENT)
        if rate > 0:
            window = runtime.accepted
            while window and window[0] <= now - RATE_WINDOW_SECONDS:
                window.popleft()
            if len(window) >= rate:
                runtime.locked_until = now + robot.lockout_seconds
                raise _Rejected(codes.ROBOT_SEND_TOO_FAST, codes.send_too_fast(rate))
            window.append(now)
        return parsed, robot_mentions(parsed)

    def _rate_for(self, robot: RobotSpec) -> int:
        if robot.rate_per_minute is None:
            return self.default_rate_per_minute
        return robot.rate_per_minute

    def _robot_deliver(self, now: float, token: str, body: JSON, mentions: Mentions) -> str:
        title, text = robot_summary(body)
        msgtype = body["msgtype"]
        self._messages.append(
            {
                "index": len(self._messages),
                "kind": "robot",
                "token": token,
                "time": now,
                "msgtype": msgtype,
                "title": title,
                "text": text,
                "body": body,
                "mentions": mentions.as_json(),
            }
        )
        self._robot_counter(token)["delivered"] += 1
        self._record(now, ROBOT_SEND_PATH, "robot", codes.OK, codes.MSG_OK, token=token)
        tags = [f"@{m}" for m in mentions.highlighted_mobiles + mentions.highlighted_userids]
        tags += [
            f"@{m}(not highlighted: no @{m} in text)"
            for m in mentions.mobiles + mentions.userids
            if m not in mentions.highlighted_mobiles + mentions.highlighted_userids
        ]
        if mentions.all:
            tags.append("@all")
        return " ".join(["robot", mask(token), msgtype, _quote(title), *tags])

    def session_send(self, now: float, query: Mapping[str, str], body: bytes) -> Reply:
        """POST /robot/sendBySession?session=… : a reply into the conversation a robot was
        @-mentioned in (reference §5.4); the URL itself is the credential."""
        session = query.get("session", "")
        with self._lock:
            try:
                if not session:
                    raise _Rejected(codes.INVALID_PARAMETER, "missing session")
                parsed = _parse_json_object(body)
                msgtype = parsed.get("msgtype")
                if msgtype not in ("text", "markdown") or not isinstance(parsed.get(msgtype), dict):
                    raise _Rejected(codes.INVALID_PARAMETER, "expected a text or markdown message")
                if msgtype == "text" and not isinstance(parsed["text"].get("content"), str):
                    raise _Rejected(codes.INVALID_PARAMETER, "text.content is required")
            except _Rejected as rejected:
                self._record(now, SESSION_PATH, "session", rejected.errcode, rejected.errmsg)
                return 200, {"errcode": rejected.errcode, "errmsg": rejected.errmsg}
            title, text = robot_summary(parsed)
            self._messages.append(
                {
                    "index": len(self._messages),
                    "kind": "session",
                    "session": session,
                    "time": now,
                    "msgtype": parsed["msgtype"],
                    "title": title,
                    "text": text,
                    "body": parsed,
                }
            )
            self._record(now, SESSION_PATH, "session", codes.OK, codes.MSG_OK)
        self._emit(f"session reply {_quote(title or text)}")
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _robot_rejected(self, now: float, token: str, rejected: _Rejected) -> str:
        if token in self._robots:
            counter = self._robot_counter(token)
            counter["rejected"][str(rejected.errcode)] += 1
        self._record(now, ROBOT_SEND_PATH, "robot", rejected.errcode, rejected.errmsg, token=token)
        shown = mask(token) if token else "(no token)"
        return f"rejected robot {shown} {rejected.errcode} {_short(rejected.errmsg)}"

    def _robot_counter(self, token: str) -> JSON:
        return self._robot_stats.setdefault(
            token, {"delivered": 0, "rejected": Counter(), "faulted": 0}
        )

    # --- access tokens ---------------------------------------------------------------------------

    def gettoken(self, now: float, query: Mapping[str, str]) -> Reply:
        """GET /gettoken?appkey=…&appsecret=…"""
        with self._lock:
            app_key = query.get("appkey", "")
            app = self._apps.get(app_key)
            self._totals["gettoken"] += 1
            if app is not None:
                self._app_counter(app_key)["gettoken"] += 1
            if app is None or query.get("appsecret") != app.app_secret:
                errcode, errmsg = codes.INVALID_CORP_SECRET, codes.MSG_INVALID_CORP_SECRET
                # An unknown "appkey" may really be a pasted secret: only ever show it masked.
                shown = app_key if app is not None else mask(app_key)
                self._record(now, GETTOKEN_PATH, "gettoken", errcode, errmsg, app_key=shown)
                line = f"rejected gettoken {shown} {errcode} {errmsg}"
                reply: Reply = (200, {"errcode": errcode, "errmsg": errmsg})
            else:
                reply, line = self._issue_token(now, app_key, app)
        self._emit(line)
        return reply

    def _issue_token(self, now: float, app_key: str, app: AppSpec) -> tuple[Reply, str]:
        # §2.1: within its validity a repeated call returns the same token and renews it;
        # after expiry a new one is issued.
        current = self._tokens.get(self._current_token.get(app_key, ""))
        if current is not None and now < current.expires_at:
            token, how = self._current_token[app_key], "renewed"
            current.expires_at = now + app.token_ttl
        else:
            token, how = self._new_token(), "new"
            self._tokens[token] = _Token(app_key, now + app.token_ttl)
            self._current_token[app_key] = token
            self._app_counter(app_key)["tokens_issued"] += 1
        self._record(now, GETTOKEN_PATH, "gettoken", codes.OK, codes.MSG_OK, app_key=app_key)
        body = {
            "errcode": codes.OK,
            "errmsg": codes.MSG_OK,
            "access_token": token,
            "expires_in": int(app.token_ttl),
        }
        return (200, body), f"gettoken {app_key} ok ({how} token {mask(token)})"

    def expire_tokens(self, now: float, app_key: str) -> int:
        """Make every unexpired token of `app_key` expire now; returns how many. KeyError if the
        app is unknown. The next topapi call with such a token gets 42001."""
        with self._lock:
            if app_key not in self._apps:
                raise KeyError(app_key)
            expired = 0
            for token in self._tokens.values():
                if token.app_key == app_key and now < token.expires_at:
                    token.expires_at = now
                    expired += 1
            return expired

    def _app_counter(self, app_key: str) -> Counter[str]:
        return self._app_stats.setdefault(app_key, Counter())

    def _authenticate(self, now: float, query: Mapping[str, str]) -> tuple[str, AppSpec]:
        token = self._tokens.get(query.get("access_token", ""))
        if token is None or token.app_key not in self._apps:
            raise _Rejected(codes.INVALID_ACCESS_TOKEN, codes.MSG_INVALID_ACCESS_TOKEN)
        if now >= token.expires_at:
            raise _Rejected(codes.ACCESS_TOKEN_EXPIRED, codes.MSG_ACCESS_TOKEN_EXPIRED)
        return token.app_key, self._apps[token.app_key]

    def app(self, app_key: str) -> AppSpec | None:
        with self._lock:
            return self._apps.get(app_key)

    def authenticated_app(self, now: float, query: Mapping[str, str]) -> tuple[str, AppSpec]:
        """The app whose access token the query carries; `Rejected` if it is unknown or
        expired (for APIs outside this module, such as callback registration)."""
        with self._lock:
            try:
                return self._authenticate(now, query)
            except _Rejected as rejected:
                raise Rejected(rejected.errcode, rejected.errmsg) from None

    def _app_of_token(self, query: Mapping[str, str]) -> str | None:
        token = self._tokens.get(query.get("access_token", ""))
        return token.app_key if token else None

    # --- work notifications ----------------------------------------------------------------------

    def asyncsend(self, now: float, query: Mapping[str, str], body: bytes) -> Reply:
        """POST /topapi/message/corpconversation/asyncsend_v2?access_token=…"""
        with self._lock:
            self._totals["asyncsend"] += 1
            app_key = self._app_of_token(query)
            if app_key is not None:
                self._app_counter(app_key)["asyncsend"] += 1
            try:
                app_key, app = self._authenticate(now, query)
                parsed = _parse_json_object(body)
                _check_agent(parsed, app)
                users, depts, to_all = _recipients(parsed)
                msg_error = check_work_notice_msg(parsed.get("msg"))
                if msg_error:
                    raise _Rejected(codes.INVALID_PARAMETER, msg_error)
            except _Rejected as rejected:
                self._record(
                    now,
                    ASYNCSEND_PATH,
                    "asyncsend",
                    rejected.errcode,
                    rejected.errmsg,
                    app_key=app_key,
                )
                line = f"rejected asyncsend {app_key or '(unknown app)'} {rejected.errcode} "
                line += _short(rejected.errmsg)
                reply: Reply = (200, {"errcode": rejected.errcode, "errmsg": rejected.errmsg})
            else:
                reply, line = self._deliver_notice(now, app_key, app, parsed, users, depts, to_all)
        self._emit(line)
        return reply

    def _deliver_notice(
        self,
        now: float,
        app_key: str,
        app: AppSpec,
        body: JSON,
        users: list[str],
        depts: list[str],
        to_all: bool,
    ) -> tuple[Reply, str]:
        msg = body["msg"]
        # Same msg JSON to the same user on the same day is silently dropped by DingTalk
        # (143106), as is anything past the per-user daily cap (143105), and a user id the
        # organisation does not have is not delivered to: the call still answers errcode 0 and
        # only getsendresult tells (§3.1, §3.2).
        canonical = json.dumps(msg, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        day = datetime.fromtimestamp(now, tz=DINGTALK_DAY).date().isoformat()
        recipients: list[str] = []
        forbidden: list[tuple[str, int]] = []
        invalid: list[str] = []
        for user in users:
            if app.users is not None and user not in app.users:
                invalid.append(user)
                continue
            history = self._user_days.setdefault((app_key, user, day), _UserDay())
            if canonical in history.contents:
                forbidden.append((user, codes.USER_DUPLICATE_CONTENT))
            elif history.delivered >= app.daily_limit:
                forbidden.append((user, codes.USER_DAILY_LIMIT))
            else:
                history.contents.add(canonical)
                history.delivered += 1
                recipients.append(user)
        task_id = self._next_task_id
        self._next_task_id += 1
        self._tasks[task_id] = _Task(
            app_key, recipients, forbidden, invalid, known_at=now + app.result_delay
        )
        counter = self._app_counter(app_key)
        counter["recipients_delivered"] += len(recipients)
        counter["recipients_forbidden"] += len(forbidden)
        counter["recipients_invalid"] += len(invalid)
        title, text = work_notice_summary(msg)
        self._messages.append(
            {
                "index": len(self._messages),
                "kind": "work_notice",
                "app_key": app_key,
                "time": now,
                "msgtype": msg["msgtype"],
                "title": title,
                "text": text,
                "body": body,
                "task_id": task_id,
                "userid_list": users,
                "dept_id_list": depts,
                "to_all_user": to_all,
                "recipients": recipients,
                "forbidden": [user for user, _ in forbidden],
                "forbidden_codes": {user: code for user, code in forbidden},
                "invalid": invalid,
            }
        )
        self._app_counter(app_key)["asyncsend_ok"] += 1
        self._record(now, ASYNCSEND_PATH, "asyncsend", codes.OK, codes.MSG_OK, app_key=app_key)
        reply = {
            "errcode": codes.OK,
            "errmsg": codes.MSG_OK,
            "task_id": task_id,
            "request_id": self._new_token(),
        }
        audience = ",".join(users) or "-"
        if depts:
            audience += f" depts {','.join(depts)}"
        if to_all:
            audience += " to_all_user"
        line = (
            f"work_notice {app_key} {msg['msgtype']} {_quote(title)} task {task_id} -> {audience}"
        )
        if forbidden:
            line += " forbidden(dropped): " + ",".join(f"{u}[{c}]" for u, c in forbidden)
        if invalid:
            line += " invalid(dropped): " + ",".join(invalid)
        return (200, reply), line

    def getsendresult(self, now: float, query: Mapping[str, str], body: bytes) -> Reply:
        """POST /topapi/message/corpconversation/getsendresult?access_token=… {agent_id, task_id}"""
        with self._lock:
            app_key = self._app_of_token(query)
            try:
                app_key, app = self._authenticate(now, query)
                parsed = _parse_json_object(body)
                _check_agent(parsed, app)
                task_id = parsed.get("task_id")
                task = self._tasks.get(task_id) if isinstance(task_id, int) else None
                if task is None or task.app_key != app_key:
                    raise _Rejected(codes.INVALID_PARAMETER, "不合法的task_id")
            except _Rejected as rejected:
                self._record(
                    now,
                    GETSENDRESULT_PATH,
                    "getsendresult",
                    rejected.errcode,
                    rejected.errmsg,
                    app_key=app_key,
                )
                return 200, {"errcode": rejected.errcode, "errmsg": rejected.errmsg}
            self._app_counter(app_key)["getsendresult"] += 1
            self._record(
                now, GETSENDRESULT_PATH, "getsendresult", codes.OK, codes.MSG_OK, app_key=app_key
            )
            # §3.2's send_result. Until DingTalk has processed the task every list is empty.
            known = now >= task.known_at
            result = {
                "invalid_user_id_list": list(task.invalid) if known else [],
                "forbidden_user_id_list": [user for user, _ in task.forbidden] if known else [],
                "failed_user_id_list": [],
                "read_user_id_list": [],
                "unread_user_id_list": list(task.recipients) if known else [],
                "invalid_dept_id_list": [],
                "forbidden_list": [
                    {"code": str(code), "count": 1, "userid": user} for user, code in task.forbidden
                ]
                if known
                else [],
            }
            return 200, {
                "errcode": codes.OK,
                "errmsg": codes.MSG_OK,
                "send_result": result,
                "request_id": self._new_token(),
            }

    # --- faults ----------------------------------------------------------------------------------

    def add_fault(self, data: Any) -> Fault:
        """Register a fault from its JSON definition (raises faults.FaultError)."""
        with self._lock:
            fault = parse_fault(data, self._next_fault_id)
            self._next_fault_id += 1
            self._faults.append(fault)
            return fault

    def take_fault(self, now: float, path: str, query: Mapping[str, str]) -> FaultAction | None:
        """Consume one matching fault for this request, oldest first, if any.

        Every fault except `delay` replaces the normal handling, so the request is recorded
        here (not delivered). A delayed request is recorded when it is handled afterwards.
        """
        with self._lock:
            app_key = self._app_of_token(query)
            identities = tuple(
                i for i in (query.get("access_token"), query.get("appkey"), app_key) if i
            )
            fault = next((f for f in self._faults if f.matches(path, identities)), None)
            if fault is None:
                return None
            fault.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining > 0]
            self._totals["faults_injected"] += 1
            action = fault.action
            if action.kind == "delay":
                return action
            robot_token = query.get("access_token", "") if path == ROBOT_SEND_PATH else None
            if robot_token in self._robots:
                self._robot_counter(robot_token)["faulted"] += 1
            if path == GETTOKEN_PATH:
                self._totals["gettoken"] += 1
                app_key = query.get("appkey", "")
                if app_key in self._apps:
                    self._app_counter(app_key)["gettoken"] += 1
                else:
                    app_key = mask(app_key)  # possibly a secret pasted as the appkey
            elif path == ASYNCSEND_PATH:
                self._totals["asyncsend"] += 1
                if app_key is not None:
                    self._app_counter(app_key)["asyncsend"] += 1
            errcode = action.errcode if action.kind == "errcode" else None
            self._record(
                now,
                path,
                _kind_of(path),
                errcode,
                action.errmsg or action.describe(),
                token=robot_token,
                app_key=app_key,
                http_status=_fault_status(action),
                fault=action.describe(),
            )
            who = mask(robot_token) if robot_token else (app_key or "")
        self._emit(f"fault {path} {who} {action.describe()}".replace("  ", " "))
        return action

    def faults(self) -> list[JSON]:
        with self._lock:
            return [f.as_json() for f in self._faults]

    # --- registry and inspection (control API) ---------------------------------------------------

    def register_robots(self, robots: Mapping[str, RobotSpec]) -> None:
        with self._lock:
            self._robots.update(robots)

    def register_apps(self, apps: Mapping[str, AppSpec]) -> None:
        with self._lock:
            self._apps.update(apps)

    def robots(self) -> JSON:
        """Registered robots, without their secrets."""
        with self._lock:
            return {
                token: {
                    "has_secret": robot.secret is not None,
                    "keywords": list(robot.keywords),
                    "rate_per_minute": self._rate_for(robot),
                    "lockout_seconds": robot.lockout_seconds,
                }
                for token, robot in self._robots.items()
            }

    def apps(self) -> JSON:
        """Registered apps, without their secrets."""
        with self._lock:
            return {
                key: {"agent_id": app.agent_id, "token_ttl": app.token_ttl}
                for key, app in self._apps.items()
            }

    def reset(self) -> None:
        """Forget all traffic, tokens, rate windows, lockouts, stats and faults; keep the
        registered robots and apps."""
        with self._lock:
            self._clear()

    def messages(self, since: int = 0, token: str | None = None) -> list[JSON]:
        """Delivered robot messages and work notices, oldest first, from index `since`;
        `token` keeps only one robot token's (or one app_key's) messages."""
        with self._lock:
            selected = self._messages[max(since, 0) :]
        if token is not None:
            selected = [
                m for m in selected if token in (m.get("token"), m.get("app_key"), m.get("session"))
            ]
        return selected

    def requests(self, since: int = 0) -> list[JSON]:
        """Every API request seen (delivered, rejected or faulted), oldest first."""
        with self._lock:
            return self._requests[max(since, 0) :]

    def stats(self) -> JSON:
        with self._lock:
            return {
                "requests": len(self._requests),
                "messages": len(self._messages),
                "gettoken_calls": self._totals["gettoken"],
                "asyncsend_calls": self._totals["asyncsend"],
                "faults_injected": self._totals["faults_injected"],
                "robots": {
                    token: {**counts, "rejected": dict(counts["rejected"])}
                    for token, counts in self._robot_stats.items()
                },
                "apps": {key: dict(counts) for key, counts in self._app_stats.items()},
            }

    # --- helpers ---------------------------------------------------------------------------------

    def _record(
        self,
        now: float,
        path: str,
        kind: str,
        errcode: int | None,
        errmsg: str,
        *,
        token: str | None = None,
        app_key: str | None = None,
        http_status: int | None = 200,
        fault: str | None = None,
    ) -> None:
        # Deliberately no query string here: it carries appsecret (gettoken) and signatures.
        self._requests.append(
            {
                "index": len(self._requests),
                "time": now,
                "path": path,
                "kind": kind,
                "token": token,
                "app_key": app_key,
                "errcode": errcode,
                "errmsg": _short(errmsg),
                "http_status": http_status,
                "fault": fault,
                "delivered": errcode == codes.OK and fault is None and kind != "gettoken",
            }
        )

    def _emit(self, line: str) -> None:
        if self._log is not None:
            self._log(line)


# --- pure helpers ---------------------------------------------------------------------------


def _parse_json_object(body: bytes) -> JSON:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Rejected(codes.INVALID_PARAMETER, f"不合法的参数 body: not UTF-8 ({exc})") from exc
    if not text.strip():
        raise _Rejected(codes.INVALID_PARAMETER, missing("json: the body is empty"))
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise _Rejected(
            codes.INVALID_PARAMETER, f"不合法的参数 json: not valid JSON ({exc})"
        ) from exc
    if not isinstance(parsed, dict):
        raise _Rejected(
            codes.INVALID_PARAMETER,
            invalid("json", f"body must be a JSON object, not {_kind(parsed)}"),
        )
    return parsed


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a scalar")


def _check_sign(now: float, secret: str, query: Mapping[str, str]) -> None:
    timestamp = query.get("timestamp", "")
    sign = query.get("sign", "")
    if not timestamp or not sign:
        raise _Rejected(codes.ROBOT_SECURITY_FAILED, codes.MSG_SIGN_NOT_MATCH)
    # Milliseconds as a plain decimal integer; a seconds timestamp lands ~50 years off.
    if (
        not _DIGITS.fullmatch(timestamp)
        or abs(int(timestamp) - now * 1000) > TIMESTAMP_TOLERANCE_MS
    ):
        raise _Rejected(codes.ROBOT_SECURITY_FAILED, codes.MSG_INVALID_TIMESTAMP)
    # `sign` was URL-decoded exactly once by query parsing; a sign encoded twice still contains
    # "%2B…" here and fails, exactly like on the real service.
    if not robot_sign_ok(timestamp, secret, sign):
        raise _Rejected(codes.ROBOT_SECURITY_FAILED, codes.MSG_SIGN_NOT_MATCH)


def _check_agent(body: JSON, app: AppSpec) -> None:
    agent_id = body.get("agent_id")
    if agent_id is None:
        raise _Rejected(codes.INVALID_PARAMETER, missing("agent_id"))
    if not isinstance(agent_id, int) or isinstance(agent_id, bool) or agent_id != app.agent_id:
        raise _Rejected(codes.INVALID_PARAMETER, "不合法的agentId")


def _recipients(body: JSON) -> tuple[list[str], list[str], bool]:
    """(user ids, dept ids, to_all_user). The lists must be comma-separated STRINGS (§3.1);
    a JSON array is the classic client bug and is rejected naming the field."""
    lists: list[list[str]] = []
    for key in ("userid_list", "dept_id_list"):
        value = body.get(key)
        if value is None:
            lists.append([])
            continue
        if not isinstance(value, str):
            raise _Rejected(
                codes.INVALID_PARAMETER,
                invalid(key, f'must be a comma-separated string such as "a,b", not {_kind(value)}'),
            )
        items = [item.strip() for item in value.split(",")]
        lists.append(list(dict.fromkeys(item for item in items if item)))
    to_all = body.get("to_all_user", False)
    if not isinstance(to_all, bool):
        raise _Rejected(codes.INVALID_PARAMETER, invalid("to_all_user", "must be a boolean"))
    users, depts = lists
    if not users and not depts and not to_all:
        raise _Rejected(codes.NO_RECIPIENT, codes.MSG_NO_RECIPIENT)
    return users, depts, to_all


def _fault_status(action: FaultAction) -> int | None:
    """The HTTP status the client saw for a faulted request (None: no response at all)."""
    if action.kind == "http_status":
        return action.http_status
    return None if action.kind == "close" else 200


def _kind_of(path: str) -> str:
    return {
        ROBOT_SEND_PATH: "robot",
        GETTOKEN_PATH: "gettoken",
        ASYNCSEND_PATH: "asyncsend",
        GETSENDRESULT_PATH: "getsendresult",
    }.get(path, "other")


def _quote(title: str, limit: int = 80) -> str:
    if len(title) > limit:
        title = title[: limit - 1] + "…"
    return json.dumps(title, ensure_ascii=False)


def _short(errmsg: str) -> str:
    errmsg = " ".join(errmsg.split())  # one line, whatever the errmsg contains
    return errmsg if len(errmsg) <= _ERRMSG_LOG_LIMIT else errmsg[: _ERRMSG_LOG_LIMIT - 1] + "…"
