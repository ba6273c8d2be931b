"""What the simulator knows about: registered robots and apps.

A spec is plain data. It comes from a YAML/JSON file (`--spec FILE`), from the control API
(`POST /_sim/robots`, `POST /_sim/apps`) or from Python code:

    SimulatorSpec(
        robots={"demo-ops": RobotSpec(secret="SEC123", keywords=["告警"])},
        apps={"dingkey": AppSpec(app_secret="s3cret", agent_id=123456789)},
    )

Parsing is strict (unknown keys are errors) because a typo such as `keyword:` would otherwise
silently turn the keyword check off and the tests would pass for the wrong reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Real DingTalk: 20 messages per minute per robot, then a 10-minute throttle (reference §1.7).
DEFAULT_RATE_PER_MINUTE = 20
DEFAULT_LOCKOUT_SECONDS = 600.0
# Real DingTalk access tokens live 7200 s (reference §2.1).
DEFAULT_TOKEN_TTL = 7200.0
# An internal app may send a user at most 500 work notices a day (reference §3.1).
DEFAULT_DAILY_LIMIT = 500
# v1.0: "20 QPS per API per app" (reference §8, uncertain), and a per-user flow control on
# one-to-one robot messages whose real number is not documented (a guess; tests lower it).
DEFAULT_QPS = 20
DEFAULT_USER_RATE = 20
# The robot settings page accepts at most 10 keywords (reference §1.2).
MAX_KEYWORDS = 10


class SpecError(ValueError):
    """A spec (file, control-API body or dict) is malformed."""


@dataclass(frozen=True)
class RobotSpec:
    """One custom group robot, addressed by its webhook access_token.

    `rate_per_minute=None` means "the simulator's default" (20, or `--rate-per-minute`);
    0 disables rate limiting for this robot.
    """

    secret: str | None = None
    keywords: Sequence[str] = ()  # stored as a tuple
    rate_per_minute: int | None = None
    lockout_seconds: float = DEFAULT_LOCKOUT_SECONDS

    def __post_init__(self) -> None:
        # Accept any iterable of keywords from Python callers but store a tuple (frozen, hashable).
        object.__setattr__(self, "keywords", tuple(self.keywords))


@dataclass(frozen=True)
class AppSpec:
    """One internal app that fetches access tokens and sends work notifications."""

    app_secret: str
    agent_id: int
    token_ttl: float = DEFAULT_TOKEN_TTL
    corp_id: str = "dingsimulatedcorp"  # the owner key of callbacks registered by this app
    # The organisation's user ids: a work notice to any other id is not delivered and
    # getsendresult lists it in invalid_user_id_list. None: every user id exists.
    users: tuple[str, ...] | None = None
    # Work notices one user may receive from this app per day (reference §3.1: 500 for an
    # internal app); past it DingTalk drops them with 143105. Lower it to test the limit.
    daily_limit: int = DEFAULT_DAILY_LIMIT
    # Seconds after asyncsend before getsendresult knows the outcome (DingTalk sends
    # asynchronously; until then every list is empty).
    result_delay: float = 0.0
    # The app's robot (v1.0 API, openapi.py). Its robotCode (None: the app key, as DingTalk
    # does for an internal app's robot); the groups it is in by openConversationId (None: any);
    # groups since disbanded (group.disbanded); a robot stopped in the console (bot.stopped).
    robot_code: str | None = None
    groups: tuple[str, ...] | None = None
    disbanded_groups: tuple[str, ...] = ()
    bot_stopped: bool = False
    # Calls per second per v1.0 API (the often quoted platform default, 20; 0: no limit), and
    # one-to-one messages per user per minute before DingTalk flow-controls them (0: no limit).
    qps: int = DEFAULT_QPS
    user_rate_per_minute: int = DEFAULT_USER_RATE
    # Metered calls (sends) per calendar month before DingTalk answers 90020 /
    # ApiCountLimitForOrg (quota.py; basic organisations get 10,000). 0: no limit.
    monthly_quota: int = 0


@dataclass
class SimulatorSpec:
    robots: dict[str, RobotSpec] = field(default_factory=dict)
    apps: dict[str, AppSpec] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> SimulatorSpec:
        """Build a spec from `{robots: {token: {...}}, apps: {app_key: {...}}}`."""
        if data is None:
            return cls()
        mapping = _as_mapping(data, "spec")
        _reject_unknown(mapping, {"robots", "apps"}, "spec")
        return cls(
            robots=parse_robots(mapping.get("robots") or {}),
            apps=parse_apps(mapping.get("apps") or {}),
        )


def load_spec(path: str | Path) -> SimulatorSpec:
    """Load a spec file. `.json` files are parsed as JSON, anything else as YAML."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec file {path}: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"spec file {path} is not valid: {exc}") from exc
    return SimulatorSpec.from_dict(data)


def parse_robots(data: Any) -> dict[str, RobotSpec]:
    """`{access_token: {secret, keywords, rate_per_minute, lockout_seconds}}` → RobotSpecs."""
    robots: dict[str, RobotSpec] = {}
    for key, value in _as_mapping(data, "robots").items():
        # YAML turns an all-digit token into an int; tokens are always strings on the wire.
        token = str(key)
        robots[token] = parse_robot(value, f"robots.{token}")
    return robots


