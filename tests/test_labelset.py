"""Label sets and times as typed on a command line (`route --labels`, `--at`): amtool's syntax,
tables of what parses and what is refused with which words, and generated input (never anything
but a ValueError; what format_label_set writes reads back the same)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.alerting.labelset import format_label_set, parse_label_set
from bridge.durations import parse_time

GOOD = [
    ("", {}),
    ("alertname=DiskFull", {"alertname": "DiskFull"}),
    ("alertname=X,severity=critical", {"alertname": "X", "severity": "critical"}),
    (' a = b , c = "d,e" ', {"a": "b", "c": "d,e"}),
    ('{alertname="X", severity="critical",}', {"alertname": "X", "severity": "critical"}),
    ('msg="say \\"hi\\" \\\\ \\n"', {"msg": 'say "hi" \\ \n'}),
    ("url=http://x/?a=b", {"url": "http://x/?a=b"}),  # an = inside a value is the value's
    ("empty=,b=1", {"empty": "", "b": "1"}),
    ('lead=" x"', {"lead": " x"}),
    ("_x1=中文", {"_x1": "中文"}),
]


@pytest.mark.parametrize(("text", "labels"), GOOD)
def test_label_sets_that_parse(text: str, labels: dict[str, str]) -> None:
    parsed = parse_label_set(text)
    assert parsed == labels
    assert list(parsed) == list(labels)  # in the order given


BAD = [
    ("severity", 'label "severity" has no value: write severity=value'),
    ("=x", "expected a label name"),
    ("9a=b", "expected a label name"),
    ("a=b,a=c", 'label "a" is given twice'),
    ('a="b', 'the value of "a" opens a quote that never closes'),
    ('a="b"c', 'after the value of "a": expected ","'),
    ('a=b"c', 'the value of "a" has a " inside: quote the whole value'),
    ('a="\\q"', "unknown escape \\q"),
    ('a="x\\', "unknown escape a lone \\ at the end"),
    ("a!=b", '"a!=...": labels take "=" only'),
    ("a=~b", 'quote a value that starts with ~ (a="~...")'),
    ("a!~b", 'labels take "=" only'),
    ("{a=b", "must close with }"),
    ("a=b,,c=d", "expected a label name"),
]


@pytest.mark.parametrize(("text", "said"), BAD)
def test_label_sets_that_are_refused_say_why(text: str, said: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_label_set(text)
    assert said in str(raised.value)


@given(st.text(max_size=200))
def test_any_text_parses_or_is_refused_with_a_value_error(text: str) -> None:
    try:
        labels = parse_label_set(text)
    except ValueError as exc:
        assert str(exc)
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())


NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)


@given(st.dictionaries(NAMES, st.text(max_size=30), max_size=6))
def test_what_is_written_reads_back(labels: dict[str, str]) -> None:
    assert parse_label_set(format_label_set(labels)) == labels


NOW = 1_796_126_400.0  # 2026-12-01T12:00:00Z
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("text", "stamp"),
    [
        ("now", NOW),
        ("+2h", NOW + 7200),
        ("-30m", NOW - 1800),
        ("2026-12-01T12:00:00Z", NOW),
        ("2026-12-01T20:00:00+08:00", NOW),
        ("2026-12-01 20:00", NOW),  # no offset: the configured zone
    ],
)
def test_times_as_operators_write_them(text: str, stamp: float) -> None:
    assert parse_time(text, SHANGHAI, NOW) == stamp


@pytest.mark.parametrize("text", ["yesterday", "+2", "", "2026-13-01", "+-1h"])
def test_times_that_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text, SHANGHAI, NOW)


@given(st.text(max_size=60))
def test_any_time_text_is_a_time_or_a_value_error(text: str) -> None:
    try:
        stamp = parse_time(text, SHANGHAI, NOW)
    except ValueError as exc:
        assert str(exc)
        return
    assert isinstance(stamp, float)
