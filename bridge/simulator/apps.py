"""Enterprise-internal apps (reference/dingtalk.md §2, §3): access tokens (`/gettoken`) and
work notifications (`asyncsend_v2`, then `getsendresult`), with DingTalk's silent per-user
filtering: the same message to the same user on the same day, the daily cap, and user ids the
organisation does not have are not delivered, yet the call answers errcode 0.

Runs under SimulatorState's lock, as every family does (see state.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from bridge.simulator import codes
from bridge.simulator.checks import Rejected, check_agent, parse_json_object, recipients
from bridge.simulator.content import work_notice_summary
from bridge.simulator.quota import QUOTA_ERRCODE, MonthlyQuota
from bridge.simulator.shapes import check_work_notice_msg
from bridge.simulator.spec import AppSpec
from bridge.simulator.traffic import (
    ASYNCSEND_PATH,
    GETSENDRESULT_PATH,
    GETTOKEN_PATH,
    JSON,
    Reply,
    Traffic,
    mask,
    quote,
    short,
)

# DingTalk's "day" for its per-user limits is China's (UTC+8, no summer time): the reference
# does not name the zone, but DingTalk is run from there and its quotas reset at Beijing midnight.
DINGTALK_DAY = timezone(timedelta(hours=8), "Asia/Shanghai")


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


class Apps:
    """The registered apps (by app key), their tokens, and the work notifications sent."""

    def __init__(
        self, apps: Mapping[str, AppSpec], traffic: Traffic, new_token: Callable[[], str]
    ) -> None:
        self.registered: dict[str, AppSpec] = dict(apps)
        self.traffic = traffic
        self._new_token = new_token  # access tokens and request ids
        self._next_task_id = 1  # never reset, so task ids stay unique across /_sim/reset
        self.quota = MonthlyQuota()  # shared with the v1.0 family (openapi.py)
        self.clear()

    def clear(self) -> None:
        """Forget tokens, tasks and what users received; keep the registry."""
        self._tokens: dict[str, _Token] = {}
        self._current_token: dict[str, str] = {}  # app_key -> its newest token
        self._tasks: dict[int, _Task] = {}
        self._user_days: dict[tuple[str, str, str], _UserDay] = {}
        self.quota.clear()

    def register(self, apps: Mapping[str, AppSpec]) -> None:
        self.registered.update(apps)

    def describe(self) -> JSON:
        """Registered apps, without their secrets."""
        return {
            key: {
                "agent_id": app.agent_id,
                "token_ttl": app.token_ttl,
                "robot_code": app.robot_code or key,
                "groups": list(app.groups) if app.groups is not None else None,
                "disbanded_groups": list(app.disbanded_groups),
                "bot_stopped": app.bot_stopped,
                "qps": app.qps,
                "user_rate": app.user_rate_per_minute,
            }
            for key, app in self.registered.items()
        }

    # --- access tokens ---------------------------------------------------------------------------

    def count_gettoken(self, query: Mapping[str, str]) -> str:
        """Count a gettoken call; the app key as it may be shown (an unknown "appkey" may
        really be a pasted secret: only ever shown masked)."""
        app_key = query.get("appkey", "")
        known = app_key in self.registered
        self.traffic.count_call("gettoken", app_key if known else None)
        return app_key if known else mask(app_key)

    def gettoken(self, now: float, query: Mapping[str, str]) -> tuple[Reply, str]:
        """GET /gettoken?appkey=…&appsecret=…"""
        shown = self.count_gettoken(query)
        app_key = query.get("appkey", "")
        app = self.registered.get(app_key)
        if app is None or query.get("appsecret") != app.app_secret:
            errcode, errmsg = codes.INVALID_CORP_SECRET, codes.MSG_INVALID_CORP_SECRET
            self.traffic.record(now, GETTOKEN_PATH, "gettoken", errcode, errmsg, app_key=shown)
            line = f"rejected gettoken {shown} {errcode} {errmsg}"
            return (200, {"errcode": errcode, "errmsg": errmsg}), line
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
            self.traffic.app_counter(app_key)["tokens_issued"] += 1
        self.traffic.record(now, GETTOKEN_PATH, "gettoken", codes.OK, codes.MSG_OK, app_key=app_key)
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
        if app_key not in self.registered:
            raise KeyError(app_key)
        expired = 0
        for token in self._tokens.values():
            if token.app_key == app_key and now < token.expires_at:
                token.expires_at = now
                expired += 1
        return expired

    def authenticate(self, now: float, query: Mapping[str, str]) -> tuple[str, AppSpec]:
        """The app whose access token the query carries; `Rejected` if it is unknown or
        expired."""
        token = self._tokens.get(query.get("access_token", ""))
        if token is None or token.app_key not in self.registered:
            raise Rejected(codes.INVALID_ACCESS_TOKEN, codes.MSG_INVALID_ACCESS_TOKEN)
        if now >= token.expires_at:
            raise Rejected(codes.ACCESS_TOKEN_EXPIRED, codes.MSG_ACCESS_TOKEN_EXPIRED)
        return token.app_key, self.registered[token.app_key]

    def app_of_token(self, query: Mapping[str, str]) -> str | None:
        """The app the query's access token was issued to, expired or not."""
        token = self._tokens.get(query.get("access_token", ""))
        return token.app_key if token else None

    # --- work notifications ----------------------------------------------------------------------

    def count_asyncsend(self, query: Mapping[str, str]) -> str | None:
        """Count an asyncsend call; the app it is for, if its token was issued here."""
        app_key = self.app_of_token(query)
        self.traffic.count_call("asyncsend", app_key)
        return app_key

    def asyncsend(self, now: float, query: Mapping[str, str], body: bytes) -> tuple[Reply, str]:
        """POST /topapi/message/corpconversation/asyncsend_v2?access_token=…"""
        app_key = self.count_asyncsend(query)
        try:
            app_key, app = self.authenticate(now, query)
            used_up = self.quota.take(now, app_key, app.monthly_quota)
            if used_up:
                raise Rejected(QUOTA_ERRCODE, used_up)
            parsed = parse_json_object(body)
            check_agent(parsed, app)
            users, depts, to_all = recipients(parsed)
            msg_error = check_work_notice_msg(parsed.get("msg"))
            if msg_error:
                raise Rejected(codes.INVALID_PARAMETER, msg_error)
        except Rejected as rejected:
            self.traffic.record(
                now, ASYNCSEND_PATH, "asyncsend", rejected.errcode, rejected.errmsg, app_key=app_key
            )
            line = f"rejected asyncsend {app_key or '(unknown app)'} {rejected.errcode} "
            line += short(rejected.errmsg)
            return (200, {"errcode": rejected.errcode, "errmsg": rejected.errmsg}), line
        return self._deliver_notice(now, app_key, app, parsed, users, depts, to_all)

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
        delivered, forbidden, invalid = self._filter_users(now, app_key, app, msg, users)
        task_id = self._next_task_id
        self._next_task_id += 1
        self._tasks[task_id] = _Task(
            app_key, delivered, forbidden, invalid, known_at=now + app.result_delay
        )
        counter = self.traffic.app_counter(app_key)
        counter["recipients_delivered"] += len(delivered)
        counter["recipients_forbidden"] += len(forbidden)
        counter["recipients_invalid"] += len(invalid)
        title, text = work_notice_summary(msg)
        self.traffic.deliver(
            {
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
                "recipients": delivered,
                "forbidden": [user for user, _ in forbidden],
                "forbidden_codes": {user: code for user, code in forbidden},
                "invalid": invalid,
            }
        )
        counter["asyncsend_ok"] += 1
        self.traffic.record(
            now, ASYNCSEND_PATH, "asyncsend", codes.OK, codes.MSG_OK, app_key=app_key
        )
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
        line = f"work_notice {app_key} {msg['msgtype']} {quote(title)} task {task_id} -> {audience}"
        if forbidden:
            line += " forbidden(dropped): " + ",".join(f"{u}[{c}]" for u, c in forbidden)
        if invalid:
            line += " invalid(dropped): " + ",".join(invalid)
        return (200, reply), line

    def _filter_users(
        self, now: float, app_key: str, app: AppSpec, msg: JSON, users: list[str]
    ) -> tuple[list[str], list[tuple[str, int]], list[str]]:
        """(delivered to, forbidden with their codes, invalid user ids). The same msg JSON to
        the same user on the same day is silently dropped by DingTalk (143106), as is anything
        past the per-user daily cap (143105), and a user id the organisation does not have is
        not delivered to: the call still answers errcode 0 and only getsendresult tells (§3.1,
        §3.2)."""
        canonical = json.dumps(msg, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        day = datetime.fromtimestamp(now, tz=DINGTALK_DAY).date().isoformat()
        delivered: list[str] = []
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
                delivered.append(user)
        return delivered, forbidden, invalid

    def getsendresult(self, now: float, query: Mapping[str, str], body: bytes) -> Reply:
        """POST /topapi/message/corpconversation/getsendresult?access_token=… {agent_id, task_id}"""
        app_key = self.app_of_token(query)
        try:
            app_key, app = self.authenticate(now, query)
            parsed = parse_json_object(body)
            check_agent(parsed, app)
            task_id = parsed.get("task_id")
            task = self._tasks.get(task_id) if isinstance(task_id, int) else None
            if task is None or task.app_key != app_key:
                raise Rejected(codes.INVALID_PARAMETER, "不合法的task_id")
        except Rejected as rejected:
            self.traffic.record(
                now,
                GETSENDRESULT_PATH,
                "getsendresult",
                rejected.errcode,
                rejected.errmsg,
                app_key=app_key,
            )
            return 200, {"errcode": rejected.errcode, "errmsg": rejected.errmsg}
        self.traffic.app_counter(app_key)["getsendresult"] += 1
        self.traffic.record(
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
