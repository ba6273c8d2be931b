"""Message -> the custom group robot's JSON bodies (reference/dingtalk.md §1.4-§1.6). Pure.

Three things existing bridges get wrong, done here:
- keywords: a robot with security keywords rejects (310000) any message without one, so the bridge
  adds the first keyword when the rendered title or text lacks all of them;
- mentions: DingTalk only pings a mention whose "@mobile"/"@userid" appears in the text, so the
  bridge writes them into the text as well as into `at`;
- size: no body exceeds 20,000 bytes of UTF-8 JSON. A longer text or markdown message is split
  into numbered parts at paragraph or line boundaries, each readable alone: "(2/3) <title>" opens
  a later part, "(1/3, continued in part 2)" ends an earlier one (or the text is cut with a visible
  marker when the target prefers `oversize: truncate`); other types are cut.

`RobotChannel` (at the end) is the robot's `Channel`: these bodies, signed and posted by webhook.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import tzinfo
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bridge import jsontext
from bridge.config.model import RobotTarget
from bridge.dingtalk.channel import Body, rate_key
from bridge.dingtalk.client import DingTalkClient
from bridge.dingtalk.responses import Delivered, SendOutcome, as_error, send_outcome
from bridge.dingtalk.signing import signed_query
from bridge.dingtalk.sizing import encode, fit_text
from bridge.errors import DeliveryError
from bridge.model import Mention, Message

ROBOT_MAX_BYTES = 20_000
_HEADING = re.compile(r"^(#{1,6} )")


def _with_keyword(text: str, keywords: tuple[str, ...], markdown: bool) -> str:
    if not keywords or any(k in text for k in keywords):
        return text
    if markdown and _HEADING.match(text):  # keep the heading a heading: "### 告警 FIRING …"
        return _HEADING.sub(lambda m: m.group(1) + keywords[0] + " ", text, count=1)
    return f"{keywords[0]} {text}"


def mention_suffix(text: str, mention: Mention) -> str:
    """ "@13800000000 @user1" for the mentions whose @-text is not in `text` yet."""
    names = [*mention.mobiles, *mention.userids]
    return " ".join(f"@{n}" for n in names if f"@{n}" not in text)


def _at(mention: Mention) -> dict[str, Any]:
    return {
        "atMobiles": list(mention.mobiles),
        "atUserIds": list(mention.userids),
        "isAtAll": mention.all,
    }


def _shape(message: Message, keywords: tuple[str, ...], text: str) -> dict[str, Any]:
    """The body for `message` with `text` as its text (keyword and mentions applied)."""
    kind = message.msgtype
    markdown = kind != "text"
    title = _with_keyword(message.title, keywords, markdown=False)
    text = _with_keyword(text, keywords, markdown)
    if kind in ("text", "markdown"):
        suffix = mention_suffix(text, message.mention)
        if suffix:
            text = f"{text}{chr(10) * 2 if markdown else chr(10)}{suffix}"
    if kind == "text":
        return {"msgtype": "text", "text": {"content": text}, "at": _at(message.mention)}
    if kind == "markdown":
        return {
            "msgtype": "markdown",
            "markdown": {"title": title, "text": text},
            "at": _at(message.mention),
        }
    if kind == "link":
        return {
            "msgtype": "link",
            "link": {
                "title": title,
                "text": text,
                "messageUrl": message.url,
                "picUrl": message.pic_url,
            },
        }
    if kind == "actionCard":
        card: dict[str, Any] = {
            "title": title,
            "text": text,
            "btnOrientation": message.btn_orientation,
        }
        if message.buttons:
            card["btns"] = [{"title": b.title, "actionURL": b.url} for b in message.buttons]
        else:
            card["singleTitle"] = "查看详情"
            card["singleURL"] = message.url
        return {"msgtype": "actionCard", "actionCard": card}
    raise ValueError(f"no text body for msgtype {kind}")


def robot_body(
    message: Message, keywords: tuple[str, ...] = (), limit: int = ROBOT_MAX_BYTES
) -> dict[str, Any]:
    """One body of at most `limit` bytes: the text is cut with a marker if it must be."""
    if message.msgtype == "feedCard":
        return _feed_card(message, keywords, limit)
    body, _ = fit_text(lambda text: _shape(message, keywords, text), message.text, limit)
    return body


def robot_bodies(
    message: Message,
    keywords: tuple[str, ...] = (),
    limit: int = ROBOT_MAX_BYTES,
    split: bool = True,
) -> list[dict[str, Any]]:
    """The bodies to send for `message`, in order: one, or numbered parts of a long text."""
    if message.msgtype == "feedCard":
        return [_feed_card(message, keywords, limit)]
    whole = _shape(message, keywords, message.text)
    if len(encode(whole)) <= limit:
        return [whole]
    if not split or message.msgtype not in ("text", "markdown"):
        return [robot_body(message, keywords, limit)]
    return _split(message, keywords, limit)


def _json_len(text: str) -> int:
    return len(jsontext.dumps_bytes(text)) - 2


def _split(message: Message, keywords: tuple[str, ...], limit: int) -> list[dict[str, Any]]:
    """Numbered parts, each readable on its own: a part after the first opens with its number
    and the message's title, a part before the last ends saying more follows, and cuts fall
    between paragraphs (blank lines) where one is near, else between lines."""
    markdown = message.msgtype == "markdown"
    gap = "\n\n" if markdown else "\n"
    # Room for a part's text: the limit less the body around it, measured with the widest
    # header, trailer and part label, and the mentions (which only the first part carries).
    probe = replace(message, title=f"{message.title} (99/99)")
    frame = _header(message.title, 99, 99, gap) + _trailer(99, 99, gap)
    budget = limit - len(encode(_shape(probe, keywords, frame))) - 16
    chunks = _chunks(message.text, budget)
    total = len(chunks)
    bodies = []
    for index, chunk in enumerate(chunks, start=1):
        part = replace(
            message,
            title=f"{message.title} ({index}/{total})",
            mention=message.mention if index == 1 else Mention(),  # page people once
        )
        text = chunk
        if index > 1:
            text = _header(message.title, index, total, gap) + text
        if index < total:
            text += _trailer(index, total, gap)

        def shape(t: str, part: Message = part) -> dict[str, Any]:
            return _shape(part, keywords, t)

        body, _ = fit_text(shape, text, limit)
        bodies.append(body)
    return bodies


def _header(title: str, index: int, total: int, gap: str) -> str:
    return f"({index}/{total}) {title}{gap}"


def _trailer(index: int, total: int, gap: str) -> str:
    return f"{gap}({index}/{total}, continued in part {index + 1})"


def _chunks(text: str, budget: int) -> list[str]:
    """`text` cut into pieces of at most `budget` JSON-escaped bytes, preferring a blank line
    in the second half of a piece, then a line end, then a space, then any character."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    blank_at = -1  # index in `current` of the last blank line, and the size before it
    blank_size = 0
    for line in text.split("\n"):
        cost = _json_len(line) + 2  # the newline joining it
        if current and size + cost > budget:
            if blank_at > 0 and blank_size * 2 >= budget:
                head, current = current[:blank_at], current[blank_at + 1 :]
                size = sum(_json_len(x) + 2 for x in current)
            else:
                head, current, size = current, [], 0
            chunks.append("\n".join(head).strip("\n"))
            blank_at = -1
        while cost > budget:  # one line longer than a whole part: cut it
            head_text, line = _cut(line, budget - 2)
            if current:
                chunks.append("\n".join(current).strip("\n"))
                current, size = [], 0
            chunks.append(head_text)
            cost = _json_len(line) + 2
            blank_at = -1
        if not line.strip() and current:
            blank_at, blank_size = len(current), size
        current.append(line)
        size += cost
    if current:
        chunks.append("\n".join(current).strip("\n"))
    return [c for c in chunks if c] or [""]


