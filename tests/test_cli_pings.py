"""`route` and `render` say who a message would ping: names, masked mobiles, userids."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from bridge.cli.main import main

CONFIG = """
state_dir: {state}
people:
  alice: {{mobile: "13812345678", userid: u1, name: Alice}}
  bob: {{userid: u2}}
  groups:
    dba: [alice, bob]
targets:
  ops: {{type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}}
  owner:
    type: work_notice
    app_key: k
    app_secret: s
    agent_id: 1
    recipients: ["{{{{ labels.owner }}}}"]
inputs:
  hook: {{type: webhook, path: /hook, labels: {{owner: "{{{{ body.owner }}}}", alertname: X}}}}
rules:
  - name: owner
    targets: [ops, owner]
    msgtype: markdown
    mention: {{firing: ["{{{{ labels.owner }}}}", dba], resolved: [bob]}}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(state=tmp_path / "state"), "utf-8")
    return path


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_route_says_who_is_pinged(config_path: Path) -> None:
    code, out, _ = run(
        "route", "-c", str(config_path), "--input", "hook", "--labels", "owner=alice"
    )
    assert code == 0
    assert "rule owner: pings alice 138****5678, bob userid u2" in out
    assert "rule owner: target owner reaches alice userid u1" in out  # the work notice
    assert "13812345678" not in out  # masked


def test_route_json_pings_per_rule(config_path: Path) -> None:
    args = ["--input", "hook", "--labels", "owner=alice", "--status", "resolved", "--json"]
    code, out, _ = run("route", "-c", str(config_path), *args)
    # (resolved, never told as firing: nothing is sent, so nobody is pinged)
    assert code == 1 and json.loads(out)["pings"] == {}
    code, out, _ = run(
        "route", "-c", str(config_path), "--input", "hook", "--labels", "owner=bob", "--json"
    )
    assert code == 0
    assert json.loads(out)["pings"] == {"owner": ["alice 138****5678", "bob userid u2"]}


def test_render_shows_the_pings_and_the_work_notice_to_the_owner(
    config_path: Path, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps({"owner": "alice"}), "utf-8")
    code, out, err = run(
        "render", "-c", str(config_path), "--input", "hook", "--payload", str(payload)
    )
    assert code == 0
    assert "# rule owner: pings alice 138****5678, bob userid u2" in err
    robot, notice = (
        json.loads(part.split("\n", 1)[1]) for part in out.split("# rule owner -> ")[1:]
    )
    assert robot["at"]["atMobiles"] == ["13812345678"] and robot["at"]["atUserIds"] == ["u2"]
    assert robot["markdown"]["text"].endswith("@13812345678 @u2")  # highlighted
    assert notice["userid_list"] == "u1"  # the work notice goes to the owner
