"""Storm digests: many queued messages for one target merged into one. Pure.

When a target's queue holds more than its rate can carry soon, sending them one by one would take
hours (20 a minute). A digest lists each queued alert on one line (its rendered title), says how
many it holds, and is cut to the byte limit: whatever does not fit stays queued for the next one.
Mentions of the merged messages are kept (deduplicated), so the people they page are still paged.
Its words are in the config's locale (bridge/locales.py), as the bundled templates'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bridge import jsontext
from bridge.alerting.mentions import merged
from bridge.dingtalk.sizing import encode
from bridge.locales import Locale, translate
from bridge.model import Mention, Message


@dataclass(frozen=True)
class Item:
    title: str
    status: str  # "firing" | "resolved"
    mention: Mention


def _json_len(text: str) -> int:
    return len(jsontext.dumps_bytes(text)) - 2


def _merged_mention(items: Sequence[Item]) -> Mention:
    both = merged(*(item.mention for item in items))
    return Mention(both.mobiles[:20], both.userids[:20], both.all)


def _message(items: Sequence[Item], total_queued: int, locale: Locale) -> Message:
    firing = sum(1 for i in items if i.status == "firing")
    resolved = len(items) - firing
    counts = translate(locale, ", ").join(
        part
        for part in (
            translate(locale, "%(count)d firing", count=firing) if firing else "",
            translate(locale, "%(count)d resolved", count=resolved) if resolved else "",
        )
        if part
    )
    title = translate(locale, "%(count)d alerts (%(counts)s)", count=len(items), counts=counts)
    why = translate(
        locale,
        "More alerts arrived than this chat's robot may post, so they come merged"
        " (%(queued)d were waiting).",
        queued=total_queued,
    )
    lines = [f"### {title}", "", why, "", *(f"- {item.title}" for item in items)]
    return Message("markdown", title, "\n".join(lines), mention=_merged_mention(items))


def build_digest(
    items: Iterable[Item],
    total_queued: int,
    body_of: Callable[[Message], dict[str, Any]],
    limit: int,
    locale: Locale,
) -> tuple[Message, int]:
    """The digest of the longest prefix of `items` whose body (as `body_of` shapes it) fits in
    `limit` bytes, and how many items it holds (at least 1).

    `items` is taken lazily, and no further than one past what fits: a title is a template
    rendered per alert, and a storm's claim holds more rows than one digest carries."""
    walk = iter(items)
    taken = [next(walk)]
    size = len(encode(body_of(_message(taken, total_queued, locale))))
    for item in walk:
        size += _json_len(f"\n- {item.title}") + 64  # 64: room for mentions and count digits
        if size > limit:
            break
        taken.append(item)
    count = len(taken)
    while True:  # the estimate above is close; confirm with the real encoding
        message = _message(taken[:count], total_queued, locale)
        encoded = encode(body_of(message))
        # Fits, and whole: a body_of that cuts to the limit must not hide a lost last line.
        last_line = jsontext.dumps(f"- {taken[count - 1].title}")[1:-1]
        if count == 1 or (len(encoded) <= limit and last_line.encode() in encoded):
            return message, count
        count -= 1
