"""Chat commands in-process (app/commands.py) against a fake desk: the dispatch table, who may
change things, and the answers to mistakes, in English and in Chinese (the default locale),
typed by their English or their Chinese names. The daemon's end of it is in test_e2e_chat.py."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge.alerting.matchers import Matcher
from bridge.alerting.oncall import Rotation
from bridge.alerting.silences import Silence
from bridge.app.commands import CHINESE_NAMES, COMMANDS, answer, help_text
from bridge.locales import translate
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
HELP = help_text("en")
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
    ("oncall web", READER, "No schedule web; schedules: db", []),
    ("oncall db web", READER, "Usage: oncall [schedule]", []),
    ("frobnicate now", ALLOWED, "I do not know the command frobnicate.", []),
]  # fmt: skip

ADDED_ZH = ("add", ["alertname"], 7200.0, "换盘", "Oncall")
CHINESE = [
    # the same desk, the config's default locale (zh-CN), commands typed by their Chinese names
    ("", READER, "我能理解这些命令：", []),
    ("帮助", READER, "status (状态): 队列、死信、静默、最近一次重载", []),
    ("状态", READER, "ops: 3 条等待中", []),
    ("静默列表", READER, "没有生效中的静默。", []),
    ("确认 abc", READER, "抱歉 Dev，你无权在这里执行 确认", []),
    ("静默 alertname=X 2h 换盘", ALLOWED, "（2 小时），ID s1，操作人 Oncall。", [ADDED_ZH]),
    ("静默 alertname=X", ALLOWED, "静默多久？请加上时长，例如 2h。", []),
    ("解除静默 s1", ALLOWED, "静默 s1 已由 Oncall 解除。", [("expire", "s1", "Oncall")]),
    ("确认", ALLOWED, "用法：确认 <告警 ID>", []),
    ("群ID", READER, "本群的 open_conversation_id 是 cidGroup==", []),
    ("值班", READER, "当前：alice（副班：bob），始于 Mon 2026-05-25 10:00，至", []),
    ("值班 db", READER, "下一班：bob（副班：carol）", []),
    ("值班 web", READER, "没有值班表 web；现有：db", []),
    ("frobnicate", ALLOWED, "我不认识命令 frobnicate。", []),
]  # fmt: skip


@pytest.mark.parametrize(("text", "sender", "expected", "calls"), CASES)
def test_answer(text: str, sender: ChatSender, expected: str, calls: list[tuple[Any, ...]]) -> None:
    desk = FakeDesk()
    assert expected in answer(text, sender, desk, NOW, TZ, "en")
    assert desk.calls == calls


@pytest.mark.parametrize(("text", "sender", "expected", "calls"), CHINESE)
def test_answer_in_chinese(
    text: str, sender: ChatSender, expected: str, calls: list[tuple[Any, ...]]
) -> None:
    desk = FakeDesk()
    assert expected in answer(text, sender, desk, NOW, TZ)  # zh-CN: the default
    assert desk.calls == calls


def test_oncall_without_schedules() -> None:
    answer_text = answer("oncall", READER, FakeDesk(schedules={}), NOW, TZ, "en")
    assert answer_text == "No on-call schedules in the config (its oncall: section)."


def test_each_help_line_starts_with_its_command_in_table_order() -> None:
    lines = HELP.splitlines()[1:]
    assert [line.split()[0].rstrip(":") for line in lines] == list(COMMANDS)


def test_every_command_has_a_chinese_name_and_help() -> None:
    assert set(CHINESE_NAMES) == set(COMMANDS)
    assert len(set(CHINESE_NAMES.values())) == len(COMMANDS)  # no two commands share a name
    for command in COMMANDS.values():
        assert translate("zh-CN", command.help) != command.help
