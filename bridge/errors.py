"""Exceptions and the Reason vocabulary.

    BridgeError
    ├── ConfigError        a config file failed to load, validate or compile (carries every Problem)
    ├── InputError         a client's request is wrong (carries an HTTP status and a Reason)
    ├── RenderError        a template failed while rendering one event
    └── DeliveryError      DingTalk (or the way to it) refused a message
        retryable: bool, reason: Reason, errcode/errmsg when DingTalk answered

`Reason` is the one word used for a failure everywhere: the log field, the metric label and, with
durable delivery, the dead-letter column.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Reason(enum.StrEnum):
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"  # authentic, but not for us (a callback for another owner key)
    STALE = "stale"  # a signed request whose timestamp is outside the allowed window
    REPLAY = "replay"  # a signed request seen before
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    TOO_LARGE = "too_large"
    QUEUE_FULL = "queue_full"
    STORE = "store"  # the state store could not commit
    RATE_LIMITED = "rate_limited"
    # The organisation's API calls for this calendar month are used up (errcode 90020,
    # Forbidden.AccessDenied.ApiCountLimitForOrg): nothing sends until the month turns or the
    # organisation buys more, so every target of the app waits, then asks again.
    QUOTA = "quota"
    DINGTALK_CONFIG = "dingtalk_config"  # 310000 keyword/sign/ip, bad token, bad agent: fix config
    DINGTALK_BUSY = "dingtalk_busy"  # errcode -1 and friends: try again later
    DINGTALK_REJECTED = "dingtalk_rejected"  # any other non-zero errcode: permanent
    AUTH = "auth"  # access token could not be obtained or kept valid
    SERVER_ERROR = "server_error"  # HTTP 5xx or a body that is not DingTalk's JSON
    NETWORK = "network"
    TIMEOUT = "timeout"
    TEMPLATE = "template"
    SHUTDOWN = "shutdown"
    INTERNAL = "internal"  # an error of ours on one message (a bug): dead-lettered, queue goes on
    # A work notice whose recipients resolve to nobody DingTalk can reach (an on-call schedule or
    # a label naming people without a userid): nothing to send, no bug: dead-lettered, said why.
    NO_RECIPIENTS = "no_recipients"


class BridgeError(Exception):
    """Base class of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    """The config is unusable; `problems` lists every reason, each pointing into the file."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.format() for p in problems))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config file, located as precisely as we can."""

    file: str
    line: int | None  # 1-based; None when the problem is about the file as a whole
    column: int | None  # 1-based
    path: str  # e.g. "rules[2].targets[0]"; "" for the document root
    message: str
    hint: str | None = None

    def format(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.path + ': ' if self.path else ''}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class InputError(BridgeError):
    """A request an input cannot accept; the message is safe to show the client."""

    def __init__(self, status: int, reason: Reason, message: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)


def bad_request(message: str) -> InputError:
    """A 400 for a request whose body is not what the input expects."""
    return InputError(400, Reason.BAD_REQUEST, message)


class RenderError(BridgeError):
    """A template raised while rendering; the alert is still sent with a fallback body."""


class DeliveryError(BridgeError):
    """A message was not accepted by DingTalk. Never contains a token, secret or webhook URL."""

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        retryable: bool,
        errcode: int | None = None,
        errmsg: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.reason = reason
        self.retryable = retryable
        self.errcode = errcode
        self.errmsg = errmsg
        self.retry_after = retry_after
        super().__init__(message)


class StoreError(Exception):
    """The state store cannot do it now (busy, a full disk, an I/O error): what a caller of the
    store catches, whatever the backend; the backend's own error is its `__cause__`. Each backend
    subclasses it under the names of its own errors (SQLite's `OperationalError`, ...), so log
    lines read as before. Not a BridgeError: it is not a refusal of ours, and handlers of those
    must not swallow it."""
