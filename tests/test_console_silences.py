"""The Silences page's pure parts: reading the add form (matchers as the CLI reads them, the
end, the comment) and the preview of the firing alerts typed matchers would silence."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.alerting import matchers
from bridge.app.console.silences import MAX_MATCHER_CHARS, preview, read_form
from bridge.app.firing import SeenAlert
from bridge.durations import MAX_SILENCE

NOW = 1_700_000_000.0
TZ = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("alertname=DiskFull", ["alertname=DiskFull"]),
        ("alertname=DiskFull, host=~db.*", ["alertname=DiskFull", "host=~db.*"]),
        ("alertname=DiskFull\nhost!=web1\r\n\n", ["alertname=DiskFull", "host!=web1"]),
        ('{alertname="DiskFull",job=~"a{1,3}"}', ['alertname="DiskFull"', 'job=~"a{1,3}"']),
        ('a="x, y", b="\\"q,\\""', ['a="x, y"', 'b="\\"q,\\""']),
        ('a="open\nb=c', ['a="open', "b=c"]),  # a line ends a quote left open
        (" , ,\n", []),
    ],
)
def test_matchers_split_on_lines_and_commas_outside_quotes(text: str, pieces: list[str]) -> None:
    assert matchers.split_typed(text) == pieces


def test_typed_matchers_read_as_the_cli_reads_them() -> None:
    parsed, notes, problems = matchers.parse_all_typed('alertname=Disk.*, host!="db1"')
    assert [str(m) for m in parsed] == ['alertname=~"Disk.*"', 'host!="db1"']
    assert notes == ['matching alertname=~"Disk.*" as a regular expression']
    assert problems == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "write at least one matcher"),
        ("alertname", '"alertname" is not a matcher'),
        ("1x=y", '"1x=y" is not a matcher'),
        ("job=~(", "bad regular expression"),
        ("host!=db1", "match every alert"),
        ('host=~".*"', "match every alert"),
        (",".join(["a=b"] * 101), "at most 100 matchers"),
    ],
)
def test_bad_matchers_are_named(text: str, problem: str) -> None:
    _, _, problems = matchers.parse_all_typed(text)
    assert any(problem in p for p in problems), problems


def test_a_good_form_is_read() -> None:
    asked, problems = read_form("alertname=DiskFull", "2h", "", "  swap  ", TZ, NOW)
    assert problems == []
    assert asked is not None
    assert [str(m) for m in asked.matchers] == ['alertname="DiskFull"']
    assert (asked.ends, asked.comment) == (NOW + 7200, "swap")


def test_an_end_time_wins_over_the_duration_and_reads_in_the_configs_zone() -> None:
    asked, _ = read_form("a=b", "2h", "2023-11-15T08:00", "why", TZ, NOW)
    assert asked is not None
    assert asked.ends == 1_700_006_400.0  # 08:00 in Shanghai (the config's zone) is 00:00 UTC


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (("a=b", "1h", "", ""), "comment: say why"),
        (("a=b", "1h", "", "x" * 1001), "comment: at most 1000 characters"),
        (("a=b", "soon", "", "why"), "duration: "),
        (("a=b", f"{int(MAX_SILENCE) + 60}s", "", "why"), "duration: a silence lasts at most"),
        (("a=b", "1h", "2020-01-01T00:00", "why"), "ends: the silence would end before"),
        (("a=b", "1h", "tomorrowish", "why"), "ends: "),
        (("nonsense", "1h", "", "why"), "matchers: "),
        (("a=b" * MAX_MATCHER_CHARS, "1h", "", "why"), "matchers: at most"),
    ],
)
def test_a_bad_form_says_what_is_wrong(fields: tuple[str, str, str, str], problem: str) -> None:
    asked, problems = read_form(*fields, TZ, NOW)
    assert asked is None
    assert any(p.startswith(problem) for p in problems), problems


def test_every_problem_of_a_form_is_listed_at_once() -> None:
    _, problems = read_form("nonsense", "soon", "", "", TZ, NOW)
    assert [p.split(":")[0] for p in problems] == ["matchers", "duration", "comment"]


FIRING = [
    SeenAlert("aaaa1111bbbb", {"alertname": "DiskFull", "host": "db1"}, ("disk",), "am", NOW),
    SeenAlert("cccc2222dddd", {"alertname": "DiskFull", "host": "web1"}, ("disk",), "am", NOW),
    SeenAlert("eeee3333ffff", {"alertname": "CPU", "host": "db1"}, (), "am", NOW),
]


def test_the_preview_lists_the_firing_alerts_the_matchers_match() -> None:
    status, answer = preview("alertname=DiskFull\nhost=~db.*", FIRING, 7)
    assert status == 200
    assert (answer["count"], answer["firing"], answer["known"]) == (1, 3, 7)
    assert answer["matchers"] == ['alertname="DiskFull"', 'host=~"db.*"']
    [shown] = answer["alerts"]
    assert shown["id"] == "aaaa1111"
    assert shown["labels"] == {"alertname": "DiskFull", "host": "db1"}
    assert shown["rules"] == ["disk"]


def test_the_preview_of_bad_matchers_is_a_422_naming_them() -> None:
    status, answer = preview("host=~(", FIRING, 3)
    assert status == 422
    assert answer["alerts"] == []
    assert "bad regular expression" in answer["error"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.text(max_size=20), st.text(max_size=30), st.text(max_size=50))
def test_generated_forms_never_raise(text: str, duration: str, until: str, comment: str) -> None:
    asked, problems = read_form(text, duration, until, comment, TZ, NOW)
    assert (asked is None) == bool(problems)
    if asked is not None:
        assert NOW < asked.ends <= NOW + MAX_SILENCE
    status, answer = preview(text, FIRING, 3)
    assert status in (200, 422)
    assert len(answer["alerts"]) <= len(FIRING)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["alertname", "host", "job", "1bad", ""]),
            st.sampled_from(["=", "!=", "=~", "!~", "==", ":"]),
            st.text(alphabet='ab.*()[]{},"\\ \n', max_size=12),
        ),
        max_size=5,
    ),
    st.sampled_from([", ", "\n", ","]),
)
def test_generated_matcher_lists_never_raise(
    parts: list[tuple[str, str, str]], separator: str
) -> None:
    text = separator.join(f"{name}{op}{value}" for name, op, value in parts)
    status, answer = preview(text, FIRING, 3)
    assert status in (200, 422)
    if status == 200:
        assert answer["count"] == len(answer["alerts"])
