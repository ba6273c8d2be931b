"""@-mentions: who a robot message pings, and how its text shows them.

DingTalk pings `@<mobile>` / `@<userid>` only for people listed in `at.atMobiles` /
`at.atUserIds` (or everyone with `at.isAtAll`), and for markdown only when the literal
`@<mobile>` is also in `markdown.text` (reference §1.5). For text the reference is unsure
whether DingTalk appends a listed mention missing from the content; we follow its safe reading
(and the simulator's): not in the text, not pinged. The "in the text" test is the simulator's
(bridge/simulator/content.py): a substring of the source, so both tell the same story.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.chatview.safe import Fields, escape

ALL_WORDS = ("所有人", "all")  # what DingTalk shows for isAtAll / what people type
# An @-word nobody listed: a mobile or userid-like word, not the middle of an e-mail address.
_UNLISTED = re.compile(r"(?<![\w.@])@([A-Za-z0-9][A-Za-z0-9_\-]*)")


@dataclass(frozen=True)
class At:
    """Who a message lists in `at`, and who of them the text really pings."""

    mobiles: tuple[str, ...] = ()
    userids: tuple[str, ...] = ()
    all: bool = False
    pinged: tuple[str, ...] = ()  # listed and written as @name in the text, in listed order

    @property
    def mentions(self) -> tuple[str, ...]:
        return (*self.pinged, "all") if self.all else self.pinged


NO_AT = At()


def _names(at: Mapping[str, Any], key: str, fields: Fields) -> tuple[str, ...]:
    value = at.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        fields.problem(f"at.{key} is not a list of strings: DingTalk ignores it")
        return ()
    return tuple(dict.fromkeys(fields.bounded(v, f"at.{key}") for v in value if v))


def read_at(body: Mapping[str, Any], source: str, msgtype: str, fields: Fields) -> At:
    """The `at` of a robot `body` whose text (markdown or plain) is `source`."""
    raw = body.get("at")
    if raw is None:
        return NO_AT
    if not isinstance(raw, Mapping):
        fields.problem("at is not an object: DingTalk ignores it")
        return NO_AT
    if msgtype not in ("text", "markdown"):
        fields.problem(f"at is ignored for {msgtype}: only text and markdown ping (reference §1.4)")
        return NO_AT
    mobiles = _names(raw, "atMobiles", fields)
    userids = _names(raw, "atUserIds", fields)
    where = "text.content" if msgtype == "text" else "markdown.text"
    pinged: list[str] = []
    for key, names in (("atMobiles", mobiles), ("atUserIds", userids)):
        for name in names:
            if f"@{name}" in source:
                pinged.append(name)
            elif msgtype == "markdown":
                fields.problem(
                    f"{name} is in at.{key} but @{name} is not in {where}: "
                    "DingTalk neither highlights nor pings it (reference §1.5)"
                )
            else:
                fields.problem(
                    f"{name} is in at.{key} but @{name} is not in {where}: not pinged here; the "
                    f"reference (§1.5) is unsure whether DingTalk appends it: write @{name}"
                )
    return At(mobiles, userids, raw.get("isAtAll") is True, tuple(pinged))


class MentionMarker:
    """Escapes a run of shown text, wrapping the @-mentions in it.

    A pinged mention gets `<span class="mention pinged">`; an @-word nobody listed is shown
    plain (as DingTalk does) and named in a problem line.
    """

    def __init__(self, at: At, fields: Fields, pings: bool = True) -> None:
        self._fields = fields
        self._pings = pings  # False for messages that cannot @ at all (notices, app robots)
        words = list(at.pinged) + (list(ALL_WORDS) if at.all else [])
        words.sort(key=len, reverse=True)  # the longest first: @1380 must not eat @13800
        self._pinged = (
            re.compile("@(?:" + "|".join(re.escape(w) for w in words) + ")") if words else None
        )

    def __call__(self, text: str) -> str:
        if self._pinged is None:
            return self._unlisted(text)
        out: list[str] = []
        start = 0
        for match in self._pinged.finditer(text):
            out.append(self._unlisted(text[start : match.start()]))
            out.append(f'<span class="mention pinged">{escape(match.group(0))}</span>')
            start = match.end()
        out.append(self._unlisted(text[start:]))
        return "".join(out)

    def _unlisted(self, text: str) -> str:
        if self._pings and "@" in text:
            for match in _UNLISTED.finditer(text):
                name = match.group(1)
                if name in ALL_WORDS:
                    self._fields.problem(
                        f"@{name} is in the text but at.isAtAll is not true: shown, not pinged"
                    )
                    continue
                field = "at.atMobiles" if name.isdigit() else "at.atUserIds"
                self._fields.problem(
                    f"@{name} is in the text but not in {field}: shown, not pinged"
                )
        return escape(text)
