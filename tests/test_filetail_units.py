"""The file input's parts on their own: block scanning, multiline joining, events from lines,
the threshold, the reader on real files, discovery, the stored positions, and the config."""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.config.model import Config, FileInput, Multiline, Threshold
from bridge.inputs.filetail.discovery import find_by_identity, find_files, watch_roots
from bridge.inputs.filetail.multiline import Joiner, Record
from bridge.inputs.filetail.offsets import OffsetUpdate
from bridge.inputs.filetail.reader import (
    FP_BYTES,
    FileReader,
    cut,
    head_hash,
    lines_behind,
    lines_between,
    start_at_end,
)
from bridge.inputs.filetail.records import (
    MAX_LABEL_CHARS,
    ThresholdWindow,
    events_from_text,
    find_pattern,
    make_event,
)
from bridge.inputs.filetail.scan import (
    candidate_lines,
    line_at,
    required_literals,
    searcher,
)
from bridge.inputs.filetail.tailer import COPY_SETTLE, Tailer
from bridge.model import Accepted, Event, Position
from bridge.store.api import Store
from bridge.store.offsets import StoreOffsets
from bridge.store.sqlite import SqliteStore
from tests.harness import compile_yaml

NODE = "this-host"  # the node id the positions are kept under (state: {node_id})

NOW = datetime(2026, 11, 28, 14, 0, 0, tzinfo=UTC)


def file_spec(tmp_path: Path, **input_fields: Any) -> FileInput:
    """A compiled file input (through the real config compiler)."""
    import yaml

    spec = {
        "type": "file",
        "paths": [str(tmp_path / "*.log")],
        "patterns": [{"regex": r"(?P<level>ERROR|FATAL) (?P<logger>\S+) - (?P<message>.*)"}],
        **input_fields,
    }
    text = yaml.safe_dump(
        {
            "targets": {"t": {"type": "robot", "webhook": "http://x/robot/send?access_token=t"}},
            "inputs": {"log": spec},
            "rules": [{"name": "r", "targets": ["t"]}],
        }
    )
    config: Config = compile_yaml(tmp_path, text)
    compiled = config.inputs["log"]
    assert isinstance(compiled, FileInput)
    return compiled


# -- required literals -------------------------------------------------------------------------

LITERAL_CASES = [
    (r"(?P<level>ERROR|FATAL) +\[", ("ERROR", "FATAL")),
    (r"status=(?P<code>5[0-9][0-9])", ("status=5",)),  # groups are spliced into the sequence
    (r"OutOfMemoryError|oom-kill", ("OutOfMemoryError", "oom-kill")),
    (r"(abc)?timeout", ("timeout",)),  # an optional part requires nothing
    (r"x(abcd)*y", None),  # neither "x" nor "y" is long enough, (abcd)* may be absent
    (r"(?:disk){2,} full", (" full",)),  # the longer of "disk" and " full"
    (r"(?:disk){2,}", ("disk",)),
    (r"(?i)error", None),  # case-insensitive: str.find would miss "Error"
    (r"(?i:error) at line", (" at line",)),
    (r"foo|.*", None),  # one alternative requires nothing
    (r"[EF]RROR", ("RROR",)),
    (r"错误码", ("错误码",)),
    (r"a.b", None),
]


@pytest.mark.parametrize(("pattern", "expected"), LITERAL_CASES)
def test_required_literals(pattern: str, expected: tuple[str, ...] | None) -> None:
    assert required_literals(re.compile(pattern)) == expected


# Patterns whose block search could differ from a line search, and ordinary ones: whatever
# the searcher, every line the pattern matches on its own must be a candidate.
SCAN_PATTERNS = [
    r"^ERROR",
    r"ERROR$",
    r"\AERROR",
    r"ERROR\Z",
    r"(?<!x)ERROR",
    r"(?<=\s)ERROR",
    r"\bERROR\b",
    r"(?i)error",
    r"a\s+b",
    r"status=5\d\d",
    r"(?P<level>ERROR|FATAL) (?P<rest>.*)",
    r"错误",
    r"x*",
    r"(?=ER)ERROR",
]
WORDS = ["ERROR", "error", "xERROR", " ERROR", "a", "b", "a b", "status=503", "status=200", "错误"]


