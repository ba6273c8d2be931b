"""The file input under a concurrent writer: every matching line is committed exactly once.

`bench.tail` once counted 314 matching lines against grep's 392. The cause was the benchmark's
stopping rule (it read the offset the tailer had *read* to, which runs ahead of the lines counted
and committed), not the tailer. This test is the one that would catch a tailer race: a writer
appends in random pieces (lines split across writes) while the tailer reads and another thread
polls its status as /-/ready does; at the end the events committed are exactly the matching lines,
and the committed offset is the file's size.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from bridge.clock import SYSTEM_CLOCK
from bridge.config.model import FileInput
from bridge.inputs.filetail.offsets import OffsetUpdate
from bridge.inputs.filetail.tailer import Tailer
from bridge.model import Accepted, Event
from bridge.store.offsets import StoreOffsets
from bridge.store.sqlite import SqliteStore
from tests.harness import wait_until
from tests.test_filetail_units import NODE, file_spec


def lines(count: int, seed: int) -> tuple[bytes, set[str]]:
    """`count` log lines, about one in five matching; the ids of the matching ones."""
    rng = random.Random(seed)
    out, matching = [], set()
    for n in range(count):
        if rng.random() < 0.2:
            out.append(f"ERROR app.worker - failure n={n} {'x' * rng.randint(0, 300)}")
            matching.add(str(n))
        else:
            out.append(f"INFO  app.worker - fine n={n} {'y' * rng.randint(0, 300)}")
    return ("\n".join(out) + "\n").encode(), matching


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_matching_line_is_committed_once_while_the_file_grows(
    tmp_path: Path, seed: int
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    spec = file_spec(logs, read_from="beginning", poll_interval="20ms")
    data, matching = lines(20_000, seed)
    store = SqliteStore(tmp_path / "state")
    seen: list[str] = []
    lock = threading.Lock()

    def submit(spec: FileInput, events: list[Event], offsets: OffsetUpdate) -> Accepted:
        with store.transaction() as tx:  # the events and the offsets commit together
            tx.tailstate.record(NODE, spec.name, offsets.positions, offsets.forget, offsets.seen_at)
            with lock:
                seen.extend(e.labels["message"].split("n=")[1].split()[0] for e in events)
        return Accepted()

    tailer = Tailer(spec, StoreOffsets(store, NODE), submit, SYSTEM_CLOCK)
    path = logs / "app.log"
    path.write_bytes(b"")
    stop_polling = threading.Event()

    def poll_status() -> None:  # what /-/ready and /metrics do meanwhile
        while not stop_polling.is_set():
            tailer.status()

    poller = threading.Thread(target=poll_status, daemon=True)
    tailer.start()
    poller.start()
    try:
        rng = random.Random(seed)
        with path.open("ab", buffering=0) as out:
            at = 0
            while at < len(data):
                step = rng.choice([1, 7, 100, 4096, 65_536, 300_000])
                out.write(data[at : at + step])
                at += step
                if rng.random() < 0.3:
                    time.sleep(0.001)

        def committed() -> bool:
            with store.reading() as tx:
                positions = tx.tailstate.load(NODE, "log")
            return any(p.offset == len(data) for p in positions.values())

        wait_until(committed, timeout=60)
    finally:
        stop_polling.set()
        tailer.stop(10)
        poller.join(5)
        store.close()
    with lock:
        assert len(seen) == len(set(seen)), "a line was committed twice"
        assert set(seen) == matching
    assert tailer.stats.lines_matched == tailer.stats.events == len(matching)
