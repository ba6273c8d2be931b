"""`render` says what the daemon would do with a payload now, against the real state directory
(read-only): queued (with the bodies), silenced by which silence, not sent again until when,
grouped until when. The state is made by the daemon's own parts (the CLI's `silence add`, the
Intake that accepts alerts), so render and daemon are checked to agree."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml

from bridge.alerting.dedup import LogEntry
from bridge.config.compile import load_config
from bridge.config.model import Config
from bridge.durations import format_time
from bridge.inputs.alertmanager import parse_notification
from bridge.pipeline.intake import Intake
from bridge.store.api import Store
from bridge.store.sqlite import SqliteStore
from tests.harness import FIXTURES, am_alert_payload, bridge_cli

FIRING = FIXTURES / "alertmanager" / "firing.json"


def write_config(tmp_path: Path, **rule: Any) -> Path:
    config: dict[str, Any] = {
        "state_dir": str(tmp_path / "state"),
        "targets": {
            "ops": {"type": "robot", "webhook": "http://127.0.0.1:9/robot/send?access_token=t"}
        },
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [{"name": "all", "targets": ["ops"], "repeat_interval": "1h", **rule}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    return path


def render(config: Path) -> tuple[int, str, str]:
    result = bridge_cli("render", "-c", str(config), "--input", "am", "--payload", str(FIRING))
    return result.returncode, result.stdout, result.stderr


@contextmanager
def state_of(config: Config) -> Iterator[Store]:
    store = SqliteStore(config.state_dir)
    try:
        yield store
    finally:
        store.close()


def accept_as_the_daemon_would(config: Config, payload: dict[str, Any] | None = None) -> None:
    """Accept the payload (the fixture by default) through the daemon's Intake."""
    spec = config.http_inputs()["am"]
    now = datetime.now(UTC)
    body = payload or json.loads(FIRING.read_text())
    with state_of(config) as store:
        events = parse_notification(body, spec, now)
        Intake(store, lambda targets: None).accept(config, spec, events, now)


def told(config: Config) -> tuple[str, str, LogEntry]:
    """The one (rule, key) the notification log holds, and its entry."""
    with state_of(config) as store, store.reading() as tx:
        [(rule, key)] = tx.alertlog.firing()
        entry = tx.alertlog.get_entry(rule, key)
    assert entry is not None
    return rule, key, entry


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_render_without_state_queues_and_creates_no_state(tmp_path: Path) -> None:
    code, out, err = render(write_config(tmp_path))
    assert code == 0, err
    assert out.startswith("# rule all -> target ops (robot)\n")
    assert "# rule all: queued (first) for ops" in err
    assert not (tmp_path / "state").exists()  # read-only: nothing made


def test_render_says_which_silence_swallows_the_alert(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    added = bridge_cli("silence", "add", "-c", str(config), "--match", "alertname=DiskFull")
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.split()[1]  # "silence <id> until ...: <matchers>"
    code, out, err = render(config)
    assert code == 1  # nothing would be sent
    assert out == ""
    assert f': silenced by {silence_id} (alertname="DiskFull", runtime)' in err


def test_render_says_a_repeat_is_not_sent_again_until_the_repeat_interval(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path)
    config = load_config(path, {})
    accept_as_the_daemon_would(config)
    _, _, entry = told(config)
    database = config.state_dir / "state.db"
    before = digest(database)
    code, out, err = render(path)
    assert code == 1 and out == ""
    until = format_time(entry.at + 3600, config.timezone)
    assert f"# rule all: not sent again until {until} (repeat_interval)" in err
    assert digest(database) == before  # read-only


def test_render_says_an_acknowledged_alert_waits_for_its_resolve(tmp_path: Path) -> None:
    path = write_config(tmp_path, repeat_interval="1s")
    config = load_config(path, {})
    accept_as_the_daemon_would(config)
    rule, key, entry = told(config)
    with state_of(config) as store, store.transaction() as tx:
        # Told long ago, so a reminder is due, were it not acknowledged (by the event's
        # fingerprint, what `ack <short id>` names; a direct rule's log key is the same).
        tx.alertlog.put_entry(rule, key, entry.firing, entry.resolved, 0.0)
        tx.acks.acknowledge(key, "alice", 0.0)
    code, out, err = render(path)
    assert code == 1 and out == ""
    assert "# rule all: not sent again until it resolves (acknowledged by alice)" in err


def test_render_shows_a_new_group_and_what_its_flush_would_send(tmp_path: Path) -> None:
    code, out, err = render(write_config(tmp_path, group_by=["alertname"], group_wait="45s"))
    assert code == 0, err
    assert "# rule all: grouped until " in err
    assert ", 1 alert joining); that flush, if no other alert joins before, sends (1 alert):" in err
    assert out.startswith("# rule all -> target ops (robot)\n")
    assert "DiskFull" in json.loads(out.split("\n", 1)[1])["markdown"]["text"]


def test_render_joins_the_group_the_state_holds(tmp_path: Path) -> None:
    path = write_config(tmp_path, group_by=["job"], group_wait="45s")
    config = load_config(path, {})
    accept_as_the_daemon_would(config, am_alert_payload("CpuHigh"))  # job=node, as the fixture
    with state_of(config) as store, store.reading() as tx:
        [group] = tx.groups.due(float("inf"))
    code, out, err = render(path)
    assert code == 0, err
    flush = format_time(group.next_flush, config.timezone)
    assert f"# rule all: grouped until {flush} (group {group.key[:8]}, 1 alert joining)" in err
    assert "sends (2 alerts):" in err
    text = json.loads(out.split("\n", 1)[1])["markdown"]["text"]
    assert "DiskFull" in text and "CpuHigh" in text


def test_render_says_a_template_fails_and_shows_the_fallback_the_sender_would_send(
    tmp_path: Path,
) -> None:
    code, out, err = render(write_config(tmp_path, template="{{ 1 // 0 }}"))
    assert code == 0, err
    assert "# rule all: template failed (ZeroDivisionError" in err
    body = json.loads(out.split("\n", 1)[1])
    assert "template failed, plain fallback" in json.dumps(body, ensure_ascii=False)


def test_render_reads_a_postgresql_state_read_only(tmp_path: Path, pg_url: str) -> None:
    """On `state: {url}`: render reads the database the daemons share, writes nothing to it, and
    a silence added there is the verdict."""
    config = write_config(tmp_path)
    text = yaml.safe_load(config.read_text("utf-8"))
    text["state"] = {"url": pg_url}
    config.write_text(yaml.safe_dump(text), "utf-8")
    code, _out, err = render(config)
    assert code == 0, err
    assert "# rule all: queued (first) for ops" in err
    with psycopg.connect(pg_url) as conn:  # read-only: nothing queued, nothing logged
        assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM nflog").fetchone() == (0,)
    added = bridge_cli("silence", "add", "-c", str(config), "--match", "alertname=DiskFull")
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.split()[1]
    code, out, err = render(config)
    assert code == 1 and out == ""
    assert f': silenced by {silence_id} (alertname="DiskFull", runtime)' in err
