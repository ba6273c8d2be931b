"""Commands typed in a DingTalk chat at the bridge's robot: parsing and answering. Pure apart
from the `Desk` it acts on (the state store, behind the composition root).

    help                                    what the robot understands
    status                                  queues, dead letters, silences, last reload
    silence <matchers> <duration> [comment] e.g. silence alertname=DiskFull instance=~db-.* 2h swap
    silences                                the active silences
    expire <id>                             end a silence now
    chatid                                  this chat's id (an app_robot's open_conversation_id)
    ack <alert id>                          no more reminders for that alert until it resolves
    oncall [schedule]                       who is on call now, until when, and who is next

Each has a Chinese name too (帮助, 状态, 静默, 静默列表, 解除静默, 群ID, 确认, 值班): a group
that works in Chinese types in Chinese. The answers are in the config's `locale` (zh-CN by
default), their words in the message catalog (bridge/locales.py) beside the templates'.

Reading is open to everyone in the chat; changing (silence, expire) to the senders the input
allows. Every mistake gets an answer that says how to do it right, never silence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bridge.alerting import matchers
from bridge.alerting.oncall import Rotation, describe
from bridge.alerting.silences import Silence
from bridge.durations import MAX_SILENCE, format_time, parse_duration
from bridge.locales import DEFAULT_LOCALE, Locale, duration, translate
from bridge.model import ChatSender


class Desk(Protocol):
    def status(self) -> dict[str, Any]: ...

    def silences(self, now: float) -> list[Silence]: ...

    def add_silence(
        self,
        parsed: tuple[matchers.Matcher, ...],
        starts: float,
        ends: float,
        comment: str,
        author: str,
    ) -> tuple[Silence, str]:
        """The silence, and a note on Alertmanager ("" when none is configured)."""
        ...

    def acknowledge(self, short_id: str, by: str, now: float) -> str:
        """Mark the firing alert with this id acknowledged; what to tell the chat."""
        ...

    def expire_silence(self, id_prefix: str, now: float, by: str = "") -> tuple[list[str], str]:
        """The ids that matched (one is expired, by `by`), and a note on Alertmanager."""
        ...

    def oncall(self) -> Mapping[str, Rotation]:
        """The live config's on-call schedules."""
        ...


def answer(
    text: str,
    sender: ChatSender,
    desk: Desk,
    now: float,
    tz: ZoneInfo,
    locale: Locale = DEFAULT_LOCALE,
) -> str:
    words = text.split()
    if not words:
        return help_text(locale)
    name, args = words[0].lower().lstrip("/"), words[1:]
    command = COMMANDS.get(ALIASES.get(name, name))
    if command is None:
        unknown = translate(locale, "I do not know the command %(name)s.", name=name)
        return f"{unknown}\n{help_text(locale)}"
    if command.changes and not sender.allowed:
        return not_allowed(sender.nick, name, locale)
    return command.run(args, Asked(sender, desk, now, tz, locale))


def not_allowed(who: str, what: str, locale: Locale = DEFAULT_LOCALE) -> str:
    """The answer to someone the input does not let change things (a command, a card click)."""
    return translate(
        locale,
        "Sorry %(who)s, you may not %(what)s here (an admin can add your staff id to the"
        " input's allow list).",
        who=who,
        what=what,
    )