def _cut(line: str, room: int) -> tuple[str, str]:
    """Split `line` so the head's JSON-escaped UTF-8 size is at most `room` (at least 1 char),
    at the last space of the head's second half when there is one."""
    lo, hi = 1, len(line)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _json_len(line[:mid]) <= room:
            lo = mid
        else:
            hi = mid - 1
    space = line.rfind(" ", lo // 2, lo)
    if space > 0:
        lo = space + 1
    return line[:lo], line[lo:]


def _feed_card(message: Message, keywords: tuple[str, ...], limit: int) -> dict[str, Any]:
    links = [
        {"title": link.title, "messageURL": link.url, "picURL": link.pic_url}
        for link in message.links
    ]
    if keywords and links and not any(k in link["title"] for link in links for k in keywords):
        links[0]["title"] = _with_keyword(links[0]["title"], keywords, markdown=False)
    body = {"msgtype": "feedCard", "feedCard": {"links": links}}
    while len(links) > 1 and len(encode(body)) > limit:
        links.pop()  # a feed card that is too long loses its last entries, never all of them
    return body


def with_mention_line(
    message: Message, keywords: tuple[str, ...], split: bool = True
) -> list[dict[str, Any]]:
    """A target's `mention_line: true`: the markdown without its mentions, then one line of
    text that carries them (`↑ <title> @138… @u2`). Some clients do not ping from a markdown
    message even with the @-text in it (reference §1.5, §7); every client pings from text.
    The line is the message's last part: paced like any message, resumed after a restart."""
    markdown = robot_bodies(replace(message, mention=Mention()), keywords, split=split)
    ats = " ".join(f"@{who}" for who in (*message.mention.mobiles, *message.mention.userids))
    line = replace(
        message,
        msgtype="text",
        text=" ".join(part for part in (f"↑ {message.title}", ats) if part),
        buttons=(),
    )
    return [*markdown, _shape(line, keywords, line.text)]


def robot_rate_key(webhook: str) -> str:
    """DingTalk counts a robot's calls by its access token (§1.7), whatever the keywords,
    mentions or secret of the target using it; another host (a simulator) is another robot."""
    url = urlsplit(webhook)
    tokens = parse_qs(url.query).get("access_token", [])
    return rate_key("robot", f"{url.scheme}://{url.netloc}{url.path}", ",".join(tokens))


class RobotChannel:
    """A custom group robot's webhook (reference/dingtalk.md §1)."""

    digest_limit = ROBOT_MAX_BYTES

    def __init__(self, target: RobotTarget, client: DingTalkClient | None = None) -> None:
        """`client`: None for a channel that only builds bodies (the `render` preview)."""
        self.target = target
        self.client = client
        self.name = target.name
        self.policy = target.policy
        self.timeout = target.timeout
        self.rate_key = robot_rate_key(target.webhook)

    def bodies(
        self, message: Message, ids: Sequence[str], accepted_at: float, tz: tzinfo
    ) -> list[Body]:
        if self.target.mention_line and message.msgtype == "markdown" and message.mention:
            return with_mention_line(message, self.target.keywords, self.policy.split)
        return robot_bodies(message, self.target.keywords, split=self.policy.split)

    def digest_body(self, message: Message) -> Body:
        return robot_bodies(message, self.target.keywords, limit=sys.maxsize)[0]

    def post(self, body: Body) -> SendOutcome:
        if self.client is None:
            raise RuntimeError(f"target {self.name}: a channel made without a client cannot post")
        url = self.target.webhook
        if self.target.secret:
            # A fresh signature per request: DingTalk rejects timestamps over an hour old.
            url += ("&" if "?" in url else "?") + signed_query(
                int(self.client.clock.time() * 1000), self.target.secret
            )
        try:
            outcome = self.client.call("POST", url, self.timeout, data=encode(body))
            if not outcome.ok:
                raise as_error(outcome, "robot")
        except DeliveryError as exc:
            return send_outcome(exc, self.policy)
        return Delivered()