@pytest.mark.parametrize("pattern", SCAN_PATTERNS)
def test_block_search_never_misses_a_line(pattern: str) -> None:
    regex = re.compile(pattern)
    rng = random.Random(pattern)
    lines = [" ".join(rng.choices(WORDS, k=rng.randint(0, 4))) for _ in range(400)]
    lines += ["ERROR", "a", "b", "", "xERROR at end", "错误 only"]
    text = "".join(line + "\n" for line in lines)
    starts, position = [], 0
    for line in lines:
        starts.append(position)
        position += len(line) + 1
    expected = {s for s, line in zip(starts, lines, strict=True) if regex.search(line)}
    found = set(candidate_lines(text, [searcher(regex)]))
    assert expected <= found
    assert found <= set(starts)  # only line starts


def test_candidates_are_few_when_lines_rarely_match() -> None:
    text = "".join(f"INFO request {n} ok\n" for n in range(1000)) + "ERROR db - down\n"
    starts = candidate_lines(text, [searcher(re.compile(r"(ERROR|FATAL) \S+ - "))])
    assert [line_at(text, s) for s in starts] == ["ERROR db - down"]


def test_line_at_strips_newline_and_carriage_return() -> None:
    text = "one\r\ntwo\nthree"
    assert [line_at(text, 0), line_at(text, 5), line_at(text, 9)] == ["one", "two", "three"]


def test_cut_never_splits_a_character() -> None:
    assert cut("告警" * 10, 7) == ("告警", True)  # 3 bytes each: 6 fit, the 7th is not a char
    assert cut("short", 64) == ("short", False)
    assert cut("x" * 100, 64) == ("x" * 64, True)


# -- multiline -----------------------------------------------------------------------------------

STACK = [
    "2026-11-28 10:00:00 ERROR app - boom",
    "java.lang.IllegalStateException: bad",
    "    at com.example.A.run(A.java:10)",
    "    at com.example.B.main(B.java:5)",
    "Caused by: java.io.IOException: closed",
    "    ... 3 more",
    "2026-11-28 10:00:01 INFO app - next",
]


def joiner(max_lines: int = 500, timeout: float = 2.0, max_bytes: int = 65_536) -> Joiner:
    return Joiner(Multiline(re.compile(r"^\d{4}-\d{2}-\d{2} "), timeout, max_lines), max_bytes)


def test_a_stack_trace_becomes_one_record() -> None:
    j = joiner()
    done = [r for n, line in enumerate(STACK) if (r := j.feed(line, n * 100, False, 0.0))]
    assert len(done) == 1
    assert done[0].text == "\n".join(STACK[:6])
    assert (done[0].offset, done[0].lines, done[0].truncated) == (0, 6, False)
    assert j.resume_offset() == 600  # the open record ("next") is rebuilt after a restart
    last = j.flush()
    assert last is not None and last.text == STACK[6]
    assert j.resume_offset() is None


def test_a_record_is_flushed_after_its_timeout() -> None:
    j = joiner(timeout=2.0)
    j.feed(STACK[0], 0, False, now=10.0)
    j.feed(STACK[1], 40, False, now=11.0)
    assert not j.due(12.9)
    assert j.due(13.0)


def test_max_lines_caps_a_record_and_counts_the_rest() -> None:
    j = joiner(max_lines=3)
    j.feed(STACK[0], 0, False, 0.0)
    for n in range(10):
        j.feed(f"    at frame{n}", 100 + n, False, 0.0)
    record = j.flush()
    assert record is not None
    assert record.text.count("\n") == 2 and record.truncated
    assert record.lines == 11 and j.dropped_lines == 8


def test_lines_before_the_first_start_line_are_records_of_their_own() -> None:
    j = joiner()
    assert j.feed("orphan continuation", 0, False, 0.0) is None
    first = j.feed(STACK[0], 20, False, 0.0)
    assert first == Record("orphan continuation", 0, 1, False)


# -- events ---------------------------------------------------------------------------------------


