"""The state directory under stress, end to end: a full disk, a corrupt or unusable database.

The full-disk tests put `state_dir` on a real 2 MiB tmpfs (mounting needs root: CI runs as root;
elsewhere they are skipped with a message) and fill it with another file, as a runaway log would.
The daemon must answer 503 (reason `store`) while it cannot commit, and take alerts again by
itself once there is room, with every alert it acknowledged delivered.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import (
    Daemon,
    Simulator,
    am_alert_payload,
    bridge_cli,
    quick_robot_config,
    wait_until,
)


def _need_root() -> None:
    if os.geteuid() == 0:
        return
    message = "mounting a small tmpfs needs root (CI runs as root)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must run this test", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs, unmounted after the test."""
    _need_root()
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill the file system with one file, to the last byte it takes."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    out.write(b"x" * chunk)
            except OSError:
                pass
    return filler


def config(sim: Simulator, state_dir: Path) -> dict[str, Any]:
    return quick_robot_config(sim, state_dir=str(state_dir))


def cfg_dir(tmp_path: Path) -> Path:
    """Where the daemon's config goes (the same for a restarted daemon)."""
    directory = tmp_path / "cfg"
    directory.mkdir(exist_ok=True)
    return directory


def delivered_names(sim: Simulator, names: set[str]) -> set[str]:
    text = "\n".join(m.get("text", "") + m.get("title", "") for m in sim.messages())
    return {name for name in names if name in text}


class Poster:
    """Posts distinct alerts; remembers the names of those acknowledged (HTTP 200)."""

    def __init__(self, daemon: Daemon, prefix: str) -> None:
        self.daemon, self.prefix, self.count = daemon, prefix, 0
        self.acked: set[str] = set()

    def post(self) -> requests.Response:
        self.count += 1
        name = f"{self.prefix}{self.count:05d}"
        payload = am_alert_payload(name)
        payload["alerts"][0]["annotations"]["description"] = "disk filler " * 100
        response = self.daemon.post("/am", payload)
        if response.status_code == 200:
            self.acked.add(name)
        return response

    def until_refused(self, limit: int = 2000) -> requests.Response:
        for _ in range(limit):
            response = self.post()
            if response.status_code != 200:
                return response
        raise AssertionError(f"{limit} alerts accepted on a full disk")


def ready_problems(daemon: Daemon) -> list[str]:
    """What /-/ready says is wrong: [] when it answers 200."""
    answer = requests.get(f"{daemon.url}/-/ready", timeout=10)
    problems: list[str] = answer.json().get("problems", [])
    return [] if answer.status_code == 200 else problems or ["not ready"]


def test_full_disk_answers_503_store_then_recovers_when_space_returns(
    sim: Simulator, small_disk: Path, tmp_path: Path
) -> None:
    daemon = Daemon(config(sim, small_disk / "state"), directory=cfg_dir(tmp_path))
    try:
        poster = Poster(daemon, "FullDisk")
        assert poster.post().status_code == 200
        filler = fill(small_disk)
        refused = poster.until_refused()
        assert refused.status_code == 503, refused.text
        assert refused.json()["reason"] == "store"
        # It stays refused while the disk is full (no transaction left open, nothing half done).
        assert poster.post().status_code == 503
        ready = requests.get(f"{daemon.url}/-/ready", timeout=10)
        assert ready.status_code == 503
        assert "the state store cannot take commits" in ready.json()["problems"]
        assert "state store cannot commit" in daemon.log()
        assert str(small_disk / "state" / "state.db") in daemon.log()

        filler.unlink()
        wait_until(lambda: poster.post().status_code == 200, timeout=30, interval=0.5)
        for _ in range(5):
            response = poster.post()
            assert response.status_code == 200, response.text
        # Ready again once the sender has also recorded what it delivered while the disk was full
        # (it held that outcome and retries its commit every few seconds).
        wait_until(lambda: ready_problems(daemon) == [], timeout=30, interval=0.5)
        wait_until(lambda: delivered_names(sim, poster.acked) == poster.acked, timeout=30)
    finally:
        daemon.stop()


