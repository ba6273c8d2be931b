"""Every word the console shows has its Chinese (bridge/app/console/words.py), with the same
placeholders: the `_()` calls of its pages, the refusals its code raises, and what it passes to
`word()`."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
from jinja2 import nodes

from bridge.app.console import words
from bridge.app.console.views import TEMPLATES

CONSOLE = Path(words.__file__).parent
PLACEHOLDER = re.compile(r"%\((\w+)\)[ds]")
# Refused(403, "..."), word(locale, "..."), Refused(...) split over lines: their English keys.
_PYTHON_KEYS = re.compile(r"(?:Refused\(\s*\d+,|word\(\s*[\w.]+,)\s*((?:\"[^\"]*\"\s*)+)")


def template_keys() -> set[str]:
    env = jinja2.Environment()
    found: set[str] = set()
    for path in sorted(TEMPLATES.glob("*.html")):
        for call in env.parse(path.read_text("utf-8")).find_all(nodes.Call):
            named = isinstance(call.node, nodes.Name) and call.node.name == "_"
            if named and call.args and isinstance(call.args[0], nodes.Const):
                found.add(call.args[0].value)
    return found


def python_keys() -> set[str]:
    found: set[str] = set()
    for path in sorted(CONSOLE.rglob("*.py")):
        for match in _PYTHON_KEYS.finditer(path.read_text("utf-8")):
            found.add("".join(re.findall(r"\"([^\"]*)\"", match.group(1))))
    return found


def test_the_pages_and_the_code_use_words() -> None:
    assert {"Overview", "Sign in", "Targets"} <= template_keys()
    assert {"Sign in first.", "This token is not valid."} <= python_keys()


def test_every_word_has_its_chinese_with_the_same_placeholders() -> None:
    missing = sorted((template_keys() | python_keys()) - set(words.ZH_CN))
    assert not missing, missing
    for english, chinese in words.ZH_CN.items():
        assert sorted(PLACEHOLDER.findall(english)) == sorted(PLACEHOLDER.findall(chinese)), english


def test_english_is_the_key_and_chinese_is_looked_up() -> None:
    assert words.word("en", "Overview") == "Overview"
    assert words.word("zh-CN", "Overview") == "概览"
    assert words.word("zh-CN", "updated %(time)s", time="09:00") == "更新于 09:00"
    assert words.word("zh-CN", "a word nobody translated") == "a word nobody translated"