def parse_robot(data: Any, where: str = "robot") -> RobotSpec:
    mapping = _as_mapping(data if data is not None else {}, where)
    _reject_unknown(mapping, {"secret", "keywords", "rate_per_minute", "lockout_seconds"}, where)
    secret = mapping.get("secret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise SpecError(f"{where}.secret must be a non-empty string")
    keywords = mapping.get("keywords") or []
    if not isinstance(keywords, list) or not all(isinstance(k, str) and k for k in keywords):
        raise SpecError(f"{where}.keywords must be a list of non-empty strings")
    if len(keywords) > MAX_KEYWORDS:
        raise SpecError(f"{where}.keywords: DingTalk allows at most {MAX_KEYWORDS} keywords")
    rate = mapping.get("rate_per_minute")
    if rate is not None and (not _is_int(rate) or rate < 0):
        raise SpecError(f"{where}.rate_per_minute must be an integer >= 0 (0 = unlimited)")
    lockout = mapping.get("lockout_seconds", DEFAULT_LOCKOUT_SECONDS)
    if not _is_number(lockout) or lockout < 0:
        raise SpecError(f"{where}.lockout_seconds must be a number >= 0")
    return RobotSpec(
        secret=secret,
        keywords=tuple(keywords),
        rate_per_minute=rate,
        lockout_seconds=float(lockout),
    )


def parse_apps(data: Any) -> dict[str, AppSpec]:
    """`{app_key: {app_secret, agent_id, token_ttl, corp_id, users, daily_limit, result_delay}}`
    → AppSpecs."""
    apps: dict[str, AppSpec] = {}
    for key, value in _as_mapping(data, "apps").items():
        app_key = str(key)
        apps[app_key] = parse_app(value, f"apps.{app_key}")
    return apps


def parse_app(data: Any, where: str = "app") -> AppSpec:
    mapping = _as_mapping(data, where)
    _reject_unknown(
        mapping,
        {
            "app_secret",
            "agent_id",
            "token_ttl",
            "corp_id",
            "users",
            "daily_limit",
            "result_delay",
            "monthly_quota",
            *ROBOT_KEYS,
        },
        where,
    )
    secret = mapping.get("app_secret")
    if not isinstance(secret, str) or not secret:
        raise SpecError(f"{where}.app_secret is required (a non-empty string)")
    agent_id = mapping.get("agent_id")
    if not isinstance(agent_id, int) or isinstance(agent_id, bool):
        raise SpecError(f"{where}.agent_id is required (an integer)")
    ttl = mapping.get("token_ttl", DEFAULT_TOKEN_TTL)
    if not _is_number(ttl) or ttl <= 0:
        raise SpecError(f"{where}.token_ttl must be a number > 0")
    corp_id = mapping.get("corp_id", "dingsimulatedcorp")
    if not isinstance(corp_id, str) or not corp_id:
        raise SpecError(f"{where}.corp_id must be a non-empty string")
    users = mapping.get("users")
    if users is not None and (
        not isinstance(users, list) or not all(isinstance(u, str) and u for u in users)
    ):
        raise SpecError(f"{where}.users must be a list of non-empty user id strings")
    daily_limit = mapping.get("daily_limit", DEFAULT_DAILY_LIMIT)
    if not _is_int(daily_limit) or daily_limit < 0:
        raise SpecError(f"{where}.daily_limit must be an integer >= 0")
    result_delay = mapping.get("result_delay", 0.0)
    if not _is_number(result_delay) or result_delay < 0:
        raise SpecError(f"{where}.result_delay must be a number of seconds >= 0")
    monthly_quota = mapping.get("monthly_quota", 0)
    if not _is_int(monthly_quota) or monthly_quota < 0:
        raise SpecError(f"{where}.monthly_quota must be an integer >= 0")
    return AppSpec(
        app_secret=secret,
        agent_id=agent_id,
        token_ttl=float(ttl),
        corp_id=corp_id,
        users=tuple(users) if users is not None else None,
        daily_limit=daily_limit,
        result_delay=float(result_delay),
        monthly_quota=monthly_quota,
        **_robot_fields(mapping, where),
    )


ROBOT_KEYS = ("robot_code", "groups", "disbanded_groups", "bot_stopped", "qps", "user_rate")


def _robot_fields(mapping: Mapping[Any, Any], where: str) -> dict[str, Any]:
    """The app robot's part of an app's spec (see AppSpec)."""
    robot_code = mapping.get("robot_code")
    if robot_code is not None and (not isinstance(robot_code, str) or not robot_code):
        raise SpecError(f"{where}.robot_code must be a non-empty string")
    lists: dict[str, tuple[str, ...] | None] = {}
    for name in ("groups", "disbanded_groups"):
        value = mapping.get(name)
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(g, str) and g for g in value)
        ):
            raise SpecError(f"{where}.{name} must be a list of openConversationId strings")
        lists[name] = tuple(value) if value is not None else None
    stopped = mapping.get("bot_stopped", False)
    if not isinstance(stopped, bool):
        raise SpecError(f"{where}.bot_stopped must be true or false")
    numbers = {}
    for name, default in (("qps", DEFAULT_QPS), ("user_rate", DEFAULT_USER_RATE)):
        value = mapping.get(name, default)
        if not _is_int(value) or value < 0:
            raise SpecError(f"{where}.{name} must be an integer >= 0")
        numbers[name] = value
    return {
        "robot_code": robot_code,
        "groups": lists["groups"],
        "disbanded_groups": lists["disbanded_groups"] or (),
        "bot_stopped": stopped,
        "qps": numbers["qps"],
        "user_rate_per_minute": numbers["user_rate"],
    }


def _as_mapping(data: Any, where: str) -> Mapping[Any, Any]:
    if not isinstance(data, Mapping):
        raise SpecError(f"{where} must be a mapping, got {type(data).__name__}")
    return data


def _reject_unknown(mapping: Mapping[Any, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}")


def _is_int(value: Any) -> bool:
    # bool is a subclass of int; `agent_id: true` is a mistake, not agent 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)
