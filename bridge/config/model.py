"""The compiled config: what the rest of the bridge sees after loading and validation.

Everything here is concrete and checked: durations are seconds, regexes are compiled, templates
are Jinja objects, secrets are read from their files. Secret fields are excluded from repr() so a
stray log of a config object cannot leak them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import jinja2

from bridge.alerting.matchers import Matcher
from bridge.alerting.silences import Silence
from bridge.model import Mention, MsgType

DEFAULT_LISTEN = "127.0.0.1:8060"
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_THREADS = 1  # see ServerConfig
# Open connections the listener holds at most (waitress's own default, 100, let ~100 idle sockets
# lock every client out). Each costs a file descriptor and a few KiB, nothing more: waitress
# buffers slow bodies in its I/O thread, so thousands of idle or dripping clients do not starve
# the application thread. The process raises its RLIMIT_NOFILE soft limit to fit (bridge/fdlimit).
DEFAULT_CONNECTION_LIMIT = 4096
# A connection silent this long is closed (waitress's channel_timeout, default 120 s). A minute,
# like nginx's client_header/body timeouts: Alertmanager and DingTalk send a request as soon as
# they connect, and Go's HTTP client re-dials a keep-alive connection the server closed.
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_TIMEOUT = 5.0
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_API_BASE = "https://oapi.dingtalk.com"
# systemd's StateDirectory= for the packaged unit; used when neither the config nor
# $STATE_DIRECTORY names one.
DEFAULT_STATE_DIR = Path("/var/lib/dingtalk-bridge")


@dataclass(frozen=True)
class RateLimit:
    """At most `messages` calls in any `per` seconds (a value of the config; the maths of it is
    in bridge.delivery.ratelimit)."""

    messages: int  # 0: unlimited
    per: float  # seconds

    @property
    def unlimited(self) -> bool:
        return self.messages <= 0


ROBOT_RATE = RateLimit(20, 60.0)  # DingTalk: 20 messages per minute per robot
NO_RATE = RateLimit(0, 60.0)


@dataclass(frozen=True)
class SendPolicy:
    """How one target's sender paces, merges, splits and retries. These defaults are the only
    place the fallback numbers are written: the compiler takes what a target leaves out from
    here."""

    rate: RateLimit = ROBOT_RATE
    lockout: float = 600.0
    digest: bool = True
    digest_after: int = 20
    digest_max: int = 100
    split: bool = True
    retry_initial: float = 1.0
    retry_max: float = 300.0
    give_up_after: float = 86_400.0


@dataclass(frozen=True)
class ServerConfig:
    """The HTTP listener. One application thread by default: waitress reads and buffers every
    request in its own I/O thread, and the work after that holds Python's GIL, so more threads
    only add contention (measured: 1 thread 1,630 requests/s, 4 threads 1,190, see bench/)."""

    host: str
    port: int
    max_body_bytes: int = DEFAULT_MAX_BODY
    threads: int = DEFAULT_THREADS
    connection_limit: int = DEFAULT_CONNECTION_LIMIT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    reload_token: str | None = field(default=None, repr=False)  # guards POST /-/reload


@dataclass(frozen=True)
class RobotTarget:
    name: str
    webhook: str = field(repr=False)  # holds the access_token
    secret: str | None = field(repr=False)
    keywords: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    queue_size: int = DEFAULT_QUEUE_SIZE
    policy: SendPolicy = SendPolicy()
    type: Literal["robot"] = "robot"

    def secrets(self) -> tuple[str, ...]:
        """The values to redact: the webhook holds the access token."""
        return (self.webhook, self.secret or "")


@dataclass(frozen=True)
class WorkNoticeTarget:
    name: str
    app_key: str
    app_secret: str = field(repr=False)
    agent_id: int = 0
    userids: tuple[str, ...] = ()
    dept_ids: tuple[str, ...] = ()
    to_all_user: bool = False
    api_base: str = DEFAULT_API_BASE
    timeout: float = DEFAULT_TIMEOUT
    queue_size: int = DEFAULT_QUEUE_SIZE
    policy: SendPolicy = SendPolicy(rate=NO_RATE)
    type: Literal["work_notice"] = "work_notice"

    def secrets(self) -> tuple[str, ...]:
        """The values to redact."""
        return (self.app_secret,)


Target = RobotTarget | WorkNoticeTarget


@dataclass(frozen=True)
class HttpInput:
    name: str
    type: Literal["alertmanager", "webhook"]
    path: str
    token: str | None = field(repr=False)
    max_body_bytes: int
    split: bool = False  # alertmanager: one event per alert
    labels: Mapping[str, jinja2.Template] = field(default_factory=dict)  # webhook
    annotations: Mapping[str, jinja2.Template] = field(default_factory=dict)  # webhook
    status: jinja2.Template | None = None  # webhook
    fingerprint: jinja2.Template | None = None  # webhook
    definition: str = field(
        default="", repr=False
    )  # canonical JSON of the raw definition: equal text, unchanged input


@dataclass(frozen=True)
class LinePattern:
    """One `patterns` entry of a file input: a line matching `regex` becomes an event."""

    regex: re.Pattern[str]
    labels: Mapping[str, jinja2.Template] = field(default_factory=dict)
    annotations: Mapping[str, jinja2.Template] = field(default_factory=dict)


@dataclass(frozen=True)
class Multiline:
    start: re.Pattern[str]
    timeout: float = 2.0
    max_lines: int = 500


@dataclass(frozen=True)
class Threshold:
    count: int
    within: float


@dataclass(frozen=True)
class FileInput:
    """A tailed set of log files (see bridge/inputs/filetail)."""

    name: str
    paths: tuple[str, ...]  # absolute globs
    patterns: tuple[LinePattern, ...]
    exclude: tuple[str, ...] = ()
    read_from: Literal["end", "beginning"] = "end"
    labels: Mapping[str, jinja2.Template] = field(default_factory=dict)
    multiline: Multiline | None = None
    threshold: Threshold | None = None
    max_line_bytes: int = 65_536
    poll_interval: float = 1.0
    rotate_wait: float = 5.0
    close_inactive: float = 300.0
    max_open_files: int = 256
    inotify: bool = True  # wake-ups only: polling finds everything without them
    type: Literal["file"] = "file"
    definition: str = field(default="", repr=False)  # as HttpInput.definition


@dataclass(frozen=True)
class CallbackInput:
    """DingTalk's event callbacks (HTTP push), verified and decrypted (reference §4)."""

    name: str
    path: str
    token: str = field(repr=False)  # DingTalk's callback token: signs, it is not a bearer token
    aes_key: str = field(repr=False)
    owner_key: str = ""  # corpId (register_call_back) or appKey (event subscription)
    max_age: float = 3_600.0  # callbacks with a timestamp further from now are refused
    max_body_bytes: int = 65_536
    type: Literal["dingtalk_callback"] = "dingtalk_callback"
    definition: str = field(default="", repr=False)