def test_event_labels_groups_then_input_labels_then_pattern_labels(tmp_path: Path) -> None:
    spec = file_spec(
        tmp_path,
        labels={"service": "app", "severity": "from-input"},
        patterns=[
            {
                "regex": r"(?P<level>ERROR|FATAL) (?P<logger>\S+) - (?P<message>.*)",
                "labels": {"severity": "{{ 'critical' if level == 'FATAL' else 'warning' }}"},
                "annotations": {"summary": "{{ logger }}: {{ message }}"},
            }
        ],
    )
    record = Record("2026 FATAL db.pool - gone\x00", 42)
    found = find_pattern(spec, record.text)
    assert found is not None
    event = make_event(spec, "/var/log/app.log", record, *found, NOW)
    assert event.kind == "file" and event.status == "firing" and event.input == "log"
    assert dict(event.labels) == {
        "path": "/var/log/app.log",
        "level": "FATAL",
        "logger": "db.pool",
        "message": "gone\x00",
        "service": "app",
        "severity": "critical",
    }
    assert event.annotations["line"] == "2026 FATAL db.pool - gone\ufffd"
    assert event.annotations["summary"] == "db.pool: gone\x00"
    assert event.payload["offset"] == 42 and event.payload["path"] == "/var/log/app.log"
    again = make_event(spec, "/var/log/app.log", record, *found, NOW)
    assert again.fingerprint == event.fingerprint


def test_long_group_values_are_cut_in_labels_but_not_in_the_line(tmp_path: Path) -> None:
    spec = file_spec(tmp_path)
    record = Record("ERROR x - " + "y" * 5000, 0)
    found = find_pattern(spec, record.text)
    assert found is not None
    event = make_event(spec, "/p", record, *found, NOW)
    assert len(event.labels["message"]) == MAX_LABEL_CHARS
    assert event.payload["line"] == record.text


def test_a_failing_label_template_leaves_that_label_out(tmp_path: Path) -> None:
    spec = file_spec(
        tmp_path,
        patterns=[{"regex": r"ERROR (?P<n>\d+)", "labels": {"ratio": "{{ 1 // (n | int) }}"}}],
    )
    ok, bad = Record("ERROR 1", 0), Record("ERROR 0", 0)
    found_ok, found_bad = find_pattern(spec, ok.text), find_pattern(spec, bad.text)
    assert found_ok is not None and found_bad is not None
    assert make_event(spec, "/p", ok, *found_ok, NOW).labels["ratio"] == "1"
    assert "ratio" not in make_event(spec, "/p", bad, *found_bad, NOW).labels


def test_the_first_matching_pattern_wins_and_unmatched_lines_give_nothing(tmp_path: Path) -> None:
    spec = file_spec(
        tmp_path,
        patterns=[{"regex": r"FATAL (?P<what>\w+)"}, {"regex": r"(?P<level>ERROR|FATAL)"}],
    )
    text = "INFO fine\nFATAL disk\nERROR net\n"
    events = events_from_text(spec, text, "/p", NOW)
    assert [dict(e.labels) for e in events] == [
        {"path": "/p", "what": "disk"},
        {"path": "/p", "level": "ERROR"},
    ]


def test_threshold_fires_at_count_within_the_window_then_starts_over() -> None:
    window = ThresholdWindow(Threshold(count=3, within=10.0))
    assert [window.hit(t) for t in (0.0, 1.0)] == [None, None]
    assert window.hit(2.0) == 3
    assert [window.hit(t) for t in (3.0, 4.0)] == [None, None]
    assert window.hit(20.0) is None  # 3.0 and 4.0 are out of the window by now
    assert window.below == 5


# -- the reader on real files -------------------------------------------------------------------


def open_reader(spec: FileInput, path: Path, offset: int = 0) -> FileReader:
    fd = os.open(path, os.O_RDONLY)
    info = os.fstat(fd)
    searchers = [searcher(p.regex) for p in spec.patterns]
    return FileReader(spec, (info.st_dev, info.st_ino), str(path), fd, offset, searchers, 0.0)


def reader_on(tmp_path: Path, data: bytes, **input_fields: Any) -> tuple[FileReader, Path]:
    """A reader at offset 0 of a new file holding `data`."""
    log = tmp_path / "a.log"
    log.write_bytes(data)
    return open_reader(file_spec(tmp_path, **input_fields), log), log


def texts(records: list[Record]) -> list[str]:
    return [r.text for r in records]


def test_partial_line_is_held_and_offset_stays_before_it(tmp_path: Path) -> None:
    reader, log = reader_on(tmp_path, b"ERROR a - one\r\nERROR b - tw")
    assert texts(reader.read(1 << 20, 1.0)) == ["ERROR a - one"]
    assert reader.offset == 15 and reader.position().offset == 15
    with log.open("ab") as f:
        f.write(b"o\n")
    assert texts(reader.read(1 << 20, 2.0)) == ["ERROR b - two"]
    assert reader.offset == log.stat().st_size
    reader.close()


