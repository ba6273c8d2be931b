"""What HTML bridge.chatview may produce: an allow-list of tags and attributes, checked by
parsing the output with html.parser (a browser-like tokenizer, not a regex)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

TAGS = frozenset(
    [
        "div",
        "span",
        "p",
        "a",
        "img",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "strong",
        "em",
        "ul",
        "ol",
        "li",
        "br",
        "hr",
        "code",
        "pre",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    ]
)
ATTRIBUTES = frozenset(
    [
        "class",
        "href",
        "src",
        "alt",
        "rel",
        "target",
        "loading",
        "referrerpolicy",
        "start",
        "style",
        "aria-hidden",
    ]
)
LINK = re.compile(r"^(https?|dingtalk):", re.IGNORECASE)
IMAGE = re.compile(r"^https?:", re.IGNORECASE)
STYLE = re.compile(r"^background:#[0-9a-f]{6}$")


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.bad: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TAGS:
            self.bad.append(f"tag <{tag}>")
        for name, value in attrs:
            value = value or ""
            if name not in ATTRIBUTES or name.startswith("on"):
                self.bad.append(f"attribute {name} on <{tag}>")
            elif name == "href" and (tag != "a" or not LINK.match(value)):
                self.bad.append(f"href {value!r}")
            elif name == "src" and (tag != "img" or not IMAGE.match(value)):
                self.bad.append(f"src {value!r}")
            elif name == "style" and not STYLE.match(value):
                self.bad.append(f"style {value!r}")
            elif name == "target" and value != "_blank":
                self.bad.append(f"target {value!r}")
        if tag == "a" and ("rel", "noopener noreferrer") not in attrs:
            self.bad.append("a link without rel=noopener noreferrer")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_comment(self, data: str) -> None:
        self.bad.append("a comment")

    def handle_decl(self, decl: str) -> None:
        self.bad.append("a declaration")

    def handle_pi(self, data: str) -> None:
        self.bad.append("a processing instruction")


def assert_safe(fragment: str) -> None:
    """`fragment` has only allowed tags/attributes, only http(s)/dingtalk links, no script."""
    assert "<script" not in fragment.lower()
    checker = _Checker()
    checker.feed(fragment)
    checker.close()
    assert not checker.bad, (checker.bad, fragment[:2000])
