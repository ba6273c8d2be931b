"""DingTalk's v1.0 API (`api.dingtalk.com`, reference/dingtalk.md §2.2, §6; dingtalk-stream.md
§10, §11): the app's token, the app robot's group and one-to-one sends, their recall, and the
card calls (recorded; each card as it looks now and clicks on it: cardboard.py).

Unlike the oapi family, v1.0 answers errors with an HTTP 4xx/5xx and
`{"code", "message", "requestid"}`; the token travels in the `x-acs-dingtalk-access-token`
header. Limits it enforces: 20 userIds per batchSend, a msgParam of at most 15,000 bytes that
must be a JSON string of an object with the msgKey's fields, a per-app QPS per API (default 20,
answered with HTTP 403 `Forbidden.AccessDenied.QpsLimitForAppkeyAndApi`), a per-user flow
control on one-to-one sends (reported in `flowControlledStaffIdList`, not an error), recall only
within 24 hours and only of the robot's (and the group's) own messages.

Runs under SimulatorState's lock, as every family does (see state.py).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.simulator.apps import Apps
from bridge.simulator.quota import QUOTA_CODE
from bridge.simulator.spec import AppSpec
from bridge.simulator.traffic import JSON, Reply, Traffic, mask, quote

TOKEN_PATH = "/v1.0/oauth2/accessToken"
GROUP_SEND = "/v1.0/robot/groupMessages/send"
BATCH_SEND = "/v1.0/robot/oToMessages/batchSend"
GROUP_RECALL = "/v1.0/robot/groupMessages/recall"
BATCH_RECALL = "/v1.0/robot/otoMessages/batchRecall"
CARD_CREATE_DELIVER = "/v1.0/card/instances/createAndDeliver"
CARD_UPDATE = "/v1.0/card/instances"  # PUT
V1_PATHS = (
    TOKEN_PATH,
    GROUP_SEND,
    BATCH_SEND,
    GROUP_RECALL,
    BATCH_RECALL,
    CARD_CREATE_DELIVER,
    CARD_UPDATE,
)
MAX_USERS = 20  # userIds per batchSend (§6)
MAX_RECALL_KEYS = 20  # processQueryKeys per batchRecall (stream §11)
MAX_MSG_PARAM_BYTES = 15_000  # §6
RECALL_WINDOW = 86_400.0  # stream §11: only within 24 h of sending
QPS_WINDOW = 1.0
USER_WINDOW = 60.0
# msgKey -> the msgParam fields DingTalk requires (§6's table; the buttons of 2..5 vertical).
MSG_KEYS: dict[str, tuple[str, ...]] = {
    "sampleText": ("content",),
    "sampleMarkdown": ("title", "text"),
    "sampleImageMsg": ("photoURL",),
    "sampleLink": ("text", "title", "picUrl", "messageUrl"),
    "sampleActionCard": ("title", "text", "singleTitle", "singleURL"),
    "sampleActionCard6": (
        "title",
        "text",
        "buttonTitle1",
        "buttonUrl1",
        "buttonTitle2",
        "buttonUrl2",
    ),
    **{
        f"sampleActionCard{n}": (
            "title",
            "text",
            *(f"{part}{i}" for i in range(1, n + 1) for part in ("actionTitle", "actionURL")),
        )
        for n in range(2, 6)
    },
}


# The calls counted against the organisation's monthly quota (quota.py): the sends.
METERED = frozenset({GROUP_SEND, BATCH_SEND, CARD_CREATE_DELIVER, CARD_UPDATE})


class V1Error(Exception):
    """A v1.0 refusal: HTTP status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class _Sent:
    app_key: str
    robot_code: str
    conversation: str | None
    users: list[str]
    at: float
    message_index: int
    recalled: bool = False