@dataclass(frozen=True)
class ChatInput:
    """An enterprise-internal robot's @-messages: commands from the chat (reference §5)."""

    name: str
    path: str
    app_secret: str = field(repr=False)  # the robot app's AppSecret: checks the `sign` header
    staff_ids: frozenset[str] = frozenset()  # may silence, expire and ack
    admins: bool = True  # the chat's admins (isAdmin) may too
    max_age: float = 3_600.0
    max_body_bytes: int = 65_536
    type: Literal["dingtalk_robot"] = "dingtalk_robot"
    definition: str = field(default="", repr=False)


Input = HttpInput | FileInput | CallbackInput | ChatInput
RoutedInput = HttpInput | CallbackInput | ChatInput  # the inputs served on the HTTP listener


@dataclass(frozen=True)
class ButtonTemplate:
    title: jinja2.Template
    url: jinja2.Template


@dataclass(frozen=True)
class Rule:
    name: str
    index: int
    inputs: frozenset[str] | None  # None: every input
    matchers: tuple[Matcher, ...]
    targets: tuple[str, ...]
    continue_: bool
    msgtype: MsgType
    title: jinja2.Template
    body: jinja2.Template
    url: jinja2.Template | None = None
    pic_url: jinja2.Template | None = None
    buttons: tuple[ButtonTemplate, ...] = ()
    btn_orientation: str = "0"
    mention: Mention = Mention()
    group_by: tuple[str, ...] | None = None  # None: no grouping; ("...",): all labels
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 14_400.0
    send_resolved: bool = True


@dataclass(frozen=True)
class AlertmanagerApi:
    url: str
    timeout: float = 5.0


@dataclass(frozen=True)
class Config:
    path: Path
    digest: str  # sha256 of the file's bytes
    server: ServerConfig
    timezone: ZoneInfo
    targets: Mapping[str, Target]
    inputs: Mapping[str, Input]
    rules: tuple[Rule, ...]
    template_files: tuple[Path, ...] = ()  # files the rules load, for reload watching
    secret_files: tuple[Path, ...] = ()  # `*_file` secrets, watched too (a rotated secret)
    state_dir: Path = DEFAULT_STATE_DIR
    synchronous: str = "normal"
    silences: tuple[Silence, ...] = ()
    shutdown_timeout: float = 10.0
    alertmanager: AlertmanagerApi | None = None  # where chat silences are mirrored

    def http_inputs(self) -> dict[str, HttpInput]:
        return {n: i for n, i in self.inputs.items() if isinstance(i, HttpInput)}

    def routed_inputs(self) -> dict[str, RoutedInput]:
        routed = HttpInput | CallbackInput | ChatInput
        return {n: i for n, i in self.inputs.items() if isinstance(i, routed)}

    def file_inputs(self) -> dict[str, FileInput]:
        return {n: i for n, i in self.inputs.items() if isinstance(i, FileInput)}

    def secrets(self) -> tuple[str, ...]:
        """Every secret value in this config, for redaction at the logging boundary."""
        values: list[str] = []
        for target in self.targets.values():
            values += target.secrets()
        values += [getattr(i, "token", None) or "" for i in self.routed_inputs().values()]
        values += [i.aes_key for i in self.inputs.values() if isinstance(i, CallbackInput)]
        values += [i.app_secret for i in self.inputs.values() if isinstance(i, ChatInput)]
        values.append(self.server.reload_token or "")
        return tuple(v for v in values if v)
