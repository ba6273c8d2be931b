"""What `server.workers` share for the console beside their snapshots (app/siblings.py): the
request bodies the playground offers (bridge/inputs/received.py `shared`, `from_shared`,
`newest`) and the log lines a message's page shows (bridge/logs.py `LogRing.since`), so every
worker shows the same, whichever took the request or sent the message."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.app import siblings
from bridge.app.firing import FiringIndex
from bridge.app.siblings import Share, Siblings, WorkerRole
from bridge.inputs.received import Received, ReceivedBodies, from_shared, newest
from bridge.logs import LogRing


def test_shared_bodies_come_back_whole_newest_first_even_when_not_utf8() -> None:
    kept = ReceivedBodies()
    bodies = [b'{"a": 1}', "{'告警': 2}".encode(), b"\xff\xfe not utf-8", b"x" * 1000]
    for at, body in enumerate(bodies, start=100):
        kept.record("am", float(at), body)
    kept.record("grafana", 50.0, b"{}")
    shared = json.loads(json.dumps(kept.shared()))  # as a sibling reads it from the file
    assert [r.body for r in from_shared(shared, "am")] == bodies[::-1]
    assert [r.at for r in from_shared(shared, "am")] == [103.0, 102.0, 101.0, 100.0]
    assert from_shared(shared, "grafana") == [Received("grafana", 50.0, b"{}")]
    assert from_shared(shared, "webhook") == []


def test_what_is_shared_is_bounded_and_the_oldest_are_left_out() -> None:
    kept = ReceivedBodies()
    for at in range(5):
        kept.record("am", float(at), bytes([65 + at]) * 100)
    shared = kept.shared(max_bytes=250)
    assert [r.at for r in from_shared(shared, "am")] == [4.0, 3.0]


def test_newest_takes_the_newest_of_every_worker() -> None:
    mine = [Received("am", at, b"mine") for at in (9.0, 5.0, 1.0)]
    theirs = [Received("am", at, b"theirs") for at in (8.0, 7.0, 2.0)]
    assert [r.at for r in newest([mine, theirs], per_input=4)] == [9.0, 8.0, 7.0, 5.0]
    assert newest([[], []]) == []


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"am": "not a list"},
        {"am": [[1.0]]},
        {"am": [["yesterday", "e30="]]},
        {"am": [[True, "e30="]]},
        {"am": [[1.0, "not base64!"]]},
        {"am": [[1.0, 42]]},
        {"am": [None, 3, {"at": 1}]},
    ],
)
def test_a_malformed_sibling_file_offers_nothing(data: Any) -> None:
    assert from_shared(data, "am") == []


_JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=16,
)


@given(st.dictionaries(st.sampled_from(["am", "x"]), _JSON))
def test_any_sibling_file_gives_bodies_or_nothing_and_never_raises(data: dict[str, Any]) -> None:
    for got in from_shared(data, "am"):
        assert isinstance(got.body, bytes) and isinstance(got.at, float)


def _worker(
    group: Path,
    index: int,
    kept: ReceivedBodies,
    ring: LogRing | None = None,
    firing: FiringIndex | None = None,
) -> Siblings:
    role = WorkerRole(index=index, count=2, group_dir=group, parent_pid=0, socket_fd=None)
    shares: dict[str, Share] = {"bodies": kept, **({"firing": firing} if firing else {})}
    return Siblings(role, lambda: {"ready": True}, shares, ring)


def _their_bodies(worker: Siblings, input_name: str) -> list[list[Received]]:
    return [from_shared(shared, input_name) for shared in worker.others_shared("bodies")]


def test_each_worker_reads_the_bodies_its_sibling_took(tmp_path: Path) -> None:
    first, second = ReceivedBodies(), ReceivedBodies()
    zero, one = _worker(tmp_path, 0, first), _worker(tmp_path, 1, second)
    first.record("am", 1.0, b"to worker 0")
    second.record("am", 2.0, b"to worker 1")
    zero.write()
    one.write()
    assert [r.body for r in newest([first.recent("am"), *_their_bodies(zero, "am")])] == [
        b"to worker 1",
        b"to worker 0",
    ]
    assert [r.body for r in newest([second.recent("am"), *_their_bodies(one, "am")])] == [
        b"to worker 1",
        b"to worker 0",
    ]


def test_a_share_is_written_again_only_when_it_changed(tmp_path: Path) -> None:
    kept = ReceivedBodies()
    worker = _worker(tmp_path, 0, kept)
    kept.record("am", 1.0, b"one")
    worker.write()
    path = worker.role.share_path("bodies", 0)
    first = os.stat(path).st_ino
    worker.write()  # nothing new: the file stays (an atomic rewrite would be a new inode)
    assert os.stat(path).st_ino == first
    kept.record("am", 2.0, b"two")
    worker.write()
    assert os.stat(path).st_ino != first
    assert [r.body for r in from_shared(json.loads(path.read_text()), "am")] == [b"two", b"one"]


def test_a_worker_reads_its_sibling_s_log_lines_whole_even_across_lines(tmp_path: Path) -> None:
    ring = LogRing()
    zero = _worker(tmp_path, 0, ReceivedBodies())
    one = _worker(tmp_path, 1, ReceivedBodies(), ring)
    ring.add("2026-12-02 10:00:00,000 INFO queued id=abc")
    one.write()
    ring.add("2026-12-02 10:00:01,000 ERROR failed id=abc\nTraceback (most recent call last):")
    ring.add("2026-12-02 10:00:02,000 INFO other id=zzz")
    one.write()
    one.write()  # nothing new: nothing appended twice
    assert zero.others_log_lines("ID=ABC", 10) == [
        [
            "2026-12-02 10:00:00,000 INFO queued id=abc",
            "2026-12-02 10:00:01,000 ERROR failed id=abc\nTraceback (most recent call last):",
        ]
    ]
    assert zero.others_log_lines("id=abc", 1) == [
        ["2026-12-02 10:00:01,000 ERROR failed id=abc\nTraceback (most recent call last):"]
    ]


def test_a_shared_log_file_past_its_bound_becomes_the_older_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(siblings, "SHARED_LOG_BYTES", 200)
    ring = LogRing()
    one = _worker(tmp_path, 1, ReceivedBodies(), ring)
    zero = _worker(tmp_path, 0, ReceivedBodies())
    for n in range(12):
        ring.add(f"2026-12-02 10:00:{n:02d},000 INFO line {n} id=q")
        one.write()
    older, current = one.role.log_paths(1)
    assert older.exists() and older.stat().st_size <= 400
    assert not current.exists() or current.stat().st_size <= 200
    # What both files hold is read, in order; the oldest lines went with the rotation.
    [seen] = zero.others_log_lines("id=q", 100)
    assert seen == sorted(seen) and seen[-1].endswith("line 11 id=q") and len(seen) < 12


def test_a_line_cut_by_a_crash_is_skipped(tmp_path: Path) -> None:
    zero = _worker(tmp_path, 0, ReceivedBodies())
    _, current = zero.role.log_paths(1)
    current.write_text('"2026 whole id=c"\n"2026 cut id=c', "utf-8")
    assert zero.others_log_lines("id=c", 10) == [["2026 whole id=c"]]