def test_long_lines_are_cut_and_reading_goes_on(tmp_path: Path) -> None:
    spec = file_spec(tmp_path, max_line_bytes=64)
    log = tmp_path / "a.log"
    # One line longer than a read chunk goes through the held-line path; one shorter through
    # the block path; both are cut to 64 bytes.
    log.write_bytes(b"ERROR big - " + b"x" * (3 << 20) + b"\nERROR mid - " + b"y" * 500 + b"\n")
    with log.open("ab") as f:
        f.write(b"ERROR small - ok\n")
    reader = open_reader(spec, log)
    records = reader.read(64 << 20, 1.0)
    assert [len(r.text.encode()) for r in records] == [64, 64, 16]
    assert [r.truncated for r in records] == [True, True, False]
    assert reader.lines_cut == 2 and len(reader.partial) == 0
    assert reader.offset == log.stat().st_size
    reader.close()


def test_truncation_and_a_rewritten_head_restart_at_zero(tmp_path: Path) -> None:
    reader, log = reader_on(tmp_path, b"ERROR a - 1\n" * 100)
    assert len(reader.read(1 << 20, 1.0)) == 100
    os.truncate(log, 0)
    with log.open("ab") as f:
        f.write(b"ERROR b - 2\n")
    assert texts(reader.read(1 << 20, 2.0)) == ["ERROR b - 2"]  # size < offset
    # Truncated and rewritten past the old offset before the next look: the head changed.
    with log.open("ab") as f:
        f.write(b"ERROR b - 3\n")
    assert texts(reader.read(1 << 20, 3.0)) == ["ERROR b - 3"]
    with log.open("r+b") as f:
        f.truncate(0)
        f.write(b"ERROR c - 4\n" * 10)
    assert texts(reader.read(1 << 20, 4.0)) == ["ERROR c - 4"] * 10
    assert reader.fp_len == min(120, FP_BYTES)
    reader.close()


def test_invalid_utf8_and_nul_are_replaced(tmp_path: Path) -> None:
    reader, log = reader_on(tmp_path, b"\x00\x00\x00ERROR bad\xff\xfe - caf\xc3\xa9 \x00\n")
    (record,) = reader.read(1 << 20, 1.0)
    found = find_pattern(reader.spec, record.text)
    assert found is not None
    event = make_event(reader.spec, str(log), record, *found, NOW)
    assert event.annotations["line"] == "\ufffd" * 3 + "ERROR bad\ufffd\ufffd - café \ufffd"
    reader.close()


def test_finish_hands_on_the_fragment_at_the_end_of_a_file(tmp_path: Path) -> None:
    reader, log = reader_on(tmp_path, b"ERROR a - whole\nERROR b - tail-without-newline")
    assert texts(reader.read(1 << 20, 1.0)) == ["ERROR a - whole"]
    assert texts(reader.finish()) == ["ERROR b - tail-without-newline"]
    assert reader.offset == log.stat().st_size
    reader.close()


def test_multiline_reader_resumes_at_the_open_record(tmp_path: Path) -> None:
    spec = file_spec(
        tmp_path,
        multiline={"start": r"^\d{4}-", "timeout": "1s"},
        patterns=[{"regex": r"ERROR"}],
    )
    log = tmp_path / "a.log"
    log.write_text("\n".join(STACK[:4]) + "\n", "utf-8")
    reader = open_reader(spec, log)
    assert reader.read(1 << 20, 1.0) == []
    assert reader.position().offset == 0  # the record is still open: a restart rebuilds it
    (record,) = reader.timed_out(now=2.5)
    assert record.lines == 4
    assert reader.position().offset == log.stat().st_size
    reader.close()


def test_read_from_end_starts_after_the_last_complete_line(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"one\ntwo\nthree-without-newline")
    fd = os.open(log, os.O_RDONLY)
    try:
        assert start_at_end(fd, log.stat().st_size) == 8
    finally:
        os.close(fd)


# -- discovery and positions --------------------------------------------------------------------


