"""The languages messages are written in: the bundled templates' words, digests, durations.

The bundled templates (templates/*.j2) write every word through `_()`, whose English text is the
key into a catalog here; the config's `locale` picks the catalog (zh-CN by default: our users
live in DingTalk). An operator's own templates can call `_()` too, or ignore it. Values go in by
name (`_("Started %(time)s", time=...)`), so a translation may put them in another order.

A key missing from a catalog reads as its English text: a new word shows in English, never as an
error at 3 a.m. (tests/test_locales.py holds every key the bundled templates use to a
translation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

Locale = Literal["zh-CN", "en"]
LOCALES: tuple[Locale, ...] = ("zh-CN", "en")
DEFAULT_LOCALE: Locale = "zh-CN"

# Status words as the chat reads them: 告警 (alerting) and 恢复 (recovered) are what Chinese
# alerting tools and their users say.
_ZH_CN: Mapping[str, str] = {
    # status words
    "FIRING": "告警",
    "RESOLVED": "恢复",
    "firing": "告警",
    "resolved": "恢复",
    "alert": "告警",
    # counts
    "%(count)d firing": "%(count)d 条告警中",
    "%(count)d resolved": "%(count)d 条已恢复",
    "%(count)d alerts: %(list)s": "%(count)d 条：%(list)s",
    "%(count)d more not sent by Alertmanager": "另有 %(count)d 条 Alertmanager 未发送",
    "%(count)d more": "另有 %(count)d 条",
    "%(count)d more (common labels: %(labels)s)": "另有 %(count)d 条（共同标签：%(labels)s）",
    # times
    "Started %(time)s (firing for %(duration)s)": "开始于 %(time)s（已持续 %(duration)s）",
    "Resolved %(time)s (lasted %(duration)s)": "恢复于 %(time)s（共持续 %(duration)s）",
    "started %(time)s (%(duration)s ago)": "开始于 %(time)s（已持续 %(duration)s）",
    "resolved %(time)s (lasted %(duration)s)": "恢复于 %(time)s（共持续 %(duration)s）",
    "since %(time)s": "始于 %(time)s",
    "resolved %(time)s": "恢复于 %(time)s",
    "Received %(time)s": "接收于 %(time)s",
    "received %(time)s": "接收于 %(time)s",
    # links and sources
    "Source": "来源",
    "Silence": "静默",
    "source: %(url)s": "来源：%(url)s",
    # log files
    "MATCH": "匹配",
    "%(count)s matching lines within %(duration)s": "%(duration)s内匹配 %(count)s 行",
    "line cut to %(bytes)s bytes": "行已截断至 %(bytes)s 字节",
    # digests (bridge/delivery/digest.py)
    "%(count)d alerts (%(counts)s)": "%(count)d 条告警（%(counts)s）",
    "More alerts arrived than this chat's robot may post, so they come merged"
    " (%(queued)d were waiting).": "告警数量超过本群机器人的发送限额，已合并发送"
    "（共 %(queued)d 条待发）。",
    ", ": "，",
    # Grafana (templates/grafana.*.j2); link names are translated as they are shown
    "%(count)d more not sent by Grafana": "另有 %(count)d 条 Grafana 未发送",
    "Values": "数值",
    "values": "数值",
    "no value": "无数值",
    "Dashboard": "仪表盘",
    "Panel": "面板",
    "Alert rule": "告警规则",
    "Runbook": "处理手册",
    "dashboard": "仪表盘",
    "panel": "面板",
    "image": "图片",
    "alert rule": "告警规则",
    "silence": "静默",
    "runbook": "处理手册",
    # presets (examples/sources/*/message.*.j2)
    "Resource": "资源",
    "Metric": "指标",
    "Condition": "条件",
    "Current value": "当前值",
    "Level": "级别",
    "Time": "时间",
    "Host": "主机",
    "Severity": "严重性",
    "Sent to": "发送给",
    "Target": "目标",
    "Type": "类型",
    "Response time": "响应时间",
    "Branch": "分支",
    "Pipeline": "流水线",
    "Duration": "耗时",
    "Job": "作业",
    "Commit": "提交",
    "Triggered by": "触发人",
    "Failed jobs": "失败的作业",
    "Result": "结果",
    "Open the build": "查看构建",
    "Hits": "命中数",
    "Service": "服务",
    "Started": "开始",
    "Recovered": "恢复",
    # one-tap actions (bridge/alerting/actionwords.py, bridge/inputs/actionlink.py)
    "Ack": "确认",
    "Silence %(duration)s": "静默 %(duration)s",
    "%(alert)s on %(instance)s": "%(alert)s（%(instance)s）",
    "%(alert)s: %(done)s": "%(alert)s：%(done)s",
    "Silence %(alert)s for %(duration)s?": "静默 %(alert)s %(duration)s？",
    "Acknowledge %(alert)s (no more reminders until it resolves)?": "确认 %(alert)s"
    "（恢复前不再提醒）？",
    "silenced for %(duration)s by %(who)s": "已静默 %(duration)s，操作人 %(who)s",
    "acknowledged by %(who)s: no more reminders until it resolves": "已确认，操作人 %(who)s，"
    "恢复前不再提醒",
    # interactive cards' status (bridge/alerting/actionwords.py card_status)
    "Firing": "告警中",
    "Resolved": "已恢复",
    "acknowledged by %(who)s": "已确认，操作人 %(who)s",
    "This card's alert is no longer known to the bridge": "桥接服务已不认识此卡片的告警",
    "Your name (optional)": "你的名字（可选）",
    "Rule %(rule)s, alert %(id)s": "规则 %(rule)s，告警 %(id)s",
    "Done": "已完成",
    "Nothing was done": "未执行任何操作",
    "This link cannot be used": "此链接无法使用",
    "someone via link": "链接用户",
    "this link has expired": "此链接已过期",
    "this link was used before": "此链接已被使用过",
    "this link was altered, or made with another bridge's key": "此链接已被修改，"
    "或不是本服务生成的",
    "this is not an action link (it may have been cut)": "这不是操作链接（可能不完整）",
    "this action link cannot be read": "无法读取此操作链接",
    "one-tap action links are not enabled here": "此处未启用一键操作链接",
    # chat commands' answers (bridge/app/commands.py, bridge/app/desk.py)
    "I do not know the command %(name)s.": "我不认识命令 %(name)s。",
    "Sorry %(who)s, you may not %(what)s here (an admin can add your staff id to the"
    " input's allow list).": "抱歉 %(who)s，你无权在这里执行 %(what)s（管理员可以把你的员工 ID"
    "加入该输入的允许列表）。",
    "I understand:": "我能理解这些命令：",
    "this list": "本列表",
    "queues, dead letters, silences, last reload": "队列、死信、静默、最近一次重载",
    "e.g. silence alertname=DiskFull 2h disk swap": "例如 静默 alertname=DiskFull 2h 换磁盘",
    "the active silences": "生效中的静默",
    "end a silence now": "立即结束一条静默",
    "this chat's id, for an app_robot target": "本群的 ID，供 app_robot 目标使用",
    "no more reminders until it resolves (the id is at the end of each alert)": "恢复前不再提醒"
    "（ID 在每条告警的末尾）",
    "who is on call now, until when, and who next": "现在谁值班、到何时、下一班是谁",
    "Usage: expire <id> (the id from `silences`)": "用法：解除静默 <ID>（ID 见「静默列表」）",
    "Silence %(id)s expired by %(who)s.": "静默 %(id)s 已由 %(who)s 解除。",
    "No single active silence with id %(id)s… (%(count)d match).": "没有唯一一条 ID 为 %(id)s… "
    "的生效静默（匹配 %(count)d 条）。",
    "Usage: ack <alert id> (the id at the end of the alert's message)": "用法：确认 <告警 ID>"
    "（ID 在告警消息的末尾）",
    "Usage: silence <matchers> <duration> [comment], e.g. silence alertname=DiskFull 2h swap": (
        "用法：静默 <匹配条件> <时长> [备注]，例如 静默 alertname=DiskFull 2h 换盘"
    ),
    "Which alerts? Give matchers before the duration.": "哪些告警？请在时长之前写匹配条件。",
    "The duration must be more than 0.": "时长必须大于 0。",
    "A silence lasts at most %(longest)s (a year); for longer, change the rules in"
    " the config.": "静默最长 %(longest)s（一年）；更久请修改配置中的规则。",
    "Silenced %(what)s until %(until)s (%(duration)s), id %(id)s, by %(who)s.": "已静默 "
    "%(what)s 至 %(until)s（%(duration)s），ID %(id)s，操作人 %(who)s。",
    "How long? Add a duration such as 2h.": "静默多久？请加上时长，例如 2h。",
    "Queues:": "队列：",
    "%(count)d waiting": "%(count)d 条等待中",
    ", oldest %(age)s": "，最早的已等 %(age)s",
    "Dead letters: %(count)d": "死信：%(count)d",
    "Active silences: %(count)d": "生效中的静默：%(count)d",
    "Last reload: %(result)s at %(at)s": "最近一次重载：%(result)s，于 %(at)s",
    "Config %(hash)s, not reloaded since start": "配置 %(hash)s，启动后未重载",
    "No active silences.": "没有生效中的静默。",
    " by %(who)s": "，操作人 %(who)s",
    "%(id)s %(what)s until %(until)s": "%(id)s %(what)s 至 %(until)s",
    "DingTalk did not say which conversation this is.": "钉钉没有说明这是哪个会话。",
    "This chat's open_conversation_id is %(id)s": "本群的 open_conversation_id 是 %(id)s",
    "(an app_robot target sends here with open_conversation_id set to it).": "（app_robot 目标把"
    " open_conversation_id 设为它，即可发到这里。）",
    "No on-call schedules in the config (its oncall: section).": "配置中没有值班表"
    "（oncall: 部分）。",
    "Usage: oncall [schedule]": "用法：值班 [值班表]",
    "No schedule %(name)s; schedules: %(names)s": "没有值班表 %(name)s；现有：%(names)s",
    "Not in Alertmanager: %(error)s; the bridge's silence holds.": "未写入 Alertmanager："
    "%(error)s；桥接服务的静默仍然生效。",
    "Also in Alertmanager (%(id)s).": "已同步到 Alertmanager（%(id)s）。",
    "Still in Alertmanager (%(id)s): %(error)s.": "Alertmanager 中仍然生效（%(id)s）：%(error)s。",
    "Expired in Alertmanager too (%(id)s).": "Alertmanager 中也已解除（%(id)s）。",
    "There is no firing alert with id %(id)s.": "没有 ID 为 %(id)s 的告警中的告警。",
    "There are %(count)d firing alerts with id %(id)s.": "有 %(count)d 条告警中的告警 ID 以 "
    "%(id)s 开头。",
    "%(id)s was already acknowledged by %(who)s.": "%(id)s 已由 %(who)s 确认过。",
    "%(who)s acknowledged %(id)s (rule %(rule)s): no more reminders until it resolves.": (
        "%(who)s 已确认 %(id)s（规则 %(rule)s）：恢复前不再提醒。"
    ),
    # on-call schedules (bridge/alerting/oncall.py describe)
    "%(name)s (%(zone)s, turns of %(every)s):": "%(name)s（%(zone)s，每班 %(every)s）：",
    "  now: %(who)s": "  当前：%(who)s",
    " since %(time)s": "，始于 %(time)s",
    ", until %(time)s": "，至 %(time)s",
    "  next: %(who)s": "  下一班：%(who)s",
    "nobody": "无人",
    "%(who)s (secondary: %(others)s)": "%(who)s（副班：%(others)s）",
    "%(who)s (secondaries: %(others)s)": "%(who)s（副班：%(others)s）",
    # escalation steps (bridge/pipeline/escalation.py)
    "Escalation step %(step)d/%(steps)d: %(alert)s (rule %(rule)s) unacknowledged for"
    " %(duration)s.": "升级第 %(step)d/%(steps)d 步：%(alert)s（规则 %(rule)s）已 %(duration)s"
    "无人确认。",
    "Ack: @robot ack %(id)s": "确认方法：@机器人 确认 %(id)s",
    "Ack link: %(url)s": "一键确认：%(url)s",
    # CI states, as GitLab writes them
    "failed": "失败",
    "success": "成功",
    "running": "运行中",
    "pending": "等待中",
    "canceled": "已取消",
    "skipped": "已跳过",
    "created": "已创建",
    "manual": "待手动",
}

_CATALOGS: Mapping[Locale, Mapping[str, str]] = {"zh-CN": _ZH_CN, "en": {}}


def catalog(locale: Locale) -> Mapping[str, str]:
    """The translations of `locale` (English text -> its own)."""
    return _CATALOGS[locale]


def translate(locale: Locale, text: str, **values: Any) -> str:
    """`text` in `locale`, with `values` put in by name (printf style, as gettext's)."""
    words = _CATALOGS[locale].get(text, text)
    return words % values if values else words


# (unit seconds, English suffix, Chinese word)
_UNITS = ((86400, "d", "天"), (3600, "h", "小时"), (60, "m", "分"), (1, "s", "秒"))


def duration(locale: Locale, seconds: float) -> str:
    """A short human duration, its two largest units: "2h 5m" or "2 小时 5 分", "3d", "45s".
    Negative values read as 0; what no clock reaches reads "forever" (永久)."""
    if math.isnan(seconds):
        return "?"
    if not math.isfinite(seconds) or seconds >= 1e15:
        return "永久" if locale == "zh-CN" else "forever"
    rest = max(0, int(seconds))
    parts: list[tuple[int, str, str]] = []
    for size, suffix, word in _UNITS:
        amount, rest = divmod(rest, size)
        if amount or parts:
            parts.append((amount, suffix, word))
    shown = [p for p in parts[:2] if p[0]] or [(0, "s", "秒")]
    if locale == "zh-CN":
        return " ".join(f"{amount} {word}" for amount, _, word in shown)
    return " ".join(f"{amount}{suffix}" for amount, suffix, _ in shown)
