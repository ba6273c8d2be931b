"""Custom group robots (reference/dingtalk.md §1): the webhook `/robot/send` with its rate
window, 10-minute lockout, size limit, signing and keywords; and the replies a robot posts into
a conversation through its sessionWebhook (§5.4).

Runs under SimulatorState's lock (see state.py); handlers give back the line to log with the
reply.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.simulator import codes
from bridge.simulator.checks import Rejected, check_sign, parse_json_object
from bridge.simulator.content import Mentions, inspected_texts, robot_mentions, robot_summary
from bridge.simulator.shapes import check_robot_message
from bridge.simulator.spec import RobotSpec
from bridge.simulator.traffic import (
    JSON,
    ROBOT_SEND_PATH,
    SESSION_PATH,
    Reply,
    Traffic,
    mask,
    quote,
    short,
)

MAX_ROBOT_BODY_BYTES = 20000  # §1.6: counted on the raw UTF-8 body
RATE_WINDOW_SECONDS = 60.0


@dataclass
class _RobotRuntime:
    accepted: deque[float] = field(default_factory=deque)  # accept times, oldest first
    locked_until: float = 0.0


class Robots:
    """The registered robots (by access token) and each one's rate window and lockout."""

    def __init__(
        self,
        robots: Mapping[str, RobotSpec],
        traffic: Traffic,
        accept_unknown: bool,
        default_rate_per_minute: int,
    ) -> None:
        self.registered: dict[str, RobotSpec] = dict(robots)
        self.traffic = traffic
        self.accept_unknown = accept_unknown  # an unknown token registers a plain robot
        self.default_rate_per_minute = default_rate_per_minute
        self.clear()

    def clear(self) -> None:
        """Forget rate windows and lockouts; keep the registry."""
        self._runtime: dict[str, _RobotRuntime] = {}

    def register(self, robots: Mapping[str, RobotSpec]) -> None:
        self.registered.update(robots)

    def describe(self) -> JSON:
        """Registered robots, without their secrets."""
        return {
            token: {
                "has_secret": robot.secret is not None,
                "keywords": list(robot.keywords),
                "rate_per_minute": self._rate_for(robot),
                "lockout_seconds": robot.lockout_seconds,
            }
            for token, robot in self.registered.items()
        }

    def send(self, now: float, query: Mapping[str, str], body: bytes) -> tuple[Reply, str]:
        """POST /robot/send?access_token=…[&timestamp=…&sign=…] (sign already URL-decoded once)."""
        token = query.get("access_token", "")
        try:
            parsed, mentions = self._checks(now, token, query, body)
        except Rejected as rejected:
            line = self._rejected(now, token, rejected)
            return (200, {"errcode": rejected.errcode, "errmsg": rejected.errmsg}), line
        line = self._deliver(now, token, parsed, mentions)
        return (200, {"errcode": codes.OK, "errmsg": codes.MSG_OK}), line

    def _checks(
        self, now: float, token: str, query: Mapping[str, str], body: bytes
    ) -> tuple[JSON, Mentions]:
        # The order mirrors what a client can observe from DingTalk: identity first, then the
        # throttle, then the payload, the security settings, and the rate count last (only a
        # message that would otherwise be delivered uses up the budget).
        robot = self.registered.get(token)
        if robot is None and token and self.accept_unknown:
            robot = self.registered[token] = RobotSpec()
        if robot is None:
            raise Rejected(codes.ROBOT_TOKEN_NOT_EXIST, codes.MSG_TOKEN_NOT_EXIST)
        runtime = self._runtime.setdefault(token, _RobotRuntime())
        rate = self._rate_for(robot)
        if now < runtime.locked_until:
            raise Rejected(codes.ROBOT_SEND_TOO_FAST, codes.send_too_fast(rate))
        if len(body) > MAX_ROBOT_BODY_BYTES:
            raise Rejected(codes.ROBOT_MESSAGE_TOO_LONG, codes.MSG_MESSAGE_TOO_LONG)
        parsed = parse_json_object(body)
        if robot.secret is not None:
            check_sign(now, robot.secret, query)
        shape_error = check_robot_message(parsed)
        if shape_error:
            raise Rejected(codes.INVALID_PARAMETER, shape_error)
        if robot.keywords:
            texts = inspected_texts(parsed)
            if not any(k in t for k in robot.keywords for t in texts):
                raise Rejected(codes.ROBOT_SECURITY_FAILED, codes.MSG_KEYWORDS_NOT_IN_CONTENT)
        if rate > 0:
            window = runtime.accepted
            while window and window[0] <= now - RATE_WINDOW_SECONDS:
                window.popleft()
            if len(window) >= rate:
                runtime.locked_until = now + robot.lockout_seconds
                raise Rejected(codes.ROBOT_SEND_TOO_FAST, codes.send_too_fast(rate))
            window.append(now)
        return parsed, robot_mentions(parsed)

    def _rate_for(self, robot: RobotSpec) -> int:
        if robot.rate_per_minute is None:
            return self.default_rate_per_minute
        return robot.rate_per_minute

    def _deliver(self, now: float, token: str, body: JSON, mentions: Mentions) -> str:
        title, text = robot_summary(body)
        msgtype = body["msgtype"]
        self.traffic.deliver(
            {
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
        self.traffic.robot_counter(token)["delivered"] += 1
        self.traffic.record(now, ROBOT_SEND_PATH, "robot", codes.OK, codes.MSG_OK, token=token)
        tags = [f"@{m}" for m in mentions.highlighted_mobiles + mentions.highlighted_userids]
        tags += [
            f"@{m}(not highlighted: no @{m} in text)"
            for m in mentions.mobiles + mentions.userids
            if m not in mentions.highlighted_mobiles + mentions.highlighted_userids
        ]
        if mentions.all:
            tags.append("@all")
        return " ".join(["robot", mask(token), msgtype, quote(title), *tags])

    def _rejected(self, now: float, token: str, rejected: Rejected) -> str:
        if token in self.registered:
            counter = self.traffic.robot_counter(token)
            counter["rejected"][str(rejected.errcode)] += 1
        self.traffic.record(
            now, ROBOT_SEND_PATH, "robot", rejected.errcode, rejected.errmsg, token=token
        )
        shown = mask(token) if token else "(no token)"
        return f"rejected robot {shown} {rejected.errcode} {short(rejected.errmsg)}"

    def session_send(
        self, now: float, query: Mapping[str, str], body: bytes
    ) -> tuple[Reply, str | None]:
        """POST /robot/sendBySession?session=… : a reply into the conversation a robot was
        @-mentioned in (reference §5.4); the URL itself is the credential. A rejected reply
        is recorded but not logged."""
        session = query.get("session", "")
        try:
            if not session:
                raise Rejected(codes.INVALID_PARAMETER, "missing session")
            parsed = parse_json_object(body)
            msgtype = parsed.get("msgtype")
            if msgtype not in ("text", "markdown") or not isinstance(parsed.get(msgtype), dict):
                raise Rejected(codes.INVALID_PARAMETER, "expected a text or markdown message")
            if msgtype == "text" and not isinstance(parsed["text"].get("content"), str):
                raise Rejected(codes.INVALID_PARAMETER, "text.content is required")
        except Rejected as rejected:
            self.traffic.record(now, SESSION_PATH, "session", rejected.errcode, rejected.errmsg)
            return (200, {"errcode": rejected.errcode, "errmsg": rejected.errmsg}), None
        title, text = robot_summary(parsed)
        self.traffic.deliver(
            {
                "kind": "session",
                "session": session,
                "time": now,
                "msgtype": parsed["msgtype"],
                "title": title,
                "text": text,
                "body": parsed,
            }
        )
        self.traffic.record(now, SESSION_PATH, "session", codes.OK, codes.MSG_OK)
        return (200, {"errcode": 0, "errmsg": "ok"}), f"session reply {quote(title or text)}"
