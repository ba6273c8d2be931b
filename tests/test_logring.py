"""The ring of recent log lines (bridge/logs.py's LogRing and RECENT): bounded by lines and bytes
(the oldest go), searched by a message id, and holding lines only as written: after the redactor,
in the configured format, each one line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bridge.logs import RECENT, REDACTOR, LogRing, fmt_fields, interleaved, matching, setup


def test_the_oldest_lines_go_past_the_line_bound() -> None:
    ring = LogRing(max_lines=3, max_bytes=10_000)
    for n in range(5):
        ring.add(f"line {n}")
    assert ring.lines("line") == ["line 2", "line 3", "line 4"]


def test_the_oldest_lines_go_past_the_byte_bound() -> None:
    ring = LogRing(max_lines=100, max_bytes=30)
    for n in range(5):
        ring.add(f"{n}-告警告警")  # 14 bytes each: two fit
    assert ring.lines("告警") == ["3-告警告警", "4-告警告警"]
    ring.add("x" * 100)  # larger than the whole ring: nothing else stays, nor it
    assert ring.lines("") == []


def test_a_very_long_line_is_cut_with_a_marker() -> None:
    ring = LogRing()
    ring.add("y" * (LogRing.LINE_MAX + 5))
    (line,) = ring.lines("y")
    assert line == "y" * LogRing.LINE_MAX + "…[cut: 5 more characters]"


@pytest.mark.parametrize(
    ("containing", "limit", "found"),
    [
        ("abc123", 200, ["sent id=abc123", "failed id=ABC123 errcode=1", "dead letter id=abc123"]),
        ("abc123", 2, ["failed id=ABC123 errcode=1", "dead letter id=abc123"]),  # the newest
        ("errcode", 200, ["failed id=ABC123 errcode=1"]),
        ("nothing", 200, []),
        ("abc123", 0, []),
    ],
)
def test_lines_holding_a_text_any_case_newest_kept_oldest_first(
    containing: str, limit: int, found: list[str]
) -> None:
    ring = LogRing()
    for line in ("sent id=abc123", "other id=def", "failed id=ABC123 errcode=1",
                 "dead letter id=abc123"):  # fmt: skip
        ring.add(line)
    assert ring.lines(containing, limit) == found


@pytest.fixture
def logged() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    RECENT.clear()
    yield stream, logging.getLogger("bridge.test")
    root.handlers[:], root.level = saved[0], saved[1]
    REDACTOR.set_secrets([])
    RECENT.clear()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_setup_keeps_each_line_as_written_and_without_secrets(
    logged: tuple[io.StringIO, logging.Logger], fmt: str
) -> None:
    stream, log = logged
    setup("info", stream=stream, fmt=fmt, environ={})
    REDACTOR.set_secrets(["SECvery-secret-value"])
    log.info(fmt_fields("delivered", id="m-1", note="SECvery-secret-value"))
    log.warning("m-1 posted https://oapi.dingtalk.com/robot/send?access_token=abcdef0123")
    log.debug("below the level m-1")
    written = stream.getvalue().splitlines()
    assert RECENT.lines("m-1") == written and len(written) == 2
    assert "SECvery" not in "".join(written) and "abcdef0123" not in "".join(written)


def test_a_traceback_is_one_line_in_the_ring(logged: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = logged
    setup("info", stream=stream, environ={})
    try:
        raise ValueError("token=hunter2-secret broke m-2")
    except ValueError:
        log.exception("failed m-2")
    (line,) = RECENT.lines("m-2")
    assert "Traceback" in line and "\n" not in line and "hunter2" not in line
    assert "Traceback" in stream.getvalue()  # the stream keeps its lines


def test_under_systemd_the_ring_keeps_the_time(
    logged: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = logged
    setup("info", stream=stream, environ={"JOURNAL_STREAM": "8:1234"})
    log.error("broken m-3")
    assert stream.getvalue() == "<3>ERROR bridge.test: broken m-3\n"
    (line,) = RECENT.lines("m-3")
    assert line.endswith(" ERROR bridge.test: broken m-3") and line[:2] == "20"


def test_since_gives_the_lines_added_after_a_mark_and_the_next_mark() -> None:
    ring = LogRing(max_lines=3, max_bytes=10_000)
    assert ring.since(0) == ([], 0)
    ring.add("a")
    ring.add("b")
    lines, mark = ring.since(0)
    assert (lines, mark) == (["a", "b"], 2)
    assert ring.since(mark) == ([], 2)
    for line in ("c", "d", "e"):
        ring.add(line)
    # "a" and "b" went with the line bound: what is held after the mark is given.
    assert ring.since(mark) == (["c", "d", "e"], 5)
    assert ring.since(1) == (["c", "d", "e"], 5)  # "b" is gone: from the oldest held


@pytest.mark.parametrize(
    ("groups", "limit", "expected"),
    [
        (
            [
                ["2026-12-02 10:00:00,100 INFO a: queued id=1", "2026-12-02 10:00:02,000 x"],
                ["2026-12-02 10:00:01,500 INFO b: delivered id=1"],
            ],
            10,
            [
                "2026-12-02 10:00:00,100 INFO a: queued id=1",
                "2026-12-02 10:00:01,500 INFO b: delivered id=1",
                "2026-12-02 10:00:02,000 x",
            ],
        ),
        (
            [['{"time": "2026-12-02T10:00:03.000", "msg": "late"}'],
             ['{"time": "2026-12-02T10:00:01.000", "msg": "early"}']],
            1,
            ['{"time": "2026-12-02T10:00:03.000", "msg": "late"}'],
        ),
        ([[], []], 5, []),
        ([["2026 a"]], 0, []),
    ],
)  # fmt: skip
def test_several_processes_lines_interleave_by_their_time(
    groups: list[list[str]], limit: int, expected: list[str]
) -> None:
    assert interleaved(groups, limit) == expected


def test_matching_keeps_the_last_lines_holding_the_text_in_any_case() -> None:
    lines = ["Queued ID=ab", "other", "sent id=AB", "id=ab again"]
    assert matching(lines, "id=ab", 2) == ["sent id=AB", "id=ab again"]
    assert matching(lines, "id=ab", 0) == []
