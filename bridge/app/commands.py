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
from bridge.durations import MAX_SILENCE, format_duration, format_time, parse_duration
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


def answer(text: str, sender: ChatSender, desk: Desk, now: float, tz: ZoneInfo) -> str:
    words = text.split()
    if not words:
        return HELP
    name, args = words[0].lower().lstrip("/"), words[1:]
    command = COMMANDS.get(name)
    if command is None:
        return f'I do not know "{name}".\n{HELP}'
    if command.changes and not sender.allowed:
        return not_allowed(sender.nick, name)
    return command.run(args, sender, desk, now, tz)


def not_allowed(who: str, what: str) -> str:
    """The answer to someone the input does not let change things (a command, a card click)."""
    return (
        f"Sorry {who}, you may not {what} here "
        "(an admin can add your staff id to the input's allow list)."
    )


def _help(args: Sequence[str], sender: ChatSender, desk: Desk, now: float, tz: ZoneInfo) -> str:
    return HELP


def _status_command(
    args: Sequence[str], sender: ChatSender, desk: Desk, now: float, tz: ZoneInfo
) -> str:
    return _status(desk.status())


def _silences_command(
    args: Sequence[str], sender: ChatSender, desk: Desk, now: float, tz: ZoneInfo
) -> str:
    return _silences(desk.silences(now), now, tz)


def _expire(args: Sequence[str], sender: ChatSender, desk: Desk, now: float, tz: ZoneInfo) -> str:
    if len(args) != 1:
        return "Usage: expire <id> (the id from `silences`)"
    ids, note = desk.expire_silence(args[0], now, sender.nick)
    if len(ids) == 1:
        return f"Silence {ids[0]} expired by {sender.nick}.{note}"
    return f"No single active silence with id {args[0]}… ({len(ids)} match)."


def _ack(args: Sequence[str], sender: ChatSender, desk: Desk, now: float, tz: ZoneInfo) -> str:
    if len(args) != 1:
        return "Usage: ack <alert id> (the id at the end of the alert's message)"
    return desk.acknowledge(args[0], sender.nick or sender.staff_id, now)


def _silence(args: Sequence[str], sender: ChatSender, desk: Desk, now: float, tz: ZoneInfo) -> str:
    usage = (
        "Usage: silence <matchers> <duration> [comment], e.g. silence alertname=DiskFull 2h swap"
    )
    parsed: list[matchers.Matcher] = []
    for index, word in enumerate(args):
        try:
            seconds = parse_duration(word)
        except ValueError:
            seconds = None
        if seconds is not None:
            if not parsed:
                return f"Which alerts? Give matchers before the duration.\n{usage}"
            if seconds <= 0:
                return "The duration must be more than 0."
            if seconds > MAX_SILENCE:
                return (
                    f"A silence lasts at most {format_duration(MAX_SILENCE)} (a year); for longer, "
                    "change the rules in the config.\n" + usage
                )
            comment = " ".join(args[index + 1 :])
            author = sender.nick or sender.staff_id
            silence, note = desk.add_silence(tuple(parsed), now, now + seconds, comment, author)
            until = format_time(now + seconds, tz, "%m-%d %H:%M")
            return (
                f"Silenced {silence.describe()} until {until} ({format_duration(seconds)}), "
                f"id {silence.id}, by {author}.{note}"
            )
        try:
            parsed.append(matchers.parse(word))
        except ValueError as exc:
            return f"{word}: {exc}\n{usage}"
    return f"How long? Add a duration such as 2h.\n{usage}"


def _status(status: dict[str, Any]) -> str:
    lines = ["Queues:"]
    for name, queue in sorted(status.get("queues", {}).items()):
        age = queue.get("oldest_age_seconds")
        oldest = f", oldest {format_duration(age)}" if age else ""
        lines.append(f"  {name}: {queue.get('pending', 0)} waiting{oldest}")
    store = status.get("store", {})
    lines.append(f"Dead letters: {store.get('dead_letters', 0)}")
    lines.append(f"Active silences: {status.get('silences', 0)}")
    reload = (status.get("config") or {}).get("last_reload") or {}
    if reload:
        lines.append(f"Last reload: {reload.get('result')} at {reload.get('at')}")
    else:
        lines.append(
            f"Config {status.get('config', {}).get('hash', '?')}, not reloaded since start"
        )
    return "\n".join(lines)


def _silences(silences: list[Silence], now: float, tz: ZoneInfo) -> str:
    active = [s for s in silences if s.active(now)]
    if not active:
        return "No active silences."
    lines = []
    for s in active:
        until = format_time(s.ends_at, tz, "%m-%d %H:%M")  # (a bad stored row must not fail)
        who = f" by {s.author}" if s.author else ""
        why = f": {s.comment}" if s.comment else ""
        lines.append(f"{s.id} {s.describe()} until {until}{who}{why}")
    return "\n".join(lines)


def _chatid(args: Sequence[str], sender: ChatSender, desk: Desk, now: float, tz: ZoneInfo) -> str:
    """The id an app_robot target needs to send into this group: operators otherwise have to dig
    it out of DingTalk's API explorer."""
    if not sender.conversation:
        return "DingTalk did not say which conversation this is."
    return (
        f"This chat's open_conversation_id is {sender.conversation}\n"
        "(an app_robot target sends here with open_conversation_id set to it)."
    )


def _oncall(args: Sequence[str], sender: ChatSender, desk: Desk, now: float, tz: ZoneInfo) -> str:
    schedules = desk.oncall()
    if not schedules:
        return "No on-call schedules in the config (its oncall: section)."
    if len(args) > 1:
        return "Usage: oncall [schedule]"
    if args and args[0] not in schedules:
        return f'No schedule "{args[0]}"; schedules: {", ".join(sorted(schedules))}'
    chosen = [schedules[args[0]]] if args else list(schedules.values())
    return "\n".join(line for rotation in chosen for line in describe(rotation, now))


Run = Callable[[Sequence[str], ChatSender, Desk, float, ZoneInfo], str]


@dataclass(frozen=True)
class Command:
    run: Run
    help: str  # its line in `help`
    changes: bool = False  # only senders the input allows may use it


# A new command is one function above and one line here; `help` lists them in this order.
COMMANDS: dict[str, Command] = {
    "help": Command(_help, "help: this list"),
    "status": Command(_status_command, "status: queues, dead letters, silences, last reload"),
    "silence": Command(
        _silence,
        "silence <matchers> <duration> [comment]: e.g. silence alertname=DiskFull 2h disk swap",
        changes=True,
    ),
    "silences": Command(_silences_command, "silences: the active silences"),
    "expire": Command(_expire, "expire <id>: end a silence now", changes=True),
    "chatid": Command(_chatid, "chatid: this chat's id, for an app_robot target"),
    "ack": Command(
        _ack,
        "ack <alert id>: no more reminders until it resolves (the id is at the end of each alert)",
        changes=True,
    ),
    "oncall": Command(_oncall, "oncall [schedule]: who is on call now, until when, and who next"),
}
HELP = "I understand:\n" + "\n".join(command.help for command in COMMANDS.values())