def help_text(locale: Locale) -> str:
    lines = [translate(locale, "I understand:")]
    for name, command in COMMANDS.items():
        chinese = CHINESE_NAMES[name]
        lines.append(f"{command.usage} ({chinese}): {translate(locale, command.help)}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Asked:
    """Who asked, and what a command answers with: the desk, the time, the zone, the language."""

    sender: ChatSender
    desk: Desk
    now: float
    tz: ZoneInfo
    locale: Locale


def _help(args: Sequence[str], asked: Asked) -> str:
    return help_text(asked.locale)


def _status_command(args: Sequence[str], asked: Asked) -> str:
    return _status(asked.desk.status(), asked.locale)


def _silences_command(args: Sequence[str], asked: Asked) -> str:
    return _silences(asked.desk.silences(asked.now), asked.now, asked.tz, asked.locale)


def _expire(args: Sequence[str], asked: Asked) -> str:
    locale = asked.locale
    if len(args) != 1:
        return translate(locale, "Usage: expire <id> (the id from `silences`)")
    ids, note = asked.desk.expire_silence(args[0], asked.now, asked.sender.nick)
    if len(ids) == 1:
        return (
            translate(
                locale, "Silence %(id)s expired by %(who)s.", id=ids[0], who=asked.sender.nick
            )
            + note
        )
    return translate(
        locale,
        "No single active silence with id %(id)s… (%(count)d match).",
        id=args[0],
        count=len(ids),
    )


def _ack(args: Sequence[str], asked: Asked) -> str:
    locale = asked.locale
    if len(args) != 1:
        return translate(locale, "Usage: ack <alert id> (the id at the end of the alert's message)")
    return asked.desk.acknowledge(args[0], asked.sender.nick or asked.sender.staff_id, asked.now)


def _silence(args: Sequence[str], asked: Asked) -> str:
    locale = asked.locale
    usage = translate(
        locale,
        "Usage: silence <matchers> <duration> [comment], e.g. silence alertname=DiskFull 2h swap",
    )
    parsed: list[matchers.Matcher] = []
    for index, word in enumerate(args):
        try:
            seconds = parse_duration(word)
        except ValueError:
            seconds = None
        if seconds is not None:
            if not parsed:
                return (
                    translate(locale, "Which alerts? Give matchers before the duration.")
                    + "\n"
                    + usage
                )
            if seconds <= 0:
                return translate(locale, "The duration must be more than 0.")
            if seconds > MAX_SILENCE:
                longest = translate(
                    locale,
                    "A silence lasts at most %(longest)s (a year); for longer, change the rules in"
                    " the config.",
                    longest=duration(locale, MAX_SILENCE),
                )
                return f"{longest}\n{usage}"
            comment = " ".join(args[index + 1 :])
            author = asked.sender.nick or asked.sender.staff_id
            silence, note = asked.desk.add_silence(
                tuple(parsed), asked.now, asked.now + seconds, comment, author
            )
            done = translate(
                locale,
                "Silenced %(what)s until %(until)s (%(duration)s), id %(id)s, by %(who)s.",
                what=silence.describe(),
                until=format_time(asked.now + seconds, asked.tz, "%m-%d %H:%M"),
                duration=duration(locale, seconds),
                id=silence.id,
                who=author,
            )
            return done + note
        try:
            parsed.append(matchers.parse(word))
        except ValueError as exc:
            return f"{word}: {exc}\n{usage}"
    return translate(locale, "How long? Add a duration such as 2h.") + "\n" + usage


def _status(status: dict[str, Any], locale: Locale) -> str:
    lines = [translate(locale, "Queues:")]
    for name, queue in sorted(status.get("queues", {}).items()):
        age = queue.get("oldest_age_seconds")
        waiting = translate(locale, "%(count)d waiting", count=queue.get("pending", 0))
        oldest = translate(locale, ", oldest %(age)s", age=duration(locale, age)) if age else ""
        lines.append(f"  {name}: {waiting}{oldest}")
    store = status.get("store", {})
    lines.append(translate(locale, "Dead letters: %(count)d", count=store.get("dead_letters", 0)))
    lines.append(translate(locale, "Active silences: %(count)d", count=status.get("silences", 0)))
    reload = (status.get("config") or {}).get("last_reload") or {}
    if reload:
        lines.append(
            translate(
                locale,
                "Last reload: %(result)s at %(at)s",
                result=reload.get("result"),
                at=reload.get("at"),
            )
        )
    else:
        lines.append(
            translate(
                locale,
                "Config %(hash)s, not reloaded since start",
                hash=status.get("config", {}).get("hash", "?"),
            )
        )
    return "\n".join(lines)


def _silences(silences: list[Silence], now: float, tz: ZoneInfo, locale: Locale) -> str:
    active = [s for s in silences if s.active(now)]
    if not active:
        return translate(locale, "No active silences.")
    lines = []
    for s in active:
        until = format_time(s.ends_at, tz, "%m-%d %H:%M")  # (a bad stored row must not fail)
        who = translate(locale, " by %(who)s", who=s.author) if s.author else ""
        why = f": {s.comment}" if s.comment else ""
        lines.append(
            translate(
                locale, "%(id)s %(what)s until %(until)s", id=s.id, what=s.describe(), until=until
            )
            + who
            + why
        )
    return "\n".join(lines)


def _chatid(args: Sequence[str], asked: Asked) -> str:
    """The id an app_robot target needs to send into this group: operators otherwise have to dig
    it out of DingTalk's API explorer."""
    locale = asked.locale
    if not asked.sender.conversation:
        return translate(locale, "DingTalk did not say which conversation this is.")
    said = translate(
        locale, "This chat's open_conversation_id is %(id)s", id=asked.sender.conversation
    )
    why = translate(locale, "(an app_robot target sends here with open_conversation_id set to it).")
    return f"{said}\n{why}"


def _oncall(args: Sequence[str], asked: Asked) -> str:
    locale = asked.locale
    schedules = asked.desk.oncall()
    if not schedules:
        return translate(locale, "No on-call schedules in the config (its oncall: section).")
    if len(args) > 1:
        return translate(locale, "Usage: oncall [schedule]")
    if args and args[0] not in schedules:
        return translate(
            locale,
            "No schedule %(name)s; schedules: %(names)s",
            name=args[0],
            names=", ".join(sorted(schedules)),
        )
    chosen = [schedules[args[0]]] if args else list(schedules.values())
    return "\n".join(line for rotation in chosen for line in describe(rotation, asked.now, locale))


Run = Callable[[Sequence[str], Asked], str]


@dataclass(frozen=True)
class Command:
    run: Run
    usage: str  # how it is typed, as `help` shows it
    help: str  # what it does (English, the catalog's key)
    changes: bool = False  # only senders the input allows may use it


# A new command is one function above, one line here and its Chinese name below; `help` lists
# them in this order.
COMMANDS: dict[str, Command] = {
    "help": Command(_help, "help", "this list"),
    "status": Command(_status_command, "status", "queues, dead letters, silences, last reload"),
    "silence": Command(
        _silence,
        "silence <matchers> <duration> [comment]",
        "e.g. silence alertname=DiskFull 2h disk swap",
        changes=True,
    ),
    "silences": Command(_silences_command, "silences", "the active silences"),
    "expire": Command(_expire, "expire <id>", "end a silence now", changes=True),
    "chatid": Command(_chatid, "chatid", "this chat's id, for an app_robot target"),
    "ack": Command(
        _ack,
        "ack <alert id>",
        "no more reminders until it resolves (the id is at the end of each alert)",
        changes=True,
    ),
    "oncall": Command(_oncall, "oncall [schedule]", "who is on call now, until when, and who next"),
}
# What a Chinese-speaking group types: each command's name in Chinese.
CHINESE_NAMES: dict[str, str] = {
    "help": "帮助",
    "status": "状态",
    "silence": "静默",
    "silences": "静默列表",
    "expire": "解除静默",
    "chatid": "群ID",
    "ack": "确认",
    "oncall": "值班",
}
ALIASES: dict[str, str] = {chinese.lower(): name for name, chinese in CHINESE_NAMES.items()}
