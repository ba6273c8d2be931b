"""The console's frame against the real daemon: who may see it, who may act, and what a page
never shows. Plain HTTP here (requests: what a script or an attacker's page can send); the
browser tests of each page are in test_e2e_console_*.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.harness import (
    Daemon,
    Simulator,
    am_alert_payload,
    bridge_cli,
    console_session,
    wait_until,
)

TOKEN = "operator-token-0123456789"
VIEWER = "viewer-token-0123456789ab"
ROBOT = "console-robot-token"
SECRET = "SECdemo-console"
SPEC = {"robots": {ROBOT: {"secret": SECRET}}}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec=SPEC)
    yield sim
    sim.stop()


def console_config(sim: Simulator, **console: object) -> dict[str, object]:
    return {
        "server": {"console": {"token": TOKEN, "viewer_token": VIEWER, **console}},
        "targets": {"ops": {"type": "robot", "webhook": sim.robot_url(ROBOT), "secret": SECRET}},
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [{"name": "all", "targets": ["ops"]}],
    }


@pytest.fixture(scope="module")
def daemon(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = Daemon(console_config(sim), directory=tmp_path_factory.mktemp("console"))
    yield daemon
    daemon.stop()


def test_a_page_without_a_session_sends_to_the_sign_in_form(daemon: Daemon) -> None:
    answer = requests.get(f"{daemon.url}/console/", allow_redirects=False, timeout=5)
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/console/login?next=/"
    form = requests.get(f"{daemon.url}/console/login", timeout=5)
    assert form.status_code == 200 and 'name="token"' in form.text


def test_the_data_without_a_token_or_with_a_wrong_one_is_refused(daemon: Daemon) -> None:
    assert requests.get(f"{daemon.url}/console/api/overview", timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    answer = requests.get(f"{daemon.url}/console/api/overview", headers=wrong, timeout=5)
    assert answer.status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    answer = requests.get(f"{daemon.url}/console/api/overview", headers=right, timeout=5)
    assert answer.status_code == 200 and answer.json()["targets"][0]["name"] == "ops"


def test_a_wrong_token_at_sign_in_is_refused_and_sets_no_cookie(daemon: Daemon) -> None:
    answer = requests.post(
        f"{daemon.url}/console/login", data={"token": "guess-guess-guess"}, timeout=5
    )
    assert answer.status_code == 401
    assert "Set-Cookie" not in answer.headers


def test_the_session_cookie_is_http_only_strict_and_scoped_and_holds_no_token(
    daemon: Daemon,
) -> None:
    answer = requests.post(
        f"{daemon.url}/console/login",
        data={"token": TOKEN, "name": "ann"},
        allow_redirects=False,
        timeout=5,
    )
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert TOKEN not in cookie


def test_a_forged_or_altered_cookie_is_not_a_session(daemon: Daemon) -> None:
    session, _ = console_session(daemon, TOKEN)
    value = session.cookies["dtb_console"]
    role, name, expires, nonce, mac = value.split(".")
    forged = f"{role}.{name}.{int(expires) + 3600}.{nonce}.{mac}"
    answer = requests.get(
        f"{daemon.url}/console/api/overview", cookies={"dtb_console": forged}, timeout=5
    )
    assert answer.status_code == 401
    viewer = console_session(daemon, VIEWER)[0].cookies["dtb_console"]
    promoted = "operator" + viewer[len("viewer") :]
    answer = requests.get(
        f"{daemon.url}/console/api/overview", cookies={"dtb_console": promoted}, timeout=5
    )
    assert answer.status_code == 401


def test_a_post_without_the_csrf_token_or_from_another_origin_is_refused(daemon: Daemon) -> None:
    session, csrf = console_session(daemon, TOKEN)
    url = f"{daemon.url}/console/logout"
    missing = session.post(url, data={}, allow_redirects=False, timeout=5)
    assert missing.status_code == 403
    elsewhere = session.post(
        url,
        data={"csrf": csrf},
        headers={"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"},
        allow_redirects=False,
        timeout=5,
    )
    assert elsewhere.status_code == 403
    # The session is still good: neither refused request signed it out.
    assert session.get(f"{daemon.url}/console/api/overview", timeout=5).status_code == 200
    own = session.post(
        url,
        data={"csrf": csrf},
        headers={"Origin": daemon.url},
        allow_redirects=False,
        timeout=5,
    )
    assert own.status_code == 303


def test_a_sign_in_from_another_origin_is_refused(daemon: Daemon) -> None:
    answer = requests.post(
        f"{daemon.url}/console/login",
        data={"token": TOKEN},
        headers={"Origin": "http://attacker.example"},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 403 and "Set-Cookie" not in answer.headers


def test_pages_are_not_cached_framed_or_allowed_scripts_from_elsewhere(daemon: Daemon) -> None:
    session, _ = console_session(daemon, TOKEN)
    answer = session.get(f"{daemon.url}/console/", timeout=5)
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Frame-Options"] == "DENY"
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_no_secret_reaches_a_page(daemon: Daemon, sim: Simulator) -> None:
    session, _ = console_session(daemon, TOKEN)
    for path in ("/console/", "/console/api/overview", "/console/login"):
        text = session.get(f"{daemon.url}{path}", timeout=5).text
        for secret in (ROBOT, SECRET, TOKEN, VIEWER):
            assert secret not in text, (path, secret)


def test_the_overview_shows_each_target_and_input_in_both_languages(daemon: Daemon) -> None:
    session, _ = console_session(daemon, TOKEN)
    chinese = session.get(f"{daemon.url}/console/", timeout=5).text
    assert "发送目标" in chinese and 'data-target="ops"' in chinese and 'data-input="am"' in chinese
    english = session.get(f"{daemon.url}/console/?lang=en", timeout=5).text
    assert "Targets" in english and "发送目标" not in english
    # The choice sticks (a cookie) for the next page.
    assert "Targets" in session.get(f"{daemon.url}/console/", timeout=5).text


def test_unknown_console_paths_are_404_and_wrong_methods_405(daemon: Daemon) -> None:
    session, csrf = console_session(daemon, TOKEN)
    assert session.get(f"{daemon.url}/console/nothing-here", timeout=5).status_code == 404
    answer = session.post(f"{daemon.url}/console/", data={"csrf": csrf}, timeout=5)
    assert answer.status_code == 405


def test_the_console_is_off_unless_configured(sim: Simulator, tmp_path: Path) -> None:
    config = console_config(sim)
    del config["server"]
    daemon = Daemon(config, directory=tmp_path)
    try:
        answer = requests.get(f"{daemon.url}/console/", allow_redirects=False, timeout=5)
        assert answer.status_code == 404
    finally:
        daemon.stop()


def test_a_short_token_or_an_input_under_the_console_path_is_a_config_problem(
    sim: Simulator, tmp_path: Path
) -> None:
    config = console_config(sim)
    config["server"] = {"console": {"token": "short"}}
    config["inputs"] = {"am": {"type": "alertmanager", "path": "/console/am"}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    result = bridge_cli("check", "-c", str(path))
    assert result.returncode == 1
    assert "server.console.token" in result.stderr and "shorter than 16" in result.stderr
    assert "inputs.am.path" in result.stderr and "under the console's path" in result.stderr


def test_the_overview_shows_who_received_a_work_notice_and_who_not(tmp_path: Path) -> None:
    app = {"app_secret": "app-secret-console", "agent_id": 77, "users": ["alice"]}
    sim = Simulator(spec={"apps": {"app-console": app}})
    notice = {
        "type": "work_notice",
        "app_key": "app-console",
        "app_secret": "app-secret-console",
        "agent_id": 77,
        "userids": ["alice", "ghost"],  # ghost is nobody DingTalk knows
        "api_base": sim.url,
    }
    config = {
        "server": {"console": {"token": TOKEN}},
        "targets": {"team": notice},
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [{"name": "all", "targets": ["team"]}],
    }
    daemon = Daemon(config, directory=tmp_path)
    try:
        assert daemon.post("/am", am_alert_payload("NoticeSeen")).status_code == 200
        bearer = {"Authorization": f"Bearer {TOKEN}"}

        def settled() -> dict[str, Any] | None:
            data = requests.get(f"{daemon.url}/console/api/overview", headers=bearer, timeout=5)
            notices = data.json()["targets"][0]["notices"]
            return notices[0] if notices and notices[0]["settled"] else None

        shown = wait_until(settled, timeout=30)
        assert shown["received"] == ["alice"]
        assert [r.split(" ")[0] for r in shown["refused"]] == ["ghost"]
        page = requests.get(f"{daemon.url}/console/", headers=bearer, timeout=5).text
        assert "已送达：alice" in page and "被拒收：ghost" in page
        assert "app-secret-console" not in page
    finally:
        daemon.stop()
        sim.stop()
