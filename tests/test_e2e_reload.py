"""Live reload of the config: by file change (rewrite, rename, Kubernetes `..data` swap), SIGHUP
and POST /-/reload; a broken config changes nothing that runs; queued messages survive."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.harness import Daemon, Process, Simulator, am_alert_payload, free_port, wait_until


def config(sim: Simulator, token: str, port: int | str, state: Path, **server: Any) -> str:
    return yaml.safe_dump(
        {
            "state_dir": str(state),
            "server": {"listen": f"127.0.0.1:{port}", **server},
            "targets": {
                "ops": {
                    "type": "robot",
                    "webhook": sim.robot_url(token),
                    "rate_limit": {"messages": 0},
                }
            },
            "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
            "rules": [
                {
                    "name": "all",
                    "targets": ["ops"],
                    "title": f"via {token} {{{{ labels.alertname }}}}",
                }
            ],
        }
    )


def reloaded_count(daemon: Daemon) -> int:
    return daemon.log().count("config reloaded")


def ready(daemon: Daemon) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{daemon.url}/-/ready", timeout=5).json()
    return body


@pytest.fixture
def daemon(sim: Simulator, tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(config(sim, "tok-a", "{port}", tmp_path / "state"), directory=tmp_path)
    yield d
    d.stop()


def write(daemon: Daemon, text: str, how: str) -> None:
    path = daemon.config_path
    if how == "rewrite":
        path.write_text(text, "utf-8")
    elif how == "rename":  # what editors do: a new file renamed over the old one
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, "utf-8")
        os.replace(tmp, path)
    else:
        raise AssertionError(how)


def point_at_b(sim: Simulator, daemon: Daemon) -> str:
    return config(sim, "tok-b", daemon.port, daemon.dir / "state")


@pytest.mark.parametrize("how", ["rewrite", "rename"])
def test_a_saved_config_is_live_within_moments(sim: Simulator, daemon: Daemon, how: str) -> None:
    write(daemon, point_at_b(sim, daemon), how)
    wait_until(lambda: reloaded_count(daemon) == 1, timeout=5)
    assert daemon.post("/am", am_alert_payload("AfterSave")).status_code == 200
    [message] = sim.wait_messages(1)
    assert message["token"] == "tok-b" and message["title"].startswith("via tok-b")
    assert ready(daemon)["config"]["last_reload"]["result"] == "success"


def test_fifty_saves_in_a_second_cost_one_or_two_reloads(sim: Simulator, daemon: Daemon) -> None:
    final = point_at_b(sim, daemon)
    for i in range(50):
        write(daemon, final.replace("via tok-b ", f"via tok-b {i} "), "rewrite")
        time.sleep(0.02)
    time.sleep(2.5)
    assert 1 <= reloaded_count(daemon) <= 2
    daemon.post("/am", am_alert_payload("Final"))
    [message] = sim.wait_messages(1)
    assert message["title"].startswith("via tok-b 49 ")  # the final content applies


def test_kubernetes_configmap_symlink_swap(sim: Simulator, tmp_path: Path) -> None:
    # /etc/config/config.yaml -> ..data/config.yaml, ..data -> ..2026_11_28_v1 (swapped atomically)
    root = tmp_path / "cm"
    v1, v2 = root / "..v1", root / "..v2"
    v1.mkdir(parents=True)
    v2.mkdir()
    port = free_port()
    (v1 / "config.yaml").write_text(config(sim, "tok-a", port, tmp_path / "state"))
    (v2 / "config.yaml").write_text(config(sim, "tok-b", port, tmp_path / "state"))
    os.symlink("..v1", root / "..data")
    os.symlink("..data/config.yaml", root / "config.yaml")
    proc = Process(["run", "-c", str(root / "config.yaml")])
    try:
        wait_until(lambda: _healthy(port), timeout=15)
        os.symlink("..v2", root / "..data_tmp")
        os.replace(root / "..data_tmp", root / "..data")  # what kubelet does
        wait_until(lambda: "config reloaded" in proc.log(), timeout=5)
        requests.post(f"http://127.0.0.1:{port}/am", json=am_alert_payload("Swapped"), timeout=5)
        [message] = sim.wait_messages(1)
        assert message["token"] == "tok-b"
    finally:
        proc.stop()


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/-/healthy", timeout=1).ok
    except requests.ConnectionError:
        return False


def test_a_broken_config_changes_nothing_that_runs(sim: Simulator, daemon: Daemon) -> None:
    good = daemon.config_path.read_text()
    write(daemon, good + "rules: [oops\n", "rewrite")  # broken YAML
    wait_until(lambda: "reload failed, old config kept" in daemon.log(), timeout=5)
    bad_regex = yaml.safe_load(good)
    bad_regex["rules"][0]["match_re"] = {"a": "(("}
    write(daemon, yaml.safe_dump(bad_regex), "rewrite")
    wait_until(lambda: daemon.log().count("reload failed") == 2, timeout=5)
    assert "bad regular expression" in daemon.log()  # the same words as `check`
    assert daemon.post("/am", am_alert_payload("StillOld")).status_code == 200
    [message] = sim.wait_messages(1)
    assert message["token"] == "tok-a"
    state = ready(daemon)["config"]
    assert state["last_reload"]["result"] == "failed"


def test_sighup_and_post_reload(sim: Simulator, daemon: Daemon) -> None:
    daemon.config_path.write_text(point_at_b(sim, daemon))
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: "trigger=SIGHUP" in daemon.log(), timeout=5)
    response = requests.post(f"{daemon.url}/-/reload", timeout=10)
    assert response.status_code == 200
    assert response.json()["result"] in ("unchanged", "success")


def test_reload_token_guards_post_reload(sim: Simulator, tmp_path: Path) -> None:
    d = Daemon(
        config(sim, "tok-a", "{port}", tmp_path / "state", reload_token="r-token"),
        directory=tmp_path,
    )
    try:
        assert requests.post(f"{d.url}/-/reload", timeout=10).status_code == 401
        ok = requests.post(
            f"{d.url}/-/reload", headers={"Authorization": "Bearer r-token"}, timeout=10
        )
        assert ok.status_code == 200 and ok.json()["result"] == "unchanged"
        assert "r-token" not in d.log()
    finally:
        d.stop()


def test_no_alert_is_lost_while_reloading_under_load(sim: Simulator, daemon: Daemon) -> None:
    names = [f"Load{i:04d}" for i in range(300)]
    answers: list[int] = []

    def post_all() -> None:
        with requests.Session() as session:
            for name in names:
                answers.append(
                    session.post(
                        f"{daemon.url}/am", json=am_alert_payload(name), timeout=10
                    ).status_code
                )

    poster = threading.Thread(target=post_all)
    poster.start()
    for token in ("tok-b", "tok-a", "tok-b"):
        daemon.config_path.write_text(config(sim, token, daemon.port, daemon.dir / "state"))
        daemon.signal(signal.SIGHUP)
        time.sleep(0.3)
    poster.join(60)
    assert answers == [200] * len(names)

    def missing() -> list[str]:
        seen = " ".join(m["title"] + "\n" + m["text"] for m in sim.messages())
        return [name for name in names if name not in seen]

    # Every accepted alert arrives (one by one or in a digest), through either robot.
    wait_until(lambda: not missing(), timeout=30)