def test_find_files_follows_each_file_once_and_exclusions_win(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    for name in ("a.log", "b.log", "c.log.gz", "sub/deep/d.log"):
        (tmp_path / name).write_text("x\n")
    os.symlink(tmp_path / "a.log", tmp_path / "link.log")
    found = find_files(
        [str(tmp_path / "*.log"), str(tmp_path / "a.*"), str(tmp_path / "**" / "*.log")],
        ["*.gz", str(tmp_path / "b.log")],
    )
    names = sorted(os.path.relpath(path, tmp_path) for path, _ in found.values())
    assert names == ["a.log", "sub/deep/d.log"]  # link.log is a.log, found once


def test_watch_roots(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    roots = watch_roots(
        [
            str(tmp_path / "logs" / "*.log"),
            str(tmp_path / "logs" / "**" / "*.log"),
            str(tmp_path / "absent" / "*.log"),
        ]
    )
    assert roots == {str(tmp_path / "logs"): True}


def test_find_by_identity_finds_a_renamed_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("x\n")
    info = log.stat()
    log.rename(tmp_path / "app.log.1")
    assert find_by_identity(str(tmp_path), (info.st_dev, info.st_ino)) == str(
        tmp_path / "app.log.1"
    )
    assert find_by_identity(str(tmp_path), (info.st_dev, info.st_ino + 10**9)) is None


def test_positions_round_trip_forget_and_prune(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state")
    try:
        with store.transaction() as tx:
            assert tx.tailstate.first_run(NODE, "log", 1.0)
            assert not tx.tailstate.first_run(NODE, "log", 2.0)
            tx.tailstate.save(
                NODE,
                "log",
                {
                    (1, 10): Position("/a", 5, "ff", 5),
                    (1, 11): Position("/b", 7, "ee", 7),
                },
                now=100.0,
            )
            tx.tailstate.save(NODE, "other", {(1, 10): Position("/x", 1, "", 0)}, now=100.0)
        with store.reading() as tx:
            assert tx.tailstate.load(NODE, "log")[(1, 10)] == Position("/a", 5, "ff", 5)
        with store.transaction() as tx:
            tx.tailstate.forget(NODE, "log", [(1, 10)])
            assert tx.tailstate.prune(NODE, "log", keep=[], before=50.0) == 0
            assert tx.tailstate.prune(NODE, "log", keep=[], before=200.0) == 1
        with store.reading() as tx:
            assert tx.tailstate.load(NODE, "log") == {}
            assert set(tx.tailstate.load(NODE, "other")) == {(1, 10)}
    finally:
        store.close()


def test_store_offsets_answer_the_file_inputs_protocol(tmp_path: Path) -> None:
    """What the tailer asks of the state (bridge/inputs/filetail/offsets.py), over the store;
    `record` saves positions and forgets deleted files in the caller's transaction."""
    store = SqliteStore(tmp_path / "state")
    offsets = StoreOffsets(store, NODE)
    try:
        assert offsets.first_run("log", 1.0)
        assert not offsets.first_run("log", 2.0)
        assert offsets.load("log") == {}
        with store.transaction() as tx:
            tx.tailstate.record(
                NODE,
                "log",
                {(1, 10): Position("/a", 5, "ff", 5), (1, 11): Position("/b", 7, "", 0)},
                [],
                100.0,
            )
        with store.transaction() as tx:
            tx.tailstate.record(NODE, "log", {(1, 12): Position("/c", 9, "", 0)}, [(1, 10)], 300.0)
        assert offsets.load("log") == {
            (1, 11): Position("/b", 7, "", 0),
            (1, 12): Position("/c", 9, "", 0),
        }
        assert offsets.prune("log", keep=[], before=50.0) == 0
        assert offsets.prune("log", keep=[(1, 12)], before=400.0) == 1  # /b, not seen since 100
        assert set(offsets.load("log")) == {(1, 12)}
    finally:
        store.close()


def test_file_input_config_is_compiled(tmp_path: Path) -> None:
    spec = file_spec(
        tmp_path,
        paths=["logs/*.log", "/abs/*.log"],
        exclude=["*.gz"],
        read_from="beginning",
        poll_interval="250ms",
        rotate_wait="2s",
        close_inactive="1m",
        max_open_files=8,
        max_line_bytes=1024,
        multiline={"start": "^x", "timeout": "3s", "max_lines": 9},
        threshold={"count": 5, "within": "1m"},
    )
    assert spec.paths == (str(tmp_path.resolve() / "logs" / "*.log"), "/abs/*.log")
    assert (spec.exclude, spec.read_from) == (("*.gz",), "beginning")
    assert (spec.poll_interval, spec.rotate_wait, spec.close_inactive) == (0.25, 2.0, 60.0)
    assert (spec.max_open_files, spec.max_line_bytes) == (8, 1024)
    assert spec.multiline is not None
    assert (spec.multiline.timeout, spec.multiline.max_lines) == (3.0, 9)
    assert spec.threshold == Threshold(5, 60.0)
    assert file_spec(tmp_path).read_from == "end"


@pytest.mark.parametrize("multiline", [False, True])
def test_offsets_are_byte_offsets_whatever_the_text(tmp_path: Path, multiline: bool) -> None:
    lines = [b"ERROR a - \xe5\x91\x8a\xe8\xad\xa6", b"ERROR b - \xff\xfe bad", b"ERROR c - ok"]
    fields: dict[str, Any] = {"multiline": {"start": "^ERROR"}} if multiline else {}
    reader, _log = reader_on(tmp_path, b"\n".join(lines) + b"\nERROR d - open\n", **fields)
    records = reader.read(1 << 20, 1.0)
    starts = [sum(len(x) + 1 for x in lines[:n]) for n in range(len(lines))]
    assert [r.offset for r in records[:3]] == starts
    assert [r.text for r in records[:3]] == [
        "ERROR a - 告警",
        "ERROR b - \ufffd\ufffd bad",
        "ERROR c - ok",
    ]
    if multiline:  # the open record starts where a restart must resume
        assert reader.position().offset == starts[-1] + len(lines[-1]) + 1
    reader.close()


def test_offsets_across_a_large_non_ascii_block(tmp_path: Path) -> None:
    # Every line a candidate, in a 1 MiB block of Chinese text. (Offsets are measured piece by
    # piece; re-encoding the block from its start for each line took seconds here.)
    line = "ERROR 服务 - 数据库连接失败，正在重试\n".encode()
    reader, _log = reader_on(tmp_path, line * 20_000, multiline={"start": "^ERROR"})
    records = reader.read(64 << 20, 1.0)
    records += reader.finish()
    assert len(records) == 20_000
    assert records[-1].offset == len(line) * 19_999
    reader.close()


def test_a_rewrite_with_the_same_first_kilobyte_is_noticed(tmp_path: Path) -> None:
    banner = b"# " + b"=" * 1100 + b"\n"  # the same first 1 KiB before and after
    reader, log = reader_on(tmp_path, banner + b"ERROR old - 1\n" * 5)
    assert texts(reader.read(1 << 20, 1.0)) == ["ERROR old - 1"] * 5
    with log.open("r+b") as f:  # truncated and rewritten past the old offset between two looks
        f.truncate(0)
        f.write(banner + b"ERROR new - 2\n" * 50)
    assert texts(reader.read(1 << 20, 2.0)) == ["ERROR new - 2"] * 50
    assert reader.truncations == 1
    reader.close()


def test_a_copy_of_the_file_is_recognised_before_and_after_truncation(tmp_path: Path) -> None:
    data = b"ERROR a - line\n" * 100  # 1,500 bytes: a full 1 KiB fingerprint
    reader, log = reader_on(tmp_path, data)
    reader.read(1 << 20, 1.0)
    copy = tmp_path / "a.log.1"
    copy.write_bytes(data)
    fd = os.open(copy, os.O_RDONLY)
    head = head_hash(fd, FP_BYTES)[0]
    os.close(fd)
    assert reader.copied_up_to(head, now=1.0, within=60) == (len(data), True)  # still here
    os.truncate(log, 0)
    with log.open("ab") as f:
        f.write(b"ERROR b - new\n")
    reader.read(1 << 20, 2.0)
    assert reader.copied_up_to(head, now=30.0, within=60) == (len(data), False)  # before the cut
    # Another rotation before the first copy was found: both copies are still recognised.
    second = b"ERROR b - new\n" + b"ERROR c - more\n" * 100
    with log.open("ab") as f:
        f.write(second[14:])
    reader.read(1 << 20, 3.0)
    os.truncate(log, 0)
    with log.open("ab") as f:
        f.write(b"ERROR d - newer\n")
    reader.read(1 << 20, 4.0)
    assert reader.truncations == 2
    assert reader.copied_up_to(head, now=30.0, within=60) == (len(data), False)
    second_copy = tmp_path / "a.log.2"
    second_copy.write_bytes(second)
    fd = os.open(second_copy, os.O_RDONLY)
    second_head = head_hash(fd, FP_BYTES)[0]
    os.close(fd)
    assert reader.copied_up_to(second_head, now=30.0, within=60) == (len(second), False)
    assert reader.copied_up_to(head, now=90.0, within=60) is None  # too long ago
    assert reader.copied_up_to("0" * 16, now=30.0, within=60) is None
    reader.close()


# -- lines behind (the tail_lag_lines metric) ----------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 0, 0),  # nothing behind
        (0, 12, 2),  # "one\ntwo\nthree" up to "thre": two complete lines
        (4, 8, 1),  # "two\n"
        (8, 14, 0),  # "three" has no newline yet: not a line
        (0, 100, 2),  # past the end (the file shrank meanwhile): only what is there
    ],
)
def test_lines_between_counts_complete_lines(
    tmp_path: Path, start: int, end: int, expected: int
) -> None:
    path = tmp_path / "f.log"
    path.write_bytes(b"one\ntwo\nthree")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert lines_between(fd, start, end) == expected
    finally:
        os.close(fd)


def test_lines_between_estimates_past_its_limit_from_the_counted_part(tmp_path: Path) -> None:
    path = tmp_path / "f.log"
    path.write_bytes(b"x" * 9 + b"\n" + b"y" * 99 + b"\n" + b"z" * 9 + b"\n")  # 120 bytes
    fd = os.open(path, os.O_RDONLY)
    try:
        assert lines_between(fd, 0, 120, limit=1 << 20) == 3  # within the limit: exact
        # Only the first 10 bytes are read (one newline): 1 line per 10 bytes, 12 lines in all.
        assert lines_between(fd, 0, 120, limit=10) == 12
    finally:
        os.close(fd)


def test_lines_behind_counts_within_a_budget_and_estimates_past_it(tmp_path: Path) -> None:
    # Each file: 64 short lines (64 bytes each, 4 KiB) then 60 long ones (1 KiB each): an
    # estimate from the first 4 KiB alone is far from the 124 lines really there.
    data = b"s" * 63 + b"\n"
    content = data * 64 + (b"L" * 1023 + b"\n") * 60
    fds = []
    for n in range(3):
        path = tmp_path / f"f{n}.log"
        path.write_bytes(content)
        fds.append(os.open(path, os.O_RDONLY))
    try:
        spans: list[tuple[int | None, int, int]] = [(fd, 0, len(content)) for fd in fds]
        assert lines_behind(spans) == [124, 124, 124]  # well inside the default budgets
        # 100,000 bytes in all: the first file is counted whole (65,536 bytes); the second gets the
        # 34,464 bytes left of the budget and is estimated from them; the third only a 4 KiB
        # sample, all short lines, so its estimate is wildly high.
        got = lines_behind([*spans, (None, 0, 999)], total=100_000, each=1 << 20, sample=4096)
        assert got[0] == 124
        assert got[1] != 124 and got[1] == round(
            content[:34_464].count(b"\n") * len(content) / 34_464
        )
        assert got[2] == round(64 * len(content) / 4096)
        assert got[3] == 0  # a file closed while idle
    finally:
        for fd in fds:
            os.close(fd)


# -- the tailer on real files, stepped by hand --------------------------------------------------


@dataclass
class SteppedTailer:
    """A Tailer on a real store whose rounds a test runs itself, with a clock it moves; the
    lines of the events it committed, in order."""

    tailer: Tailer
    store: Store
    clock: list[float]
    lines: list[str]

    def discover(self) -> None:
        self.tailer._discover(self.clock[0])

    def round(self) -> None:
        self.tailer._round(self.clock[0])
        self.tailer._commit(force=True)

    def close(self) -> None:
        self.tailer._shutdown()
        self.store.close()


def stepped_tailer(
    tmp_path: Path, spec: FileInput, node: str = NODE, state: str = "state"
) -> SteppedTailer:
    """The tailer of `node`, on the SQLite state in `tmp_path`/`state`."""
    store = SqliteStore(tmp_path / state)
    lines: list[str] = []

    def submit(spec: FileInput, events: list[Event], offsets: OffsetUpdate) -> Accepted:
        with store.transaction() as tx:  # as Bridge.accept_lines: with the events' commit
            tx.tailstate.record(node, spec.name, offsets.positions, offsets.forget, offsets.seen_at)
        lines.extend(e.annotations["line"] for e in events)
        return Accepted()

    clock = [100.0]
    offsets = StoreOffsets(store, node)
    tailer = Tailer(spec, offsets, submit, FakeClock(NOW.timestamp()), monotonic=lambda: clock[0])
    tailer._startup()
    return SteppedTailer(tailer, store, clock, lines)


# -- the tailer: a copy that logrotate is still writing ------------------------------------------


def test_a_copy_still_being_written_is_read_only_past_what_was_read(tmp_path: Path) -> None:
    """copytruncate with a glob that matches the copy: when the scan finds the copy while
    logrotate is still writing it (shorter than what was read of app.log), the tailer must not
    start at the copy's end of the moment, or it reads the rest of the copy, lines it already
    read in app.log, a second time."""
    logs = tmp_path / "logs"
    logs.mkdir()
    spec = file_spec(tmp_path, paths=[str(logs / "app.log*")], read_from="beginning")
    log = logs / "app.log"
    data = b"".join(b"ERROR app - seq=%04d\n" % n for n in range(200))  # 4,000 bytes
    log.write_bytes(data)
    t = stepped_tailer(tmp_path, spec)
    t.round()
    assert len(t.lines) == 200

    copy = logs / "app.log.1"
    copy.write_bytes(data[:2000])  # logrotate has copied half of it so far
    t.clock[0] += 0.1
    t.discover()
    assert len(t.tailer.readers) == 1, "a copy shorter than what was read must wait"
    with copy.open("ab") as f:
        f.write(data[2000:])  # the copy is whole ...
    t.clock[0] += 0.1
    t.discover()
    assert len(t.tailer.readers) == 1, "app.log may still be read past the copy: wait"
    os.truncate(log, 0)  # ... and app.log truncated: the copy is known to hold what was read
    with log.open("ab") as f:
        f.write(b"ERROR app - seq=0200\n")
    t.round()  # the truncation is noticed here
    t.discover()
    t.round()
    assert len(t.tailer.readers) == 2
    assert t.lines == [f"ERROR app - seq={n:04d}" for n in range(201)]

    # A copy that stays shorter (the original was read past the moment of the copy) is opened
    # at its end once it kept its size for COPY_SETTLE seconds: nothing of it is read again.
    short = logs / "app.log.2"
    short.write_bytes(b"ERROR app - seq=0200\n" + data[: 2000 - 21])
    with log.open("ab") as f:
        f.write(data[:3000])  # app.log's head now matches the copy's; read to 3,021 bytes
    t.round()
    count = len(t.lines)
    t.discover()
    assert len(t.tailer.readers) == 2
    t.clock[0] += COPY_SETTLE + 0.1
    t.discover()
    t.round()
    assert len(t.tailer.readers) == 3
    assert len(t.lines) == count
    t.close()


def test_a_retired_file_found_again_resumes_where_it_was_read(tmp_path: Path) -> None:
    """A rotated file is read to its end and retired after rotate_wait. On a loaded host the
    scan that finds it under its new name can come after that: it must resume at its position,
    not be read again from its start."""
    logs = tmp_path / "logs"
    logs.mkdir()
    spec = file_spec(
        tmp_path, paths=[str(logs / "app.log")], read_from="beginning", rotate_wait="1s"
    )
    log = logs / "app.log"
    log.write_bytes(b"ERROR app - one\nERROR app - two\n")
    t = stepped_tailer(tmp_path, spec)
    t.round()
    log.rename(logs / "elsewhere")  # not matched by the glob for a while
    t.discover()
    t.clock[0] += 2.0
    t.round()  # read to its end and idle past rotate_wait: retired
    assert t.tailer.readers == {}
    (logs / "elsewhere").rename(log)
    with log.open("ab") as f:
        f.write(b"ERROR app - three\n")
    t.discover()
    t.round()
    assert t.lines == ["ERROR app - one", "ERROR app - two", "ERROR app - three"]
    t.close()
