"""What the simulated DingTalk saw: every API request (delivered, rejected or faulted), the
messages it delivered, and the counters `/_sim/stats` shows; and how tokens and texts are shown
to humans (masked, quoted, one line).

Not thread-safe by itself: SimulatorState holds its one lock around every use.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from bridge.simulator import codes

Reply = tuple[int, dict[str, Any]]  # (HTTP status, JSON body)
JSON = dict[str, Any]

ROBOT_SEND_PATH = "/robot/send"
GETTOKEN_PATH = "/gettoken"
ASYNCSEND_PATH = "/topapi/message/corpconversation/asyncsend_v2"
GETSENDRESULT_PATH = "/topapi/message/corpconversation/getsendresult"
SESSION_PATH = "/robot/sendBySession"
API_PATHS = (ROBOT_SEND_PATH, GETTOKEN_PATH, ASYNCSEND_PATH, GETSENDRESULT_PATH, SESSION_PATH)

_ERRMSG_LOG_LIMIT = 200


class Traffic:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.messages: list[JSON] = []
        self.requests: list[JSON] = []
        self.totals: Counter[str] = Counter()
        self._robot_stats: dict[str, JSON] = {}
        self._app_stats: dict[str, Counter[str]] = {}

    def record(
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
        """One API request and its outcome."""
        # Deliberately no query string here: it carries appsecret (gettoken) and signatures.
        self.requests.append(
            {
                "index": len(self.requests),
                "time": now,
                "path": path,
                "kind": kind,
                "token": token,
                "app_key": app_key,
                "errcode": errcode,
                "errmsg": short(errmsg),
                "http_status": http_status,
                "fault": fault,
                "delivered": errcode == codes.OK and fault is None and kind != "gettoken",
            }
        )

    def deliver(self, message: JSON) -> None:
        """A delivered message (robot, session reply or work notice), numbered in order."""
        self.messages.append({"index": len(self.messages), **message})

    def robot_counter(self, token: str) -> JSON:
        return self._robot_stats.setdefault(
            token, {"delivered": 0, "rejected": Counter(), "faulted": 0}
        )

    def app_counter(self, app_key: str) -> Counter[str]:
        return self._app_stats.setdefault(app_key, Counter())

    def count_call(self, kind: str, app_key: str | None) -> None:
        """A call to an app API (gettoken, asyncsend), in the totals and, for a known app,
        in its own counters."""
        self.totals[kind] += 1
        if app_key is not None:
            self.app_counter(app_key)[kind] += 1

    def stats(self) -> JSON:
        return {
            "requests": len(self.requests),
            "messages": len(self.messages),
            "gettoken_calls": self.totals["gettoken"],
            "asyncsend_calls": self.totals["asyncsend"],
            "faults_injected": self.totals["faults_injected"],
            "robots": {
                token: {**counts, "rejected": dict(counts["rejected"])}
                for token, counts in self._robot_stats.items()
            },
            "apps": {key: dict(counts) for key, counts in self._app_stats.items()},
        }


def kind_of(path: str) -> str:
    return {
        ROBOT_SEND_PATH: "robot",
        GETTOKEN_PATH: "gettoken",
        ASYNCSEND_PATH: "asyncsend",
        GETSENDRESULT_PATH: "getsendresult",
    }.get(path, "other")


def mask(secretish: str) -> str:
    """At most the first 4 characters (never more than half) of a token, for human output."""
    return secretish[: min(4, len(secretish) // 2)] + "…"


def quote(title: str, limit: int = 80) -> str:
    if len(title) > limit:
        title = title[: limit - 1] + "…"
    return json.dumps(title, ensure_ascii=False)


def short(errmsg: str) -> str:
    errmsg = " ".join(errmsg.split())  # one line, whatever the errmsg contains
    return errmsg if len(errmsg) <= _ERRMSG_LOG_LIMIT else errmsg[: _ERRMSG_LOG_LIMIT - 1] + "…"
