"""The console's words in Chinese. As with the message catalog (bridge/locales.py), the English
text is the key and a missing key reads as English; tests/test_console_words.py holds every
`_()` of the console's pages and every `word()` call here to a translation with the same
placeholders. Kept apart from the message catalog: these are the console's words, not the chat's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.locales import Locale

ZH_CN: Mapping[str, str] = {
    # playground: the file on disk is not the one running
    "%(file)s changed since the daemon loaded it: this shows the file as it is now,"
    " which takes effect at the next reload.": "%(file)s 在服务加载后已被修改：这里显示的是文件的"
    "当前内容，下次重载后才会生效。",
    # frame
    "Console": "控制台",
    "Overview": "概览",
    "Messages": "消息",
    "Silences": "静默",
    "Playground": "模板试验场",
    "Sign out": "退出",
    "Sign in": "登录",
    "Token": "令牌",
    "Your name (shown as who acted)": "你的名字（记录为操作人）",
    "Read-only": "只读",
    "Signed in as %(name)s": "已登录：%(name)s",
    "viewer": "只读用户",
    "operator": "操作员",
    "This token is not valid.": "令牌无效。",
    "Too many failed sign-ins: wait a minute.": "登录失败次数过多，请一分钟后再试。",
    "Sign in to the dingtalk-bridge console": "登录 dingtalk-bridge 控制台",
    "Live": "实时",
    "updated %(time)s": "更新于 %(time)s",
    "Language": "语言",
    # overview
    "Targets": "发送目标",
    "Target": "目标",
    "Type": "类型",
    "Queued": "排队中",
    "Oldest": "最早",
    "Being sent": "发送中",
    "Robot window": "机器人窗口",
    "Locked out until %(time)s": "锁定至 %(time)s",
    "Dead letters": "死信",
    "Inputs": "输入",
    "Input": "输入",
    "State": "状态",
    "Files": "文件",
    "Lag": "滞后",
    "Configuration": "配置",
    "Last reload": "上次重载",
    "Problems": "问题",
    "Warnings": "警告",
    "None": "无",
    "Ready": "就绪",
    "Not ready": "未就绪",
    "Escalations": "升级",
    "Work notices awaiting results": "待确认的工作通知",
    "calls in the last minute": "最近一分钟调用次数",
    "running": "运行中",
    "stopped": "已停止",
    "listening on %(path)s": "监听 %(path)s",
    "via Stream": "通过 Stream",
    "loaded %(time)s": "加载于 %(time)s",
    # silences and acks
    "Silences and acks": "静默与确认",
    "Add a silence": "添加静默",
    "Matchers (one per line or comma separated: label=value, !=, =~, !~)": (
        "匹配条件（每行一个或用逗号分隔：label=value、!=、=~、!~）"
    ),
    "For": "持续",
    "Or until (time in the config's zone)": "或截止到（配置的时区）",
    "Comment (why)": "备注（原因）",
    "Silence": "静默",
    "Firing alerts it would silence": "将被静默的告警",
    "Type matchers to see which firing alerts they match.": (
        "输入匹配条件，查看会匹配哪些正在告警的告警。"
    ),
    "No firing alert matches.": "没有匹配的告警。",
    "%(count)s of %(firing)s firing alerts match.": "%(firing)s 条告警中有 %(count)s 条匹配。",
    "The preview lists the alerts this bridge received that the notification log says are "
    "firing; with several replicas, each knows its own (the workers of one replica share "
    "theirs).": (
        "预览列出本桥接程序收到、且通知日志显示仍在告警的告警；多副本时，每个副本只知道自己收到的告警"
        "（同一副本的多个工作进程彼此共享）。"
    ),
    "Active and pending silences": "生效中和待生效的静默",
    "Ended in the last day": "最近一天结束的静默",
    "ID": "ID",
    "Matchers": "匹配条件",
    "Starts": "开始",
    "Ends": "结束",
    "Ended": "已结束",
    "Comment": "备注",
    "By": "操作人",
    "When": "时间",
    "pending": "待生效",
    "from the config": "来自配置",
    "when the config says": "由配置决定",
    "End this silence now?": "现在结束此静默？",
    "Expire": "结束",
    "Acknowledged alerts": "已确认的告警",
    "No reminders for these until they resolve; an ack ends with its alert.": (
        "这些告警在恢复前不再提醒；告警恢复后确认随之结束。"
    ),
    "Alert id (the id its message shows; a unique prefix is enough)": (
        "告警 ID（消息中显示的 ID；唯一前缀即可）"
    ),
    "Acknowledge": "确认",
    "Alert": "告警",
    "Nothing was changed:": "未做任何更改：",
    "Silence %(id)s added: %(matchers)s.": "已添加静默 %(id)s：%(matchers)s。",
    "Silence %(id)s expired.": "静默 %(id)s 已结束。",
    "No single active silence with id %(id)s.": "没有唯一一个 ID 为 %(id)s 的生效静默。",
    "Give the alert's id.": "请填写告警 ID。",
    "The state store cannot be read now.": "状态存储暂时无法读取。",
    "matchers must be a string": "matchers 必须是字符串",
    # playground
    "Try a message": "试一条消息",
    "No input takes payloads in this configuration.": "此配置中没有可接收请求体的输入。",
    "Sample": "样例",
    "(paste one below)": "（在下方粘贴）",
    "Payload": "请求体",
    "Rule": "规则",
    "Rule (YAML)": "规则（YAML）",
    "Template (markdown or text, Jinja)": "模板（markdown 或文本，Jinja）",
    "Empty: the rule's default body": "留空：使用规则的默认正文",
    "What the bridge would do": "桥接器将如何处理",
    "Type to see the result.": "输入后即可查看结果。",
    "Send to the simulator": "发送到模拟器",
    "Send a test to this target": "向此目标发送测试",
    "Send this message to the real target now?": "现在就把这条消息发送到真实目标吗？",
    "part %(n)s of %(of)s": "第 %(n)s 部分，共 %(of)s 部分",
    "%(size)s of %(limit)s bytes": "%(size)s / %(limit)s 字节",
    "%(size)s bytes (no documented limit)": "%(size)s 字节（无公开上限）",
    "over the limit": "超出上限",
    "pings": "提醒",
    "Nothing would be sent.": "不会发送任何消息。",
    "Rendering…": "渲染中…",
    "As DingTalk would show it, now.": "钉钉现在会这样显示。",
    "Problems: nothing is rendered until they are fixed.": "存在问题：修正之前不会渲染。",
    "line %(n)s": "第 %(n)s 行",
    "Body (JSON)": "请求体（JSON）",
    "DingTalk answered": "钉钉的回复",
    "received %(time)s": "收到于 %(time)s",
    "No such input.": "没有这个输入。",
    "No simulator is configured.": "未配置模拟器。",
    "input and payload are required strings.": "input 和 payload 必须是字符串。",
    "rule must be a string.": "rule 必须是字符串。",
    "rule_yaml and template must be strings.": "rule_yaml 和 template 必须是字符串。",
    "Editing a rule or template needs the operator's token.": "编辑规则或模板需要操作员令牌。",
    "The playground is busy: try again.": "模板试验场正忙，请重试。",
    "There is no such message to send: see the problems.": "没有可发送的这条消息：请查看问题。",
    # errors
    "Not found": "未找到",
    "Forbidden": "禁止访问",
    "This console is read-only.": "此控制台为只读。",
    "This action needs the operator's token.": "此操作需要操作员令牌。",
    "The request did not come from this console's page.": "请求并非来自本控制台页面。",
    "Sign in first.": "请先登录。",
    "Back": "返回",
    "/login takes GET and POST": "/login 只接受 GET 和 POST",
    "bad Content-Length": "Content-Length 无效",
    "the body must be a JSON object": "请求体必须是 JSON 对象",
    # input states (overview)
    "connected": "已连接",
    "connecting": "连接中",
    "disconnected": "已断开",
    "starting": "启动中",
    "failed": "失败",
    # messages
    "%(bytes)s bytes": "%(bytes)s 字节",
    "%(bytes)s of %(limit)s bytes": "%(bytes)s / %(limit)s 字节",
    "%(n)s tries": "已尝试 %(n)s 次",
    "A digest of %(n)s messages": "合并了 %(n)s 条消息",
    "Accepted": "接收时间",
    "All": "全部",
    "Delete this message for good?": "永久删除这条消息？",
    "DingTalk said": "钉钉返回",
    "Done: %(what)s": "已完成：%(what)s",
    "In the outbox": "待发队列",
    "Log lines of this message": "这条消息的日志",
    "Message": "消息",
    "No longer in the outbox.": "已不在待发队列中。",
    "Nothing waits.": "没有待发的消息。",
    "Nothing was sent lately.": "最近没有发送记录。",
    "Older": "更早",
    "Outcome": "结果",
    "Part %(n)s of %(count)s": "第 %(n)s/%(count)s 部分",
    "Parts": "分段",
    "Purge": "删除",
    "Received": "已收到",
    "Refused": "被拒绝",
    "Retry all dead letters": "重发全部死信",
    "Retry now": "立即重发",
    "Search": "搜索",
    "Send every dead letter again?": "重新发送全部死信？",
    "Sent lately": "最近发送",
    "Status": "状态",
    "The exact body": "发送的原始请求体",
    "This message is no longer in the outbox.": "这条消息已不在待发队列中。",
    "No log lines of it in the bridge's memory (it keeps the newest few thousand).": (
        "桥接程序内存中没有它的日志（只保留最近几千行）。"
    ),
    "Tries": "尝试次数",
    "What it would send now": "现在发送将会是",
    "Who received it": "接收情况",
    "attempt %(n)s": "第 %(n)s 次尝试",
    "id, title, errmsg, body…": "ID、标题、错误信息、请求体…",
    "next try %(time)s": "下次尝试 %(time)s",
    "waiting": "等待发送",
    "awaiting results": "等待送达结果",
    "dead letter": "死信",
    "delivered": "已送达",
    "accepted by DingTalk": "钉钉已受理",
    "retrying": "重试中",
    "retried": "已重新排队",
    "purged": "已删除",
    # overview: work notices
    "Work notices of %(target)s": "%(target)s 的工作通知",
    "awaiting DingTalk's results": "等待钉钉返回送达结果",
    "received by %(who)s": "已送达：%(who)s",
    "refused: %(who)s": "被拒收：%(who)s",
    "Ended by": "结束人",
    "its end time": "到期自动结束",
}


def word(locale: Locale, text: str, **values: Any) -> str:
    """`text` in `locale`, with `values` put in by name."""
    out = ZH_CN.get(text, text) if locale == "zh-CN" else text
    return out % values if values else out
