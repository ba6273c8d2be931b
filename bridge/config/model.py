"""The compiled config: what the rest of the bridge sees after loading and validation.

Everything here is concrete and checked: durations are seconds, regexes are compiled, templates
are Jinja objects, secrets are read from their files. Secret fields are excluded from repr() so a
stray log of a config object cannot leak them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast
from zoneinfo import ZoneInfo

import jinja2

from bridge.alerting.matchers import Matcher
from bridge.alerting.oncall import Rotation
from bridge.alerting.silences import Silence
from bridge.config import dburl, nodeid
from bridge.config.inputs.callback import CallbackInput as CallbackInput
from bridge.config.inputs.chat import ChatInput as ChatInput
from bridge.config.inputs.file import FileInput as FileInput
from bridge.config.inputs.file import LinePattern as LinePattern
from bridge.config.inputs.file import Multiline as Multiline
from bridge.config.inputs.file import Threshold as Threshold
from bridge.config.inputs.http_json import HttpInput as HttpInput
from bridge.config.inputs.kind import InputSpec, RoutedSpec
from bridge.config.inputs.prometheus import PrometheusInput as PrometheusInput
from bridge.config.inputs.registry import KINDS, stream_app
from bridge.config.people import EMPTY as NO_PEOPLE
from bridge.config.people import Directory
from bridge.locales import DEFAULT_LOCALE, Locale
from bridge.model import Mention, MsgType

DEFAULT_LISTEN = "127.0.0.1:8060"
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_THREADS = 4  # see ServerConfig
# Processes serving one config on one host (app/workers.py): one by default, as many as cores
# at most worth it; 32 bounds what a typo can start.
DEFAULT_WORKERS = 1
MAX_WORKERS = 32
# Open connections the listener holds at most (waitress's default, 100, once let ~100 idle sockets
# lock every client out). Each costs a file descriptor and a few KiB, nothing more: the server's
# I/O loop buffers slow bodies (app/httpserver.py), so thousands of idle or dripping clients do
# not starve the application threads. The process raises its RLIMIT_NOFILE soft limit to fit
# (bridge/fdlimit).
DEFAULT_CONNECTION_LIMIT = 4096
# A connection silent this long is closed (waitress's default was 120 s). A minute,
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
# `state: {lease}`: how long a replica holds the rows it claimed to send (delivery/claims.py).
# At least MIN_CLAIM_LEASE: renewed at half its length, it must outlast an HTTP call to DingTalk
# (a target's timeout, 5 s by default) and a slow commit; at most MAX_CLAIM_LEASE, which is how
# long a dead replica's rows may wait for another.
DEFAULT_CLAIM_LEASE = 30.0
MIN_CLAIM_LEASE = 5.0
MAX_CLAIM_LEASE = 600.0


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
# The app robot's v1.0 send APIs: "20 QPS per API per app" is the platform default often quoted,
# not confirmed for these APIs (reference/dingtalk.md §8; docs/dingtalk-v1.md).
APP_ROBOT_RATE = RateLimit(20, 1.0)
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
    # After DingTalk says the organisation's monthly API calls are used up: one call per this
    # long tells when they are back (the month turned, or more were bought).
    quota_wait: float = 3_600.0


DEFAULT_CONSOLE_PATH = "/console"
DEFAULT_CONSOLE_SESSION = 12 * 3600.0
MIN_CONSOLE_TOKEN = 16  # characters: the token is the whole of the console's protection


@dataclass(frozen=True)
class ConsoleConfig:
    """`server.console`: the operator's pages (bridge/app/console/). `token` may do everything,
    `viewer_token` only look; `read_only` refuses every action whatever the token."""

    path: str = DEFAULT_CONSOLE_PATH
    token: str = field(default="", repr=False)
    viewer_token: str | None = field(default=None, repr=False)
    read_only: bool = False
    session: float = DEFAULT_CONSOLE_SESSION  # how long a login cookie lasts
    # The DingTalk simulator the playground may post a demo message to (its base URL); None: off.
    simulator: str | None = None


@dataclass(frozen=True)
class ServerConfig:
    """The HTTP listener (app/httpserver.py): one I/O loop reads and buffers every request, and
    `threads` application threads run them. Four by default: requests that arrive together
    then commit together (the SQLite store's group commit), which one thread cannot do
    (measured, 32 clients: 4 threads 1,011-1,067 requests/s with group commit, 626-751
    without; see bench/)."""

    host: str
    port: int
    max_body_bytes: int = DEFAULT_MAX_BODY
    threads: int = DEFAULT_THREADS
    workers: int = DEFAULT_WORKERS  # processes sharing the listener and the state (app/workers.py)
    # One more process that sends, reads the files and runs the timers, while the workers only
    # serve HTTP (app/workers.py).
    background_worker: bool = False
    connection_limit: int = DEFAULT_CONNECTION_LIMIT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    reload_token: str | None = field(default=None, repr=False)  # guards POST /-/reload
    console: ConsoleConfig | None = None  # off unless configured


@dataclass(frozen=True)
class RobotTarget:
    name: str
    webhook: str = field(repr=False)  # holds the access_token
    secret: str | None = field(repr=False)
    keywords: tuple[str, ...] = ()
    # Follow a markdown message that mentions anyone with a one-line text message carrying the
    # @-mentions (dingtalk/robot.py with_mention_line), for chats where markdown does not ping.
    mention_line: bool = False
    timeout: float = DEFAULT_TIMEOUT
    queue_size: int = DEFAULT_QUEUE_SIZE
    policy: SendPolicy = SendPolicy()
    type: Literal["robot"] = "robot"

    def secrets(self) -> tuple[str, ...]:
        """The values to redact: the webhook holds the access token."""
        return (self.webhook, self.secret or "")


# A mention ref as compiled: a literal name (`alice`, `dba`, `oncall:db`) or a template
# (`{{ labels.owner }}`) rendered per message (bridge/pipeline/mentions.py).
MentionRef = str | jinja2.Template


@dataclass(frozen=True)
class WorkNoticeTarget:
    name: str
    app_key: str
    app_secret: str = field(repr=False)
    agent_id: int = 0
    userids: tuple[str, ...] = ()
    dept_ids: tuple[str, ...] = ()
    to_all_user: bool = False
    # `recipients:` people, groups, oncall:, templates such as "{{ labels.owner }}": resolved
    # per message to userids (the message's only_users), beside the fixed userids.
    recipients: tuple[MentionRef, ...] = ()
    api_base: str = DEFAULT_API_BASE
    timeout: float = DEFAULT_TIMEOUT
    queue_size: int = DEFAULT_QUEUE_SIZE
    policy: SendPolicy = SendPolicy(rate=NO_RATE)
    type: Literal["work_notice"] = "work_notice"

    def secrets(self) -> tuple[str, ...]:
        """The values to redact."""
        return (self.app_secret,)


DEFAULT_OPENAPI_BASE = "https://api.dingtalk.com"
# DingTalk takes at most 20 userIds per batchSend (§6): a message to more users is several calls.
APP_ROBOT_BATCH = 20
# One message to more users than this is refused by `check`: every 20 are another call against
# the app's QPS, and a group (or a work notice) reaches many people in one call.
MAX_APP_ROBOT_USERS = 100
# `recall_singles_after_digest: true`: how far before a digest's oldest alert a single sent to the
# same target still counts as one of its storm.
DEFAULT_STORM_LOOKBACK = 300.0


@dataclass(frozen=True)
class AppRobotTarget:
    """An internal app's robot sending through the v1.0 API (reference/dingtalk.md §6): to one
    group (`open_conversation_id`) or one-to-one to `userids` (never both)."""

    name: str
    app_key: str
    app_secret: str = field(repr=False)
    robot_code: str = ""  # DingTalk: the app key, for an internal app's robot
    open_conversation_id: str | None = None
    userids: tuple[str, ...] = ()
    api_base: str = DEFAULT_OPENAPI_BASE
    timeout: float = DEFAULT_TIMEOUT
    queue_size: int = DEFAULT_QUEUE_SIZE
    policy: SendPolicy = SendPolicy(rate=APP_ROBOT_RATE, digest_after=20)
    # An interactive card's template (dingtalk/cards.py): a rule's Ack/Silence go as buttons
    # whose clicks come back over Stream mode. "": plain robot messages only.
    card_template_id: str = ""
    type: Literal["app_robot"] = "app_robot"

    def secrets(self) -> tuple[str, ...]:
        """The values to redact."""
        return (self.app_secret,)


Target = RobotTarget | WorkNoticeTarget | AppRobotTarget


# Each input kind's compiled model lives with its compile step (bridge/config/inputs/); they are
# named here too, as the rest of the config's model is.
Input = InputSpec
RoutedInput = RoutedSpec  # the inputs served on the HTTP listener


@dataclass(frozen=True)
class EscalationStep:
    """One `escalate:` step of a rule (config/escalation.py): `after` seconds unacknowledged
    since the alert first fired, a message to `targets` @-mentioning `mention` (refs as a rule's
    `mention` list writes them, resolved when the step fires)."""

    after: float
    targets: tuple[str, ...]
    mention: tuple[str, ...] = ()


@dataclass(frozen=True)
class ButtonTemplate:
    title: jinja2.Template
    url: jinja2.Template


@dataclass(frozen=True)
class MentionRefs:
    """A rule's `mention` by name: who is pinged when it fires, and when it resolves (nobody
    unless said). The fixed `mobiles`/`userids`/`all` stay in Rule.mention, on every message."""

    firing: tuple[MentionRef, ...] = ()
    resolved: tuple[MentionRef, ...] = ()

    def for_status(self, status: str) -> tuple[MentionRef, ...]:
        return self.resolved if status == "resolved" else self.firing


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
    # The title is rules.DEFAULT_TITLE: pipeline/render.py renders it without Jinja.
    title_is_default: bool = False
    pic_url: jinja2.Template | None = None
    buttons: tuple[ButtonTemplate, ...] = ()
    btn_orientation: str = "0"
    mention: Mention = Mention()
    mention_refs: MentionRefs = MentionRefs()
    # The config's people (the same object in every rule): what mention_refs resolve through.
    people: Directory = NO_PEOPLE
    group_by: tuple[str, ...] | None = None  # None: no grouping; ("...",): all labels
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 14_400.0
    send_resolved: bool = True
    # Once a storm's digest reaches an app_robot target, recall this rule's single messages
    # sent there from this long before the digest's oldest alert on (None: keep them).
    recall_singles_after_digest: float | None = None
    actions: tuple[str, ...] = ()  # one-tap buttons on firing messages: ack, silence, runbook
    escalate: tuple[EscalationStep, ...] = ()  # unacknowledged this long: tell someone else


# `actions:` (one-tap Ack / Silence links, bridge/alerting/actions.py): how long a link stays
# valid, and the silences offered.
DEFAULT_ACTION_TTL = 86_400.0
DEFAULT_SILENCE_CHOICES = (3600.0,)


@dataclass(frozen=True)
class ActionsConfig:
    """The `actions` section: where phones reach the bridge (`base_url`: the links are built on
    it; None makes no links), the key that signs them (None: the one generated in the state
    store), how long a link stays valid, and the silence lengths offered."""

    base_url: str | None = None
    secret: str | None = field(default=None, repr=False)
    ttl: float = DEFAULT_ACTION_TTL
    silence: tuple[float, ...] = DEFAULT_SILENCE_CHOICES


@dataclass(frozen=True)
class AlertmanagerApi:
    url: str
    timeout: float = 5.0


@dataclass(frozen=True)
class Config:
    path: Path
    digest: str  # sha256 of everything it read: the file, its templates, its secret files
    server: ServerConfig
    timezone: ZoneInfo
    targets: Mapping[str, Target]
    inputs: Mapping[str, Input]
    rules: tuple[Rule, ...]
    template_files: tuple[Path, ...] = ()  # files the rules load, for reload watching
    secret_files: tuple[Path, ...] = ()  # `*_file` secrets, watched too (a rotated secret)
    state_dir: Path = DEFAULT_STATE_DIR
    synchronous: str = "normal"
    # `state: {url | url_file}`: the state in this PostgreSQL database instead of SQLite in
    # state_dir (None: SQLite). It holds a password: out of repr(), in secrets().
    state_url: str | None = field(default=None, repr=False)
    # `state: {node_id}`, else the host name: the file inputs' offsets are kept under it, so
    # replicas sharing a database never take over each other's (bridge/config/nodeid.py).
    node_id: str = field(default_factory=nodeid.from_host)
    node_id_configured: bool = False  # False: the host name (the default)
    claim_lease: float = DEFAULT_CLAIM_LEASE
    silences: tuple[Silence, ...] = ()
    shutdown_timeout: float = 10.0
    alertmanager: AlertmanagerApi | None = None  # where chat silences are mirrored
    locale: Locale = DEFAULT_LOCALE  # the bundled templates' and digests' language
    actions: ActionsConfig = ActionsConfig()  # one-tap action links
    people: Directory = NO_PEOPLE  # the `people:` section (bridge/config/people.py)
    # `oncall:` schedules by name ({} when none): who is on call is bridge.alerting.oncall's
    oncall: Mapping[str, Rotation] = field(default_factory=dict)
    # sha256 of the config file's own bytes: whether the file on disk is still the one loaded
    # (the playground tells an operator when an edit is not reloaded yet)
    file_digest: str = ""

    @functools.cached_property
    def rules_by_name(self) -> Mapping[str, Rule]:
        """The rules by name, made once per config: senders look a queued row's rule up here
        for every message they render (a cached_property is stored outside the fields, so a
        frozen config allows it and equality ignores it)."""
        return {rule.name: rule for rule in self.rules}

    def http_inputs(self) -> dict[str, HttpInput]:
        return {n: i for n, i in self.inputs.items() if isinstance(i, HttpInput)}

    def routed_inputs(self) -> dict[str, RoutedInput]:
        """The inputs served on the HTTP listener (not those listening on Stream)."""
        return {
            n: cast(RoutedSpec, i)
            for n, i in self.inputs.items()
            if KINDS[i.type].routed and stream_app(i) is None
        }

    def stream_inputs(self) -> dict[str, ChatInput | CallbackInput]:
        """The DingTalk inputs that listen on an app's Stream connection (`listen: stream`)."""
        return {
            n: i
            for n, i in self.inputs.items()
            if isinstance(i, ChatInput | CallbackInput) and i.stream is not None
        }

    def file_inputs(self) -> dict[str, FileInput]:
        return {n: i for n, i in self.inputs.items() if isinstance(i, FileInput)}

    def robot_targets(self) -> dict[str, RobotTarget]:
        return {n: t for n, t in self.targets.items() if isinstance(t, RobotTarget)}

    def app_targets(self) -> dict[str, WorkNoticeTarget]:
        """Targets that send through an internal app: their credentials also register event
        callbacks, and their sends are confirmed later (getsendresult)."""
        return {n: t for n, t in self.targets.items() if isinstance(t, WorkNoticeTarget)}

    def secrets(self) -> tuple[str, ...]:
        """Every secret value in this config, for redaction at the logging boundary."""
        values: list[str] = []
        for target in self.targets.values():
            values += target.secrets()
        for spec in self.inputs.values():
            values += spec.secrets()
        values.append(self.server.reload_token or "")
        if self.server.console is not None:
            values += [self.server.console.token, self.server.console.viewer_token or ""]
        values.append(self.actions.secret or "")
        if self.state_url:
            values += dburl.passwords(self.state_url)
        return tuple(v for v in values if v)
