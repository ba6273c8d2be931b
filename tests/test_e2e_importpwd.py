"""End to end: a prometheus-webhook-dingtalk config, converted by `import-pwd`, run by the daemon.

The old config's robots are the simulator's (one signed, one not); the converted config is run
as written (only its listen port is the test's), and an Alertmanager notification posted to the
old URL, /dingtalk/<target>/send, must arrive at the target's robot, signed with its secret and
@-mentioning its mobiles: Alertmanager's config would not change.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon, Simulator, bridge_cli, fixture_json
from tests.test_importpwd import env_file_values

SECRET = "SECpwd-e2e-signing-secret"
MOBILES = ["13800138000", "+852-12345678"]
LISTEN = "127.0.0.1:8060"  # what the converted config says; the test runs it on a free port


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(spec={"robots": {"pwd-signed": {"secret": SECRET}, "pwd-plain": {}}})
    yield simulator
    simulator.stop()


def old_config(sim: Simulator, directory: Path) -> Path:
    path = directory / "config.yml"
    path.write_text(
        f"""\
timeout: 5s
targets:
  ops:
    url: {sim.robot_url("pwd-signed")}
    secret: {SECRET}
    mention:
      mobiles: {MOBILES}
  dev:
    url: {sim.robot_url("pwd-plain")}
    mention:
      all: true
""",
        "utf-8",
    )
    return path


def converted_daemon(
    sim: Simulator, tmp_path: Path, *extra: str
) -> tuple[Daemon, str, dict[str, str]]:
    """Convert the old config with `extra` arguments and run the result: (the daemon, the
    config text as written, the env file's variables)."""
    source, new, env_file = old_config(sim, tmp_path), tmp_path / "new.yaml", tmp_path / "new.env"
    args = [a.replace("ENV_FILE", str(env_file)) for a in extra]
    done = bridge_cli("import-pwd", str(source), "-o", str(new), "--listen", LISTEN, *args)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stderr and "pwd-signed" not in done.stderr
    env = {"STATE_DIRECTORY": str(tmp_path / "state"), **env_file_values(env_file)}
    text = new.read_text("utf-8")
    assert f'listen: "{LISTEN}"' in text
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return Daemon(text.replace(LISTEN, "127.0.0.1:{port}"), env, run_dir), text, env


def assert_delivered_through_the_old_urls(daemon: Daemon, sim: Simulator) -> None:
    notification = fixture_json("firing.json")
    answer = daemon.post("/dingtalk/ops/send", notification)
    assert answer.status_code == 200, answer.text
    [message] = sim.wait_messages(1, token="pwd-signed")
    assert message["msgtype"] == "markdown"
    assert "DiskFull" in message["title"]
    assert message["mentions"]["mobiles"] == MOBILES
    assert message["mentions"]["highlighted_mobiles"] == MOBILES  # @mobile is in the text
    # The simulator checks the signature with the robot's secret: one call, accepted.
    calls = [r for r in sim.requests_seen() if r.get("token") == "pwd-signed"]
    assert [r["errcode"] for r in calls] == [0]

    assert daemon.post("/dingtalk/dev/send", notification).status_code == 200
    [plain] = sim.wait_messages(1, token="pwd-plain")
    assert plain["mentions"]["all"] is True
    assert daemon.post("/dingtalk/nobody/send", notification).status_code == 404


def test_a_converted_config_delivers_through_the_old_urls(sim: Simulator, tmp_path: Path) -> None:
    daemon, text, _ = converted_daemon(sim, tmp_path)
    try:
        assert SECRET in text  # inline, as the old config held it
        assert_delivered_through_the_old_urls(daemon, sim)
    finally:
        daemon.stop()
    assert SECRET not in daemon.log()


def test_with_secrets_in_the_environment_it_delivers_the_same(
    sim: Simulator, tmp_path: Path
) -> None:
    daemon, text, env = converted_daemon(sim, tmp_path, "--secrets-to-env", "ENV_FILE")
    try:
        assert SECRET not in text and "pwd-signed" not in text
        assert env["DINGTALK_OPS_SECRET"] == SECRET
        assert_delivered_through_the_old_urls(daemon, sim)
    finally:
        daemon.stop()
