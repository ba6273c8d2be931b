"""Chat commands in-process (app/commands.py) against a fake desk: the dispatch table, who may
change things, and the answers to mistakes. The daemon's end of it is in test_e2e_chat.py."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge.alerting.matchers import Matcher
from bridge.alerting.oncall import Rotation
from bridge.alerting.silences import Silence
from bridge.app.commands import COMMANDS, HELP, answer
from bridge.model import ChatSender

NOW = 1_780_000_000.0
TZ = ZoneInfo("Asia/Shanghai")
ALLOWED = ChatSender("oncall-1", "Oncall", allowed=True)
READER = ChatSender("dev-7", "Dev", allowed=False, conversation="cidGroup==")


# NOW is Friday 2026-05-29 in Shanghai: before the first handover; counted backwards, the turn
# three weeks before it (-3), alice's
DB = Rotation("db", ("alice", "bob", "carol"), 7 * 86400.0, datetime(2026, 6, 15, 10), TZ, 1)


class FakeDesk:
    def __init__(self, schedules: Mapping[str, Rotation] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.schedules = {"db": DB} if schedules is None else schedules

    def oncall(self) -> Mapping[str, Rotation]:
        return self.schedules

    def status(self) -> dict[str, Any]:
        return {"queues": {"ops": {"pending": 3}}, "store": {"dead_letters": 1}, "silences": 2}

    def silences(self, now: float) -> list[Silence]:
        return []

    def add_silence(
        self, parsed: tuple[Matcher, ...], starts: float, ends: float, comment: str, author: str
    ) -> tuple[Silence, str]:
        self.calls.append(("add", [m.name for m in parsed], ends - starts, comment, author))
        return Silence("s1", parsed, starts, ends, comment, author), ""

    def acknowledge(self, short_id: str, by: str, now: float) -> str:
        self.calls.append(("ack", short_id, by))
        return f"acked {short_id}"

    def expire_silence(self, id_prefix: str, now: float, by: str = "") -> tuple[list[str], str]:
        self.calls.append(("expire", id_prefix, by))
        return [id_prefix], ""


ADDED = ("add", ["alertname"], 7200.0, "disk swap", "Oncall")
CASES = [
    # text, sender, what the answer holds, what the desk was asked
    ("", ALLOWED, HELP, []),
    ("help", READER, HELP, []),
    ("/HELP", READER, HELP, []),
    ("status", READER, "ops: 3 waiting", []),
    ("silences", READER, "No active silences.", []),
    ("silence alertname=X 2h disk swap", READER, "Sorry Dev, you may not silence here", []),
    ("expire s1", READER, "Sorry Dev, you may not expire here", []),
    ("ack abc", READER, "Sorry Dev, you may not ack here", []),
    ("silence alertname=X 2h disk swap", ALLOWED, "id s1, by Oncall", [ADDED]),
    ("silence 2h", ALLOWED, "Which alerts?", []),
    ("silence alertname=X", ALLOWED, "How long?", []),
    ("expire", ALLOWED, "Usage: expire <id>", []),
    ("expire s1", ALLOWED, "Silence s1 expired by Oncall.", [("expire", "s1", "Oncall")]),
    ("ack", ALLOWED, "Usage: ack <alert id>", []),
    ("ack abc", ALLOWED, "acked abc", [("ack", "abc", "Oncall")]),
    ("chatid", READER, "This chat's open_conversation_id is cidGroup==", []),
    ("chatid", ALLOWED, "DingTalk did not say which conversation this is.", []),
    ("oncall", READER, "now: alice (secondary: bob) since Mon 2026-05-25 10:00,", []),
    ("oncall db", READER, "next: bob (secondary: carol)", []),
    ("oncall web", READER, 'No schedule "web"; schedules: db', []),
    ("oncall db web", READER, "Usage: oncall [schedule]", []),
    ("frobnicate now", ALLOWED, 'I do not know "frobnicate"', []),
]  # fmt: skip


@pytest.mark.parametrize(("text", "sender", "expected", "calls"), CASES)
def test_answer(text: str, sender: ChatSender, expected: str, calls: list[tuple[Any, ...]]) -> None:
    desk = FakeDesk()
    assert expected in answer(text, sender, desk, NOW, TZ)
    assert desk.calls == calls


def test_oncall_without_schedules() -> None:
    answer_text = answer("oncall", READER, FakeDesk(schedules={}), NOW, TZ)
    assert answer_text == "No on-call schedules in the config (its oncall: section)."


def test_each_help_line_starts_with_its_command_in_table_order() -> None:
    lines = HELP.splitlines()[1:]
    assert [line.split()[0].rstrip(":") for line in lines] == list(COMMANDS)