def test_full_disk_restart_with_room_again_takes_alerts_and_delivers_the_queue(
    sim: Simulator, small_disk: Path, tmp_path: Path
) -> None:
    """Stopped while the disk is full (its WAL and queue as they are), started on the full disk
    (it starts, and answers 503), then started once there is room again: it takes alerts at once
    and delivers everything acknowledged before and after."""
    # DingTalk is down meanwhile, so what was acknowledged is still queued at the restart.
    sim.control(
        "faults",
        {"path": "/robot/send", "token": "tok-a", "count": 100_000, "action": {"http_status": 500}},
    )
    cfg = config(sim, small_disk / "state")
    daemon = Daemon(cfg, directory=cfg_dir(tmp_path))
    poster = Poster(daemon, "Restart")
    try:
        for _ in range(3):
            assert poster.post().status_code == 200
        filler = fill(small_disk)
        assert poster.until_refused().json()["reason"] == "store"
    finally:
        daemon.stop()
    # Started again on the still full disk: it comes up, and refuses what it cannot commit.
    daemon = Daemon(cfg, directory=cfg_dir(tmp_path))
    try:
        poster.daemon = daemon
        assert poster.until_refused(limit=50).json()["reason"] == "store"
    finally:
        daemon.stop()
    filler.unlink()
    sim.control("reset")  # DingTalk is back (nothing was delivered: no message is forgotten)
    daemon = Daemon(cfg, directory=cfg_dir(tmp_path))
    try:
        poster.daemon = daemon
        for _ in range(3):
            response = poster.post()
            assert response.status_code == 200, response.text
        wait_until(lambda: delivered_names(sim, poster.acked) == poster.acked, timeout=30)
    finally:
        daemon.stop()


def test_the_wal_alone_does_not_fill_a_small_disk(
    sim: Simulator, small_disk: Path, tmp_path: Path
) -> None:
    """300 alerts of ~1.3 KB on a 2 MiB disk, delivered as they come: the WAL is checkpointed
    and cut back, so every one is taken (it once filled this disk after ~60), and once writes
    pause it is truncated to nothing."""
    daemon = Daemon(config(sim, small_disk / "state"), directory=cfg_dir(tmp_path))
    wal = small_disk / "state" / "state.db-wal"
    try:
        poster = Poster(daemon, "Wal")
        largest = 0
        for _ in range(300):
            response = poster.post()
            assert response.status_code == 200, response.text
            largest = max(largest, wal.stat().st_size if wal.exists() else 0)
        assert largest <= 1 << 20  # a quarter of the free space, and a commit or two
        wait_until(lambda: not wal.exists() or wal.stat().st_size == 0, timeout=30)
        wait_until(lambda: delivered_names(sim, poster.acked) == poster.acked, timeout=60)
    finally:
        daemon.stop()


# -- corrupt or unusable state --------------------------------------------------------------------


def write_config(sim: Simulator, directory: Path, state_dir: Path) -> Path:
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    cfg = config(sim, state_dir)
    cfg["server"] = {"listen": "127.0.0.1:0"}
    path.write_text(yaml.safe_dump(cfg), "utf-8")
    return path


def assert_refused(path: Path, where: Path, *words: str) -> None:
    """`check` and `run` both exit 1 naming `where`, with `words`, and no traceback."""
    for command in (["check", "-c", str(path)], ["run", "-c", str(path)]):
        result = bridge_cli(*command, timeout=30)
        output = result.stdout + result.stderr
        assert result.returncode == 1, (command, output)
        assert "Traceback" not in output, output
        assert str(where) in output, output
        for word in words:
            assert word in output, (word, output)


