"""bridge/locales.py: every word the bundled templates and the digests write has its Chinese, with
the same placeholders; durations in both languages."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from jinja2 import nodes

from bridge import locales
from bridge.config.inputs.file import FILE_DEFAULT_TITLE
from bridge.config.resources import data_dir
from bridge.config.rules import DEFAULT_TITLE
from bridge.config.templating import make_environment

PLACEHOLDER = re.compile(r"%\((\w+)\)[ds]")
# The bundled templates and the presets' bodies.
BUNDLED = sorted(data_dir("templates").glob("*.j2")) + sorted(data_dir("sources").glob("*/*.j2"))


def words_of(source: str) -> set[str]:
    """The literal texts a template passes to `_()`."""
    env = make_environment([], ZoneInfo("UTC"))
    return {
        call.args[0].value
        for call in env.parse(source).find_all(nodes.Call)
        if isinstance(call.node, nodes.Name)
        and call.node.name == "_"
        and call.args
        and isinstance(call.args[0], nodes.Const)
    }


def python_words() -> set[str]:
    """The texts bridge/ passes to `translate` (the digests, a digest line's count)."""
    found: set[str] = set()
    for path in Path(locales.__file__).parent.rglob("*.py"):
        source = path.read_text("utf-8")
        for call in re.finditer(r"translate\(\s*\w+,\s*((?:\"[^\"]*\"\s*)+)", source):
            found.add("".join(re.findall(r"\"([^\"]*)\"", call.group(1))))
    return found


def test_the_bundled_templates_use_words() -> None:
    used = set().union(*(words_of(p.read_text("utf-8")) for p in BUNDLED))
    assert {"alert", "Started %(time)s (firing for %(duration)s)", "Source"} <= used


def test_status_words_have_their_chinese() -> None:
    """Templates translate the status itself (`_(status | upper)`, `_(a.status)`): no literal
    to find, so each status word is named here."""
    zh = locales.catalog("zh-CN")
    for status in ("firing", "resolved"):
        assert status in zh and status.upper() in zh


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_word_of_a_bundled_template_has_its_chinese(path: Path) -> None:
    missing = words_of(path.read_text("utf-8")) - set(locales.catalog("zh-CN"))
    assert not missing


def test_every_word_of_the_default_titles_and_digests_has_its_chinese() -> None:
    words = words_of(DEFAULT_TITLE) | words_of(FILE_DEFAULT_TITLE) | python_words()
    assert "%(count)d alerts (%(counts)s)" in words  # the digest's title was found
    assert not words - set(locales.catalog("zh-CN"))


@pytest.mark.parametrize("english", sorted(locales.catalog("zh-CN")))
def test_a_translation_keeps_every_placeholder(english: str) -> None:
    chinese = locales.catalog("zh-CN")[english]
    assert sorted(PLACEHOLDER.findall(chinese)) == sorted(PLACEHOLDER.findall(english))
    assert locales.translate("zh-CN", english, **dict.fromkeys(PLACEHOLDER.findall(english), 7))


DURATIONS = [
    (0, "0s", "0 秒"),
    (45, "45s", "45 秒"),
    (200, "3m 20s", "3 分 20 秒"),
    (3600, "1h", "1 小时"),
    (7500, "2h 5m", "2 小时 5 分"),
    (7505, "2h 5m", "2 小时 5 分"),  # two units at most
    (86400 * 3 + 3600 * 4, "3d 4h", "3 天 4 小时"),
    (86400 * 2 + 59, "2d", "2 天"),
    (-5, "0s", "0 秒"),
    (float("inf"), "forever", "永久"),
    (float("-inf"), "forever", "永久"),
    (float("nan"), "?", "?"),
]


@pytest.mark.parametrize(("seconds", "english", "chinese"), DURATIONS)
def test_durations(seconds: float, english: str, chinese: str) -> None:
    assert locales.duration("en", seconds) == english
    assert locales.duration("zh-CN", seconds) == chinese


def test_english_is_the_key_itself() -> None:
    assert locales.translate("en", "%(count)d firing", count=2) == "2 firing"
    assert locales.translate("zh-CN", "%(count)d firing", count=2) == "2 条告警中"
    assert locales.translate("zh-CN", "no such words") == "no such words"