@dataclass
class OpenApi:
    """The v1.0 family over the registered apps (apps.py holds their specs)."""

    apps: Apps
    traffic: Traffic
    new_token: Callable[[], str]
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token: (app, expires)
    sent: dict[str, _Sent] = field(default_factory=dict)  # processQueryKey -> the send
    cards: list[JSON] = field(default_factory=list)
    _calls: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _user_sends: dict[tuple[str, str], deque[float]] = field(default_factory=dict)

    def clear(self) -> None:
        self.tokens.clear()
        self.sent.clear()
        self.cards.clear()
        self._calls.clear()
        self._user_sends.clear()

    def expire_tokens(self, now: float, app_key: str) -> int:
        expired = 0
        for token, (owner, expires) in list(self.tokens.items()):
            if owner == app_key and now < expires:
                self.tokens[token] = (owner, now)
                expired += 1
        return expired

    # --- the entry point ------------------------------------------------------------------------

    def handle(
        self, now: float, method: str, path: str, token: str, body: bytes
    ) -> tuple[Reply, str]:
        """One v1.0 call: (HTTP status, JSON answer) and the line to log."""
        self.traffic.count_call(f"v1 {path}", None)
        app_key: str | None = None
        try:
            expected = "PUT" if path == CARD_UPDATE else "POST"
            if method != expected:
                raise V1Error(405, "methodNotAllowed", f"use {expected} for {path}")
            parsed = _json_object(body)
            if path == TOKEN_PATH:
                return self._token(now, parsed)
            app_key, app = self._authenticate(now, token)
            self._throttle(now, app_key, app, path)
            if path in METERED:
                used_up = self.apps.quota.take(now, app_key, app.monthly_quota)
                if used_up:
                    raise V1Error(403, QUOTA_CODE, used_up)
            handler = {
                GROUP_SEND: self._group_send,
                BATCH_SEND: self._batch_send,
                GROUP_RECALL: self._group_recall,
                BATCH_RECALL: self._batch_recall,
                CARD_CREATE_DELIVER: self._card,
                CARD_UPDATE: self._card,
            }[path]
            answer, line = handler(now, app_key, app, path, parsed)
        except V1Error as error:
            self.traffic.record(
                now, path, "v1", None, f"{error.code}: {error.message}", app_key=app_key,
                http_status=error.status,
            )  # fmt: skip
            answer = {"code": error.code, "message": error.message, "requestid": self.new_token()}
            who = app_key or "(no app)"
            return (error.status, answer), f"rejected {path} {who} {error.status} {error.code}"
        self.traffic.record(now, path, "v1", 0, "ok", app_key=app_key)
        return (200, answer), line

    # --- token ----------------------------------------------------------------------------------

    def _token(self, now: float, body: JSON) -> tuple[Reply, str]:
        app_key = body.get("appKey")
        app = self.apps.registered.get(app_key) if isinstance(app_key, str) else None
        if app is None or body.get("appSecret") != app.app_secret:
            shown = mask(str(app_key or ""))
            raise V1Error(400, "invalidClientIdOrSecret", f"无效的appKey或appSecret ({shown})")
        assert isinstance(app_key, str)
        token = self.new_token()
        self.tokens[token] = (app_key, now + app.token_ttl)
        self.traffic.app_counter(app_key)["v1_tokens_issued"] += 1
        self.traffic.record(now, TOKEN_PATH, "v1", 0, "ok", app_key=app_key)
        answer = {"accessToken": token, "expireIn": int(app.token_ttl)}
        return (200, answer), f"v1 accessToken {app_key} ok (token {mask(token)})"

    def _authenticate(self, now: float, token: str) -> tuple[str, AppSpec]:
        owner = self.tokens.get(token)
        if owner is None or owner[0] not in self.apps.registered:
            raise V1Error(401, "InvalidAuthentication", "不合法的access_token")
        if now >= owner[1]:
            raise V1Error(401, "InvalidAuthentication", "access_token已过期")
        return owner[0], self.apps.registered[owner[0]]

    def _throttle(self, now: float, app_key: str, app: AppSpec, path: str) -> None:
        if app.qps <= 0:
            return
        calls = self._calls.setdefault((app_key, path), deque())
        while calls and calls[0] <= now - QPS_WINDOW:
            calls.popleft()
        if len(calls) >= app.qps:
            self.traffic.app_counter(app_key)["v1_throttled"] += 1
            raise V1Error(
                403,
                "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
                f"调用频率超过限制 ({app.qps} per second per API)",
            )
        calls.append(now)

    # --- sends ----------------------------------------------------------------------------------

    def _robot(self, app_key: str, app: AppSpec, body: JSON) -> str:
        code = body.get("robotCode")
        if not isinstance(code, str) or not code:
            raise V1Error(400, "invalidParameter.robotCode.empty", "robotCode不能为空")
        if code != (app.robot_code or app_key):
            raise V1Error(400, "invalidParameter.robotCode.notExsit", f"robotCode {code} 不存在")
        if app.bot_stopped:
            raise V1Error(400, "bot.stopped", "机器人已停用")
        return code

    def _message(self, body: JSON) -> tuple[str, JSON]:
        key = body.get("msgKey")
        if not isinstance(key, str) or key not in MSG_KEYS:
            raise V1Error(400, "invalidParameter.msgKey.invalid", f"msgKey {key!r} 不合法")
        raw = body.get("msgParam")
        if not isinstance(raw, str):
            raise V1Error(400, "invalidParameter.msgParam.invalid", "msgParam must be a string")
        if len(raw.encode("utf-8", "surrogatepass")) > MAX_MSG_PARAM_BYTES:
            raise V1Error(
                400, "invalidParameter.msgParam.tooLong", f"msgParam over {MAX_MSG_PARAM_BYTES}"
            )
        try:
            param = json.loads(raw)
        except ValueError:
            param = None
        if not isinstance(param, dict):
            raise V1Error(400, "invalidParameter.msgParam.invalid", "msgParam must be JSON")
        absent = [f for f in MSG_KEYS[key] if not isinstance(param.get(f), str)]
        if absent:
            raise V1Error(
                400, "invalidParameter.msgParam.invalid", f"{key} needs {', '.join(absent)}"
            )
        return key, param

    def _record(
        self,
        now: float,
        app_key: str,
        robot_code: str,
        key: str,
        param: JSON,
        conversation: str | None,
        users: list[str],
        refused: JSON,
    ) -> str:
        pqk = self.new_token()
        title = str(param.get("title") or str(param.get("content", "")).split("\n", 1)[0])[:80]
        text = str(param.get("text") or param.get("content") or "")
        self.traffic.deliver(
            {
                "kind": "app_robot",
                "app_key": app_key,
                "robot_code": robot_code,
                "time": now,
                "msgtype": key,
                "msg_key": key,
                "msg_param": param,
                "title": title,
                "text": text,
                "open_conversation_id": conversation,
                "user_ids": users,
                "recipients": [u for u in users if u not in refused.get("all", ())],
                "invalid": refused.get("invalid", []),
                "flow_controlled": refused.get("flow", []),
                "process_query_key": pqk,
                "recalled": False,
            }
        )
        index = len(self.traffic.messages) - 1
        self.sent[pqk] = _Sent(app_key, robot_code, conversation, users, now, index)
        self.traffic.app_counter(app_key)["app_robot_sent"] += 1
        return pqk

    def _group_send(
        self, now: float, app_key: str, app: AppSpec, path: str, body: JSON
    ) -> tuple[JSON, str]:
        robot_code = self._robot(app_key, app, body)
        conversation = _conversation(body)
        if conversation in app.disbanded_groups:
            raise V1Error(400, "group.disbanded", "群已解散")
        if app.groups is not None and conversation not in app.groups:
            raise V1Error(
                400, "invalidParameter.openConversationId.invalid", "机器人不在该群或群不存在"
            )
        key, param = self._message(body)
        pqk = self._record(now, app_key, robot_code, key, param, conversation, [], {})
        line = f"app_robot {app_key} {key} {quote(str(param.get('title', '')))} -> {conversation}"
        return {"processQueryKey": pqk}, line

    def _batch_send(
        self, now: float, app_key: str, app: AppSpec, path: str, body: JSON
    ) -> tuple[JSON, str]:
        robot_code = self._robot(app_key, app, body)
        users = body.get("userIds")
        if not isinstance(users, list) or not users:
            raise V1Error(400, "invalidParameter.userIds.empty", "userIds不能为空")
        if not all(isinstance(u, str) and u for u in users):
            raise V1Error(400, "invalidParameter.userIds.invalid", "userIds must be strings")
        if len(users) > MAX_USERS:
            raise V1Error(400, "invalidParameter.userIds.overMax", f"userIds at most {MAX_USERS}")
        key, param = self._message(body)
        invalid = [u for u in users if app.users is not None and u not in app.users]
        flow = [u for u in users if u not in invalid and not self._user_may(now, app_key, app, u)]
        refused = {"invalid": invalid, "flow": flow, "all": (*invalid, *flow)}
        pqk = self._record(now, app_key, robot_code, key, param, None, list(users), refused)
        counter = self.traffic.app_counter(app_key)
        counter["app_robot_invalid_users"] += len(invalid)
        counter["app_robot_flow_controlled_users"] += len(flow)
        line = f"app_robot {app_key} {key} oto -> {','.join(users)}"
        if invalid or flow:
            line += f" invalid: {','.join(invalid) or '-'} flow-controlled: {','.join(flow) or '-'}"
        answer = {
            "processQueryKey": pqk,
            "invalidStaffIdList": invalid,
            "flowControlledStaffIdList": flow,
            "filteredStaffIdList": [],
        }
        return answer, line

    def _user_may(self, now: float, app_key: str, app: AppSpec, user: str) -> bool:
        """Per-user flow control: at most `user_rate_per_minute` one-to-one messages a minute."""
        sends = self._user_sends.setdefault((app_key, user), deque())
        while sends and sends[0] <= now - USER_WINDOW:
            sends.popleft()
        if app.user_rate_per_minute and len(sends) >= app.user_rate_per_minute:
            return False
        sends.append(now)
        return True

    # --- recall ---------------------------------------------------------------------------------

    def _keys(self, body: JSON, most: int | None) -> list[str]:
        keys = body.get("processQueryKeys")
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise V1Error(400, "miss.param.processQueryKeys", "processQueryKeys不能为空")
        if most is not None and len(keys) > most:
            raise V1Error(400, "invalidParameter.processQueryKeys.overMax", f"at most {most} keys")
        return keys

    def _recall(
        self, now: float, app_key: str, robot_code: str, conversation: str | None, keys: list[str]
    ) -> tuple[JSON, str]:
        done: list[str] = []
        failed: dict[str, str] = {}
        for key in keys:
            sent = self.sent.get(key)
            if sent is None or sent.app_key != app_key or sent.robot_code != robot_code:
                failed[key] = "processQueryKey not found for this robot"
            elif sent.conversation != conversation:
                failed[key] = "message not sent to this conversation"
            elif now - sent.at > RECALL_WINDOW:
                failed[key] = "recall window (24 hours) has passed"
            else:
                if not sent.recalled:
                    sent.recalled = True
                    message = self.traffic.messages[sent.message_index]
                    message["recalled"] = True
                    message["recalled_at"] = now
                done.append(key)
        where = conversation or "oto"
        line = f"recall {app_key} {where}: {len(done)} recalled, {len(failed)} failed"
        return {"successResult": done, "failedResult": failed}, line

    def _group_recall(
        self, now: float, app_key: str, app: AppSpec, path: str, body: JSON
    ) -> tuple[JSON, str]:
        robot_code = self._robot(app_key, app, body)
        keys = self._keys(body, None)
        return self._recall(now, app_key, robot_code, _conversation(body), keys)

    def _batch_recall(
        self, now: float, app_key: str, app: AppSpec, path: str, body: JSON
    ) -> tuple[JSON, str]:
        robot_code = self._robot(app_key, app, body)
        keys = self._keys(body, MAX_RECALL_KEYS)
        return self._recall(now, app_key, robot_code, None, keys)

    # --- cards (recorded only) ------------------------------------------------------------------

    def _card(
        self, now: float, app_key: str, app: AppSpec, path: str, body: JSON
    ) -> tuple[JSON, str]:
        track = body.get("outTrackId")
        if not isinstance(track, str) or not track:
            raise V1Error(400, "miss.param.outTrackId", "outTrackId不能为空")
        if path == CARD_CREATE_DELIVER:
            for name in ("cardTemplateId", "openSpaceId"):
                if not isinstance(body.get(name), str) or not body.get(name):
                    raise V1Error(400, f"miss.param.{name}", f"{name}不能为空")
        elif not any(c["body"].get("outTrackId") == track for c in self.cards):
            raise V1Error(400, "invalidParameter.outTrackId.notExist", "卡片不存在")
        record = {"index": len(self.cards), "time": now, "app_key": app_key, "body": body}
        if path == CARD_UPDATE:
            self.cards.append({**record, "op": "updated"})
            # UpdateCardResponseBody: two booleans, `result` saying the change was made.
            return {"success": True, "result": True}, f"card updated {track}"
        # The call succeeds whatever becomes of the space; each space's verdict is in
        # deliverResults (a card for a group the robot is not in is delivered nowhere).
        space = _card_space(app, str(body["openSpaceId"]))
        result: JSON = {"outTrackId": track, "deliverResults": [space]}
        if not space["success"]:
            line = f"card not delivered {track} -> {space['spaceId']}: {space['errorMsg']}"
            return {"success": True, "result": result}, line
        self.cards.append({**record, "op": "created"})
        return {"success": True, "result": result}, f"card created {track}"


def _card_space(app: AppSpec, open_space_id: str) -> JSON:
    """One entry of createAndDeliver's deliverResults for `open_space_id`."""
    space_type, _, space_id = open_space_id.removeprefix("dtv1.card//").partition(".")
    why = ""
    if space_type == "IM_GROUP" and space_id in app.disbanded_groups:
        why = "群已解散"
    elif space_type == "IM_GROUP" and app.groups is not None and space_id not in app.groups:
        why = "机器人不在该群中"
    shown = "IM" if space_type in ("IM_GROUP", "IM_ROBOT") else space_type
    return {"spaceType": shown, "spaceId": space_id, "success": not why, "errorMsg": why}


def _conversation(body: JSON) -> str:
    conversation = body.get("openConversationId")
    if not isinstance(conversation, str) or not conversation:
        raise V1Error(400, "miss.param.openConversationId", "openConversationId不能为空")
    return conversation


def _json_object(body: bytes) -> JSON:
    try:
        parsed: Any = json.loads(body.decode("utf-8")) if body.strip() else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise V1Error(400, "invalidParameter.body", f"the body is not JSON ({exc})") from exc
    if not isinstance(parsed, dict):
        raise V1Error(400, "invalidParameter.body", "the body must be a JSON object")
    return parsed
