"""DingTalk's markdown subset, rendered with markdown-it-py.

The documented subset (reference §7; the official message-type page as quoted by
eryajf/chatgpt-dingtalk#78): headings `#`..`######`, `>` quotes, `**bold**`, `*italic*`,
`[links](url)`, `![images](url)`, `-` and `1.` lists, and line breaks (a blank line, or two spaces
before the newline). Outside it, we show what the clients are reported to show, and say so in a
problem line:
- tables: the desktop client draws them, phones show the raw pipes
  (soimy/openclaw-channel-dingtalk#533; AstrBotDevs/AstrBot#4746): drawn as a table here;
- code blocks: "no code blocks" (reference §7); the desktop shows them
  (eryajf/chatgpt-dingtalk#209): drawn as preformatted text;
- raw HTML: not part of the subset: shown escaped, as text (markdown-it's `html` option off);
- a single newline "often does not break the line" (reference §7): joined, as CommonMark does.
`---` rules and `inline code` are not in the documented list either, but the bundled templates
use them and DingTalk draws them, so they are drawn without a problem line.

Tokens are turned into HTML here (not by markdown-it's renderer) from an allow-list: a token
type we do not know is shown as its escaped text, never as markup. Links open only for
http/https/dingtalk: (markdown-it's validateLink); others stay as written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

from bridge.chatview.mentions import MentionMarker
from bridge.chatview.safe import Fields, escape, image_url, link_url

# Block tokens drawn as the tag markdown-it names (token.tag); anything else is text.
_BLOCK_TAGS = frozenset(
    ("p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "li")
) | frozenset(("table", "thead", "tbody", "tr", "th", "td"))
_INLINE_TAGS = {"strong_open": "<strong>", "strong_close": "</strong>"} | {
    "em_open": "<em>",
    "em_close": "</em>",
}
_ALIGN = {"text-align:left": "left", "text-align:center": "center", "text-align:right": "right"}
MAX_NESTING = 20  # markdown-it's own guard against deeply nested quotes and lists


def _parser(rejected: list[str]) -> MarkdownIt:
    """A parser for one message: CommonMark plus tables, raw HTML off, links checked.

    One per call (0.2 ms): `rejected` collects the URLs validateLink refused, and nothing is
    shared between the simulator's threads.
    """
    md = MarkdownIt("commonmark", {"html": False, "maxNesting": MAX_NESTING}).enable("table")

    def validate(url: str) -> bool:
        if link_url(url) is None:
            rejected.append(url)
            return False
        return True

    md.validateLink = validate  # type: ignore[method-assign]
    return md


class _Renderer:
    def __init__(self, fields: Fields, marker: MentionMarker, where: str) -> None:
        self.fields = fields
        self.marker = marker
        self.where = where
        self.softbreaks = 0

    def blocks(self, tokens: Sequence[Token]) -> str:
        out: list[str] = []
        for token in tokens:
            kind = token.type
            if kind == "inline":
                out.append(self.inline(token.children or ()))
            elif kind in ("fence", "code_block"):
                self.fields.problem(
                    f"{self.where} has a code block: not in DingTalk's markdown subset "
                    "(reference §7); the desktop client shows it, phones may not"
                )
                out.append(f'<pre class="dt-code">{escape(token.content)}</pre>')
            elif kind == "hr":
                out.append("<hr>")
            elif kind.startswith("table"):
                if kind == "table_open":
                    self.fields.problem(
                        f"{self.where} has a table: not in DingTalk's markdown subset (reference "
                        "§7); the desktop client draws it, phones show the raw | lines"
                    )
                out.append(self.tag(token))
            elif token.hidden:  # the <p> of a tight list item
                continue
            elif token.nesting != 0 and token.tag in _BLOCK_TAGS:
                out.append(self.tag(token))
            else:
                out.append(escape(token.content))
        return "".join(out)

    def tag(self, token: Token) -> str:
        if token.nesting < 0:
            return f"</{token.tag}>"
        attrs = ""
        start = token.attrGet("start")
        if token.tag == "ol" and isinstance(start, int | str) and str(start).isdigit():
            attrs = f' start="{int(start)}"'
        align = _ALIGN.get(str(token.attrGet("style") or ""))
        if align:
            attrs = f' class="dt-al-{align}"'
        return f"<{token.tag}{attrs}>"

    def inline(self, children: Sequence[Token]) -> str:
        out: list[str] = []
        closers: list[str] = []  # per open link: "</a>", or "" for one shown as text
        for child in children:
            kind = child.type
            if kind == "text":
                out.append(self.marker(child.content))
            elif kind in _INLINE_TAGS:
                out.append(_INLINE_TAGS[kind])
            elif kind == "softbreak":
                self.softbreaks += 1
                out.append("\n")
            elif kind == "hardbreak":
                out.append("<br>")
            elif kind == "code_inline":
                out.append(f"<code>{escape(child.content)}</code>")
            elif kind == "link_open":
                href = link_url(str(child.attrGet("href") or ""))
                if href:
                    out.append(
                        f'<a href="{escape(href)}" target="_blank" rel="noopener noreferrer">'
                    )
                closers.append("</a>" if href else "")
            elif kind == "link_close":
                out.append(closers.pop() if closers else "")
            elif kind == "image":
                out.append(self.image(child))
            else:
                out.append(escape(child.content))
        return "".join(out)

    def image(self, token: Token) -> str:
        alt = "".join(c.content for c in token.children or ()) or token.content
        src = image_url(str(token.attrGet("src") or ""))
        if src is None:
            self.fields.problem(
                f"{self.where} has an image that is not a public http(s) URL: DingTalk shows none"
            )
            return f'<span class="dt-noimg">[{escape(alt or "image")}]</span>'
        return (
            f'<img src="{escape(src)}" alt="{escape(alt)}" loading="lazy" '
            'referrerpolicy="no-referrer">'
        )


def render(text: str, fields: Fields, marker: MentionMarker, where: str) -> str:
    """`text` (markdown) as the HTML DingTalk draws, problems added to `fields`."""
    rejected: list[str] = []
    tokens = _parser(rejected).parse(text)
    renderer = _Renderer(fields, marker, where)
    html = renderer.blocks(tokens)
    for url in dict.fromkeys(rejected):
        fields.problem(
            f"{where} links to {url[:200]!r}: not http(s) or dingtalk:, so shown as text"
        )
    if "<" in text and _HTML_TAG.search(text):
        fields.problem(
            f"{where} has HTML tags: DingTalk's markdown has none; shown as text here (the "
            "desktop client may draw them, phones may show nothing: eryajf/chatgpt-dingtalk#213)"
        )
    if renderer.softbreaks:
        fields.problem(
            f"{where} has {renderer.softbreaks} single line break(s): DingTalk often joins "
            "such lines (reference §7); use a blank line or two spaces before the newline"
        )
    return html


_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?>")