def test_check_reports_a_usable_state_dir(sim: Simulator, tmp_path: Path) -> None:
    path = write_config(sim, tmp_path / "cfg", tmp_path / "state")
    result = bridge_cli("check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "state").exists()  # check creates nothing

    from bridge.store.sqlite import SqliteStore
    from bridge.store.statedir import verify_state_dir

    assert "writable, no database yet" in verify_state_dir(tmp_path / "state")
    SqliteStore(tmp_path / "state").close()  # as a daemon leaves it
    result = bridge_cli("check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "opens and checks out" in verify_state_dir(tmp_path / "state")


def test_a_corrupt_database_is_moved_aside_and_a_new_one_started(
    sim: Simulator, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    garbage = b"this is not an SQLite database, it was overwritten\n" * 200
    (state / "state.db").write_bytes(garbage)
    path = write_config(sim, tmp_path / "cfg", state)

    result = bridge_cli("check", "-c", str(path))
    assert result.returncode == 1
    assert f"state database {state / 'state.db'} is corrupt" in result.stderr
    assert "moves it aside" in result.stderr
    assert "Traceback" not in result.stderr
    assert (state / "state.db").read_bytes() == garbage  # check moved nothing

    daemon = Daemon(config(sim, state), directory=cfg_dir(tmp_path))
    try:
        [aside] = list(state.glob("state.db.corrupt-*"))
        assert aside.read_bytes() == garbage  # kept for salvage
        log = daemon.log()
        line = next(x for x in log.splitlines() if "state database corrupt, moved aside" in x)
        assert " ERROR " in line
        assert f"path={state / 'state.db'}" in line and f"moved_to={aside}" in line
        response = daemon.post("/am", am_alert_payload("AfterCorruption"))
        assert response.status_code == 200, response.text
        wait_until(lambda: delivered_names(sim, {"AfterCorruption"}), timeout=20)
    finally:
        daemon.stop()
    with sqlite3.connect(state / "state.db") as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"


def test_a_damaged_page_in_the_database_is_found_at_start(sim: Simulator, tmp_path: Path) -> None:
    """A database whose header is right but whose pages are damaged (a torn write, a bad disk):
    the quick check at start finds it; `check` says so and `run` moves it aside."""
    state = tmp_path / "state"
    state.mkdir()
    db = state / "state.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("y" * 500,)] * 200)
    conn.close()
    data = bytearray(db.read_bytes())
    data[4096 * 2 : 4096 * 2 + 200] = b"\xff" * 200  # the middle of a b-tree page
    db.write_bytes(bytes(data))
    path = write_config(sim, tmp_path / "cfg", state)
    result = bridge_cli("check", "-c", str(path))
    assert result.returncode == 1 and f"state database {db} is corrupt" in result.stderr
    daemon = Daemon(config(sim, state), directory=cfg_dir(tmp_path))
    try:
        assert list(state.glob("state.db.corrupt-*"))
        assert daemon.post("/am", am_alert_payload("AfterDamage")).status_code == 200
    finally:
        daemon.stop()


def test_state_db_that_is_a_directory_is_refused_with_its_path(
    sim: Simulator, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    (state / "state.db").mkdir(parents=True)
    path = write_config(sim, tmp_path / "cfg", state)
    assert_refused(path, state / "state.db", "is a directory", "move it away")


def test_state_dir_that_is_a_regular_file_is_refused_with_its_path(
    sim: Simulator, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.write_text("not a directory")
    path = write_config(sim, tmp_path / "cfg", state)
    assert_refused(path, state, "is a regular file, not a directory")


def test_state_dir_under_a_regular_file_is_refused_with_its_path(
    sim: Simulator, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("x")
    state = tmp_path / "afile" / "state"
    path = write_config(sim, tmp_path / "cfg", state)
    assert_refused(path, state, "cannot be created")


def test_state_dir_on_a_read_only_mount_is_refused_with_its_path(
    sim: Simulator, tmp_path: Path
) -> None:
    _need_root()
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        state = mount / "state"
        state.mkdir()
        with sqlite3.connect(state / "state.db") as conn:  # a real database
            conn.execute("CREATE TABLE t (x)")
        conn.close()
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        path = write_config(sim, tmp_path / "cfg", state)
        assert_refused(path, state, "not writable", "read-only file system")
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    shutil.rmtree(mount, ignore_errors=True)
